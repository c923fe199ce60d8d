//! AuthorizationPolicy → RBAC filters on the listeners of the services it applies to.

use corridor_proto::{
    aeraki::meta_protocol_proxy::v1alpha::MetaProtocolProxy,
    envoy::{
        config::{
            listener::v3::{Listener, filter::ConfigType},
            rbac::v3::{Policy, permission, principal, rbac::Action as RbacAction},
        },
        extensions::filters::{
            http::rbac::v3::Rbac as RbacFilter,
            network::http_connection_manager::v3::{HttpConnectionManager, http_filter},
        },
    },
    type_url,
};
use prost::Message;

use crate::{
    admission::Admission,
    resources::{Kind, ObjectRef},
    store::{Store, store_from_yaml},
    translate::{TranslateOptions, tests::decode, translate},
};

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: { name: web, namespace: b }
spec:
  selector: { app: web }
  ports: [ { name: http, port: 8080 }, { name: tcp-dubbo, port: 20880 }, { name: tcp-thrift, port: 9090 } ]
---
apiVersion: v1
kind: Pod
metadata: { name: web-0, namespace: b, labels: { app: web, tier: front } }
spec: { containers: [ { name: c, image: i } ] }
status: { phase: Running, podIP: 127.0.10.2 }
---
apiVersion: v1
kind: Service
metadata: { name: other, namespace: c }
spec:
  ports: [ { name: http, port: 8080 } ]
"#;

const WEB: &str = "web.b.svc.cluster.local";

fn snapshot(policies: &str) -> crate::xds::snapshot::Snapshot {
    let store = store_from_yaml(&format!("{SERVICES}---\n{policies}"));
    translate(&store, &TranslateOptions::default())
}

/// The RBAC filters of an HTTP listener, in order: (action, policies by name).
fn http_rbac(s: &crate::xds::snapshot::Snapshot, listener: &str) -> Vec<RbacFilter> {
    let l: Listener = decode(s, type_url::LISTENER, listener);
    let Some(ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type else {
        panic!("no HCM")
    };
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    hcm.http_filters
        .iter()
        .filter(|f| f.name == super::RBAC_FILTER)
        .map(|f| {
            let Some(http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                panic!("rbac without config")
            };
            RbacFilter::decode(any.value.as_slice()).unwrap()
        })
        .collect()
}

fn meta_rbac(s: &crate::xds::snapshot::Snapshot, listener: &str) -> Vec<RbacFilter> {
    let l: Listener = decode(s, type_url::LISTENER, listener);
    let Some(ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type else {
        panic!("no meta proxy")
    };
    let proxy = MetaProtocolProxy::decode(any.value.as_slice()).unwrap();
    proxy
        .meta_protocol_filters
        .iter()
        .filter(|f| f.name == super::RBAC_FILTER)
        .map(|f| RbacFilter::decode(f.config.as_ref().unwrap().value.as_slice()).unwrap())
        .collect()
}

fn action(f: &RbacFilter) -> RbacAction {
    RbacAction::try_from(f.rules.as_ref().unwrap().action).unwrap()
}

fn only_policy(f: &RbacFilter) -> (&String, &Policy) {
    let policies = &f.rules.as_ref().unwrap().policies;
    assert_eq!(policies.len(), 1, "{policies:?}");
    policies.iter().next().unwrap()
}

const DENY_A: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-a, namespace: b }
spec:
  action: DENY
  rules: [ { from: [ { source: { namespaces: [a] } } ] } ]
"#;

const ALLOW_B: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-b, namespace: istio-system }
spec:
  rules:
  - from: [ { source: { principals: ["cluster.local/ns/b/sa/x"] } } ]
    to: [ { operation: { methods: [GET], paths: ["/api/*"] } } ]
"#;

#[test]
fn deny_comes_before_allow_and_rules_read_as_istio_writes_them() {
    let s = snapshot(&format!("{DENY_A}---\n{ALLOW_B}"));
    let filters = http_rbac(&s, &format!("{WEB}:8080"));
    assert_eq!(
        filters.iter().map(action).collect::<Vec<_>>(),
        [RbacAction::Deny, RbacAction::Allow]
    );
    let (name, deny) = only_policy(&filters[0]);
    assert_eq!(name, "ns[b]-policy[deny-a]-rule[0]");
    let text = format!("{deny:?}");
    assert!(text.contains(".*/ns/a/.*"), "{text}");
    assert!(matches!(
        deny.permissions[0].rule,
        Some(permission::Rule::Any(true))
    ));

    let (name, allow) = only_policy(&filters[1]);
    assert_eq!(name, "ns[istio-system]-policy[allow-b]-rule[0]");
    let Some(principal::Identifier::Authenticated(a)) = &allow.principals[0].identifier else {
        panic!("{allow:?}")
    };
    assert!(format!("{a:?}").contains("spiffe://cluster.local/ns/b/sa/x"));
    let text = format!("{:?}", allow.permissions[0]);
    assert!(text.contains(":method") && text.contains("GET"), "{text}");
    assert!(
        text.contains("UrlPath") && text.contains("Prefix(\"/api/\")"),
        "{text}"
    );

    // The root namespace's policy reaches every namespace; b's policy only b.
    let other = http_rbac(&s, "other.c.svc.cluster.local:8080");
    assert_eq!(
        other.iter().map(action).collect::<Vec<_>>(),
        [RbacAction::Allow]
    );
}

#[test]
fn an_empty_allow_policy_allows_nothing() {
    let s = snapshot(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: allow-nothing, namespace: b }\nspec: {}\n",
    );
    let filters = http_rbac(&s, &format!("{WEB}:8080"));
    assert_eq!(filters.len(), 1);
    assert_eq!(action(&filters[0]), RbacAction::Allow);
    assert!(filters[0].rules.as_ref().unwrap().policies.is_empty());
    assert!(http_rbac(&s, "other.c.svc.cluster.local:8080").is_empty());
}

