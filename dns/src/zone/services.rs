//! The names one service of the name table puts into the index: its own, its SRV
//! names, its endpoints' names, and the PTR records of all its addresses.

use std::collections::HashMap;
use std::net::IpAddr;

use hickory_server::proto::rr::rdata::{CNAME, PTR};
use hickory_server::proto::rr::{Name, RData, Record};

use corridor_proto::corridor::dns::v1::service::Kind;
use corridor_proto::corridor::dns::v1::{Endpoint, Service};

use super::ZoneOptions;
use super::index::{Alias, Index, child};
use super::records::{PortSpec, SrvEntry, Target, add_srv_names, add_srv_set, group_named};

/// One service being indexed.
struct Ctx<'a> {
    svc: &'a Service,
    /// `<svc>.<ns>.svc.<zone>`, lowercase.
    name: Name,
    opts: &'a ZoneOptions,
}

/// Adds one service's names to the index; a service that cannot be named is skipped with
/// a warning.
pub(super) fn add(index: &mut Index, svc: &Service, gateway_available: bool, opts: &ZoneOptions) {
    let (Some(ns), Some(name)) = (label(&svc.namespace), label(&svc.name)) else {
        tracing::warn!(
            namespace = %svc.namespace,
            service = %svc.name,
            "skipping service: its name or namespace is not a DNS label"
        );
        return;
    };
    let (Some(ns_name), Some(svc_name)) = (
        child(&opts.zone, &[&ns, "svc"]),
        child(&opts.zone, &[&name, &ns, "svc"]),
    ) else {
        tracing::warn!(namespace = %ns, service = %name, "skipping service: name too long");
        return;
    };
    // The namespace exists as soon as it holds a service, even one without records.
    index.node(ns_name);
    if index.names.contains_key(&svc_name) {
        tracing::warn!(namespace = %ns, service = %name, "skipping duplicate service");
        return;
    }
    let ctx = Ctx {
        svc,
        name: svc_name,
        opts,
    };
    match Kind::try_from(svc.kind) {
        Ok(Kind::ClusterIp) => cluster_ip(index, &ctx, gateway_available),
        Ok(Kind::Headless) => headless(index, &ctx),
        Ok(Kind::ExternalName) => external_name(index, &ctx),
        Ok(Kind::Unspecified) | Err(_) => tracing::warn!(
            namespace = %ns,
            service = %name,
            kind = svc.kind,
            "skipping service of unknown kind"
        ),
    }
}

/// A ClusterIP service: its addresses (the gateway's while it is rewritten), SRV for its
/// ports, PTR for its addresses, and names for its ready endpoints.
fn cluster_ip(index: &mut Index, ctx: &Ctx<'_>, gateway_available: bool) {
    let svc = ctx.svc;
    let cluster = parse_ips(ctx, &svc.cluster_ips, "cluster IP");
    let gateway = parse_ips(ctx, &svc.gateway_ips, "gateway IP");
    let rewrite = gateway_available && svc.meshed && !gateway.is_empty();
    // A meshed name keeps the short TTL even while failing open, so clients come back for
    // the rewrite soon after the pool recovers.
    let ttl = if svc.meshed {
        ctx.opts.meshed_ttl
    } else {
        ctx.opts.ttl
    };
    let answered = if rewrite { &gateway } else { &cluster };
    let target = Target::new(ctx.name.clone(), ttl, answered);

    let ports: Vec<PortSpec> = svc
        .ports
        .iter()
        .filter_map(|p| PortSpec::parse(&ctx.name, p))
        .collect();
    let targets = [target];
    let entries: Vec<SrvEntry> = ports
        .iter()
        .map(|p| SrvEntry {
            target: 0,
            port: p.number,
        })
        .collect();
    let node = index.node(ctx.name.clone());
    targets[0].add_address_sets(node);
    add_srv_set(node, &ctx.name, &targets, &entries, ttl);
    let groups = group_named(ports.iter().map(|p| (p, 0)));
    add_srv_names(index, &ctx.name, &groups, &targets, ttl);

    let ptr_ips = cluster
        .iter()
        .chain(if rewrite { &gateway[..] } else { &[] });
    for &ip in ptr_ips {
        index.add_ptr(ip, ptr_record(ip, &ctx.name, ttl));
    }
    let endpoints = endpoint_targets(ctx);
    add_endpoint_names(index, &endpoints);
}

/// A headless service: the addresses of its ready endpoints, their names, SRV per
/// endpoint and port. Without a ready endpoint the service has no name at all.
fn headless(index: &mut Index, ctx: &Ctx<'_>) {
    let endpoints = endpoint_targets(ctx);
    if endpoints.is_empty() {
        tracing::debug!(service = %ctx.name, "headless service without ready endpoints: NXDOMAIN");
        return;
    }
    let ttl = ctx.opts.ttl;
    let mut all = Target::new(ctx.name.clone(), ttl, &[]);
    let mut entries = Vec::new();
    for (i, (target, ports)) in endpoints.iter().enumerate() {
        target.addresses().for_each(|ip| all.push(ip));
        entries.extend(ports.iter().map(|p| SrvEntry {
            target: i,
            port: p.number,
        }));
    }
    let targets: Vec<Target> = endpoints.iter().map(|(t, _)| t.clone()).collect();
    let node = index.node(ctx.name.clone());
    all.add_address_sets(node);
    add_srv_set(node, &ctx.name, &targets, &entries, ttl);
    let groups = group_named(
        endpoints
            .iter()
            .enumerate()
            .flat_map(|(i, (_, ports))| ports.iter().map(move |p| (p, i))),
    );
    add_srv_names(index, &ctx.name, &groups, &targets, ttl);
    add_endpoint_names(index, &endpoints);
}

