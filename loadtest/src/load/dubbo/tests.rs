//! The Dubbo client against the echo provider on port 0, in-process.

use std::time::Duration;

use tokio::task::JoinSet;

use super::*;
use crate::serve::{self, EchoConfig, Protocol};

async fn provider(jitter: Duration, error_rate: f64) -> serve::Echo {
    serve::start(EchoConfig {
        protocol: Protocol::Dubbo,
        listen: "127.0.0.1:0".parse().unwrap(),
        name: Some("b1".into()),
        delay: Duration::ZERO,
        jitter,
        stall: None,
        error_rate,
        log_calls: false,
    })
    .await
    .unwrap()
}

fn target(addr: SocketAddr) -> DubboTarget {
    let attachments = vec![("group".to_owned(), "blue".to_owned())];
    DubboTarget::new(
        addr,
        "com.example.Echo".into(),
        "echo".into(),
        "hi".into(),
        attachments,
    )
}

fn load(duration_ms: u64, connections: usize) -> LoadArgs {
    LoadArgs {
        rate: 0,
        connections,
        duration: Duration::from_millis(duration_ms),
        ..LoadArgs::default()
    }
}

#[test]
fn flags_parse_pairs_and_pick_the_argument() {
    assert_eq!(
        parse_pair("group=blue"),
        Ok(("group".into(), "blue".into()))
    );
    assert_eq!(parse_pair("k=a=b"), Ok(("k".into(), "a=b".into())));
    assert!(parse_pair("novalue").is_err());
    assert!(parse_pair("=v").is_err());
    assert_eq!(argument(Some("a"), Some(3)), "a");
    assert_eq!(argument(None, Some(3)), "xxx");
    assert_eq!(argument(None, None), "hello");
}

#[tokio::test]
async fn concurrent_calls_on_one_connection_get_their_own_answers() {
    // With jitter the provider answers out of order: every call must still get the
    // echo of its own argument.
    let echo = provider(Duration::from_millis(50), 0.0).await;
    let target = Arc::new(target(echo.addr()));
    let conn = Arc::new(target.connect().await.unwrap());
    let mut calls = JoinSet::new();
    for i in 0..20 {
        let (target, conn) = (target.clone(), conn.clone());
        calls.spawn(async move { (i, target.call_with(&conn, &format!("m{i}")).await) });
    }
    while let Some(done) = calls.join_next().await {
        let (i, answer) = done.unwrap();
        let answer = answer.unwrap();
        assert!(answer.is_ok(), "{answer:?}");
        assert_eq!(answer.value, Some(format!("b1: m{i}")));
    }
    echo.shutdown().await;
}

#[tokio::test]
async fn closed_loop_run_counts_answers_and_injected_errors() {
    let echo = provider(Duration::from_millis(5), 0.0).await;
    let r = super::super::run(Arc::new(target(echo.addr())), &load(200, 2), 4).await;
    assert!(r.answered() > 0);
    assert_eq!(r.errors, 0, "{:?}", r.first_error);
    assert_eq!(r.count(Status::Code(20)), r.answered());
    echo.shutdown().await;

    let failing = provider(Duration::ZERO, 1.0).await;
    let r = super::super::run(Arc::new(target(failing.addr())), &load(100, 1), 2).await;
    assert!(r.answered() > 0);
    assert_eq!(r.errors, r.answered());
    assert_eq!(r.count(Status::Code(70)), r.answered());
    assert_eq!(r.first_error.as_deref(), Some("answer with status 70"));
    failing.shutdown().await;
}

#[tokio::test]
async fn a_dead_target_is_errors_not_answers() {
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = gone.local_addr().unwrap();
    drop(gone);
    let r = super::super::run(Arc::new(target(addr)), &load(50, 1), 1).await;
    assert_eq!(r.answered(), 0);
    assert!(r.errors > 0);
    let why = r.first_error.unwrap();
    assert!(why.starts_with("cannot connect"), "{why}");
}
