//! The evaluator against Istio-shaped policies (as the controller emits them), for HTTP
//! requests and Dubbo messages, with sources known and unknown to the pod table.

use std::net::SocketAddr;
use std::sync::Arc;

use corridor_proto::envoy::config::core::v3::CidrRange;
use corridor_proto::envoy::config::rbac::v3::{
    self as pb, Permission as PbPermission, Principal as PbPrincipal, permission, principal,
};
use corridor_proto::envoy::config::route::v3::{HeaderMatcher as PbHeader, header_matcher};
use corridor_proto::envoy::extensions::filters::http::rbac::v3::Rbac as PbRbacFilter;
use corridor_proto::envoy::r#type::matcher::v3::{
    PathMatcher, RegexMatcher, StringMatcher, path_matcher, string_matcher::MatchPattern,
};
use corridor_proto::google::protobuf::UInt32Value;
use http::{HeaderMap, Method};

use super::*;
use crate::codec::{MessageType, Metadata, ResponseStatus};
use crate::policy::identity::Workload;
use crate::policy::request::Source;
use crate::router::RequestView;
use crate::telemetry::metrics::RequestProtocol;

fn exact(s: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(MatchPattern::Exact(s.into())),
        ..Default::default()
    }
}

fn namespace(ns: &str) -> PbPrincipal {
    let regex = StringMatcher {
        match_pattern: Some(MatchPattern::SafeRegex(RegexMatcher {
            regex: format!(".*/ns/{ns}/.*"),
            ..Default::default()
        })),
        ..Default::default()
    };
    authenticated(regex)
}

fn authenticated(name: StringMatcher) -> PbPrincipal {
    PbPrincipal {
        identifier: Some(principal::Identifier::Authenticated(
            principal::Authenticated {
                principal_name: Some(name),
            },
        )),
    }
}

fn ip_block(prefix: &str, len: u32) -> PbPrincipal {
    PbPrincipal {
        identifier: Some(principal::Identifier::DirectRemoteIp(CidrRange {
            address_prefix: prefix.into(),
            prefix_len: Some(UInt32Value { value: len }),
        })),
    }
}

fn any_permission() -> PbPermission {
    PbPermission {
        rule: Some(permission::Rule::Any(true)),
    }
}

fn path(p: &str) -> PbPermission {
    PbPermission {
        rule: Some(permission::Rule::UrlPath(PathMatcher {
            rule: Some(path_matcher::Rule::Path(exact(p))),
        })),
    }
}

fn header(name: &str, value: &str) -> PbPermission {
    PbPermission {
        rule: Some(permission::Rule::Header(PbHeader {
            name: name.into(),
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(exact(
                value,
            ))),
            ..Default::default()
        })),
    }
}

fn and(rules: Vec<PbPermission>) -> PbPermission {
    PbPermission {
        rule: Some(permission::Rule::AndRules(permission::Set { rules })),
    }
}

fn filter(
    action: pb::rbac::Action,
    policies: Vec<(&str, Vec<PbPermission>, Vec<PbPrincipal>)>,
    mode: ParseMode,
) -> Rbac {
    let rules = pb::Rbac {
        action: action as i32,
        policies: policies
            .into_iter()
            .map(|(n, permissions, principals)| {
                let p = pb::Policy {
                    permissions,
                    principals,
                    ..Default::default()
                };
                (n.to_string(), p)
            })
            .collect(),
        ..Default::default()
    };
    Rbac::from_filter(
        &PbRbacFilter {
            rules: Some(rules),
            ..Default::default()
        },
        mode,
    )
    .unwrap()
}

fn source(ip: [u8; 4], ns: Option<&str>) -> Source {
    let addr = SocketAddr::from((ip, 40000));
    Source {
        addr,
        workload: ns.map(|ns| {
            Arc::new(Workload {
                ip: addr.ip(),
                namespace: ns.into(),
                name: format!("{ns}-pod"),
                workload: ns.into(),
                service_account: "x".into(),
                app: String::new(),
                version: String::new(),
                principal: format!("spiffe://cluster.local/ns/{ns}/sa/x"),
            })
        }),
    }
}

/// Whether `rbac` lets an HTTP request `method path` from `source` through.
fn http_passes(rbac: &Rbac, source: &Source, method: Method, path: &str) -> bool {
    let headers = HeaderMap::new();
    let view = RequestView {
        method: &method,
        authority: "web:8080",
        path,
        query: "",
        path_and_query: path,
        headers: &headers,
    };
    let req = Request {
        protocol: RequestProtocol::Http,
        source,
        attrs: &view,
    };
    match rbac.check("l", &req) {
        Step::Go => true,
        Step::Refuse(r) => {
            assert_eq!(r.kind, RejectKind::Unauthorized);
            false
        }
        Step::Wait(_) => panic!("rbac never waits"),
    }
}