/// An ExternalName service: a CNAME to its external name.
fn external_name(index: &mut Index, ctx: &Ctx<'_>) {
    let external = ctx.svc.external_name.trim();
    let target = match Name::from_ascii(external) {
        Ok(mut name) if !external.is_empty() && external.parse::<IpAddr>().is_err() => {
            name.set_fqdn(true);
            name
        }
        _ => {
            // Kubernetes requires a DNS name here; CoreDNS ignores an address too.
            tracing::warn!(service = %ctx.name, external_name = %external, "skipping ExternalName service: not a DNS name");
            return;
        }
    };
    let record = Record::from_rdata(
        ctx.name.clone(),
        ctx.opts.ttl,
        RData::CNAME(CNAME(target.clone())),
    );
    index.node(ctx.name.clone()).alias = Some(Box::new(Alias { record, target }));
}

// === endpoints ===

/// The named targets of a service's ready endpoints: one per hostname (all the endpoint's
/// addresses), or one per address named by its dashed form when there is no hostname.
/// Endpoints sharing a name are merged. Each target comes with its endpoint's ports.
fn endpoint_targets(ctx: &Ctx<'_>) -> Vec<(Target, Vec<PortSpec>)> {
    let mut targets: Vec<(Target, Vec<PortSpec>)> = Vec::new();
    let mut by_label: HashMap<String, usize> = HashMap::new();
    for ep in ctx.svc.endpoints.iter().filter(|ep| ep.ready) {
        let ips = parse_ips(ctx, &ep.addresses, "endpoint address");
        let ports: Vec<PortSpec> = ep
            .ports
            .iter()
            .filter_map(|p| PortSpec::parse(&ctx.name, p))
            .collect();
        let mut named = |label: String, ips: &[IpAddr]| {
            let Some(name) = child(&ctx.name, &[&label]) else {
                return;
            };
            let i = *by_label.entry(label).or_insert_with(|| {
                targets.push((Target::new(name, ctx.opts.ttl, &[]), Vec::new()));
                targets.len() - 1
            });
            let (target, target_ports) = &mut targets[i];
            ips.iter().for_each(|&ip| target.push(ip));
            for p in &ports {
                if !target_ports.contains(p) {
                    target_ports.push(p.clone());
                }
            }
        };
        match hostname(ctx, ep) {
            Some(host) if !ips.is_empty() => named(host, &ips),
            _ => ips.iter().for_each(|&ip| named(dashed(ip), &[ip])),
        }
    }
    targets
}

/// The endpoint's hostname if it has a usable one.
fn hostname(ctx: &Ctx<'_>, ep: &Endpoint) -> Option<String> {
    if ep.hostname.is_empty() {
        return None;
    }
    let host = label(&ep.hostname);
    if host.is_none() {
        tracing::warn!(service = %ctx.name, hostname = %ep.hostname, "endpoint hostname is not a DNS label; naming it by its address");
    }
    host
}

/// `10-0-0-1` for 10.0.0.1, `fd00--1` for fd00::1 (CoreDNS's name for an endpoint
/// without hostname).
pub(super) fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace([':', '.'], "-")
}

/// Names and PTR records for endpoint targets.
fn add_endpoint_names(index: &mut Index, endpoints: &[(Target, Vec<PortSpec>)]) {
    for (target, _) in endpoints {
        target.add_address_sets(index.node(target.name.clone()));
        for ip in target.addresses() {
            index.add_ptr(ip, ptr_record(ip, &target.name, target.ttl));
        }
    }
}

// === helpers ===

fn ptr_record(ip: IpAddr, target: &Name, ttl: u32) -> Record {
    Record::from_rdata(Name::from(ip), ttl, RData::PTR(PTR(target.clone())))
}

/// The addresses that parse; the others are skipped with a warning.
fn parse_ips(ctx: &Ctx<'_>, list: &[String], what: &str) -> Vec<IpAddr> {
    let mut ips = Vec::with_capacity(list.len());
    for text in list {
        match text.trim().parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(service = %ctx.name, address = %text, "skipping {what}: not an IP address")
            }
        }
    }
    ips
}

/// `s` lowercased if it is a DNS label (RFC 1123: letters, digits, inner hyphens, at
/// most 63 bytes), as Kubernetes requires of every name it puts into DNS.
pub(super) fn label(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let ok = (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-');
    ok.then(|| s.to_ascii_lowercase())
}
