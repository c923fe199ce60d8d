//! Admission of an AuthorizationPolicy: every value must mean something Corridor can
//! enforce, and a refusal names the field (`spec.rules[0].from[1].source.ipBlocks[0]`).
//! Unknown fields and actions already fail to parse (`resources::authz`), so what is
//! left is the content of the values.

use std::net::IpAddr;

use super::rules::{HEADER_KEY_PREFIX, SOURCE_KEYS};
use crate::resources::{AuthorizationPolicy, authz::Condition};

/// Checks a policy; the error names the first wrong field and says why.
pub fn validate(p: &AuthorizationPolicy) -> Result<(), String> {
    for (i, rule) in p.spec.rules.iter().enumerate() {
        let at = format!("spec.rules[{i}]");
        for (j, from) in rule.from.iter().enumerate() {
            let s = &from.source;
            let at = format!("{at}.from[{j}].source");
            each(&at, "principals", &s.principals, principal)?;
            each(&at, "notPrincipals", &s.not_principals, principal)?;
            each(&at, "namespaces", &s.namespaces, namespace)?;
            each(&at, "notNamespaces", &s.not_namespaces, namespace)?;
            each(&at, "ipBlocks", &s.ip_blocks, ip_block)?;
            each(&at, "notIpBlocks", &s.not_ip_blocks, ip_block)?;
        }
        for (j, to) in rule.to.iter().enumerate() {
            let o = &to.operation;
            let at = format!("{at}.to[{j}].operation");
            each(&at, "hosts", &o.hosts, pattern)?;
            each(&at, "notHosts", &o.not_hosts, pattern)?;
            each(&at, "ports", &o.ports, port)?;
            each(&at, "notPorts", &o.not_ports, port)?;
            each(&at, "methods", &o.methods, pattern)?;
            each(&at, "notMethods", &o.not_methods, pattern)?;
            each(&at, "paths", &o.paths, pattern)?;
            each(&at, "notPaths", &o.not_paths, pattern)?;
        }
        for (j, c) in rule.when.iter().enumerate() {
            condition(&format!("{at}.when[{j}]"), c)?;
        }
    }
    Ok(())
}

fn each(
    at: &str,
    field: &str,
    values: &[String],
    check: fn(&str) -> Result<(), String>,
) -> Result<(), String> {
    for (k, v) in values.iter().enumerate() {
        check(v).map_err(|why| format!("{at}.{field}[{k}]: {v:?} {why}"))?;
    }
    Ok(())
}

/// `*` alone, or a value with at most one `*`, at its start or end.
fn pattern(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("is empty".into());
    }
    if v == "*" {
        return Ok(());
    }
    let inner = v
        .strip_prefix('*')
        .or_else(|| v.strip_suffix('*'))
        .unwrap_or(v);
    if inner.contains('*') {
        return Err("may hold `*` only once, as its first or last character".into());
    }
    Ok(())
}

fn principal(v: &str) -> Result<(), String> {
    pattern(v)?;
    if v.starts_with("spiffe://") {
        return Err("names the principal without `spiffe://` (`<trust domain>/ns/<namespace>/sa/<account>`)".into());
    }
    Ok(())
}

fn namespace(v: &str) -> Result<(), String> {
    pattern(v)?;
    let name = v.trim_matches('*');
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("is not a namespace name (lowercase letters, digits and `-`)".into());
    }
    Ok(())
}

fn ip_block(v: &str) -> Result<(), String> {
    let (addr, len) = match v.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (v, None),
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return Err("is not an IP address or CIDR range".into());
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match len.map(str::parse::<u32>) {
        None => Ok(()),
        Some(Ok(l)) if l <= max => Ok(()),
        Some(_) => Err(format!("has a prefix length beyond 0..={max}")),
    }
}

fn port(v: &str) -> Result<(), String> {
    match v.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err("is not a port number (1-65535)".into()),
    }
}

fn condition(at: &str, c: &Condition) -> Result<(), String> {
    let key = c.key.as_str();
    let check: fn(&str) -> Result<(), String> = if key.starts_with(HEADER_KEY_PREFIX) {
        if !key.ends_with(']') || key.len() <= HEADER_KEY_PREFIX.len() + 1 {
            return Err(format!(
                "{at}.key: {key:?} should read request.headers[<name>]"
            ));
        }
        pattern
    } else {
        match key {
            "source.ip" => ip_block,
            "source.namespace" => namespace,
            "source.principal" => principal,
            _ => {
                return Err(format!(
                    "{at}.key: {key:?} is not supported (Corridor evaluates request.headers[<name>], {})",
                    SOURCE_KEYS.join(", ")
                ));
            }
        }
    };
    if c.values.is_empty() && c.not_values.is_empty() {
        return Err(format!("{at}: needs values or notValues"));
    }
    each(at, "values", &c.values, check)?;
    each(at, "notValues", &c.not_values, check)
}
