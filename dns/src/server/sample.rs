//! A small cluster and a handler answering it, shared by the handler's unit tests and the
//! `dns_request` fuzz target (feature `testing`).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use corridor_proto::corridor::dns::v1::service::Kind;
use corridor_proto::corridor::dns::v1::{Endpoint, NameTable, Port, Service};
use hickory_server::proto::rr::Name;

use super::{Handler, SharedZone};
use crate::forward::{ForwardConfig, Forwarder};
use crate::metrics::Metrics;
use crate::zone::{Zone, ZoneOptions};

/// Endpoints of the headless `big.default` service: far more A records than 1232 bytes hold.
pub const BIG_ENDPOINTS: usize = 200;

/// `cluster.local` with a meshed dual-stack service (`reviews.default`, gateway address
/// 127.100.0.7), a headless one with [`BIG_ENDPOINTS`] ready endpoints (`big.default`) and
/// an ExternalName pointing at the first (`ext.default`); the gateway pool is available.
pub fn table() -> NameTable {
    let port = |name: &str, port| Port { name: name.into(), port, protocol: "tcp".into() };
    let endpoints = (0..BIG_ENDPOINTS)
        .map(|i| Endpoint {
            addresses: vec![format!("10.1.{}.{}", i / 250, i % 250 + 1)],
            hostname: format!("big-{i}"),
            ready: true,
            ports: vec![port("pg", 5432)],
        })
        .collect();
    NameTable {
        zone: "cluster.local".into(),
        gateway_available: true,
        services: vec![
            Service {
                namespace: "default".into(),
                name: "reviews".into(),
                kind: Kind::ClusterIp as i32,
                cluster_ips: vec!["10.96.0.20".into(), "fd00::20".into()],
                gateway_ips: vec!["127.100.0.7".into()],
                meshed: true,
                ports: vec![port("http", 9080)],
                ..Default::default()
            },
            Service {
                namespace: "default".into(),
                name: "big".into(),
                kind: Kind::Headless as i32,
                ports: vec![port("pg", 5432)],
                endpoints,
                ..Default::default()
            },
            Service {
                namespace: "default".into(),
                name: "ext".into(),
                kind: Kind::ExternalName as i32,
                external_name: "reviews.default.svc.cluster.local".into(),
                ..Default::default()
            },
        ],
    }
}

/// A handler for `cluster.local` with [`table`] loaded (or no table yet), and no
/// upstreams: forwarded names fail at once with SERVFAIL.
pub fn handler(loaded: bool) -> Handler {
    let zone_name = Name::from_ascii("cluster.local.").unwrap_or_else(|_| Name::root());
    let zone: SharedZone = Arc::new(ArcSwapOption::empty());
    if loaded {
        let opts = ZoneOptions { zone: zone_name.clone(), ttl: 30, meshed_ttl: 5 };
        zone.store(Some(Arc::new(Zone::new(&table(), opts))));
    }
    let metrics = Metrics::new();
    let config = ForwardConfig {
        upstreams: Vec::new(),
        timeout: Duration::from_millis(200),
        ..ForwardConfig::default()
    };
    let forwarder = Forwarder::new(config, metrics.clone());
    Handler::new(zone, zone_name, Arc::new(forwarder), metrics, "dns://:53".into())
}
