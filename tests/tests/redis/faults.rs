//! RedisService faults: an ERROR fault on GET answers the configured share of GETs with
//! an error and leaves other commands alone; a DELAY fault holds replies back, and the
//! replies of a pipeline still come in command order. And the `opTimeout` answering for a
//! server that stalls, without later replies going to the wrong command.

use std::net::SocketAddr;

use corridor_tests::Mesh;
use corridor_tests::redis::resp::encode_command;
use corridor_tests::redis::{RedisOptions, RedisServer, Resp, RespConn};
use serde_json::json;

use super::{OrPanic, aeraki, gateway_addr, redis_objects, server, start};

/// GETs sent through the ERROR fault.
const GETS: usize = 2_000;
/// The ERROR fault's percentage.
const ERROR_PERCENT: f64 = 50.0;
/// Allowed distance from [`ERROR_PERCENT`], in percentage points (over 2,000 GETs, 5
/// points is about 4.5 standard deviations).
const TOLERANCE: f64 = 5.0;

/// `cache` with an ERROR fault on half the GETs and a 300 ms DELAY on every INCR (a
/// command that goes upstream: faults apply to routed commands, not to PING or ECHO).
async fn faulty_mesh(tag: &str) -> (Mesh, RedisServer, SocketAddr) {
    let mut mesh = Mesh::new(tag);
    let redis = server(&mut mesh, RedisOptions::new()).await;
    let mut objects = redis_objects(&mesh, "cache", "redis", &[&redis]);
    objects.push(aeraki(
        &mesh,
        "RedisService",
        "cache",
        json!({
            "host": ["cache"],
            "faults": [
                { "type": "ERROR", "percentage": { "value": ERROR_PERCENT }, "commands": ["GET"] },
                { "type": "DELAY", "delay": "300ms", "commands": ["INCR"] },
            ],
        }),
    ));
    start(&mut mesh, objects, &[]).await;
    let addr = gateway_addr(&mesh, "cache").await;
    (mesh, redis, addr)
}

#[tokio::test]
async fn an_error_fault_fails_its_share_of_gets_only() {
    let (_mesh, redis, addr) = faulty_mesh("redis-fault-error").await;
    let mut conn = RespConn::connect(addr).await.or_panic();
    assert_eq!(
        conn.command(&["SET", "k", "v"]).await.or_panic(),
        Resp::Simple("OK".into())
    );
    let mut pipeline = Vec::new();
    for _ in 0..GETS {
        pipeline.extend(encode_command(&["GET", "k"]));
    }
    conn.send_raw(&pipeline).await.or_panic();
    let mut errors = 0usize;
    for i in 0..GETS {
        match conn.read_reply().await.or_panic() {
            Resp::Error(_) => errors += 1,
            Resp::Bulk(Some(v)) if v == b"v" => {}
            other => panic!("GET #{i} answered {other:?}"),
        }
    }
    let share = errors as f64 * 100.0 / GETS as f64;
    assert!(
        (share - ERROR_PERCENT).abs() <= TOLERANCE,
        "{errors} of {GETS} GETs failed ({share:.1} %), want {ERROR_PERCENT} % ± {TOLERANCE}"
    );
    // The faulted GETs never reached the server.
    let calls = redis.command_calls().await.or_panic();
    let reached = calls.get("get").copied().unwrap_or(0);
    assert_eq!(reached as usize, GETS - errors, "{calls:?}");
    // Other commands are not faulted.
    for i in 0..50 {
        let reply = conn
            .command(&["SET", &format!("s{i}"), "x"])
            .await
            .or_panic();
        assert_eq!(reply, Resp::Simple("OK".into()), "SET s{i}");
    }
}

#[tokio::test]
async fn a_delay_fault_delays_and_replies_keep_their_order() {
    let (_mesh, redis, addr) = faulty_mesh("redis-fault-delay").await;
    let mut conn = RespConn::connect(addr).await.or_panic();
    // The delayed INCR first, then commands that are answered at once: their replies
    // must still come after its.
    let mut pipeline = encode_command(&["INCR", "n"]);
    pipeline.extend(encode_command(&["SET", "after", "1"]));
    pipeline.extend(encode_command(&["PING"]));
    pipeline.extend(encode_command(&["INCR", "n"]));
    pipeline.extend(encode_command(&["ECHO", "last"]));
    conn.send_raw(&pipeline).await.or_panic();
    let mut replies = Vec::new();
    for _ in 0..5 {
        replies.push(conn.read_reply().await.or_panic());
    }
    assert_eq!(
        replies,
        [
            Resp::Integer(1),
            Resp::Simple("OK".into()),
            Resp::Simple("PONG".into()),
            Resp::Integer(2),
            Resp::Bulk(Some(b"last".to_vec())),
        ]
    );
    let calls = redis.command_calls().await.or_panic();
    assert_eq!(calls.get("incr"), Some(&2), "{calls:?}");
}

#[tokio::test]
async fn an_op_timeout_answers_for_a_stalled_server_and_replies_stay_in_step() {
    let mut mesh = Mesh::new("redis-op-timeout");
    let redis = server(&mut mesh, RedisOptions::new()).await;
    let mut objects = redis_objects(&mesh, "cache", "redis", &[&redis]);
    objects.push(aeraki(
        &mesh,
        "RedisService",
        "cache",
        json!({ "host": ["cache"], "settings": { "opTimeout": "300ms" } }),
    ));
    start(&mut mesh, objects, &[]).await;
    let addr = gateway_addr(&mesh, "cache").await;
    let mut conn = RespConn::connect(addr).await.or_panic();
    assert_eq!(
        conn.command(&["SET", "k", "v1"]).await.or_panic(),
        Resp::Simple("OK".into())
    );

    // The server stops answering anyone for 2 s: the gateway answers for it.
    let pause = redis
        .command(&["CLIENT", "PAUSE", "2000", "ALL"])
        .await
        .or_panic();
    assert_eq!(pause, Resp::Simple("OK".into()));
    let stalled = conn.command(&["GET", "k"]).await.or_panic();
    assert!(
        stalled.as_error().is_some(),
        "GET during the pause answered {stalled:?}"
    );
    // Once the server answers again (its late reply to that GET included), every reply
    // still goes to its own command.
    assert_eq!(
        redis.command(&["PING"]).await.or_panic(),
        Resp::Simple("PONG".into())
    );
    assert_eq!(
        conn.command(&["SET", "k", "v2"]).await.or_panic(),
        Resp::Simple("OK".into())
    );
    assert_eq!(
        conn.command(&["GET", "k"]).await.or_panic().as_str(),
        Some("v2")
    );
    assert_eq!(
        conn.command(&["INCR", "n"]).await.or_panic(),
        Resp::Integer(1)
    );
    let mut other = RespConn::connect(addr).await.or_panic();
    assert_eq!(
        other.command(&["GET", "k"]).await.or_panic().as_str(),
        Some("v2")
    );
}
