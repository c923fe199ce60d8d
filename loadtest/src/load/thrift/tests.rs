//! The Thrift client against the echo server on port 0, in-process, in every dialect.

use std::time::Duration;

use super::*;
use crate::serve::{self, EchoConfig, Protocol as Serve};

async fn server(error_rate: f64) -> serve::Echo {
    serve::start(EchoConfig {
        protocol: Serve::Thrift,
        listen: "127.0.0.1:0".parse().unwrap(),
        name: Some("t1".into()),
        delay: Duration::ZERO,
        jitter: Duration::from_millis(2),
        stall: None,
        error_rate,
        log_calls: false,
    })
    .await
    .unwrap()
}

const DIALECTS: [(Transport, Protocol); 6] = [
    (Transport::Framed, Protocol::Binary),
    (Transport::Framed, Protocol::Compact),
    (Transport::Unframed, Protocol::Binary),
    (Transport::Unframed, Protocol::Compact),
    (Transport::Header, Protocol::Binary),
    (Transport::Header, Protocol::Compact),
];

#[tokio::test]
async fn every_dialect_gets_its_echo() {
    let echo = server(0.0).await;
    for (transport, protocol) in DIALECTS {
        let target =
            ThriftTarget::new(echo.addr(), transport, protocol, "echo".into(), "hi".into());
        let conn = target.connect().await.unwrap();
        for i in 0..3 {
            let answer = target.call_with(&conn, &format!("m{i}")).await.unwrap();
            assert_eq!(
                answer,
                ThriftAnswer {
                    ok: true,
                    value: Some(format!("t1: m{i}"))
                },
                "{transport:?}/{protocol:?}"
            );
        }
    }
    echo.shutdown().await;
}

#[tokio::test]
async fn run_counts_replies_and_exceptions() {
    let load = LoadArgs {
        rate: 0,
        connections: 2,
        duration: Duration::from_millis(100),
        ..LoadArgs::default()
    };
    let echo = server(0.0).await;
    let target = ThriftTarget::new(
        echo.addr(),
        Transport::Header,
        Protocol::Compact,
        "echo".into(),
        "x".into(),
    );
    let r = super::super::run(Arc::new(target), &load, 1).await;
    assert!(r.answered() > 0);
    assert_eq!(r.errors, 0, "{:?}", r.first_error);
    assert_eq!(r.count(Status::Name("reply")), r.answered());
    echo.shutdown().await;

    let failing = server(1.0).await;
    let target = ThriftTarget::new(
        failing.addr(),
        Transport::Framed,
        Protocol::Binary,
        "echo".into(),
        "x".into(),
    );
    let conn = target.connect().await.unwrap();
    let answer = target.call_with(&conn, "x").await.unwrap();
    assert_eq!(
        answer,
        ThriftAnswer {
            ok: false,
            value: Some(serve::INJECTED.into())
        }
    );
    let r = super::super::run(Arc::new(target), &load, 1).await;
    assert!(r.answered() > 0);
    assert_eq!(r.errors, r.answered());
    assert_eq!(r.count(Status::Name("exception")), r.answered());
    failing.shutdown().await;
}
