//! A backend on port 0 called over TCP: answers out of order with jitter, bad input
//! closes only its own connection, the error rate.

use bytes::BytesMut;
use corridor_gateway::codec::{
    Codec, Frame,
    dubbo::{DubboCodec, peer as dubbo_peer, status},
    thrift::{
        Protocol as ThriftProtocol, ThriftCodec, Transport,
        peer::{self as thrift_peer, ClientDialect},
    },
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::super::*;

fn config(protocol: Protocol, jitter: Duration) -> EchoConfig {
    EchoConfig {
        name: Some("b1".into()),
        jitter,
        ..EchoConfig::new(protocol)
    }
}

/// Reads `n` messages off `stream` with `codec`.
async fn read_frames(stream: &mut TcpStream, codec: &dyn Codec, n: usize) -> Vec<Frame> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    while frames.len() < n {
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
        if frames.len() < n {
            assert_ne!(
                stream.read_buf(&mut buf).await.unwrap(),
                0,
                "closed after {} answers",
                frames.len()
            );
        }
    }
    frames
}

/// Calls sent back to back on one connection; with jitter their answers come back in
/// another order (20 calls in send order by chance: 1 in 20!).
const PIPELINED: usize = 20;

#[tokio::test]
async fn dubbo_answers_leave_out_of_order_with_jitter() {
    let echo = start(config(Protocol::Dubbo, Duration::from_millis(100)))
        .await
        .unwrap();
    let mut stream = TcpStream::connect(echo.addr()).await.unwrap();
    for id in 0..PIPELINED as u64 {
        let arg = format!("m{id}");
        let call = dubbo_peer::Call {
            dubbo_version: "2.0.2",
            path: "E",
            method: "echo",
            args: &[&arg],
            ..Default::default()
        };
        stream
            .write_all(&dubbo_peer::request(id, true, &call).unwrap())
            .await
            .unwrap();
    }
    let answers = read_frames(&mut stream, &DubboCodec::default(), PIPELINED).await;
    let ids: Vec<u64> = answers.iter().map(|f| f.metadata.request_id).collect();
    for frame in &answers {
        let value = dubbo_peer::read_answer(frame).unwrap().value.unwrap();
        assert_eq!(value, format!("b1: m{}", frame.metadata.request_id));
    }
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..PIPELINED as u64).collect::<Vec<_>>());
    assert_ne!(ids, sorted, "answers left in request order");
    echo.shutdown().await;
}

#[tokio::test]
async fn thrift_answers_leave_out_of_order_and_bad_input_closes_one_connection() {
    let echo = start(config(Protocol::Thrift, Duration::from_millis(100)))
        .await
        .unwrap();
    let mut stream = TcpStream::connect(echo.addr()).await.unwrap();
    let dialect = ClientDialect {
        transport: Transport::Framed,
        protocol: ThriftProtocol::Compact,
    };
    for seqid in 0..PIPELINED as i32 {
        let call =
            thrift_peer::call(dialect, "echo", seqid, false, &format!("m{seqid}"), &[]).unwrap();
        stream.write_all(&call).await.unwrap();
    }
    // Another connection sends garbage: it is closed, the first one keeps its answers.
    let mut bad = TcpStream::connect(echo.addr()).await.unwrap();
    bad.write_all(&[0xff; 64]).await.unwrap();
    let mut rest = Vec::new();
    assert_eq!(bad.read_to_end(&mut rest).await.unwrap(), 0);

    let answers = read_frames(&mut stream, &ThriftCodec::default(), PIPELINED).await;
    let ids: Vec<u64> = answers.iter().map(|f| f.metadata.request_id).collect();
    for frame in &answers {
        let value = thrift_peer::string_field(frame, 0).unwrap().unwrap();
        assert_eq!(value, format!("b1: m{}", frame.metadata.request_id));
    }
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..PIPELINED as u64).collect::<Vec<_>>());
    assert_ne!(ids, sorted, "answers left in request order");
    echo.shutdown().await;
}

#[tokio::test]
async fn error_rate_one_fails_every_call_and_bad_rates_are_refused() {
    let mut c = config(Protocol::Dubbo, Duration::ZERO);
    c.error_rate = 1.5;
    assert!(matches!(
        start(c.clone()).await,
        Err(ServeError::ErrorRate(_))
    ));
    c.error_rate = 1.0;
    let echo = start(c).await.unwrap();
    let mut stream = TcpStream::connect(echo.addr()).await.unwrap();
    let call = dubbo_peer::Call {
        dubbo_version: "2.0.2",
        path: "E",
        method: "echo",
        args: &["x"],
        ..Default::default()
    };
    stream
        .write_all(&dubbo_peer::request(1, true, &call).unwrap())
        .await
        .unwrap();
    let answer = read_frames(&mut stream, &DubboCodec::default(), 1).await;
    assert_eq!(
        dubbo_peer::read_answer(&answer[0]).unwrap().status,
        status::SERVICE_ERROR
    );
    echo.shutdown().await;
}
