//! Both configuration forms build a limiter that picks the first matching bucket.

use corridor_proto::aeraki::meta_protocol_proxy::config::route::v1alpha::RouteMatch;
use corridor_proto::envoy::config::core::v3::RuntimeFractionalPercent;
use corridor_proto::envoy::config::route::v3::rate_limit::action::{
    ActionSpecifier, HeaderValueMatch,
};
use corridor_proto::envoy::config::route::v3::rate_limit::{Action, action::RemoteAddress};
use corridor_proto::envoy::config::route::v3::{
    HeaderMatcher as PbHeaderMatcher, RateLimit, header_matcher::HeaderMatchSpecifier,
};
use corridor_proto::envoy::extensions::common::ratelimit::v3::{
    LocalRateLimitDescriptor, rate_limit_descriptor::Entry,
};
use corridor_proto::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit as HttpLimit;
use corridor_proto::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use corridor_proto::envoy::r#type::v3::{FractionalPercent, TokenBucket as PbTokenBucket};
use corridor_proto::google::protobuf::{Duration as PbDuration, UInt32Value};
use http::{HeaderMap, HeaderValue, Method};

use super::*;
use crate::codec::{MessageType, Metadata, ResponseStatus};
use crate::router::RequestView;

fn bucket(max: u32, per_fill: u32, secs: i64) -> PbTokenBucket {
    PbTokenBucket {
        max_tokens: max,
        tokens_per_fill: Some(UInt32Value { value: per_fill }),
        fill_interval: Some(PbDuration {
            seconds: secs,
            nanos: 0,
        }),
    }
}

fn exact(name: &str, value: &str) -> PbHeaderMatcher {
    PbHeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
            match_pattern: Some(MatchPattern::Exact(value.into())),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn call(method: &str) -> Metadata {
    Metadata {
        message_type: MessageType::Request,
        request_id: 1,
        response_status: ResponseStatus::Ok,
        attributes: vec![("method".into(), method.into())],
        dialect: 0,
    }
}

#[test]
fn the_first_matching_condition_picks_the_bucket_and_others_use_the_default() {
    let config = pb::LocalRateLimit {
        stat_prefix: "l".into(),
        token_bucket: Some(bucket(3, 1, 60)),
        conditions: vec![pb::LocalRateLimitCondition {
            r#match: Some(RouteMatch {
                metadata: vec![exact("method", "sayHello")],
            }),
            token_bucket: Some(bucket(1, 1, 60)),
        }],
    };
    let l = LocalRateLimiter::from_aeraki(&config).unwrap();
    assert!(l.admit(&call("sayHello"), &[]));
    assert!(
        !l.admit(&call("sayHello"), &[]),
        "its own bucket of one is empty"
    );
    assert!(
        (0..3).all(|_| l.admit(&call("other"), &[])),
        "the default bucket is separate"
    );
    assert!(!l.admit(&call("other"), &[]));
}

#[test]
fn a_config_with_no_bucket_or_a_zero_bucket_is_refused() {
    assert!(LocalRateLimiter::from_aeraki(&pb::LocalRateLimit::default()).is_err());
    let zero = pb::LocalRateLimit {
        token_bucket: Some(bucket(0, 1, 1)),
        ..Default::default()
    };
    assert!(LocalRateLimiter::from_aeraki(&zero).is_err());
}

fn all() -> Option<RuntimeFractionalPercent> {
    Some(RuntimeFractionalPercent {
        default_value: Some(FractionalPercent {
            numerator: 100,
            denominator: 0,
        }),
        runtime_key: String::new(),
    })
}

