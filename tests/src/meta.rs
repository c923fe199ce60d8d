//! Dubbo and Thrift services for the end-to-end tests: the `corridor-load serve` echo
//! backends (the real binary, as users and the benchmarks run it), the calls they log,
//! and a mesh that routes a Dubbo/Thrift port with a MetaRouter.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;

use serde_json::{Value, json};

use crate::bin::{Process, binary};
use crate::manifests::{self, DestinationRule, ServicePort};
use crate::mesh::{Mesh, Upstream};

/// A protocol `corridor-load serve` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Dubbo2 over Hessian2.
    Dubbo,
    /// Thrift, any transport and protocol.
    Thrift,
}

impl Protocol {
    /// The subcommand and log name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Dubbo => "dubbo",
            Protocol::Thrift => "thrift",
        }
    }
}

/// A running `corridor-load serve <protocol> --log-calls`: answers every call with its
/// first string argument prefixed by `<name>: ` and logs each call it receives.
#[derive(Debug)]
pub struct EchoServer {
    /// The name it prefixes answers with.
    pub name: String,
    /// The protocol it serves.
    pub protocol: Protocol,
    /// The server process.
    pub process: Process,
    /// The bound address.
    pub addr: SocketAddr,
}

impl EchoServer {
    /// Starts an echo backend called `name` on `addr` (port 0 picks one); `extra` adds
    /// flags such as `--delay 5s`, `--jitter 20ms` or `--error-rate 0.5`.
    pub async fn start(protocol: Protocol, name: &str, addr: SocketAddr, extra: &[&str]) -> anyhow::Result<EchoServer> {
        let mut cmd = Command::new(binary("corridor-load"));
        cmd.args(["serve", protocol.as_str(), "--log-calls", "--name", name])
            .args(["--listen", &addr.to_string()])
            .args(extra);
        let mut process = Process::spawn(&format!("{} {name}", protocol.as_str()), cmd)?;
        let addr = process.wait_bound("corridor-load serve bound", protocol.as_str()).await?;
        Ok(EchoServer {
            name: name.to_string(),
            protocol,
            process,
            addr,
        })
    }

    /// Starts one echo backend per name, all on one port, on distinct loopback addresses
    /// of `mesh` (one EndpointSlice port lists them all, as in a cluster).
    pub async fn start_many(mesh: &mut Mesh, protocol: Protocol, names: &[&str], extra: &[&str]) -> Vec<EchoServer> {
        let mut servers: Vec<EchoServer> = Vec::new();
        for name in names {
            let port = servers.first().map_or(0, |s| s.addr.port());
            let server = EchoServer::start(protocol, name, mesh.upstream_addr(port), extra)
                .await
                .unwrap_or_else(|e| panic!("{e:#}"));
            servers.push(server);
        }
        servers
    }

    /// Every call logged so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.process.stdout.snapshot().iter().filter_map(|l| Call::parse(l)).collect()
    }
}

impl Upstream for EchoServer {
    fn name(&self) -> &str {
        &self.name
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// One call an echo backend logged (`call dubbo id=.. interface=.. method=.. attachments=k=v,..`
/// or `call thrift seqid=.. method=.. type=call|oneway headers=k=v,..`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `dubbo` or `thrift`.
    pub protocol: String,
    /// Every `key=value` field but the attachment/header list (`id`, `seqid`, `interface`,
    /// `method`, `type`).
    pub fields: BTreeMap<String, String>,
    /// Dubbo attachments or Thrift THeader headers.
    pub attributes: BTreeMap<String, String>,
}

impl Call {
    /// Parses one log line; `None` for other lines.
    pub fn parse(line: &str) -> Option<Call> {
        let mut words = line.split_whitespace();
        if words.next() != Some("call") {
            return None;
        }
        let protocol = words.next()?.to_string();
        let mut fields = BTreeMap::new();
        let mut attributes = BTreeMap::new();
        for word in words {
            let (key, value) = word.split_once('=')?;
            if key == "attachments" || key == "headers" {
                for pair in value.split(',').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    attributes.insert(k.to_string(), v.to_string());
                }
            } else {
                fields.insert(key.to_string(), value.to_string());
            }
        }
        Some(Call { protocol, fields, attributes })
    }

    /// A field's value, or "".
    pub fn field(&self, key: &str) -> &str {
        self.fields.get(key).map_or("", String::as_str)
    }
}

/// An Aeraki MetaRouter for `service` in `ns` with `routes` (its `spec.routes`).
pub fn meta_router(ns: &str, service: &str, routes: Value) -> Value {
    json!({
        "apiVersion": "metaprotocol.aeraki.io/v1alpha1",
        "kind": "MetaRouter",
        "metadata": {"name": service, "namespace": ns},
        "spec": {"hosts": [format!("{service}.{ns}.svc.cluster.local")], "routes": routes}
    })
}

/// Writes `service` (one port, `port`, served by `upstreams` labelled with their
/// versions) and `extra` objects (MetaRouter, DestinationRule, ...) into the mesh,
/// starts the controller and a gateway, and returns the service's gateway address.
pub async fn meta_service(
    mesh: &mut Mesh,
    service: &str,
    port: ServicePort,
    upstreams: &[(&EchoServer, &str)],
    extra: Vec<Value>,
) -> SocketAddr {
    let number = port.number();
    let mut objects = mesh.service_objects(service, port, upstreams);
    objects.extend(extra);
    mesh.write(&format!("{service}.yaml"), &manifests::yaml(objects));
    mesh.start_controller().await;
    mesh.start_gateway().await;
    mesh.service_addr(service, number).await
}

/// A fresh mesh tagged `tag` with `service` on `port`, served by one echo backend per
/// name (pods labelled `version: v1`, `v2`, ... in order, a DestinationRule subset per
/// version), routed by a MetaRouter with `routes`; returns the mesh, the backends and the
/// service's gateway address.
pub async fn versioned_service(
    tag: &str,
    protocol: Protocol,
    service: &str,
    port: ServicePort,
    names: &[&str],
    routes: Value,
) -> (Mesh, Vec<EchoServer>, SocketAddr) {
    let mut mesh = Mesh::new(tag);
    let servers = EchoServer::start_many(&mut mesh, protocol, names, &[]).await;
    let versions: Vec<String> = (1..=servers.len()).map(|i| format!("v{i}")).collect();
    let ns = mesh.ns.clone();
    let mut rule = DestinationRule::new(service, &ns, service);
    for v in &versions {
        rule = rule.subset(v, &[("version", v)]);
    }
    let upstreams: Vec<(&EchoServer, &str)> = servers.iter().zip(&versions).map(|(s, v)| (s, v.as_str())).collect();
    let extra = vec![meta_router(&ns, service, routes), rule.into()];
    let addr = meta_service(&mut mesh, service, port, &upstreams, extra).await;
    (mesh, servers, addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_call_lines() {
        let d = Call::parse("call dubbo id=5 interface=org.Demo method=sayHello attachments=path=org.Demo,x-user=alice").unwrap_or_else(|| panic!("not parsed"));
        assert_eq!((d.protocol.as_str(), d.field("method"), d.field("id")), ("dubbo", "sayHello", "5"));
        assert_eq!(d.attributes["x-user"], "alice");
        let t = Call::parse("call thrift seqid=7 method=add type=oneway headers=").unwrap_or_else(|| panic!("not parsed"));
        assert_eq!((t.field("type"), t.attributes.len()), ("oneway", 0));
        assert!(Call::parse("corridor-load serve bound dubbo=127.0.0.1:1").is_none());
    }
}