fn dubbo_passes(rbac: &Rbac, source: &Source, interface: &str, method: &str) -> bool {
    let m = Metadata {
        message_type: MessageType::Request,
        request_id: 1,
        response_status: ResponseStatus::Ok,
        attributes: vec![
            ("interface".into(), interface.into()),
            ("method".into(), method.into()),
        ],
        dialect: 0,
    };
    let req = Request {
        protocol: RequestProtocol::Dubbo,
        source,
        attrs: &m,
    };
    matches!(rbac.check("l", &req), Step::Go)
}

#[test]
fn deny_by_namespace_refuses_only_that_namespace() {
    use pb::rbac::Action::Deny;
    let rbac = filter(
        Deny,
        vec![(
            "ns[a]/deny-a[0]",
            vec![any_permission()],
            vec![namespace("a")],
        )],
        ParseMode::Http,
    );
    assert!(!http_passes(
        &rbac,
        &source([127, 0, 10, 1], Some("a")),
        Method::GET,
        "/"
    ));
    assert!(http_passes(
        &rbac,
        &source([127, 0, 10, 2], Some("b")),
        Method::GET,
        "/"
    ));
    // A namespace whose name merely contains `a` is another namespace.
    assert!(http_passes(
        &rbac,
        &source([127, 0, 10, 3], Some("aa")),
        Method::GET,
        "/"
    ));
    assert!(http_passes(
        &rbac,
        &source([127, 0, 10, 9], None),
        Method::GET,
        "/"
    ));
}

#[test]
fn allow_by_principal_refuses_everyone_else_and_unknown_addresses() {
    use pb::rbac::Action::Allow;
    let b = authenticated(exact("spiffe://cluster.local/ns/b/sa/x"));
    let rbac = filter(
        Allow,
        vec![("p", vec![any_permission()], vec![b])],
        ParseMode::Http,
    );
    assert!(http_passes(
        &rbac,
        &source([127, 0, 10, 2], Some("b")),
        Method::GET,
        "/"
    ));
    assert!(!http_passes(
        &rbac,
        &source([127, 0, 10, 1], Some("a")),
        Method::GET,
        "/"
    ));
    assert!(!http_passes(
        &rbac,
        &source([127, 0, 10, 9], None),
        Method::GET,
        "/"
    ));
}

#[test]
fn an_address_no_pod_has_matches_ip_blocks_only() {
    use pb::rbac::Action::Allow;
    let rbac = filter(
        Allow,
        vec![(
            "p",
            vec![any_permission()],
            vec![ip_block("127.0.20.0", 24), namespace("b")],
        )],
        ParseMode::Http,
    );
    assert!(http_passes(
        &rbac,
        &source([127, 0, 20, 7], None),
        Method::GET,
        "/"
    ));
    assert!(!http_passes(
        &rbac,
        &source([127, 0, 21, 7], None),
        Method::GET,
        "/"
    ));
    assert!(http_passes(
        &rbac,
        &source([127, 0, 21, 7], Some("b")),
        Method::GET,
        "/"
    ));
    // An IPv4 peer accepted on a dual-stack socket is the same peer.
    let mut mapped = source([127, 0, 20, 7], None);
    mapped.addr = "[::ffff:127.0.20.7]:40000".parse().unwrap();
    assert!(http_passes(&rbac, &mapped, Method::GET, "/"));
}

#[test]
fn allow_by_operation_reads_paths_and_methods() {
    use pb::rbac::Action::Allow;
    let rbac = filter(
        Allow,
        vec![(
            "p",
            vec![
                and(vec![path("/pkg.Echo/Say"), header(":method", "POST")]),
                path("/public"),
            ],
            vec![PbPrincipal {
                identifier: Some(principal::Identifier::Any(true)),
            }],
        )],
        ParseMode::Http,
    );
    let who = source([127, 0, 10, 1], Some("a"));
    assert!(http_passes(&rbac, &who, Method::POST, "/pkg.Echo/Say"));
    assert!(!http_passes(&rbac, &who, Method::GET, "/pkg.Echo/Say"));
    assert!(!http_passes(&rbac, &who, Method::POST, "/pkg.Echo/Other"));
    assert!(http_passes(&rbac, &who, Method::DELETE, "/public"));
}

