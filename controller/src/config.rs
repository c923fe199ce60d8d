//! The controller's configuration: command-line flags, their defaults, and validation.

use std::{fmt, net::Ipv4Addr, net::SocketAddr, path::PathBuf, str::FromStr};

use serde::Serialize;

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

/// Everything the controller needs to run. Logged once at start-up.
#[derive(Debug, Clone, Serialize, clap::Parser)]
#[command(
    name = "corridor-controller",
    version,
    about = "Corridor's control plane: manifests in, xDS out"
)]
pub struct Config {
    /// Directory of Kubernetes manifests (YAML or JSON, searched recursively).
    #[arg(long, env = "CORRIDOR_MANIFESTS")]
    pub manifests: PathBuf,
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
    /// Log filter (`info`, `debug`, `corridor_controller=debug,info`, ...).
    #[arg(long, default_value = DEFAULT_LOG_LEVEL, env = "RUST_LOG")]
    pub log_level: String,
}

impl Config {
    /// A configuration with every default, reading `manifests` and serving on `xds_listen`.
    pub fn new(manifests: impl Into<PathBuf>, xds_listen: SocketAddr) -> Self {
        Self {
            manifests: manifests.into(),
            xds_listen,
            gateway_cidr: Ipv4Cidr::DEFAULT,
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_string(),
            debounce_ms: DEFAULT_DEBOUNCE_MS,
            rescan_ms: DEFAULT_RESCAN_MS,
            namespace: DEFAULT_NAMESPACE.to_string(),
            log_level: DEFAULT_LOG_LEVEL.to_string(),
        }
    }

    /// Checks the options that parse but cannot work, reporting all problems together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if !self.manifests.is_dir() {
            problems.push(format!(
                "--manifests {}: not a directory (create it, or point at the directory holding the YAML files)",
                self.manifests.display()
            ));
        }
        if self.cluster_domain.is_empty() || self.cluster_domain.starts_with('.') {
            problems.push(format!(
                "--cluster-domain {:?}: must be a DNS domain like cluster.local",
                self.cluster_domain
            ));
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
