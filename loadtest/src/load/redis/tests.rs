//! The mix, the commands it writes, how replies count, and pipelining against a fake
//! server that answers in order (real redis-server runs in tests/tests/load_protocols.rs).

use bytes::{Bytes, BytesMut};
use corridor_gateway::redis::resp::{CommandDecoder, DEFAULT_MAX_REQUEST, encode};
use rand::{SeedableRng, rngs::StdRng};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::*;

#[test]
fn mixes_parse_with_weights() {
    let mix = parse_mix("get:80, SET:20").unwrap();
    assert_eq!(mix.ops, vec![(Op::Get, 80), (Op::Set, 20)]);
    assert_eq!(mix.total, 100);
    assert_eq!(mix.to_string(), "get:80,set:20");
    assert_eq!(parse_mix("ping").unwrap().ops, vec![(Op::Ping, 1)]);
    // A zero weight drops the command.
    assert_eq!(parse_mix("get:0,incr:3").unwrap().ops, vec![(Op::Incr, 3)]);
    for bad in [
        "",
        "get:0",
        "hget:1",
        "get:x",
        "get:-1",
        "get:4294967295,set:1",
    ] {
        assert!(parse_mix(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn picks_follow_the_weights() {
    let mix = parse_mix("get:3,set:1,del:2").unwrap();
    let picks: Vec<Op> = (0..6).map(|r| mix.pick(r)).collect();
    assert_eq!(
        picks,
        [Op::Get, Op::Get, Op::Get, Op::Set, Op::Del, Op::Del]
    );
}

/// The arguments of the command `target` writes next.
fn args_of(target: &RedisTarget, rng: &mut StdRng) -> (Op, Vec<String>) {
    let (op, bytes) = target.command(rng);
    let mut buf = BytesMut::from(&bytes[..]);
    let command = CommandDecoder::new(DEFAULT_MAX_REQUEST)
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    assert!(buf.is_empty());
    let args = command
        .args
        .iter()
        .map(|a| String::from_utf8(a.to_vec()).unwrap())
        .collect();
    (op, args)
}

#[test]
fn commands_use_the_key_space_and_value_size() {
    let addr = "127.0.0.1:1".parse().unwrap();
    let mix = parse_mix("get,set,incr,del,mget,ping").unwrap();
    let target = RedisTarget::new(addr, mix, 3, 4, 2);
    let mut rng = StdRng::seed_from_u64(7);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..300 {
        let (op, args) = args_of(&target, &mut rng);
        let key_ok = |k: &String, prefix: &str| {
            let n: u64 = k.strip_prefix(prefix).unwrap().parse().unwrap();
            assert!(n < 3, "{k}");
        };
        match op {
            Op::Get | Op::Del => {
                assert_eq!(args.len(), 2);
                key_ok(&args[1], KEY_PREFIX);
            }
            Op::Set => {
                assert_eq!(args.len(), 3);
                key_ok(&args[1], KEY_PREFIX);
                assert_eq!(args[2], "xxxx");
            }
            Op::Incr => key_ok(&args[1], COUNTER_PREFIX),
            Op::Mget => {
                assert_eq!(args.len(), 3);
                args[1..].iter().for_each(|k| key_ok(k, KEY_PREFIX));
            }
            Op::Ping => assert_eq!(args, ["PING"]),
        }
        assert_eq!(args[0], format!("{op:?}").to_uppercase());
        seen.insert(format!("{op:?}"));
    }
    assert_eq!(seen.len(), 6, "every command of the mix was written");
}

#[test]
fn error_replies_are_status_errors_by_code() {
    let ok = reply_answer(&Value::NullBulk);
    assert_eq!((ok.status, ok.failed), (Status::Name("OK"), false));
    let moved = reply_answer(&Value::error("MOVED 3999 127.0.0.1:6381"));
    assert_eq!((moved.status, moved.failed), (Status::Name("MOVED"), true));
    let err = reply_answer(&Value::error("ERR unknown command"));
    assert_eq!(err.status, Status::Name("ERR"));
    let odd = reply_answer(&Value::BulkError(Bytes::from_static(b"WEIRD x")));
    assert_eq!((odd.status, odd.failed), (Status::Name("ERROR"), true));
}

/// A server answering every command with its last argument as a bulk string, in
/// order, after reading `batch` commands (so several are in flight at once).
async fn fake_server(batch: usize) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut decoder = CommandDecoder::new(DEFAULT_MAX_REQUEST);
        let mut buf = BytesMut::new();
        let mut queued = Vec::new();
        loop {
            while let Some(cmd) = decoder.decode(&mut buf).unwrap() {
                queued.push(Value::Bulk(cmd.args.last().unwrap().clone()));
            }
            if queued.len() >= batch {
                let mut out = BytesMut::new();
                queued.drain(..).for_each(|v| encode(&v, &mut out));
                s.write_all(&out).await.unwrap();
            }
            if s.read_buf(&mut buf).await.unwrap() == 0 {
                return;
            }
        }
    });
    addr
}

#[tokio::test]
async fn pipelined_replies_go_to_their_callers_in_order() {
    const IN_FLIGHT: usize = 16;
    let conn = std::sync::Arc::new(
        RedisConn::connect(fake_server(IN_FLIGHT).await, None)
            .await
            .unwrap(),
    );
    let calls: Vec<_> = (0..IN_FLIGHT)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move {
                let mut cmd = BytesMut::new();
                encode_command(&["GET", &format!("k{i}")], &mut cmd);
                conn.call(&cmd).await.unwrap()
            })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap(), Value::bulk(format!("k{i}")));
    }
}

#[tokio::test]
async fn a_closed_connection_fails_the_calls_in_flight() {
    // Answers only once 2 commands came: the single call waits, then the server ends.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf).await;
    });
    let conn = RedisConn::connect(addr, None).await.unwrap();
    let mut cmd = BytesMut::new();
    encode_command(&["PING"], &mut cmd);
    assert!(matches!(conn.call(&cmd).await, Err(CallError::Closed)));
    assert!(conn.call(&cmd).await.is_err());
}
