//! Checks of RedisServices and RedisDestinations. Each error names the field and why.
//! An accepted object comes back with its Secret references replaced by the values they
//! named, so that its last good version keeps working if the Secret later goes away.

use std::{collections::BTreeMap, net::IpAddr};

use super::{Credentials, credentials, parse_host_port};
use crate::{
    resources::{
        RedisDestination, RedisService,
        duration::parse_duration,
        istio::{ConnectionPoolSettings, TrafficPolicy},
        redis::{
            Auth, Destination, EnumValue, FAULT_TYPES, MODES, PlainAuth, READ_POLICIES, enum_index,
        },
    },
    store::ObjectKey,
    translate::{Context, ServiceInfo, cluster::check_policy},
};

/// Checks a RedisService; returns it with its auth resolved.
pub(in crate::translate) fn validate_service(
    ctx: &Context<'_>,
    key: &ObjectKey,
    rs: &RedisService,
) -> Result<RedisService, String> {
    let mut out = rs.clone();
    if rs.spec.host.is_empty() {
        return Err("spec.host is empty".to_string());
    }
    for (i, host) in rs.spec.host.iter().enumerate() {
        let service = known(ctx, key, &format!("spec.host[{i}]"), host)?;
        if !service.ports.iter().any(|p| p.protocol.is_redis()) {
            return Err(format!(
                "spec.host[{i}] {host:?}: {}",
                no_redis_port(service)
            ));
        }
    }
    if let Some(s) = &rs.spec.settings {
        let at = "spec.settings";
        positive_duration(&format!("{at}.opTimeout"), s.op_timeout.as_deref())?;
        if let Some(t) = &s.buffer_flush_timeout {
            parse_duration(t).map_err(|e| format!("{at}.bufferFlushTimeout: {e}"))?;
        }
        if enum_index(s.read_policy.as_ref(), &READ_POLICIES).is_none() {
            return Err(format!(
                "{at}.readPolicy {} is not one of {}",
                shown(s.read_policy.as_ref()),
                READ_POLICIES.join(", ")
            ));
        }
        if let Some(auth) = &s.auth
            && let Some(settings) = out.spec.settings.as_mut()
        {
            settings.auth = Some(resolved(ctx, key, &format!("{at}.auth"), auth)?);
        }
    }
    let case_insensitive = rs
        .spec
        .settings
        .as_ref()
        .is_some_and(|s| s.case_insensitive);
    let mut prefixes: BTreeMap<String, usize> = BTreeMap::new();
    let mut catch_all = None;
    for (i, route) in rs.spec.redis.iter().enumerate() {
        let at = format!("spec.redis[{i}]");
        let dest = route
            .route
            .as_ref()
            .ok_or_else(|| format!("{at}.route is missing"))?;
        destination(ctx, key, &format!("{at}.route"), dest)?;
        match route.matches.as_ref().and_then(|m| m.key.as_ref()) {
            Some(k) if k.prefix.is_empty() => {
                return Err(format!(
                    "{at}.match.key.prefix is empty; leave out match for the catch-all route"
                ));
            }
            Some(k) => {
                let norm = if case_insensitive {
                    k.prefix.to_lowercase()
                } else {
                    k.prefix.clone()
                };
                if let Some(first) = prefixes.insert(norm, i) {
                    return Err(format!(
                        "{at}.match.key.prefix {:?} is already the prefix of spec.redis[{first}]",
                        k.prefix
                    ));
                }
            }
            None => {
                if let Some(first) = catch_all.replace(i) {
                    return Err(format!(
                        "{at} has no key match, as spec.redis[{first}]: only one route may catch all keys"
                    ));
                }
            }
        }
        for (j, m) in route.mirror.iter().enumerate() {
            let mp = format!("{at}.mirror[{j}]");
            let dest = m
                .route
                .as_ref()
                .ok_or_else(|| format!("{mp}.route is missing"))?;
            destination(ctx, key, &format!("{mp}.route"), dest)?;
            if let Some(p) = &m.percentage {
                percent(&format!("{mp}.percentage.value"), p.value)?;
            }
        }
    }
    for (i, f) in rs.spec.faults.iter().enumerate() {
        let at = format!("spec.faults[{i}]");
        let kind = enum_index(f.fault_type.as_ref(), &FAULT_TYPES).ok_or_else(|| {
            format!(
                "{at}.type {} is not one of {}",
                shown(f.fault_type.as_ref()),
                FAULT_TYPES.join(", ")
            )
        })?;
        if let Some(p) = &f.percentage {
            percent(&format!("{at}.percentage.value"), p.value)?;
        }
        match &f.delay {
            Some(d) => {
                parse_duration(d).map_err(|e| format!("{at}.delay: {e}"))?;
            }
            None if kind == 0 => return Err(format!("{at} is a DELAY fault without delay")),
            None => {}
        }
        if let Some(j) = f.commands.iter().position(|c| c.trim().is_empty()) {
            return Err(format!("{at}.commands[{j}] is empty"));
        }
    }
    Ok(out)
}

