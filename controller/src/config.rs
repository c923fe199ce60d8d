//! The controller's configuration: command-line flags, their defaults, and validation.

use std::{fmt, net::Ipv4Addr, net::SocketAddr, path::PathBuf, str::FromStr};

use serde::Serialize;

use crate::cluster::ports::{DEFAULT_PORT_RANGE, PortRange};

/// Default xDS listen address: the port DESIGN.md §11 assigns to the controller's xDS,
/// on loopback so a local run exposes nothing to the network.
pub const DEFAULT_XDS_LISTEN: &str = "127.0.0.1:15010";
/// Default range of gateway addresses in file mode: a /16 of loopback, large enough for
/// 65,534 services and bindable on Linux without configuration.
pub const DEFAULT_GATEWAY_CIDR: &str = "127.100.0.0/16";
/// Default cluster domain, the one kubeadm and most distributions use.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// Default debounce: long enough to coalesce an editor's write-rename-chmod burst (or a
/// `kubectl apply` of many objects) into one push, short enough to stay well under the
/// one-second propagation goal.
pub const DEFAULT_DEBOUNCE_MS: u64 = 100;
/// Default safety-net rescan period: file events can be lost (network filesystems,
/// overflowing inotify queues), so the directory is also polled; half a second keeps the
/// worst case under one second.
pub const DEFAULT_RESCAN_MS: u64 = 500;
/// Default namespace of Corridor itself, never meshed (the gateway must not route to itself).
pub const DEFAULT_NAMESPACE: &str = "corridor-system";
/// Default log filter.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Default trust domain of workload principals (`<trust domain>/ns/<ns>/sa/<sa>`):
/// Istio's default, so policies written for Istio name the same principals.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// Default root namespace: Istio's default (`meshConfig.rootNamespace`), so an
/// AuthorizationPolicy Istio applies mesh-wide is mesh-wide here too.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";
/// Default label selector of the gateway pods: the chart's labels.
pub const DEFAULT_GATEWAY_SELECTOR: &str = "app.kubernetes.io/name=corridor-gateway";
/// Default name of the leader Lease (in `--namespace`).
pub const DEFAULT_LEASE_NAME: &str = "corridor-controller";
/// Default CoreDNS ConfigMap (kubeadm's and most distributions').
pub const DEFAULT_COREDNS_CONFIGMAP: &str = "kube-system/coredns";
/// Default name of corridor-dns's Service (in `--namespace`).
pub const DEFAULT_DNS_SERVICE: &str = "corridor-dns";

/// Everything the controller needs to run. Logged once at start-up.
#[derive(Debug, Clone, Serialize, clap::Parser)]
#[command(
    name = "corridor-controller",
    version,
    about = "Corridor's control plane: manifests or the Kubernetes API in, xDS out"
)]
pub struct Config {
    /// Directory of Kubernetes manifests (YAML or JSON, searched recursively).
    #[arg(
        long,
        env = "CORRIDOR_MANIFESTS",
        required_unless_present = "kubernetes",
        conflicts_with = "kubernetes"
    )]
    pub manifests: Option<PathBuf>,
    /// Read the cluster through the Kubernetes API (KUBECONFIG, ~/.kube/config, or the
    /// in-cluster service account) instead of a manifests directory.
    #[arg(long)]
    pub kubernetes: bool,
    /// Address the ADS (xDS) server listens on; port 0 picks a free port.
    #[arg(long, default_value = DEFAULT_XDS_LISTEN)]
    pub xds_listen: SocketAddr,
    /// Range of gateway addresses handed out to meshed services (file mode).
    #[arg(long, default_value = DEFAULT_GATEWAY_CIDR)]
    pub gateway_cidr: Ipv4Cidr,
    /// Cluster DNS domain used to build service host names.
    #[arg(long, default_value = DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
    /// Quiet period after a change before translating and pushing, in milliseconds.
    #[arg(long, default_value_t = DEFAULT_DEBOUNCE_MS)]
    pub debounce_ms: u64,
    /// Period of the safety-net rescan of the manifests directory, in milliseconds.
    #[arg(long, default_value_t = DEFAULT_RESCAN_MS)]
    pub rescan_ms: u64,
    /// Namespace Corridor runs in; never meshed.
    #[arg(long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Trust domain of workload principals in AuthorizationPolicies
    /// (`<trust domain>/ns/<namespace>/sa/<service account>`).
    #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
    /// Namespace whose AuthorizationPolicies without a selector apply to every meshed
    /// service.
    #[arg(long, default_value = DEFAULT_ROOT_NAMESPACE)]
    pub root_namespace: String,
    /// Log filter (`info`, `debug`, `corridor_controller=debug,info`, ...).
    #[arg(long, default_value = DEFAULT_LOG_LEVEL, env = "RUST_LOG")]
    pub log_level: String,
    /// Address of the probe endpoint (`GET /ready`, `/healthz`, `/metrics`); none when
    /// absent.
    #[arg(long)]
    pub probe_listen: Option<SocketAddr>,
    /// Cluster mode (`--kubernetes`) settings.
    #[command(flatten)]
    pub cluster: ClusterConfig,
}

