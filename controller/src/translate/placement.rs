//! Where each meshed service sits on the gateway: the addresses DNS answers for its name
//! and the socket each of its ports' listeners binds (DESIGN.md §2).

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddrV4},
};

use super::{Addressing, ServiceInfo, TranslateOptions};
use crate::{
    addressing,
    cluster::published::Published,
    store::{ObjectKey, Store},
};

/// One meshed service's place on the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    /// What DNS answers for the service's name.
    pub dns: Vec<IpAddr>,
    /// Address the listeners bind.
    pub bind: Ipv4Addr,
    /// Listener port of each original port; every port of the service has one.
    pub ports: BTreeMap<u16, u16>,
}

impl Placement {
    /// The socket the listener of original port `port` binds.
    pub fn bind(&self, port: u16) -> Option<SocketAddrV4> {
        self.ports
            .get(&port)
            .map(|p| SocketAddrV4::new(self.bind, *p))
    }
}

/// The placement of every meshed service that has one. A service is placed whole or not
/// at all: its name can only be rewritten when every one of its ports has a listener.
pub(crate) fn place(
    store: &Store,
    opts: &TranslateOptions,
    meshed: &BTreeMap<ObjectKey, ServiceInfo>,
) -> BTreeMap<ObjectKey, Placement> {
    match &opts.addressing {
        Addressing::File { gateway_cidr } => addressing::assign(gateway_cidr, meshed.keys())
            .into_iter()
            .filter_map(|(key, address)| {
                let info = meshed.get(&key)?;
                let placement = Placement {
                    dns: vec![IpAddr::V4(address)],
                    bind: address,
                    ports: info.ports.iter().map(|p| (p.number, p.number)).collect(),
                };
                Some((key, placement))
            })
            .collect(),
        Addressing::Cluster => {
            let published = Published::read(store, &opts.own_namespace);
            meshed
                .iter()
                .filter_map(|(key, info)| {
                    Some((key.clone(), cluster_placement(&published, key, info)?))
                })
                .collect()
        }
    }
}

/// From the service's address Service: its ClusterIPs for DNS, every interface and the
/// allocated gateway ports for the listeners (kube-proxy delivers to the pod's IP).
fn cluster_placement(
    published: &Published<'_>,
    key: &ObjectKey,
    info: &ServiceInfo,
) -> Option<Placement> {
    let address = published.of(key)?;
    if address.cluster_ips.is_empty() {
        return None;
    }
    let ports = info
        .ports
        .iter()
        .map(|p| Some((p.number, published.gateway_port(key, p.number)?)))
        .collect::<Option<BTreeMap<u16, u16>>>()?;
    Some(Placement {
        dns: address.cluster_ips.clone(),
        bind: Ipv4Addr::UNSPECIFIED,
        ports,
    })
}

#[cfg(test)]
mod tests;