/// Checks a RedisDestination; returns it with its auth resolved.
pub(in crate::translate) fn validate_destination(
    ctx: &Context<'_>,
    key: &ObjectKey,
    rd: &RedisDestination,
) -> Result<RedisDestination, String> {
    let mut out = rd.clone();
    if rd.spec.host.is_empty() {
        return Err("spec.host is empty".to_string());
    }
    known(ctx, key, "spec.host", &rd.spec.host)?;
    let Some(pool) = rd
        .spec
        .traffic_policy
        .as_ref()
        .and_then(|t| t.connection_pool.as_ref())
    else {
        return Ok(out);
    };
    if let Some(tcp) = &pool.tcp {
        let policy = TrafficPolicy {
            connection_pool: Some(ConnectionPoolSettings {
                tcp: Some(tcp.clone()),
                http: None,
            }),
            ..Default::default()
        };
        check_policy("spec.trafficPolicy", Some(&policy))?;
    }
    let Some(redis) = &pool.redis else {
        return Ok(out);
    };
    let at = "spec.trafficPolicy.connectionPool.redis";
    let mode = enum_index(redis.mode.as_ref(), &MODES).ok_or_else(|| {
        format!(
            "{at}.mode {} is not one of {}",
            shown(redis.mode.as_ref()),
            MODES.join(", ")
        )
    })?;
    if !redis.discovery_endpoints.is_empty() && mode != 1 {
        return Err(format!(
            "{at}.discoveryEndpoints are only used in CLUSTER mode"
        ));
    }
    for (i, e) in redis.discovery_endpoints.iter().enumerate() {
        let ep = format!("{at}.discoveryEndpoints[{i}]");
        // Port 0 stands for "not given" (the service's own port is used then).
        let (host, port) = parse_host_port(e, 0).map_err(|reason| format!("{ep} {reason}"))?;
        if host.parse::<IpAddr>().is_err()
            && port != 0
            && let Some(service) = ctx.resolve(&host, &key.namespace)
            && service.port(port).is_none()
        {
            return Err(format!("{ep}: {port} is not a port of {}", service.host));
        }
    }
    if let Some(auth) = &redis.auth {
        let resolved = resolved(ctx, key, &format!("{at}.auth"), auth)?;
        let target = out
            .spec
            .traffic_policy
            .as_mut()
            .and_then(|t| t.connection_pool.as_mut())
            .and_then(|p| p.redis.as_mut());
        if let Some(settings) = target {
            settings.auth = Some(resolved);
        }
    }
    Ok(out)
}

fn known<'c>(
    ctx: &'c Context<'_>,
    key: &ObjectKey,
    path: &str,
    host: &str,
) -> Result<&'c ServiceInfo, String> {
    ctx.resolve(host, &key.namespace).ok_or_else(|| {
        format!(
            "{path} {host:?} is not a known service (from namespace {})",
            key.namespace
        )
    })
}

fn no_redis_port(service: &ServiceInfo) -> String {
    format!(
        "{} has no Redis port (appProtocol redis, or a port named redis, redis-* or tcp-redis-*)",
        service.host
    )
}

/// A route or mirror destination: a known service, and a Redis port of it.
fn destination(
    ctx: &Context<'_>,
    key: &ObjectKey,
    path: &str,
    d: &Destination,
) -> Result<(), String> {
    let service = known(ctx, key, &format!("{path}.host"), &d.host)?;
    match d.port {
        Some(n) => {
            let port = u16::try_from(n)
                .ok()
                .and_then(|n| service.port(n))
                .ok_or_else(|| format!("{path}.port {n} is not a port of {}", service.host))?;
            if !port.protocol.is_redis() {
                return Err(format!(
                    "{path}.port {n} of {} is not a Redis port (give it appProtocol redis, or name it redis, redis-* or tcp-redis-*)",
                    service.host
                ));
            }
        }
        None if !service.ports.iter().any(|p| p.protocol.is_redis()) => {
            return Err(format!(
                "{path}.host {:?}: {}",
                d.host,
                no_redis_port(service)
            ));
        }
        None => {}
    }
    Ok(())
}

/// The credentials as plain values (the object's namespace holds its Secrets).
fn resolved(ctx: &Context<'_>, key: &ObjectKey, path: &str, auth: &Auth) -> Result<Auth, String> {
    let Credentials { username, password } = credentials(ctx.store, &key.namespace, auth)
        .map_err(|reason| format!("{path}: {reason}"))?;
    Ok(Auth {
        secret: None,
        plain: Some(PlainAuth { password, username }),
    })
}

fn shown(value: Option<&EnumValue>) -> String {
    match value {
        Some(EnumValue::Name(n)) => format!("{n:?}"),
        Some(EnumValue::Number(n)) => n.to_string(),
        None => "(unset)".to_string(),
    }
}

fn percent(path: &str, value: f64) -> Result<(), String> {
    if (0.0..=100.0).contains(&value) {
        Ok(())
    } else {
        Err(format!("{path} {value} is not in 0-100"))
    }
}

fn positive_duration(path: &str, text: Option<&str>) -> Result<(), String> {
    let Some(text) = text else { return Ok(()) };
    let d = parse_duration(text).map_err(|e| format!("{path}: {e}"))?;
    if d.is_zero() {
        return Err(format!("{path} must be positive"));
    }
    Ok(())
}
