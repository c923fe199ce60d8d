use clap::Parser;

use super::*;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    load: LoadArgs,
}

#[test]
fn the_default_is_what_no_flags_give() {
    let parsed = Cli::parse_from(["x"]).load;
    let default = LoadArgs::default();
    // LoadArgs has no PartialEq (clap's types); its Debug shows every field.
    assert_eq!(format!("{parsed:?}"), format!("{default:?}"));
}

#[test]
fn rounds_need_a_comparison() {
    assert!(Cli::try_parse_from(["x", "--rounds", "2"]).is_err());
    let args = Cli::parse_from(["x", "--compare", "127.0.0.1:1", "--rounds", "2"]).load;
    assert_eq!(args.rounds, 2);
    assert!(Cli::try_parse_from(["x", "--compare", "a:1", "--rounds", "0"]).is_err());
}

#[test]
fn call_errors_are_counted_by_kind() {
    let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    let connect = CallError::Connect {
        addr: ([127, 0, 0, 1], 1).into(),
        source: refused(),
    };
    assert_eq!(connect.kind(), ErrorKind::Connect);
    assert_eq!(CallError::Io(refused()).kind(), ErrorKind::Protocol);
    assert_eq!(CallError::Closed.kind(), ErrorKind::Protocol);
}

#[tokio::test]
async fn connections_come_from_the_source_address_when_one_is_given() {
    let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    for source in ["127.0.0.7", "127.0.0.1"] {
        let ip: IpAddr = source.parse().unwrap();
        let _client = dial(addr, Some(ip)).await.unwrap();
        let (_, peer) = server.accept().await.unwrap();
        assert_eq!(peer.ip(), ip);
    }
    // An address this host does not have is a connect error, not a panic.
    let foreign: IpAddr = "192.0.2.1".parse().unwrap();
    assert!(matches!(
        dial(addr, Some(foreign)).await,
        Err(CallError::Connect { .. })
    ));
    let args = Cli::parse_from(["x", "--source", "127.0.0.9"]).load;
    assert_eq!(args.source, Some("127.0.0.9".parse().unwrap()));
}