#[test]
fn dubbo_reads_interface_and_method_and_thrift_ignores_paths_in_a_deny() {
    let policy = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-say, namespace: b }
spec:
  action: DENY
  rules: [ { to: [ { operation: { paths: [org.Greeter], methods: [sayHello] } } ] } ]
"#;
    let s = snapshot(policy);
    let dubbo = meta_rbac(&s, &format!("{WEB}:20880"));
    let text = format!("{:?}", only_policy(&dubbo[0]).1.permissions);
    assert!(
        text.contains("\"interface\"") && text.contains("org.Greeter"),
        "{text}"
    );
    assert!(
        text.contains("\"method\"") && text.contains("sayHello"),
        "{text}"
    );
    let thrift = meta_rbac(&s, &format!("{WEB}:9090"));
    let text = format!("{:?}", only_policy(&thrift[0]).1.permissions);
    assert!(
        !text.contains("interface") && text.contains("sayHello"),
        "{text}"
    );

    let allow = policy.replace("action: DENY", "action: ALLOW");
    let s = snapshot(&allow);
    let thrift = meta_rbac(&s, &format!("{WEB}:9090"));
    let text = format!("{:?}", only_policy(&thrift[0]).1.permissions);
    assert!(
        text.contains("NotRule"),
        "an ALLOW naming paths never matches Thrift: {text}"
    );
}

#[test]
fn a_selector_picks_the_services_whose_pods_it_matches() {
    let selecting = |labels: &str| {
        format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{ name: p, namespace: b }}\nspec: {{ selector: {{ matchLabels: {{ {labels} }} }} }}\n"
        )
    };
    let s = snapshot(&selecting("tier: front"));
    assert_eq!(http_rbac(&s, &format!("{WEB}:8080")).len(), 1);
    let s = snapshot(&selecting("tier: back"));
    assert!(http_rbac(&s, &format!("{WEB}:8080")).is_empty());
}

#[test]
fn listener_versions_do_not_depend_on_map_order() {
    let many: String = (0..8)
        .map(|i| DENY_A.replace("deny-a", &format!("deny-{i}")))
        .collect::<Vec<_>>()
        .join("---\n");
    let a = snapshot(&many);
    let b = snapshot(&many);
    let version = |s: &crate::xds::snapshot::Snapshot| {
        s.get(type_url::LISTENER).unwrap().resources[&format!("{WEB}:8080")]
            .version
            .clone()
    };
    assert_eq!(version(&a), version(&b));
    assert_eq!(
        only_policy_count(&http_rbac(&a, &format!("{WEB}:8080"))[0]),
        8
    );
}

fn only_policy_count(f: &RbacFilter) -> usize {
    f.rules.as_ref().unwrap().policies.len()
}

#[test]
fn ports_are_decided_against_the_listener() {
    let policy = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: port, namespace: b }
spec:
  action: DENY
  rules: [ { to: [ { operation: { ports: ["20880"] } } ] } ]
"#;
    let s = snapshot(policy);
    let http = http_rbac(&s, &format!("{WEB}:8080"));
    assert!(format!("{:?}", only_policy(&http[0]).1.permissions).contains("NotRule"));
    let dubbo = meta_rbac(&s, &format!("{WEB}:20880"));
    assert!(matches!(
        only_policy(&dubbo[0]).1.permissions[0].rule,
        Some(permission::Rule::Any(true))
    ));
}

#[test]
fn an_invalid_policy_is_rejected_naming_its_field_and_the_last_good_one_stays() {
    let good = DENY_A;
    let bad = DENY_A.replace(
        "{ namespaces: [a] }",
        "{ namespaces: [a], ipBlocks: [\"10.0.0.0/8\", \"10.0.0.0/33\"] }",
    );
    let mut admission = Admission::default();
    let opts = TranslateOptions::default();
    let mut store: Store = store_from_yaml(good);
    admission.admit(&mut store, &opts, &|_| "test".into());
    let mut store: Store = store_from_yaml(&bad);
    admission.admit(&mut store, &opts, &|_| "test".into());
    let object = ObjectRef {
        kind: Kind::AuthorizationPolicy,
        namespace: "b".into(),
        name: "deny-a".into(),
    };
    let verdict = &admission.verdicts()[&object];
    let why = verdict.rejection.as_deref().unwrap_or_default();
    assert!(
        why.contains("spec.rules[0].from[0].source.ipBlocks[1]") && why.contains("10.0.0.0/33"),
        "{why}"
    );
    // The last good version is what the translator sees.
    let kept = &store.authorization_policies[&crate::store::ObjectKey::new("b", "deny-a")];
    assert!(kept.spec.rules[0].from[0].source.ip_blocks.is_empty());
}

#[test]
fn unsupported_conditions_and_fields_are_refused() {
    let with_when = DENY_A.replace(
        "rules: [ { from:",
        "rules: [ { when: [ { key: \"request.auth.claims[iss]\", values: [x] } ], from:",
    );
    let store = store_from_yaml(&with_when);
    let p = store.authorization_policies.values().next().unwrap();
    let err = super::validate(p).unwrap_err();
    assert!(err.contains("spec.rules[0].when[0].key"), "{err}");

    let unknown = DENY_A.replace("{ namespaces: [a] }", "{ requestPrincipals: [\"*\"] }");
    let parsed: Result<crate::resources::AuthorizationPolicy, _> =
        serde_yaml_ng::from_str(&unknown);
    let err = parsed.unwrap_err().to_string();
    assert!(err.contains("requestPrincipals"), "{err}");
}