/// How corridor-dns is wired into the cluster's DNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DnsMode {
    /// CoreDNS keeps serving; the leader keeps a server block for the cluster zone in
    /// CoreDNS's Corefile that forwards to corridor-dns.
    Stub,
    /// corridor-dns serves as the cluster DNS itself; CoreDNS is left alone.
    Replace,
    /// DNS is not touched.
    Off,
}

/// The settings only cluster mode reads.
#[derive(Debug, Clone, Serialize, clap::Args)]
pub struct ClusterConfig {
    /// Label selector of the gateway pods (in `--namespace`): address Services select
    /// them, and their readiness decides fail-open.
    #[arg(long, default_value = DEFAULT_GATEWAY_SELECTOR)]
    pub gateway_selector: String,
    /// Range the gateway target ports of meshed (service, port) pairs are allocated from.
    #[arg(long, default_value = DEFAULT_PORT_RANGE)]
    pub gateway_ports: PortRange,
    /// Name of the coordination.k8s.io Lease (in `--namespace`) replicas elect a leader on.
    #[arg(long, default_value = DEFAULT_LEASE_NAME)]
    pub lease_name: String,
    /// This replica's identity in the Lease; the pod name (the chart passes it from the
    /// downward API). Defaults to the host name, which is the pod name in a pod.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// How corridor-dns joins the cluster DNS. Off unless asked for, as in the chart: a
    /// controller started by hand must not edit kube-system's CoreDNS on its own.
    #[arg(long, value_enum, default_value = "off")]
    pub dns_mode: DnsMode,
    /// The CoreDNS ConfigMap (`namespace/name`) the stub hook is kept in.
    #[arg(long, default_value = DEFAULT_COREDNS_CONFIGMAP)]
    pub coredns_configmap: String,
    /// corridor-dns's Service (in `--namespace`): the stub server block forwards to its
    /// ClusterIP.
    #[arg(long, default_value = DEFAULT_DNS_SERVICE)]
    pub dns_service: String,
    /// Remove the CoreDNS server block and exit (the chart's pre-delete hook).
    #[arg(long)]
    pub uninstall_coredns_hook: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            gateway_selector: DEFAULT_GATEWAY_SELECTOR.to_string(),
            gateway_ports: PortRange::default(),
            lease_name: DEFAULT_LEASE_NAME.to_string(),
            pod_name: None,
            dns_mode: DnsMode::Off,
            coredns_configmap: DEFAULT_COREDNS_CONFIGMAP.to_string(),
            dns_service: DEFAULT_DNS_SERVICE.to_string(),
            uninstall_coredns_hook: false,
        }
    }
}

