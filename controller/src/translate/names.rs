//! The DNS name table: every Service of the store (meshed or not, every namespace) with
//! what corridor-dns needs to answer the cluster zone as the Kubernetes DNS spec says,
//! plus the gateway address a meshed service's name is rewritten to.
//!
//! Whether the gateway pool can take traffic is not known here: the table leaves
//! `gateway_available` false and [`with_gateway_available`] stamps it at serving time.

use std::{collections::BTreeMap, net::IpAddr, sync::Arc};

use corridor_proto::{
    corridor::dns::v1::{Endpoint, NameTable, Port, Service as NameEntry, service::Kind},
    type_url,
};
use k8s_openapi::api::{core::v1::Service, discovery::v1::EndpointSlice};
use prost::Message;

use super::{Placement, endpoint::slices_of};
use crate::{
    store::{ObjectKey, Store},
    xds::snapshot::{Resource, Snapshot, TypeSnapshot},
};

/// Port protocol when a Service or EndpointSlice port names none (the API's default).
const DEFAULT_PORT_PROTOCOL: &str = "tcp";

/// The name table resource, named after the cluster zone. `placements` holds the gateway
/// addresses of every meshed service that has listeners; a service without one is not
/// rewritten, so it is not meshed as far as DNS is concerned.
pub(super) fn build(
    store: &Store,
    zone: &str,
    placements: &BTreeMap<ObjectKey, Placement>,
) -> Resource {
    let services = store
        .services
        .iter()
        .map(|(key, svc)| {
            let gateway = placements.get(key).map_or(&[][..], |p| p.dns.as_slice());
            entry(store, key, svc, gateway)
        })
        .collect();
    let table = NameTable {
        zone: zone.to_string(),
        gateway_available: false,
        services,
    };
    Resource::new(zone.to_string(), &table)
}

fn entry(store: &Store, key: &ObjectKey, svc: &Service, gateway: &[IpAddr]) -> NameEntry {
    let spec = svc.spec.as_ref();
    let cluster_ips: Vec<&str> = match spec.and_then(|s| s.cluster_ips.as_ref()) {
        Some(ips) if !ips.is_empty() => ips.iter().map(String::as_str).collect(),
        _ => spec
            .and_then(|s| s.cluster_ip.as_deref())
            .into_iter()
            .collect(),
    };
    let kind = if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        Kind::ExternalName
    } else if cluster_ips.first() == Some(&"None") {
        Kind::Headless
    } else {
        Kind::ClusterIp
    };
    let mut ports: Vec<Port> = spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .filter_map(|p| port(p.name.as_deref(), p.port, p.protocol.as_deref()))
        .collect();
    sort_ports(&mut ports);
    let publish_not_ready = spec
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let mut endpoints: Vec<Endpoint> = slices_of(store, key)
        .flat_map(|(_, slice)| slice_endpoints(slice, publish_not_ready))
        .collect();
    // Slices list their endpoints in no particular order, and during a rebalance one
    // endpoint can sit in two slices: sort and deduplicate so the version follows content.
    endpoints.sort_by(|a, b| (&a.addresses, &a.hostname).cmp(&(&b.addresses, &b.hostname)));
    endpoints.dedup();
    NameEntry {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        kind: kind as i32,
        // "None" (headless) and "" (ExternalName) are not addresses.
        cluster_ips: cluster_ips.into_iter().filter_map(ip_text).collect(),
        gateway_ips: gateway.iter().map(ToString::to_string).collect(),
        meshed: !gateway.is_empty(),
        ports,
        endpoints,
        external_name: spec
            .and_then(|s| s.external_name.clone())
            .unwrap_or_default(),
    }
}

/// One name-table endpoint per EndpointSlice endpoint; FQDN slices carry no addresses
/// DNS could answer with.
fn slice_endpoints(slice: &EndpointSlice, publish_not_ready: bool) -> Vec<Endpoint> {
    if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
        return Vec::new();
    }
    let mut ports: Vec<Port> = slice
        .ports
        .iter()
        .flatten()
        // A port without a number means "all ports": nothing an SRV record can name.
        .filter_map(|p| port(p.name.as_deref(), p.port?, p.protocol.as_deref()))
        .collect();
    sort_ports(&mut ports);
    slice
        .endpoints
        .iter()
        .map(|ep| {
            // Absent means ready (EndpointSlice API); publishNotReadyAddresses asks DNS
            // to answer not-ready endpoints too (StatefulSet peer discovery).
            let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            let mut addresses: Vec<String> =
                ep.addresses.iter().filter_map(|a| ip_text(a)).collect();
            addresses.sort();
            Endpoint {
                addresses,
                hostname: ep.hostname.clone().unwrap_or_default(),
                ready: ready || publish_not_ready,
                ports: ports.clone(),
            }
        })
        .collect()
}

fn port(name: Option<&str>, number: i32, protocol: Option<&str>) -> Option<Port> {
    Some(Port {
        name: name.unwrap_or_default().to_string(),
        port: u32::try_from(number).ok()?,
        protocol: protocol.map_or_else(|| DEFAULT_PORT_PROTOCOL.to_string(), str::to_lowercase),
    })
}

fn sort_ports(ports: &mut [Port]) {
    ports.sort_by(|a, b| (a.port, &a.protocol, &a.name).cmp(&(b.port, &b.protocol, &b.name)));
}

/// An address in its canonical text form (`fd00::1`, not `fd00:0::0001`), so PTR names
/// and comparisons agree; `None` for anything that is not an IP address.
fn ip_text(text: &str) -> Option<String> {
    match text.parse::<IpAddr>() {
        Ok(ip) => Some(ip.to_string()),
        Err(_) => {
            if !text.is_empty() && text != "None" {
                tracing::debug!(address = %text, "not an IP address; left out of the name table");
            }
            None
        }
    }
}

/// The snapshot with every name table's `gateway_available` set to `available` (and the
/// versions recomputed, so clients see the change). Other types are shared, not copied.
pub fn with_gateway_available(snapshot: &Snapshot, available: bool) -> Snapshot {
    let mut out = snapshot.clone();
    let Some(tables) = snapshot.get(type_url::NAME_TABLE) else {
        return out;
    };
    let stamped = tables.resources.values().map(|r| {
        match NameTable::decode(r.body.value.as_slice()) {
            Ok(table) => Resource::new(
                r.name.clone(),
                &NameTable {
                    gateway_available: available,
                    ..table
                },
            ),
            // Cannot happen (the translator encoded it); serving it unchanged is the
            // fail-safe answer, since an unstamped table says "unavailable".
            Err(e) => {
                tracing::error!(name = %r.name, error = %e, "cannot decode the name table");
                Arc::unwrap_or_clone(r.clone())
            }
        }
    });
    out.types.insert(
        type_url::NAME_TABLE.to_string(),
        TypeSnapshot::from_resources(stamped),
    );
    out
}

#[cfg(test)]
mod tests;
