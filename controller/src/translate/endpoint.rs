//! Cluster load assignments from EndpointSlices: one locality per zone, endpoints at
//! `<pod IP>:<targetPort>`, health from the endpoint conditions, subsets through the Pod
//! each endpoint's `targetRef` names.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use corridor_proto::envoy::config::{
    core::v3::{Address, HealthStatus, Locality, Metadata, SocketAddress, address, socket_address},
    endpoint::v3::{ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint},
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::{Endpoint as SliceEndpoint, EndpointSlice};

use super::{Context, MetaValue, PortInfo, ServiceInfo, corridor_metadata};
use crate::{
    resources::istio::Subset,
    store::{ObjectKey, Store},
    xds::snapshot::Resource,
};

/// Label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

pub(super) fn build(
    ctx: &Context<'_>,
    name: &str,
    info: &ServiceInfo,
    port: &PortInfo,
    subset: Option<&Subset>,
) -> Resource {
    let full = labelled_assignment(ctx, name, info, port, subset, true);
    // Metadata maps encode in hash-map order: the version hashes them sorted.
    let mut bare = full.clone();
    let mut canonical = Vec::new();
    for e in bare.endpoints.iter_mut().flat_map(|l| &mut l.lb_endpoints) {
        if let Some(md) = e.metadata.take() {
            canonical.extend(sorted_metadata(&md));
        }
    }
    Resource::with_canonical(name.to_string(), &full, &bare, &canonical)
}

/// A metadata's fields in key order, as bytes.
fn sorted_metadata(md: &Metadata) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, st) in md.filter_metadata.iter().collect::<BTreeMap<_, _>>() {
        out.extend_from_slice(key.as_bytes());
        out.push(0);
        for (k, v) in st.fields.iter().collect::<BTreeMap<_, _>>() {
            out.extend_from_slice(k.as_bytes());
            out.push(0);
            out.extend_from_slice(format!("{v:?}").as_bytes());
            out.push(0);
        }
    }
    out
}

/// The endpoints of one cluster (also the seeds of a Redis Cluster, which Envoy reads
/// from the cluster's own `load_assignment` instead of EDS).
pub(super) fn assignment(
    ctx: &Context<'_>,
    name: &str,
    info: &ServiceInfo,
    port: &PortInfo,
    subset: Option<&Subset>,
) -> ClusterLoadAssignment {
    labelled_assignment(ctx, name, info, port, subset, false)
}

/// The endpoints of one cluster, with each one's workload labels when `labels`.
fn labelled_assignment(
    ctx: &Context<'_>,
    name: &str,
    info: &ServiceInfo,
    port: &PortInfo,
    subset: Option<&Subset>,
    labels: bool,
) -> ClusterLoadAssignment {
    let mut zones: BTreeMap<String, Vec<LbEndpoint>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (key, slice) in slices_of(ctx.store, &info.key) {
        if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
            continue;
        }
        let Some(target_port) = slice_port(slice, port) else {
            continue;
        };
        for ep in &slice.endpoints {
            if let Some(s) = subset
                && !pod_matches(ctx, &key.namespace, ep, s)
            {
                continue;
            }
            let status = health(ep);
            let pod = labels.then(|| pod_of(ctx, &key.namespace, ep)).flatten();
            for text in &ep.addresses {
                // The API server validates addresses, a hand-written manifest may not:
                // one bad address must not get the whole assignment rejected (NACKed).
                let Ok(ip) = text.parse::<IpAddr>() else {
                    tracing::warn!(service = %info.key, address = %text, "EndpointSlice address is not an IP address; skipping it");
                    continue;
                };
                if !seen.insert((ip, target_port)) {
                    continue;
                }
                zones
                    .entry(ep.zone.clone().unwrap_or_default())
                    .or_default()
                    .push(LbEndpoint {
                        metadata: labels
                            .then(|| pod.or_else(|| pod_by_ip(ctx, &key.namespace, ip)))
                            .flatten()
                            .map(workload_metadata),
                        health_status: status as i32,
                        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                            address: Some(socket(ip, target_port)),
                            ..Default::default()
                        })),
                        ..Default::default()
                    });
            }
        }
    }
    ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: zones
            .into_iter()
            .map(|(zone, lb_endpoints)| LocalityLbEndpoints {
                locality: (!zone.is_empty()).then(|| Locality {
                    zone,
                    ..Default::default()
                }),
                lb_endpoints,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// The EndpointSlices of a Service: same namespace, labelled with its name.
pub(super) fn slices_of<'a>(
    store: &'a Store,
    service: &'a ObjectKey,
) -> impl Iterator<Item = (&'a ObjectKey, &'a EndpointSlice)> {
    store.endpoint_slices.iter().filter(move |(k, s)| {
        k.namespace == service.namespace
            && s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                == Some(&service.name)
    })
}

/// The slice port carrying a service port: same name (an unnamed port matches an unnamed
/// or empty-named one).
fn slice_port(slice: &EndpointSlice, port: &PortInfo) -> Option<u16> {
    let want = port.name.as_deref().unwrap_or("");
    slice
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().is_none_or(|proto| proto == "TCP"))
        .find(|p| p.name.as_deref().unwrap_or("") == want)
        .and_then(|p| p.port)
        .and_then(|n| u16::try_from(n).ok())
}