#[test]
fn dubbo_rules_read_the_interface_and_method_attributes() {
    use pb::rbac::Action::Deny;
    let rbac = filter(
        Deny,
        vec![(
            "p",
            vec![and(vec![
                header("interface", "org.Greeter"),
                header("method", "sayHello"),
            ])],
            vec![namespace("a")],
        )],
        ParseMode::Meta,
    );
    let a = source([127, 0, 10, 1], Some("a"));
    assert!(!dubbo_passes(&rbac, &a, "org.Greeter", "sayHello"));
    assert!(dubbo_passes(&rbac, &a, "org.Greeter", "sayBye"));
    assert!(dubbo_passes(&rbac, &a, "org.Other", "sayHello"));
    assert!(dubbo_passes(
        &rbac,
        &source([127, 0, 10, 2], Some("b")),
        "org.Greeter",
        "sayHello"
    ));
}

#[test]
fn allow_without_policies_denies_all_and_a_filter_without_rules_allows_all() {
    let nothing = filter(pb::rbac::Action::Allow, vec![], ParseMode::Http);
    assert!(!http_passes(
        &nothing,
        &source([127, 0, 10, 2], Some("b")),
        Method::GET,
        "/"
    ));
    let deny_nothing = filter(pb::rbac::Action::Deny, vec![], ParseMode::Http);
    assert!(http_passes(
        &deny_nothing,
        &source([127, 0, 10, 2], Some("b")),
        Method::GET,
        "/"
    ));
    let no_rules = Rbac::from_filter(&PbRbacFilter::default(), ParseMode::Http).unwrap();
    assert!(http_passes(
        &no_rules,
        &source([127, 0, 10, 2], Some("b")),
        Method::GET,
        "/"
    ));
}

#[test]
fn not_principals_match_what_the_inner_principal_does_not() {
    use pb::rbac::Action::Deny;
    let not_b = PbPrincipal {
        identifier: Some(principal::Identifier::NotId(Box::new(namespace("b")))),
    };
    let rbac = filter(
        Deny,
        vec![("p", vec![any_permission()], vec![not_b])],
        ParseMode::Http,
    );
    assert!(http_passes(
        &rbac,
        &source([127, 0, 10, 2], Some("b")),
        Method::GET,
        "/"
    ));
    assert!(!http_passes(
        &rbac,
        &source([127, 0, 10, 1], Some("a")),
        Method::GET,
        "/"
    ));
}

#[test]
fn rules_the_gateway_cannot_evaluate_refuse_the_filter_naming_them() {
    let rules = pb::Rbac {
        action: pb::rbac::Action::Allow as i32,
        policies: [(
            "ports".to_string(),
            pb::Policy {
                permissions: vec![PbPermission {
                    rule: Some(permission::Rule::DestinationPort(8080)),
                }],
                principals: vec![PbPrincipal {
                    identifier: Some(principal::Identifier::Any(true)),
                }],
                ..Default::default()
            },
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let f = PbRbacFilter {
        rules: Some(rules),
        ..Default::default()
    };
    let err = Rbac::from_filter(&f, ParseMode::Http)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("destination_port") && err.contains("ports"),
        "{err}"
    );

    let bad_cidr = filter_with_principal(ip_block("10.0.0.0", 33));
    let err = Rbac::from_filter(&bad_cidr, ParseMode::Http)
        .unwrap_err()
        .to_string();
    assert!(err.contains("33"), "{err}");
}

fn filter_with_principal(p: PbPrincipal) -> PbRbacFilter {
    let rules = pb::Rbac {
        action: pb::rbac::Action::Deny as i32,
        policies: [(
            "p".to_string(),
            pb::Policy {
                permissions: vec![any_permission()],
                principals: vec![p],
                ..Default::default()
            },
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    PbRbacFilter {
        rules: Some(rules),
        ..Default::default()
    }
}

#[test]
fn cidr_prefixes_compare_whole_and_partial_bytes() {
    let c = |s: &str, len| Cidr {
        addr: s.parse().unwrap(),
        len,
    };
    assert!(c("10.1.0.0", 15).contains("10.0.255.1".parse().unwrap()));
    assert!(!c("10.1.0.0", 16).contains("10.0.255.1".parse().unwrap()));
    assert!(c("0.0.0.0", 0).contains("192.168.1.1".parse().unwrap()));
    assert!(c("10.0.0.1", 32).contains("10.0.0.1".parse().unwrap()));
    assert!(!c("10.0.0.1", 32).contains("10.0.0.2".parse().unwrap()));
    assert!(c("fd00::", 8).contains("fdff::1".parse().unwrap()));
    assert!(!c("fd00::", 8).contains("10.0.0.1".parse().unwrap()));
}
