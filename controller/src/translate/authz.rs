//! AuthorizationPolicy → Envoy's RBAC filter (`envoy.filters.http.rbac`): one filter
//! for the DENY policies and one for the ALLOW policies that apply to a listener's
//! service, in that order, in the HCM's `http_filters` for HTTP and gRPC and under the
//! same name and message in `meta_protocol_filters` for Dubbo and Thrift.
//!
//! Which policies apply to a service: those of its namespace without a selector, those
//! of the root namespace without a selector (the whole mesh), and those of either whose
//! selector matches one of the service's pods (Istio selects workloads; Corridor's
//! listeners are per service, so a policy applies to a service when it selects a pod
//! behind it). With any ALLOW policy applying, the ALLOW filter is there even when it
//! has no rules, so a policy with an empty spec allows nothing.
//!
//! Each rule becomes one RBAC policy named `ns[<ns>]-policy[<name>]-rule[<i>]`, as Istio
//! names them; see [`rules`] for the fields.

mod rules;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::BTreeMap;

use corridor_proto::{
    aeraki::meta_protocol_proxy::v1alpha::MetaProtocolFilter,
    envoy::{
        config::rbac::v3::{Policy, Rbac, rbac::Action as RbacAction},
        extensions::filters::{
            http::rbac::v3::Rbac as RbacFilter,
            network::http_connection_manager::v3::{HttpFilter, http_filter},
        },
    },
    google::protobuf::Any,
};
use k8s_openapi::api::core::v1::Pod;
use prost::{
    Message, Name,
    encoding::{WireType, encode_key, encode_varint},
};

use super::{Context, PortInfo, ServiceInfo};
use crate::{
    protocol::Protocol,
    resources::{AuthorizationPolicy, authz::Action},
    store::ObjectKey,
};
pub use validate::validate;

/// Filter name of Envoy's RBAC filter, for every protocol.
pub const RBAC_FILTER: &str = "envoy.filters.http.rbac";

/// The policies that apply to one listener (a service port), and what the rules need to
/// know about it.
#[derive(Debug, Clone)]
pub(super) struct ListenerPolicies<'a> {
    policies: Vec<(&'a ObjectKey, &'a AuthorizationPolicy)>,
    /// The service's port number (`ports` are matched at translation).
    port: u16,
    protocol: Protocol,
    /// The service's host names (`hosts` of Dubbo and Thrift are matched at
    /// translation: their calls carry no authority).
    hosts: Vec<String>,
}

/// The policies that apply to `info`'s port `port`; none when no policy applies.
pub(super) fn for_listener<'a>(
    ctx: &Context<'a>,
    info: &ServiceInfo,
    port: &PortInfo,
) -> Option<ListenerPolicies<'a>> {
    let store = ctx.store;
    let root = ctx.opts.root_namespace.as_str();
    let mut pods: Option<Vec<&Pod>> = None;
    let policies: Vec<_> = store
        .authorization_policies
        .iter()
        .filter(|(key, _)| key.namespace == info.key.namespace || key.namespace == root)
        .filter(|(_, p)| {
            let Some(selector) = p
                .spec
                .selector
                .as_ref()
                .filter(|s| !s.match_labels.is_empty())
            else {
                return true;
            };
            let pods = pods.get_or_insert_with(|| service_pods(ctx, &info.key));
            let selected = |labels: &BTreeMap<String, String>| {
                selector
                    .match_labels
                    .iter()
                    .all(|(k, v)| labels.get(k) == Some(v))
            };
            if pods.is_empty() {
                // No pod known (yet): the Service's own selector stands for its pods.
                return service_selector(ctx, &info.key).is_some_and(selected);
            }
            pods.iter()
                .any(|pod| pod.metadata.labels.as_ref().is_some_and(selected))
        })
        .collect();
    if policies.is_empty() {
        return None;
    }
    Some(ListenerPolicies {
        policies,
        port: port.number,
        protocol: port.protocol,
        hosts: vec![
            info.host.clone(),
            info.key.name.clone(),
            format!("{}.{}", info.key.name, info.key.namespace),
            format!("{}.{}.svc", info.key.name, info.key.namespace),
        ],
    })
}

fn service_selector<'a>(
    ctx: &Context<'a>,
    key: &ObjectKey,
) -> Option<&'a BTreeMap<String, String>> {
    ctx.store
        .services
        .get(key)?
        .spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
}

/// The pods the Service selects.
fn service_pods<'a>(ctx: &Context<'a>, key: &ObjectKey) -> Vec<&'a Pod> {
    let Some(selector) = service_selector(ctx, key) else {
        return Vec::new();
    };
    ctx.store
        .pods
        .iter()
        .filter(|(k, _)| k.namespace == key.namespace)
        .map(|(_, p)| p)
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            selector
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .collect()
}

impl ListenerPolicies<'_> {
    /// The RBAC filter of `action`'s policies, or none when that stage has nothing to
    /// do (no DENY rule; no ALLOW policy at all).
    fn filter(&self, action: Action) -> Option<Any> {
        let of_action: Vec<_> = self
            .policies
            .iter()
            .filter(|(_, p)| p.spec.action == action)
            .collect();
        if of_action.is_empty() {
            return None;
        }
        let mut policies = BTreeMap::new();
        for (key, p) in of_action {
            for (i, rule) in p.spec.rules.iter().enumerate() {
                let name = format!("ns[{}]-policy[{}]-rule[{i}]", key.namespace, key.name);
                policies.insert(name, rules::policy(rule, action, self));
            }
        }
        if action == Action::Deny && policies.is_empty() {
            return None;
        }
        let rbac_action = match action {
            Action::Allow => RbacAction::Allow,
            Action::Deny => RbacAction::Deny,
        };
        Some(encode(rbac_action, &policies))
    }
}

/// The HTTP filter of one stage (DENY or ALLOW) of a listener, if it has one.
pub(super) fn http(policies: Option<&ListenerPolicies<'_>>, action: Action) -> Option<HttpFilter> {
    let any = policies?.filter(action)?;
    Some(HttpFilter {
        name: RBAC_FILTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any)),
        ..Default::default()
    })
}

/// The MetaProtocol filter of one stage of a Dubbo/Thrift listener, if it has one.
pub(super) fn meta(
    policies: Option<&ListenerPolicies<'_>>,
    action: Action,
) -> Option<MetaProtocolFilter> {
    let any = policies?.filter(action)?;
    Some(MetaProtocolFilter {
        name: RBAC_FILTER.to_string(),
        config: Some(any),
    })
}

/// `envoy.extensions.filters.http.rbac.v3.RBAC { rules: { action, policies } }`, encoded
/// with the policies in name order. Protobuf maps encode in hash-map order, which would
/// give the listener a new version on every translation; a map is a repeated field, so
/// encoding one single-entry message per policy and concatenating is the same message,
/// deterministically.
fn encode(action: RbacAction, policies: &BTreeMap<String, Policy>) -> Any {
    let mut rules = Rbac {
        action: action as i32,
        ..Default::default()
    }
    .encode_to_vec();
    for (name, policy) in policies {
        let one = Rbac {
            policies: [(name.clone(), policy.clone())].into_iter().collect(),
            ..Default::default()
        };
        rules.extend_from_slice(&one.encode_to_vec());
    }
    let mut value = Vec::with_capacity(rules.len() + 8);
    // RBAC.rules is field 1.
    encode_key(1, WireType::LengthDelimited, &mut value);
    encode_varint(rules.len() as u64, &mut value);
    value.extend_from_slice(&rules);
    Any {
        type_url: RbacFilter::type_url(),
        value,
    }
}