/// Envoy's form: a default bucket of 2, and a bucket of 1 for `x-user: alice`, chosen
/// by a `header_value_match` rule producing the descriptor `header_match=alice`.
fn envoy_limit() -> HttpLimit {
    HttpLimit {
        stat_prefix: "http_local_rate_limiter".into(),
        token_bucket: Some(bucket(2, 1, 60)),
        filter_enabled: all(),
        filter_enforced: all(),
        descriptors: vec![LocalRateLimitDescriptor {
            entries: vec![Entry {
                key: "header_match".into(),
                value: "alice".into(),
            }],
            token_bucket: Some(bucket(1, 1, 60)),
            shadow_mode: false,
        }],
        rate_limits: vec![RateLimit {
            actions: vec![Action {
                action_specifier: Some(ActionSpecifier::HeaderValueMatch(HeaderValueMatch {
                    descriptor_value: "alice".into(),
                    headers: vec![exact("x-user", "alice")],
                    ..Default::default()
                })),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn admit(l: &LocalRateLimiter, user: &str) -> bool {
    let mut headers = HeaderMap::new();
    headers.insert("x-user", HeaderValue::from_str(user).unwrap());
    let view = RequestView {
        method: &Method::GET,
        authority: "svc",
        path: "/",
        query: "",
        path_and_query: "/",
        headers: &headers,
    };
    l.admit(&view, &[])
}

#[test]
fn envoys_http_form_picks_the_descriptors_bucket_by_its_rule() {
    let l = LocalRateLimiter::from_envoy(&envoy_limit()).unwrap();
    assert!(admit(&l, "alice"));
    assert!(!admit(&l, "alice"), "alice's bucket of one is empty");
    assert!(
        admit(&l, "bob") && admit(&l, "bob"),
        "the default bucket is separate"
    );
    assert!(!admit(&l, "bob"));
}

#[test]
fn envoys_http_form_is_inert_unless_enabled_and_enforced() {
    let mut config = envoy_limit();
    config.filter_enforced = None;
    let l = LocalRateLimiter::from_envoy(&config).unwrap();
    assert!(
        (0..5).all(|_| admit(&l, "bob")),
        "counted but never refused, as in Envoy"
    );
}

#[test]
fn envoys_http_form_refuses_what_it_cannot_honour() {
    let mut remote = envoy_limit();
    remote.rate_limits[0].actions[0].action_specifier =
        Some(ActionSpecifier::RemoteAddress(RemoteAddress::default()));
    let e = LocalRateLimiter::from_envoy(&remote).unwrap_err();
    assert!(e.to_string().contains("remote_address"), "{e}");
    let mut status = envoy_limit();
    status.status = Some(corridor_proto::envoy::r#type::v3::HttpStatus { code: 503 });
    assert!(LocalRateLimiter::from_envoy(&status).is_err());
}

fn alice_rule(action: ActionSpecifier) -> RateLimit {
    RateLimit {
        actions: vec![Action {
            action_specifier: Some(action),
        }],
        ..Default::default()
    }
}

fn alice_matches() -> ActionSpecifier {
    ActionSpecifier::HeaderValueMatch(HeaderValueMatch {
        descriptor_value: "alice".into(),
        headers: vec![exact("x-user", "alice")],
        ..Default::default()
    })
}

#[test]
fn without_rules_of_its_own_the_filter_reads_the_routes() {
    let mut config = envoy_limit();
    config.rate_limits.clear();
    let l = LocalRateLimiter::from_envoy(&config).unwrap();
    let rules = envoy::route_rules(&[alice_rule(alice_matches())]).unwrap();
    let admit = |user: &str| {
        let mut headers = HeaderMap::new();
        headers.insert("x-user", HeaderValue::from_str(user).unwrap());
        let view = RequestView {
            method: &Method::GET,
            authority: "svc",
            path: "/",
            query: "",
            path_and_query: "/",
            headers: &headers,
        };
        l.admit(&view, &rules)
    };
    assert!(admit("alice"));
    assert!(
        !admit("alice"),
        "the route's rule picked alice's bucket of one"
    );
    assert!(
        admit("bob") && admit("bob") && !admit("bob"),
        "default bucket of two"
    );
}

#[test]
fn a_route_rule_for_the_rate_limit_service_is_kept_but_picks_no_local_bucket() {
    let remote = alice_rule(ActionSpecifier::RemoteAddress(RemoteAddress::default()));
    let rules = envoy::route_rules(&[remote]).unwrap();
    let view_headers = HeaderMap::new();
    let view = RequestView {
        method: &Method::GET,
        authority: "svc",
        path: "/",
        query: "",
        path_and_query: "/",
        headers: &view_headers,
    };
    assert!(rules[0].produces(&view).is_none());
}
