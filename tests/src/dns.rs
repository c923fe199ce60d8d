//! corridor-dns under test, and the DNS peers that talk to it.
//!
//! - [`Dns`]: a running `corridor-dns` (DNS on UDP+TCP, health, ready, metrics, all on
//!   port 0), with `dig` queries and its HTTP edges;
//! - [`dig`](mod@dig): the `dig` client (Debian dnsutils) and a parser for its output;
//! - [`objects`]: Services and EndpointSlices with the fields DNS reads (cluster IPs,
//!   headless, ExternalName, hostnames, IPv6, publishNotReadyAddresses);
//! - [`upstream`]: the dnspython peer `tests/python/dns_upstream.py` (an upstream server that
//!   counts queries, and a second client);
//! - [`raw`]: raw packets over UDP and TCP, for malformed input.

pub mod dig;
pub mod objects;
pub mod raw;
pub mod upstream;

use std::net::SocketAddr;
use std::process::Command;

use anyhow::bail;

pub use dig::{DigReply, Record};

use crate::bin::{Process, binary};
use crate::client::{HttpClient, Reply};
use crate::eventually::{PATIENCE, eventually};

/// The prefix of the line corridor-dns prints on stdout once every socket is bound.
const BOUND_PREFIX: &str = "corridor-dns bound";

/// The cluster zone every test uses (corridor-dns's and the controller's default).
pub const ZONE: &str = "cluster.local";

/// A running corridor-dns; killed on drop.
pub struct Dns {
    /// The process (its log is in `process.stderr`).
    pub process: Process,
    /// Where it answers DNS, on UDP and TCP.
    pub addr: SocketAddr,
    /// `GET /health`.
    pub health: SocketAddr,
    /// `GET /ready`.
    pub ready: SocketAddr,
    /// `GET /metrics`.
    pub metrics: SocketAddr,
    http: HttpClient,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns")
            .field("addr", &self.addr)
            .field("pid", &self.process.pid())
            .finish()
    }
}

impl Dns {
    /// Starts corridor-dns against the xDS server at `xds` with every address on
    /// 127.0.0.1 port 0, plus `extra` flags (`--upstream`, `--ttl`, ...), and waits for its
    /// `bound` line (not for `/ready`: a test of readiness needs the moment before).
    pub async fn start(xds: SocketAddr, extra: &[&str]) -> Dns {
        let xds = xds.to_string();
        let mut cmd = Command::new(binary("corridor-dns"));
        cmd.args(["--xds", &xds, "--listen", "127.0.0.1:0"])
            .args(["--health", "127.0.0.1:0", "--ready", "127.0.0.1:0"])
            .args(["--metrics", "127.0.0.1:0", "--log-level", "info"])
            .args(extra);
        let mut process = Process::spawn("dns", cmd).unwrap_or_else(|e| panic!("{e:#}"));
        let mut addrs = Vec::new();
        for key in ["dns", "health", "ready", "metrics"] {
            let addr = process
                .wait_bound(BOUND_PREFIX, key)
                .await
                .unwrap_or_else(|e| panic!("{e:#}"));
            addrs.push(addr);
        }
        let [addr, health, ready, metrics] = addrs[..] else {
            unreachable!("four keys, four addresses")
        };
        Dns {
            process,
            addr,
            health,
            ready,
            metrics,
            http: HttpClient::http1(),
        }
    }

    /// Starts corridor-dns (see [`Dns::start`]) and waits until `/ready` answers 200, i.e.
    /// a name table is loaded.
    pub async fn start_ready(xds: SocketAddr, extra: &[&str]) -> Dns {
        let dns = Dns::start(xds, extra).await;
        dns.wait_ready().await;
        dns
    }

    /// Waits until `/ready` answers 200.
    pub async fn wait_ready(&self) {
        eventually(PATIENCE, "corridor-dns /ready to answer 200", || async {
            let reply = self.http.get(self.ready, "/ready").await?;
            if reply.status != 200 {
                bail!("/ready answered {}: {}", reply.status, reply.text());
            }
            Ok(())
        })
        .await;
    }

    /// `GET path` on one of the HTTP edges (`self.health`, `self.ready`, `self.metrics`).
    pub async fn get(&self, edge: SocketAddr, path: &str) -> Reply {
        self.http
            .get(edge, path)
            .await
            .unwrap_or_else(|e| panic!("GET {edge}{path}: {e:#}"))
    }

    /// The `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        self.get(self.metrics, "/metrics").await.text()
    }

    /// `dig <name> <rtype>` against this server; panics when dig gets no reply at all.
    pub async fn dig(&self, name: &str, rtype: &str) -> DigReply {
        self.dig_with(&[name, rtype])
            .await
            .unwrap_or_else(|e| panic!("dig {name} {rtype}: {e:#}"))
    }

    /// `dig` with any arguments (names, types, `+options`) against this server.
    pub async fn dig_with(&self, args: &[&str]) -> anyhow::Result<DigReply> {
        dig::dig(self.addr, args).await
    }

    /// Queries `dig <name> <rtype>` until `check` accepts the reply; returns that reply.
    pub async fn wait_for(
        &self,
        name: &str,
        rtype: &str,
        what: &str,
        check: impl Fn(&DigReply) -> bool,
    ) -> DigReply {
        eventually(PATIENCE, what, || async {
            let reply = self.dig_with(&[name, rtype]).await?;
            if !check(&reply) {
                bail!("not yet; last reply:\n{}", reply.text);
            }
            Ok(reply)
        })
        .await
    }

    /// Panics unless the process is still running (a crash on bad input would end it).
    pub fn assert_alive(&mut self) {
        match self.process.try_exit() {
            Ok(None) => {}
            Ok(Some(status)) => panic!(
                "corridor-dns exited ({status}); stderr:\n{}",
                self.process.stderr.text()
            ),
            Err(e) => panic!("{e:#}"),
        }
    }
}

/// `<name>.<ns>.svc.cluster.local`, the FQDN of a service.
pub fn svc_name(name: &str, ns: &str) -> String {
    format!("{name}.{ns}.svc.{ZONE}")
}
