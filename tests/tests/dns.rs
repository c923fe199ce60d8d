//! corridor-dns end to end: the real controller pushes the name table of a manifests
//! directory, the real corridor-dns answers, and real clients ask: `dig` (Debian dnsutils)
//! for nearly everything, dnspython for EDNS details, raw sockets for malformed packets.
//!
//! - `zone`: the Kubernetes DNS-Based Service Discovery spec 1.1.0 (records, headless,
//!   ExternalName, PTR, pods, case, NXDOMAIN vs NODATA);
//! - `mesh`: meshed names answer the gateway address; fail-open when the gateway goes;
//!   answering from the last table while the controller is away;
//! - `forward`: other names through upstreams (caching, TCP on truncation, dead upstreams,
//!   failover) against the dnspython upstream;
//! - `edges`: EDNS0, truncation of large UDP answers, /health, /ready, /metrics;
//! - `malformed`: bad packets over UDP and TCP.

// This file is the test crate's root, so its modules sit next to it unless told otherwise.
#[path = "dns/edges.rs"]
mod edges;
#[path = "dns/forward.rs"]
mod forward;
#[path = "dns/malformed.rs"]
mod malformed;
#[path = "dns/mesh.rs"]
mod mesh;
#[path = "dns/zone.rs"]
mod zone;

use corridor_tests::Mesh;
use corridor_tests::dns::objects::{Ep, Slice, Svc};
use corridor_tests::dns::{Dns, svc_name};
use corridor_tests::manifests;
use serde_json::Value;

/// ClusterIP of `plain` (unmeshed; named TCP and UDP ports, one unnamed port).
const PLAIN_IP: &str = "10.96.1.10";
/// ClusterIP of `web` (meshed, port 8080).
const WEB_IP: &str = "10.96.1.11";
/// Cluster IPs of `dual` (unmeshed, dual-stack).
const DUAL_IPS: [&str; 2] = ["10.96.1.12", "fd00:96::12"];
/// Port of `web`, where the gateway listens on its gateway address.
const WEB_PORT: u16 = 8080;
/// Endpoints of the headless `big`: more A records than fit a 1232-byte UDP answer.
const BIG_ENDPOINTS: u8 = 100;
/// Endpoints of the headless `mid`: more than a 512-byte answer holds, fewer than 1232.
const MID_ENDPOINTS: u8 = 40;
/// The name the upstream serves, that the ExternalName `outside` points at.
const OUTSIDE_NAME: &str = "www.example.test";

/// The objects of a small cluster in namespace `ns`, one of each kind DNS distinguishes.
fn objects(ns: &str) -> Vec<Value> {
    let mut objects: Vec<Value> = vec![
        Svc::cluster_ip("plain", ns, &[PLAIN_IP])
            .port("http", 80, "TCP")
            .port("dns", 53, "UDP")
            .unmeshed()
            .into(),
        Svc::cluster_ip("web", ns, &[WEB_IP])
            .port("http", WEB_PORT, "TCP")
            .into(),
        Svc::cluster_ip("dual", ns, &DUAL_IPS)
            .port("http", 80, "TCP")
            .unmeshed()
            .into(),
        // db: three ready endpoints (two with hostnames), one not ready.
        Svc::headless("db", ns)
            .port("postgres", 5432, "TCP")
            .port("metrics", 9187, "TCP")
            .into(),
        Slice::new("db-1", ns, "db")
            .port("postgres", 5432, "TCP")
            .port("metrics", 9187, "TCP")
            .endpoint(Ep::new("10.244.1.1").hostname("db-0"))
            .endpoint(Ep::new("10.244.1.2").hostname("db-1"))
            .endpoint(Ep::new("10.244.1.3"))
            .endpoint(Ep::new("10.244.1.4").hostname("db-3").not_ready())
            .into(),
        Svc::headless("db6", ns)
            .port("postgres", 5432, "TCP")
            .into(),
        Slice::new("db6-1", ns, "db6")
            .ipv6()
            .port("postgres", 5432, "TCP")
            .endpoint(Ep::new("fd00:244::1").hostname("v6-0"))
            .into(),
        // starting: endpoints exist, none ready.
        Svc::headless("starting", ns).port("http", 80, "TCP").into(),
        Slice::new("starting-1", ns, "starting")
            .port("http", 80, "TCP")
            .endpoint(Ep::new("10.244.2.1").not_ready())
            .into(),
        // peers: publishNotReadyAddresses, one ready and one not-ready endpoint.
        Svc::headless("peers", ns)
            .port("gossip", 7946, "TCP")
            .publish_not_ready()
            .into(),
        Slice::new("peers-1", ns, "peers")
            .port("gossip", 7946, "TCP")
            .endpoint(Ep::new("10.244.3.1").hostname("p-0"))
            .endpoint(Ep::new("10.244.3.2").hostname("p-1").not_ready())
            .into(),
        Svc::external_name("alias", ns, &svc_name("plain", ns)).into(),
        Svc::external_name("outside", ns, OUTSIDE_NAME).into(),
    ];
    for (name, third, count) in [("big", 4, BIG_ENDPOINTS), ("mid", 5, MID_ENDPOINTS)] {
        objects.push(Svc::headless(name, ns).port("http", 80, "TCP").into());
        let mut slice = Slice::new(&format!("{name}-1"), ns, name).port("http", 80, "TCP");
        for host in 1..=count {
            slice = slice.endpoint(Ep::new(&format!("10.244.{third}.{host}")));
        }
        objects.push(slice.into());
    }
    objects
}

/// A controller serving [`objects`] (no gateway) and a ready corridor-dns with `flags`.
async fn cluster(tag: &str, flags: &[&str]) -> (Mesh, Dns) {
    let mut mesh = Mesh::new(tag);
    mesh.write("cluster.yaml", &manifests::yaml(objects(&mesh.ns)));
    mesh.start_controller().await;
    let dns = Dns::start_ready(mesh.xds(), flags).await;
    (mesh, dns)
}

/// Sorted strings, for comparing record sets.
fn sorted<S: ToString>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    let mut out: Vec<String> = items.into_iter().map(|s| s.to_string()).collect();
    out.sort();
    out
}
