//! What the outlier, balancing and breaker tests share: one service of an L7 protocol
//! served by `corridor-load serve --log-calls` echo backends (each in a zone, with its own
//! flags), its DestinationRule's `trafficPolicy`, the gateway's `/clusters` view of each
//! endpoint, and the calls each backend logged.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use corridor_tests::manifests::{self, Endpoint, EndpointSlice, Pod, Service};
use corridor_tests::mesh::Upstream;
use corridor_tests::route_policy::{Proto, Served, count, load, logged_calls, serve};
use corridor_tests::{Mesh, PATIENCE, eventually};
use serde_json::{Value, json};

/// The service's name.
pub const SERVICE: &str = "svc";

/// One backend to start: its name, zone and extra `corridor-load serve` flags.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    pub name: &'a str,
    pub zone: &'a str,
    pub flags: &'a [&'a str],
}

/// A backend named `name` in `zone-a` without extra flags.
pub fn plain(name: &str) -> Spec<'_> {
    Spec {
        name,
        zone: "zone-a",
        flags: &[],
    }
}

/// A running mesh with the service and its backends.
pub struct Setup {
    pub mesh: Mesh,
    pub proto: Proto,
    /// The gateway's listener for the service.
    pub addr: SocketAddr,
    pub backends: Vec<Served>,
    pub zones: Vec<String>,
    rule: Value,
    distribution: Option<String>,
}

/// Starts backends for `specs`, writes the service (with `trafficDistribution` when
/// given) and a DestinationRule with `traffic_policy` (none when null), then the
/// controller and a gateway with `gateway_flags`; returns once calls get answers.
pub async fn setup(
    proto: Proto,
    tag: &str,
    specs: &[Spec<'_>],
    traffic_policy: Value,
    distribution: Option<&str>,
    gateway_flags: &[&str],
) -> Setup {
    let mut mesh = Mesh::new(&format!("{tag}-{}", proto.as_str()));
    let mut backends: Vec<Served> = Vec::new();
    for spec in specs {
        let port = backends.first().map_or(0, |b| b.addr.port());
        let mut flags = vec!["--log-calls"];
        flags.extend_from_slice(spec.flags);
        backends.push(serve(&mut mesh, proto, spec.name, port, &flags).await);
    }
    let mut s = Setup {
        mesh,
        proto,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        backends,
        zones: specs.iter().map(|s| s.zone.to_string()).collect(),
        rule: traffic_policy,
        distribution: distribution.map(str::to_string),
    };
    s.write(|_| true);
    s.mesh.start_controller().await;
    s.mesh.start_gateway_with(gateway_flags).await;
    s.addr = s.mesh.service_addr(SERVICE, proto.port().number()).await;
    let (addr, proto) = (s.addr, s.proto);
    eventually(PATIENCE, "routes in place", || async move {
        let r = load(proto, addr, "--rate 20 --duration 200ms --connections 1").await;
        anyhow::ensure!(count(&r, &["requests", "completed"]) > 0, "{r}");
        anyhow::ensure!(count(&r, &["errors", "connect"]) == 0, "{r}");
        anyhow::ensure!(count(&r, &["statuses", "404"]) == 0, "{r}");
        anyhow::ensure!(count(&r, &["statuses", "UNIMPLEMENTED"]) == 0, "{r}");
        Ok(())
    })
    .await;
    s
}

impl Setup {
    /// (Re)writes the service's manifests; endpoints for which `ready` is false are
    /// listed as not ready.
    pub fn write(&self, ready: impl Fn(usize) -> bool) {
        let ns = &self.mesh.ns;
        let port = self.proto.port();
        let target = self.backends.first().map_or(1, |b| b.addr.port());
        let mut service: Value = Service::new(SERVICE, ns)
            .port(port.clone().target(target))
            .into();
        if let Some(d) = &self.distribution {
            service["spec"]["trafficDistribution"] = json!(d);
        }
        let mut slice =
            EndpointSlice::new(&format!("{SERVICE}-x1"), ns, SERVICE).port(port.name(), target);
        let mut objects = vec![service];
        for (i, b) in self.backends.iter().enumerate() {
            let pod = format!("{SERVICE}-{}", b.name);
            slice = slice.endpoint(
                Endpoint::new(b.addr.ip())
                    .pod(&pod)
                    .zone(self.zones[i].as_str())
                    .ready(ready(i)),
            );
            objects.push(
                Pod::new(&pod, ns)
                    .label("app", SERVICE)
                    .ip(b.addr.ip())
                    .into(),
            );
        }
        objects.push(slice.into());
        if !self.rule.is_null() {
            objects.push(json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": {"name": SERVICE, "namespace": ns},
                "spec": {"host": SERVICE, "trafficPolicy": self.rule}
            }));
        }
        self.mesh.write("mesh.yaml", &manifests::yaml(objects));
    }

    /// Calls each backend logged so far.
    pub fn calls(&self) -> Vec<usize> {
        self.backends.iter().map(logged_calls).collect()
    }

    /// The gateway's `/clusters` stats of backend `i` (`outlier_ejected` → `true`, ...).
    pub async fn endpoint_stats(&self, i: usize) -> BTreeMap<String, String> {
        let needle = format!("::{}::", self.backends[i].addr());
        let text = self.clusters().await;
        text.lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once(&needle)?;
                let (k, v) = rest.split_once("::")?;
                Some((k.to_string(), v.to_string()))
            })
            .collect()
    }

    /// A cluster-wide stat of the service's cluster (`upstream_rq_pending_overflow`).
    pub async fn cluster_stat(&self, stat: &str) -> u64 {
        let cluster = format!("|{SERVICE}.{}.", self.mesh.ns);
        let text = self.clusters().await;
        text.lines()
            .filter(|l| l.contains(&cluster))
            .filter_map(|l| match l.split("::").collect::<Vec<_>>()[..] {
                [_, name, value] if name == stat => value.trim().parse::<u64>().ok(),
                _ => None,
            })
            .sum()
    }

    async fn clusters(&self) -> String {
        self.mesh
            .admin_get("/clusters")
            .await
            .unwrap_or_else(|e| panic!("/clusters: {e:#}"))
            .text()
    }
}
