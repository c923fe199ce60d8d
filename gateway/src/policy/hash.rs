//! The consistent-hash key of a request: the first of its route's hash policies that the
//! request carries (a header, Dubbo attachment or Thrift THeader header; an HTTP cookie
//! or query parameter; the caller's IP), hashed the way `cluster::hash` places
//! endpoints. No key: the cluster picks as if it did not hash.

use corridor_proto::envoy::config::route::v3::route_action::{
    HashPolicy as PbHashPolicy, hash_policy::PolicySpecifier,
};

use crate::cluster::hash::hash64;
use crate::model::ModelError;
use crate::policy::request::{Attributes, Source};
use crate::policy::route::HashPolicy;

/// The hash key of a request, if its route hashes and it carries one of the policies'
/// values.
pub fn key(policies: &[HashPolicy], attrs: &dyn Attributes, source: &Source) -> Option<u64> {
    policies.iter().find_map(|p| match p {
        HashPolicy::Attribute(name) => attrs.get(name).map(|v| hash64(v.as_bytes())),
        HashPolicy::SourceIp => Some(hash64(source.addr.ip().to_string().as_bytes())),
        HashPolicy::Cookie(name) => {
            cookie(attrs.get("cookie")?, name).map(|v| hash64(v.as_bytes()))
        }
        HashPolicy::QueryParameter(name) => {
            let query = attrs.get(":path")?.split_once('?')?.1;
            parameter(query, name).map(|v| hash64(v.as_bytes()))
        }
    })
}

/// An HTTP route's `hash_policy` (Envoy's), in order. A cookie policy hashes the
/// cookie when the request has it; the gateway does not generate one (`ttl`).
pub fn from_envoy(policies: &[PbHashPolicy]) -> Result<Vec<HashPolicy>, ModelError> {
    policies
        .iter()
        .map(|p| match &p.policy_specifier {
            Some(PolicySpecifier::Header(h)) if !h.header_name.is_empty() => {
                Ok(HashPolicy::Attribute(h.header_name.to_ascii_lowercase()))
            }
            Some(PolicySpecifier::Cookie(c)) if !c.name.is_empty() => {
                Ok(HashPolicy::Cookie(c.name.clone()))
            }
            Some(PolicySpecifier::QueryParameter(q)) if !q.name.is_empty() => {
                Ok(HashPolicy::QueryParameter(q.name.clone()))
            }
            Some(PolicySpecifier::ConnectionProperties(c)) if c.source_ip => {
                Ok(HashPolicy::SourceIp)
            }
            Some(PolicySpecifier::FilterState(_)) => {
                Err(ModelError::Unsupported("hash_policy.filter_state".into()))
            }
            _ => Err(ModelError::invalid("hash_policy", format!("{p:?}"))),
        })
        .collect()
}

/// The value of cookie `name` in a `Cookie` header.
fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The value of parameter `name` in a query string (as sent: not percent-decoded).
fn parameter<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Attrs(HashMap<&'static str, &'static str>);

    impl Attributes for Attrs {
        fn get(&self, name: &str) -> Option<&str> {
            self.0.get(name).copied()
        }
        fn path(&self) -> Option<&str> {
            None
        }
        fn method(&self) -> Option<&str> {
            None
        }
        fn host(&self) -> Option<&str> {
            None
        }
    }

    fn source(ip: [u8; 4]) -> Source {
        Source::new((ip, 4000).into())
    }

    #[test]
    fn the_first_policy_present_gives_the_key() {
        let attrs = Attrs(HashMap::from([("x-user", "alice")]));
        let policies = [
            HashPolicy::Attribute("x-missing".into()),
            HashPolicy::Attribute("x-user".into()),
            HashPolicy::SourceIp,
        ];
        let k = key(&policies, &attrs, &source([10, 0, 0, 1]));
        assert_eq!(k, Some(hash64(b"alice")));
        assert_eq!(key(&policies[..1], &attrs, &source([10, 0, 0, 1])), None);
        assert_eq!(key(&[], &attrs, &source([10, 0, 0, 1])), None);
    }

    #[test]
    fn the_source_ip_ignores_the_port() {
        let attrs = Attrs(HashMap::new());
        let p = [HashPolicy::SourceIp];
        let a = key(&p, &attrs, &source([10, 0, 0, 1]));
        let b = key(&p, &attrs, &Source::new(([10, 0, 0, 1], 5000).into()));
        assert_eq!(a, b);
        assert_ne!(a, key(&p, &attrs, &source([10, 0, 0, 2])));
    }

    #[test]
    fn envoy_hash_policies_parse_in_order() {
        use corridor_proto::envoy::config::route::v3::route_action::hash_policy::{
            ConnectionProperties, FilterState, Header,
        };
        let p = |s| PbHashPolicy {
            policy_specifier: Some(s),
            terminal: false,
        };
        let parsed = from_envoy(&[
            p(PolicySpecifier::Header(Header {
                header_name: "X-User".into(),
                ..Default::default()
            })),
            p(PolicySpecifier::ConnectionProperties(
                ConnectionProperties { source_ip: true },
            )),
        ])
        .unwrap();
        assert_eq!(
            parsed,
            [HashPolicy::Attribute("x-user".into()), HashPolicy::SourceIp]
        );
        let bad = p(PolicySpecifier::FilterState(FilterState {
            key: "k".into(),
        }));
        assert!(from_envoy(&[bad]).is_err());
    }

    #[test]
    fn cookies_and_query_parameters() {
        let attrs = Attrs(HashMap::from([
            ("cookie", "a=1; session=xyz; b=2"),
            (":path", "/p?x=1&user=bob"),
        ]));
        let s = source([10, 0, 0, 1]);
        assert_eq!(
            key(&[HashPolicy::Cookie("session".into())], &attrs, &s),
            Some(hash64(b"xyz"))
        );
        assert_eq!(
            key(&[HashPolicy::QueryParameter("user".into())], &attrs, &s),
            Some(hash64(b"bob"))
        );
        assert_eq!(key(&[HashPolicy::Cookie("none".into())], &attrs, &s), None);
    }
}
