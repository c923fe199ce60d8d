//! Serde types for Istio's `security.istio.io` AuthorizationPolicy (`v1` and `v1beta1`,
//! one schema), as far as Corridor enforces it (DESIGN.md §4): allow or deny by the
//! source's namespace and service account (known from the source pod IP), and by the
//! operation (host, port, HTTP method and path, or Dubbo interface/method as path and
//! method). Actions Corridor cannot enforce (`AUDIT`, `CUSTOM`) do not parse, so the
//! object is rejected with a reason rather than silently ignored: an ignored DENY would
//! let traffic through that its author meant to stop.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// The Istio security API group.
pub const GROUP: &str = "security.istio.io";
/// The API versions accepted for AuthorizationPolicy.
pub const VERSIONS: [&str; 2] = ["v1", "v1beta1"];

/// `security.istio.io` AuthorizationPolicy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicy {
    /// Object metadata (name, namespace, labels).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The policy.
    #[serde(default)]
    pub spec: AuthorizationPolicySpec,
}

/// `AuthorizationPolicy.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicySpec {
    /// The workloads (destination pods) the policy applies to; absent: every workload of
    /// the namespace (of every namespace for the root namespace).
    #[serde(default)]
    pub selector: Option<WorkloadSelector>,
    /// What a match does; absent means `ALLOW`.
    #[serde(default)]
    pub action: Action,
    /// Rules, OR-ed. No rules: an ALLOW policy matches nothing (so denies everything not
    /// allowed elsewhere), a DENY policy matches nothing.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// The action of a policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    /// Allow requests that match a rule.
    #[default]
    Allow,
    /// Deny requests that match a rule; evaluated before ALLOW policies.
    Deny,
}

/// `selector`: labels the destination pods must carry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Required labels.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// One rule: every present part (`from`, `to`, `when`) must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Sources, OR-ed; empty matches any source.
    #[serde(default)]
    pub from: Vec<From>,
    /// Operations, OR-ed; empty matches any operation.
    #[serde(default)]
    pub to: Vec<To>,
    /// Extra conditions, AND-ed.
    #[serde(default)]
    pub when: Vec<Condition>,
}

/// `rules[].from[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct From {
    /// The source.
    #[serde(default)]
    pub source: Source,
}

/// Who sends the request; every non-empty field must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Service-account identities, `<trust domain>/ns/<namespace>/sa/<account>`; `*`
    /// wildcards as prefix or suffix.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Principals that must not match.
    #[serde(default)]
    pub not_principals: Vec<String>,
    /// Namespaces of the source pod.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Namespaces that must not match.
    #[serde(default)]
    pub not_namespaces: Vec<String>,
    /// Source IPs or CIDRs.
    #[serde(default)]
    pub ip_blocks: Vec<String>,
    /// IPs or CIDRs that must not match.
    #[serde(default)]
    pub not_ip_blocks: Vec<String>,
}

/// `rules[].to[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct To {
    /// The operation.
    #[serde(default)]
    pub operation: Operation,
}

/// What is asked for; every non-empty field must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// Hosts (`Host` / `:authority`), `*` wildcards as prefix or suffix.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Hosts that must not match.
    #[serde(default)]
    pub not_hosts: Vec<String>,
    /// Destination ports, as strings (`"8080"`) like Istio's schema.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Ports that must not match.
    #[serde(default)]
    pub not_ports: Vec<String>,
    /// HTTP methods (for Dubbo: the method name).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Methods that must not match.
    #[serde(default)]
    pub not_methods: Vec<String>,
    /// HTTP paths, `*` wildcards as prefix or suffix (for Dubbo: the interface).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Paths that must not match.
    #[serde(default)]
    pub not_paths: Vec<String>,
}

/// `rules[].when[]`: an attribute and the values it may or may not have.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Attribute name (`request.headers[x-user]`, `source.namespace`, ...).
    pub key: String,
    /// Values that match.
    #[serde(default)]
    pub values: Vec<String>,
    /// Values that must not match.
    #[serde(default)]
    pub not_values: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
apiVersion: security.istio.io/VERSION
kind: AuthorizationPolicy
metadata: { name: reviews-viewers, namespace: bookinfo }
spec:
  selector: { matchLabels: { app: reviews } }
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep"]
        notNamespaces: [prod]
        ipBlocks: ["10.0.0.0/8"]
    to:
    - operation: { methods: [GET], paths: ["/info*"], notPaths: ["/info/secret"], ports: ["9080"], hosts: ["reviews*"] }
    when:
    - { key: "request.headers[x-user]", values: [alice], notValues: [bob] }
"#;

    #[test]
    fn parses_in_every_version() {
        for v in VERSIONS {
            let p: AuthorizationPolicy =
                serde_yaml_ng::from_str(&POLICY.replace("VERSION", v)).unwrap();
            assert_eq!(p.spec.action, Action::Deny);
            assert_eq!(
                p.spec.selector.as_ref().unwrap().match_labels["app"],
                "reviews"
            );
            let rule = &p.spec.rules[0];
            let source = &rule.from[0].source;
            assert_eq!(source.principals, vec!["cluster.local/ns/default/sa/sleep"]);
            assert_eq!(source.not_namespaces, vec!["prod"]);
            assert_eq!(source.ip_blocks, vec!["10.0.0.0/8"]);
            let op = &rule.to[0].operation;
            assert_eq!(
                (op.methods[0].as_str(), op.paths[0].as_str()),
                ("GET", "/info*")
            );
            assert_eq!(
                (op.not_paths.len(), op.ports[0].as_str(), op.hosts.len()),
                (1, "9080", 1)
            );
            assert_eq!(rule.when[0].key, "request.headers[x-user]");
            assert_eq!(
                (rule.when[0].values.len(), rule.when[0].not_values.len()),
                (1, 1)
            );
        }
    }

    #[test]
    fn action_defaults_to_allow_and_unenforceable_actions_are_refused() {
        let p: AuthorizationPolicy =
            serde_yaml_ng::from_str("metadata: {name: allow-nothing}\nspec: {}\n").unwrap();
        assert_eq!(p.spec.action, Action::Allow);
        assert!(p.spec.rules.is_empty());
        for action in ["CUSTOM", "AUDIT", "deny"] {
            let text = format!("metadata: {{name: x}}\nspec: {{action: {action}}}\n");
            let err = serde_yaml_ng::from_str::<AuthorizationPolicy>(&text).unwrap_err();
            assert!(err.to_string().contains(action), "{err}");
        }
    }
}
