//! Flags, the payload, status names, and the client against the gRPC echo backend.

use std::time::Duration;

use super::*;
use crate::serve::{self, EchoConfig, Protocol};

#[test]
fn methods_are_package_service_method_paths() {
    assert!(parse_method("/echo.Echo/Say").is_ok());
    assert!(parse_method("/Echo/Say").is_ok());
    for bad in [
        "echo.Echo/Say",
        "/echo.Echo",
        "/echo.Echo/",
        "//Say",
        "/a/b/c",
        "",
    ] {
        assert!(parse_method(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn hex_payloads_decode() {
    assert_eq!(parse_hex("0a03787878").unwrap(), &b"\x0a\x03xxx"[..]);
    assert_eq!(parse_hex("0A 03\n78").unwrap(), &b"\x0a\x03x"[..]);
    assert_eq!(parse_hex("").unwrap(), Bytes::new());
    assert!(parse_hex("0a0").is_err());
    assert!(parse_hex("zz").is_err());
}

#[test]
fn sized_payloads_are_a_bytes_field_one() {
    assert_eq!(bytes_field_message(0), &b"\x0a\x00"[..]);
    assert_eq!(bytes_field_message(3), &b"\x0a\x03xxx"[..]);
    // 300 = 0b10_0101100: varint 0xac 0x02.
    let m = bytes_field_message(300);
    assert_eq!(m.len(), 303);
    assert_eq!(&m[..3], &[0x0a, 0xac, 0x02]);
    assert!(m[3..].iter().all(|&b| b == b'x'));
}

#[test]
fn codes_have_their_canonical_names() {
    assert_eq!(code_name(Code::Ok), "OK");
    assert_eq!(code_name(Code::Unavailable), "UNAVAILABLE");
    assert_eq!(code_name(Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
    assert_eq!(code_name(Code::Unauthenticated), "UNAUTHENTICATED");
}

async fn echo(error_rate: f64, delay: Duration) -> serve::Echo {
    serve::start(EchoConfig {
        error_rate,
        delay,
        ..EchoConfig::new(Protocol::Grpc)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn calls_in_flight_on_one_channel_all_come_back() {
    let backend = echo(0.0, Duration::from_millis(50)).await;
    let target =
        Arc::new(GrpcTarget::new(backend.addr(), "/e.E/M", bytes_field_message(10)).unwrap());
    let conn = Arc::new(target.connect().await.unwrap());
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let (target, conn) = (target.clone(), conn.clone());
            tokio::spawn(async move {
                let payload = Bytes::from(format!("m{i}"));
                target.call_with(&conn, payload).await.unwrap().unwrap()
            })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap(), format!("m{i}"));
    }
    let answer = target.call(&conn).await.unwrap();
    assert_eq!(answer.status, AnswerStatus::Name("OK"));
    assert!(!answer.failed);
    backend.shutdown().await;
}

#[tokio::test]
async fn a_status_from_the_server_is_a_failed_answer_and_a_dead_server_an_error() {
    let backend = echo(1.0, Duration::ZERO).await;
    let addr = backend.addr();
    let target = GrpcTarget::new(addr, "/e.E/M", Bytes::new()).unwrap();
    let conn = target.connect().await.unwrap();
    let answer = target.call(&conn).await.unwrap();
    assert_eq!(answer.status, AnswerStatus::Name("UNAVAILABLE"));
    assert!(answer.failed);
    backend.shutdown().await;
    // The server is gone: no status from it, so an error, not an answer.
    assert!(target.call(&conn).await.is_err());
    assert!(matches!(
        target.connect().await,
        Err(CallError::Connect { .. })
    ));
}