impl ClusterConfig {
    /// The CoreDNS ConfigMap as (namespace, name).
    pub fn coredns_configmap(&self) -> Option<(&str, &str)> {
        self.coredns_configmap
            .split_once('/')
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
    }

    /// This replica's Lease identity: `--pod-name`, else the host name.
    pub fn identity(&self) -> Option<String> {
        self.pod_name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .filter(|n| !n.is_empty())
    }
}

impl Config {
    /// A configuration with every default, reading `manifests` and serving on `xds_listen`.
    pub fn new(manifests: impl Into<PathBuf>, xds_listen: SocketAddr) -> Self {
        Self {
            manifests: Some(manifests.into()),
            kubernetes: false,
            xds_listen,
            gateway_cidr: Ipv4Cidr::DEFAULT,
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_string(),
            debounce_ms: DEFAULT_DEBOUNCE_MS,
            rescan_ms: DEFAULT_RESCAN_MS,
            namespace: DEFAULT_NAMESPACE.to_string(),
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            root_namespace: DEFAULT_ROOT_NAMESPACE.to_string(),
            log_level: DEFAULT_LOG_LEVEL.to_string(),
            probe_listen: None,
            cluster: ClusterConfig::default(),
        }
    }

    /// A cluster-mode configuration with every default, serving on `xds_listen`.
    pub fn kubernetes(xds_listen: SocketAddr) -> Self {
        Self {
            manifests: None,
            kubernetes: true,
            ..Self::new("", xds_listen)
        }
    }

    /// Checks the options that parse but cannot work, reporting all problems together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        match (&self.manifests, self.kubernetes) {
            (Some(_), true) | (None, false) => {
                problems.push("give exactly one of --manifests DIR and --kubernetes".to_string());
            }
            (Some(dir), false) if !dir.is_dir() => problems.push(format!(
                "--manifests {}: not a directory (create it, or point at the directory holding the YAML files)",
                dir.display()
            )),
            _ => {}
        }
        if self.kubernetes {
            self.cluster.validate(&mut problems);
        }
        if self.cluster_domain.is_empty() || self.cluster_domain.starts_with('.') {
            problems.push(format!(
                "--cluster-domain {:?}: must be a DNS domain like cluster.local",
                self.cluster_domain
            ));
        }
        if self.trust_domain.is_empty() || self.trust_domain.contains('/') {
            problems.push(format!(
                "--trust-domain {:?}: must be a domain like cluster.local",
                self.trust_domain
            ));
        }
        if self.root_namespace.is_empty() {
            problems.push("--root-namespace \"\": must name a namespace".to_string());
        }
        if self.rescan_ms == 0 {
            problems.push("--rescan-ms 0: must be at least 1".to_string());
        }
        if self.gateway_cidr.usable() == 0 {
            problems.push(format!(
                "--gateway-cidr {}: holds no usable address",
                self.gateway_cidr
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(problems.join("; ")))
        }
    }
}

impl ClusterConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        if let Err(e) = crate::cluster::parse_selector(&self.gateway_selector) {
            problems.push(format!("--gateway-selector: {e}"));
        }
        if self.lease_name.is_empty() {
            problems.push("--lease-name \"\": must name a Lease".to_string());
        }
        if self.identity().is_none() && !self.uninstall_coredns_hook {
            problems.push(
                "--pod-name: not given and no HOSTNAME to default to (pass the pod name, e.g. from the downward API)"
                    .to_string(),
            );
        }
        if self.coredns_configmap().is_none() {
            problems.push(format!(
                "--coredns-configmap {:?}: must be namespace/name, like kube-system/coredns",
                self.coredns_configmap
            ));
        }
        if self.dns_service.is_empty() {
            problems.push("--dns-service \"\": must name corridor-dns's Service".to_string());
        }
    }
}

