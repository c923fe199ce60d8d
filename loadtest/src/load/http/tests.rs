//! Flags, and the client against the HTTP echo backend over HTTP/1.1 and h2c.

use clap::Parser;

use super::*;
use crate::serve::{self, EchoConfig, Protocol};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    http: HttpArgs,
}

fn parse(args: &[&str]) -> Result<HttpArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(|c| c.http)
}

#[test]
fn headers_parse_as_name_colon_value() {
    let (name, value) = parse_header("X-Tenant:  blue ").unwrap();
    assert_eq!(name, "x-tenant");
    assert_eq!(value, "blue");
    let (_, value) = parse_header("x-url: http://a:1/b").unwrap();
    assert_eq!(value, "http://a:1/b");
    assert!(parse_header("no-colon").is_err());
    assert!(parse_header("bad name: v").is_err());
}

#[test]
fn the_url_comes_from_url_or_target_and_path() {
    let a = parse(&["--url", "http://gw:8080/a?b=1"]).unwrap();
    assert_eq!(a.uri().unwrap().to_string(), "http://gw:8080/a?b=1");
    let b = parse(&["--target", "gw:8080", "--path", "/p?q"]).unwrap();
    assert_eq!(b.uri().unwrap().to_string(), "http://gw:8080/p?q");
    let c = parse(&["--target", "gw:8080"]).unwrap();
    assert_eq!(c.uri().unwrap().to_string(), "http://gw:8080/");
    let d = parse(&["--target", "http://gw:1/x"]).unwrap();
    assert_eq!(d.uri().unwrap().to_string(), "http://gw:1/x");
    // One of the two, not both, not neither.
    assert!(parse(&[]).is_err());
    assert!(parse(&["--url", "http://a:1/", "--target", "a:1"]).is_err());
    assert!(parse(&["--url", "http://a:1/", "--path", "/x"]).is_err());
}

#[test]
fn the_body_is_given_or_sized() {
    let a = parse(&["--target", "a:1", "--method", "POST", "--body", "hi"]).unwrap();
    assert_eq!(a.method, Method::POST);
    assert_eq!(a.body_bytes(), "hi");
    let b = parse(&["--target", "a:1", "--body-size", "5"]).unwrap();
    assert_eq!(b.body_bytes(), "xxxxx");
    assert!(parse(&["--target", "a:1"]).unwrap().body_bytes().is_empty());
    assert!(parse(&["--target", "a:1", "--body", "x", "--body-size", "1"]).is_err());
    let h = parse(&["--target", "a:1", "--header", "a: 1", "--header", "b: 2"]).unwrap();
    assert_eq!(h.headers.len(), 2);
}

#[tokio::test]
async fn https_and_hostless_urls_are_refused() {
    for url in ["https://a:1/", "/just/a/path"] {
        let r = HttpTarget::new(
            url.parse().unwrap(),
            Version::Http1,
            Method::GET,
            vec![],
            Bytes::new(),
        );
        assert!(matches!(r.await, Err(LoadError::Request(_))), "{url}");
    }
}

#[test]
fn statuses_below_400_succeed() {
    assert!(is_success(200) && is_success(204) && is_success(302));
    assert!(!is_success(404) && !is_success(503) && !is_success(101));
}

async fn echo(error_rate: f64) -> serve::Echo {
    serve::start(EchoConfig {
        error_rate,
        ..EchoConfig::new(Protocol::Http)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn posts_reach_the_echo_over_both_versions_and_503_is_a_status_error() {
    let ok = echo(0.0).await;
    let failing = echo(1.0).await;
    for version in [Version::Http1, Version::Http2] {
        for (backend, status, failed) in [(&ok, 200, false), (&failing, 503, true)] {
            let uri = format!("http://{}/echo", backend.addr()).parse().unwrap();
            let headers = vec![parse_header("x-test: 1").unwrap()];
            let target = HttpTarget::new(uri, version, Method::POST, headers, "body".into())
                .await
                .unwrap();
            let conn = target.connect().await.unwrap();
            // Several calls on one connection: keep-alive (HTTP/1.1), streams (h2c).
            for _ in 0..3 {
                let answer = target.call(&conn).await.unwrap();
                assert_eq!(answer.status, Status::Code(status), "{version:?}");
                assert_eq!(answer.failed, failed, "{version:?}");
            }
        }
    }
    ok.shutdown().await;
    failing.shutdown().await;
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let uri = format!("http://{addr}/").parse().unwrap();
    let target = HttpTarget::new(uri, Version::Http1, Method::GET, vec![], Bytes::new())
        .await
        .unwrap();
    assert!(matches!(
        target.connect().await,
        Err(CallError::Connect { .. })
    ));
}
