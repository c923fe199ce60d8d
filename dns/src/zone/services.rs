//! The records one service of the name table puts into the index: its name, its SRV
//! names, its endpoints' names and the PTR records of all its addresses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, PTR, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};

use corridor_proto::corridor::dns::v1::service::Kind;
use corridor_proto::corridor::dns::v1::{Endpoint, Port, Service};

use super::ZoneOptions;
use super::index::{Alias, Index, Node, child};

/// SRV weight shared among the records of one answer, as CoreDNS does: every record gets
/// an equal share of this, rounded down, at least 1.
const SRV_WEIGHT_TOTAL: usize = 100;

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
        .filter_map(|p| PortSpec::parse(ctx, p))
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
    add_srv_names(index, ctx, &groups, &targets, ttl);

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
    add_srv_names(index, ctx, &groups, &targets, ttl);
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
    index.node(ctx.name.clone()).alias = Some(Alias { record, target });
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
            .filter_map(|p| PortSpec::parse(ctx, p))
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

// === SRV ===

/// One SRV record to be: which target, which port.
#[derive(Debug, Clone, Copy)]
struct SrvEntry {
    target: usize,
    port: u16,
}

/// A port as the table gives it, checked.
#[derive(Debug, Clone, PartialEq)]
struct PortSpec {
    /// `_<name>` when the port has a usable name: only named ports get SRV names.
    name: Option<String>,
    /// `_tcp`, `_udp` or `_sctp`.
    proto: &'static str,
    number: u16,
}

impl PortSpec {
    fn parse(ctx: &Ctx<'_>, port: &Port) -> Option<Self> {
        let proto = match port.protocol.to_ascii_lowercase().as_str() {
            // Kubernetes defaults a port's protocol to TCP.
            "tcp" | "" => "_tcp",
            "udp" => "_udp",
            "sctp" => "_sctp",
            other => {
                tracing::warn!(service = %ctx.name, protocol = %other, "skipping port of unknown protocol");
                return None;
            }
        };
        let Some(number) = u16::try_from(port.port).ok().filter(|&n| n != 0) else {
            tracing::warn!(service = %ctx.name, port = port.port, "skipping port: number out of range");
            return None;
        };
        let name = if port.name.is_empty() {
            None
        } else {
            let name = label(&port.name).map(|l| format!("_{l}"));
            if name.is_none() {
                tracing::warn!(service = %ctx.name, port = %port.name, "port name is not a DNS label; no SRV name for it");
            }
            name
        };
        Some(PortSpec {
            name,
            proto,
            number,
        })
    }
}

/// Named ports grouped by `(_name, _proto)`, in table order, each with its SRV entries.
type Groups<'p> = Vec<((&'p str, &'static str), Vec<SrvEntry>)>;

fn group_named<'p>(ports: impl Iterator<Item = (&'p PortSpec, usize)>) -> Groups<'p> {
    let mut groups: Groups<'p> = Vec::new();
    for (p, target) in ports {
        let Some(name) = p.name.as_deref() else {
            continue;
        };
        let entry = SrvEntry {
            target,
            port: p.number,
        };
        match groups.iter_mut().find(|(key, _)| *key == (name, p.proto)) {
            Some((_, entries)) => entries.push(entry),
            None => groups.push(((name, p.proto), vec![entry])),
        }
    }
    groups
}

/// `_<port>._<proto>.<svc>` with its SRV set, and the empty non-terminal `_<proto>.<svc>`.
fn add_srv_names(
    index: &mut Index,
    ctx: &Ctx<'_>,
    groups: &Groups<'_>,
    targets: &[Target],
    ttl: u32,
) {
    for ((port, proto), entries) in groups {
        let (Some(proto_name), Some(owner)) =
            (child(&ctx.name, &[proto]), child(&ctx.name, &[port, proto]))
        else {
            tracing::warn!(service = %ctx.name, port = %port, "SRV name too long; skipped");
            continue;
        };
        index.node(proto_name);
        add_srv_set(index.node(owner.clone()), &owner, targets, entries, ttl);
    }
}

/// The SRV set for `entries`, with the targets' addresses as additionals.
fn add_srv_set(node: &mut Node, owner: &Name, targets: &[Target], entries: &[SrvEntry], ttl: u32) {
    let weight = u16::try_from((SRV_WEIGHT_TOTAL / entries.len().max(1)).max(1)).unwrap_or(1);
    let mut records = Vec::with_capacity(entries.len());
    let mut additionals = Vec::new();
    let mut seen_targets: Vec<usize> = Vec::new();
    for entry in entries {
        let Some(target) = targets.get(entry.target) else {
            continue;
        };
        let srv = SRV::new(0, weight, entry.port, target.name.clone());
        records.push(Record::from_rdata(owner.clone(), ttl, RData::SRV(srv)));
        if !seen_targets.contains(&entry.target) {
            seen_targets.push(entry.target);
            additionals.extend(target.address_records());
        }
    }
    node.push(RecordType::SRV, records, additionals);
}

// === targets ===

/// A name with addresses: a service, or one endpoint of it.
#[derive(Debug, Clone)]
struct Target {
    name: Name,
    ttl: u32,
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
}

impl Target {
    fn new(name: Name, ttl: u32, ips: &[IpAddr]) -> Self {
        let mut target = Target {
            name,
            ttl,
            v4: Vec::new(),
            v6: Vec::new(),
        };
        ips.iter().for_each(|&ip| target.push(ip));
        target
    }

    /// Adds an address unless already there.
    fn push(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) if !self.v4.contains(&v4) => self.v4.push(v4),
            IpAddr::V6(v6) if !self.v6.contains(&v6) => self.v6.push(v6),
            _ => {}
        }
    }

    fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = self.v4.iter().map(|&ip| IpAddr::V4(ip));
        v4.chain(self.v6.iter().map(|&ip| IpAddr::V6(ip)))
    }

    fn a_records(&self) -> Vec<Record> {
        let rdata = self.v4.iter().map(|&ip| RData::A(A(ip)));
        rdata
            .map(|data| Record::from_rdata(self.name.clone(), self.ttl, data))
            .collect()
    }

    fn aaaa_records(&self) -> Vec<Record> {
        let rdata = self.v6.iter().map(|&ip| RData::AAAA(AAAA(ip)));
        rdata
            .map(|data| Record::from_rdata(self.name.clone(), self.ttl, data))
            .collect()
    }

    fn address_records(&self) -> Vec<Record> {
        let mut records = self.a_records();
        records.extend(self.aaaa_records());
        records
    }

    fn add_address_sets(&self, node: &mut Node) {
        node.push(RecordType::A, self.a_records(), Vec::new());
        node.push(RecordType::AAAA, self.aaaa_records(), Vec::new());
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
