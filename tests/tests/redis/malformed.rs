//! Bytes that are not RESP: the connection that sent them gets one `-ERR Protocol error`
//! reply (after the replies to the commands before them) and is closed; a connection
//! opened before and one opened after keep working. Also the request size limit
//! (`--max-redis-request-bytes`).

use std::net::SocketAddr;

use corridor_tests::Mesh;
use corridor_tests::redis::{RedisOptions, RedisServer, Resp, RespConn};

use super::{OrPanic, gateway_addr, redis_objects, server, start};

/// Malformed requests and the error each gets, in Redis's words where Redis has them.
const MALFORMED: &[(&str, &[u8], &str)] = &[
    (
        "negative bulk length",
        b"*1\r\n$-5\r\n",
        "ERR Protocol error: invalid bulk length",
    ),
    (
        "huge bulk length",
        b"*1\r\n$99999999999\r\n",
        "ERR Protocol error: invalid bulk length",
    ),
    (
        "bulk length that is not a number",
        b"*1\r\n$x3\r\nGET\r\n",
        "ERR Protocol error: invalid bulk length",
    ),
    (
        "unterminated bulk string",
        b"*2\r\n$3\r\nGETxx$1\r\nk\r\n",
        "ERR Protocol error: expected CRLF after a bulk string",
    ),
    (
        "multibulk length that is not a number",
        b"*abc\r\n$4\r\nPING\r\n",
        "ERR Protocol error: invalid multibulk length",
    ),
    (
        "huge multibulk length",
        b"*99999999999\r\n",
        "ERR Protocol error: invalid multibulk length",
    ),
    (
        "inline command with unbalanced quotes",
        b"SET \"a b\r\n",
        "ERR Protocol error: unbalanced quotes in request",
    ),
    (
        "bad type byte inside a command",
        b"*2\r\n$3\r\nGET\r\n+k\r\n",
        "ERR Protocol error: expected '$', got '+'",
    ),
];

async fn single(tag: &str, flags: &[&str]) -> (Mesh, RedisServer, SocketAddr) {
    let mut mesh = Mesh::new(tag);
    let redis = server(&mut mesh, RedisOptions::new()).await;
    let objects = redis_objects(&mesh, "cache", "redis", &[&redis]);
    start(&mut mesh, objects, flags).await;
    let addr = gateway_addr(&mesh, "cache").await;
    (mesh, redis, addr)
}

/// Sends `bytes` after a PING and a SET on a fresh connection and returns every reply
/// until the gateway closed it (failing if it stays open).
async fn replies_until_closed(addr: SocketAddr, bytes: &[u8]) -> Vec<Resp> {
    let mut conn = RespConn::connect(addr).await.or_panic();
    let mut sent = b"PING\r\n".to_vec();
    sent.extend(corridor_tests::redis::resp::encode_command(&[
        "SET", "before", "1",
    ]));
    sent.extend_from_slice(bytes);
    conn.send_raw(&sent).await.or_panic();
    conn.read_until_closed().await.or_panic()
}

#[tokio::test]
async fn malformed_resp_gets_a_protocol_error_and_closes_only_that_connection() {
    let (_mesh, redis, addr) = single("redis-malformed", &[]).await;
    let mut bystander = RespConn::connect(addr).await.or_panic();
    assert_eq!(
        bystander.command(&["SET", "k", "kept"]).await.or_panic(),
        Resp::Simple("OK".into())
    );
    for (what, bytes, want) in MALFORMED {
        let replies = replies_until_closed(addr, bytes).await;
        assert_eq!(
            replies,
            [
                Resp::Simple("PONG".into()),
                Resp::Simple("OK".into()),
                Resp::Error((*want).into()),
            ],
            "{what}: {:?}",
            String::from_utf8_lossy(bytes)
        );
        // The connection opened before carries on, and new ones are served.
        let reply = bystander.command(&["GET", "k"]).await.or_panic();
        assert_eq!(reply.as_str(), Some("kept"), "after {what}");
        let mut fresh = RespConn::connect(addr).await.or_panic();
        assert_eq!(
            fresh.command(&["GET", "k"]).await.or_panic().as_str(),
            Some("kept")
        );
    }
    // An inline line longer than Redis's 64 KiB, its end never sent.
    let replies = replies_until_closed(addr, &vec![b'x'; 70 * 1024]).await;
    assert_eq!(
        replies.last(),
        Some(&Resp::Error(
            "ERR Protocol error: too big inline request".into()
        )),
        "{:?}",
        &replies[..replies.len().min(3)]
    );
    // Nothing of the malformed requests reached the server.
    let calls = redis.command_calls().await.or_panic();
    assert_eq!(
        calls.get("get").copied(),
        Some(2 * MALFORMED.len() as u64),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_request_over_the_size_limit_is_refused_and_the_connection_closed() {
    let (_mesh, redis, addr) =
        single("redis-max-request", &["--max-redis-request-bytes", "1024"]).await;
    let mut bystander = RespConn::connect(addr).await.or_panic();
    let small = "x".repeat(900);
    assert_eq!(
        bystander
            .command(&["SET", "small", &small])
            .await
            .or_panic(),
        Resp::Simple("OK".into())
    );
    let big = "y".repeat(2_000);
    let replies = replies_until_closed(
        addr,
        &corridor_tests::redis::resp::encode_command(&["SET", "big", &big]),
    )
    .await;
    assert_eq!(replies.len(), 3, "{replies:?}");
    let refusal = replies[2].as_error().unwrap_or_default();
    assert!(
        refusal.starts_with("ERR Protocol error: too big request"),
        "{replies:?}"
    );
    assert_eq!(
        bystander.command(&["STRLEN", "small"]).await.or_panic(),
        Resp::Integer(900)
    );
    let exists = redis.command(&["EXISTS", "big"]).await.or_panic();
    assert_eq!(exists, Resp::Integer(0), "the big SET reached the server");
}