/// One or more configuration problems, joined.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// An IPv4 network in CIDR notation (`127.100.0.0/16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    /// The network address (host bits cleared).
    pub network: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// `127.100.0.0/16`, see [`DEFAULT_GATEWAY_CIDR`].
    pub const DEFAULT: Ipv4Cidr = Ipv4Cidr {
        network: Ipv4Addr::new(127, 100, 0, 0),
        prefix: 16,
    };

    /// Number of addresses in the network.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// Number of addresses usable by services: all but the network and broadcast
    /// addresses, except in /31 and /32 where every address is usable.
    pub fn usable(&self) -> u64 {
        if self.prefix >= 31 {
            self.size()
        } else {
            self.size() - 2
        }
    }

    /// The `index`-th usable address (`index < usable()`).
    pub fn nth_usable(&self, index: u64) -> Ipv4Addr {
        let skip = if self.prefix >= 31 { 0 } else { 1 };
        let base = u64::from(u32::from(self.network));
        // Truncation cannot happen: index < usable() keeps the sum inside the network.
        Ipv4Addr::from((base + skip + index) as u32)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not in CIDR form a.b.c.d/len"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let prefix: u8 = prefix.parse().map_err(|e| format!("{s:?}: prefix: {e}"))?;
        if prefix > 32 {
            return Err(format!("{s:?}: prefix must be 0..=32"));
        }
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        };
        Ok(Ipv4Cidr {
            network: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Serialize for Ipv4Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("corridor-controller").chain(args.iter().copied()))
    }

    #[test]
    fn exactly_one_source() {
        assert!(parse(&[]).is_err(), "neither");
        assert!(
            parse(&["--manifests", "/tmp", "--kubernetes"]).is_err(),
            "both"
        );
        let c = parse(&["--kubernetes", "--pod-name", "p-0"]).unwrap();
        assert!(c.kubernetes && c.manifests.is_none());
        c.validate().unwrap();
        assert!(parse(&["--manifests", "/tmp"]).unwrap().validate().is_ok());
    }

    #[test]
    fn cluster_flags_parse_and_validate_together() {
        let c = parse(&[
            "--kubernetes",
            "--pod-name=ctl-1",
            "--gateway-selector=app=gw,tier=edge",
            "--gateway-ports=30000-30099",
            "--lease-name=corridor",
            "--dns-mode=replace",
            "--coredns-configmap=kube-system/dns",
            "--dns-service=cdns",
            "--probe-listen=127.0.0.1:0",
        ])
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.cluster.gateway_ports.to_string(), "30000-30099");
        assert_eq!(c.cluster.dns_mode, DnsMode::Replace);
        assert_eq!(c.cluster.coredns_configmap(), Some(("kube-system", "dns")));
        assert!(parse(&["--kubernetes", "--gateway-ports=9-1"]).is_err());
        assert!(parse(&["--kubernetes", "--dns-mode=both"]).is_err());

        let mut bad = Config::kubernetes("127.0.0.1:0".parse().unwrap());
        bad.cluster.pod_name = Some("p".into());
        bad.cluster.gateway_selector = "app in (gw)".into();
        bad.cluster.coredns_configmap = "coredns".into();
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("--gateway-selector") && err.contains("--coredns-configmap"),
            "{err}"
        );
    }

    #[test]
    fn cidr_parses_and_masks() {
        let c: Ipv4Cidr = "127.100.3.4/16".parse().unwrap();
        assert_eq!(c.to_string(), "127.100.0.0/16");
        assert_eq!(c.usable(), 65534);
        assert_eq!(c.nth_usable(0), Ipv4Addr::new(127, 100, 0, 1));
        assert_eq!(c.nth_usable(65533), Ipv4Addr::new(127, 100, 255, 254));
        assert!("127.0.0.1".parse::<Ipv4Cidr>().is_err());
        assert!("127.0.0.1/33".parse::<Ipv4Cidr>().is_err());
        let one: Ipv4Cidr = "10.0.0.7/32".parse().unwrap();
        assert_eq!(one.usable(), 1);
        assert_eq!(one.nth_usable(0), Ipv4Addr::new(10, 0, 0, 7));
    }
}