fn health(ep: &SliceEndpoint) -> HealthStatus {
    let c = ep.conditions.as_ref();
    if c.and_then(|c| c.ready).unwrap_or(true) {
        HealthStatus::Healthy
    } else if c.and_then(|c| c.terminating).unwrap_or(false) {
        HealthStatus::Draining
    } else {
        HealthStatus::Unhealthy
    }
}

/// The Pod an endpoint's `targetRef` names, if the store has it.
fn pod_of<'a>(ctx: &Context<'a>, slice_namespace: &str, ep: &SliceEndpoint) -> Option<&'a Pod> {
    let r = ep
        .target_ref
        .as_ref()
        .filter(|r| r.kind.as_deref() == Some("Pod"))?;
    let ns = r.namespace.as_deref().unwrap_or(slice_namespace);
    ctx.store
        .pods
        .get(&ObjectKey::new(ns, r.name.clone().unwrap_or_default()))
}

/// The Pod of `namespace` with address `ip`, for endpoints without a `targetRef`.
fn pod_by_ip<'a>(ctx: &Context<'a>, namespace: &str, ip: IpAddr) -> Option<&'a Pod> {
    let ip = ip.to_string();
    ctx.store.pods.iter().find_map(|(k, p)| {
        let status = p.status.as_ref()?;
        let has = status.pod_ip.as_deref() == Some(ip.as_str())
            || status.pod_ips.iter().flatten().any(|i| i.ip == ip);
        (k.namespace == namespace && has).then_some(p)
    })
}

/// The endpoint's destination labels (`filter_metadata["corridor"]`): workload,
/// namespace, app, version and service account, as telemetry reports them.
fn workload_metadata(pod: &Pod) -> Metadata {
    let meta = &pod.metadata;
    let label = |keys: [&str; 2]| {
        let labels = meta.labels.as_ref();
        keys.iter()
            .find_map(|k| labels.and_then(|l| l.get(*k)).cloned())
            .unwrap_or_default()
    };
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_default();
    let (metadata, _) = corridor_metadata(BTreeMap::from([
        (
            "workload",
            MetaValue::Str(super::workload::workload_name(pod)),
        ),
        (
            "namespace",
            MetaValue::Str(meta.namespace.clone().unwrap_or_default()),
        ),
        (
            "app",
            MetaValue::Str(label(["app", "app.kubernetes.io/name"])),
        ),
        (
            "version",
            MetaValue::Str(label(["version", "app.kubernetes.io/version"])),
        ),
        ("sa", MetaValue::Str(sa)),
    ]));
    metadata
}

fn pod_matches(
    ctx: &Context<'_>,
    slice_namespace: &str,
    ep: &SliceEndpoint,
    subset: &Subset,
) -> bool {
    let Some(pod) = pod_of(ctx, slice_namespace, ep) else {
        return false;
    };
    let labels = pod.metadata.labels.as_ref();
    subset
        .labels
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

fn socket(ip: IpAddr, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            protocol: socket_address::Protocol::Tcp as i32,
            address: ip.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}
