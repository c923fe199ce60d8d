//! The protocol-neutral view of a request that every policy reads: who sent it and its
//! attributes (HTTP headers, Dubbo attachments, Thrift THeader headers), borrowed from
//! what the listener already decoded, so building it allocates nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use super::identity::{self, Workload};
use crate::cluster::Snapshot;

use crate::codec::Metadata;
use crate::model::route::{HeaderKey, HeaderMatcher};
use crate::router::{RequestView, string_matches};
use crate::telemetry::metrics::RequestProtocol;

/// What every policy sees of a request, whatever its protocol. Built once per request.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// HTTP, gRPC, Dubbo or Thrift.
    pub protocol: RequestProtocol,
    /// Who sent it (per connection).
    pub source: &'a Source,
    /// Its attributes.
    pub attrs: &'a dyn Attributes,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("protocol", &self.protocol)
            .field("source", &self.source)
            .field("path", &self.attrs.path())
            .field("method", &self.attrs.method())
            .finish_non_exhaustive()
    }
}

/// The downstream peer of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The peer's address as accepted.
    pub addr: SocketAddr,
    /// The pod behind the address, from the pod table; none for an address no pod has.
    pub workload: Option<Arc<Workload>>,
}

impl Source {
    /// A peer not looked up in the pod table (yet).
    pub fn new(addr: SocketAddr) -> Source {
        Source {
            addr,
            workload: None,
        }
    }

    /// A peer with the workload `snapshot`'s pod table has for its IP. Looked up per
    /// request, so a pod table push changes who the next request comes from.
    pub fn resolved(addr: SocketAddr, snapshot: &Snapshot) -> Source {
        Source {
            addr,
            workload: identity::lookup(snapshot, addr.ip()),
        }
    }
}

/// A request's attributes under one vocabulary. Every method borrows; none allocates.
pub trait Attributes {
    /// The value of header or attribute `name`. HTTP also answers the pseudo-headers
    /// `:path` (with query), `:method`, `:authority` and `:scheme`, as Envoy's header
    /// matchers do; with several values under one name, the first.
    fn get(&self, name: &str) -> Option<&str>;
    /// The path: the HTTP path without query (gRPC: `/pkg.Service/Method`); the Dubbo
    /// interface.
    fn path(&self) -> Option<&str>;
    /// The method: HTTP method; Dubbo and Thrift method.
    fn method(&self) -> Option<&str>;
    /// The HTTP authority; none for Dubbo and Thrift.
    fn host(&self) -> Option<&str>;
}

/// Whether `attrs` satisfy one header condition, the way route matching reads them
/// (rate limit conditions, and later authorization).
pub fn matches(h: &HeaderMatcher, attrs: &dyn Attributes) -> bool {
    let value = match &h.key {
        HeaderKey::Method => attrs.get(":method"),
        HeaderKey::Authority => attrs.get(":authority"),
        HeaderKey::Path => attrs.get(":path"),
        HeaderKey::Scheme => attrs.get(":scheme"),
        HeaderKey::Named(name) => attrs.get(name.as_str()),
        HeaderKey::Attribute(name) => attrs.get(name),
    };
    let hit = match (&h.value, value) {
        (None, v) => v.is_some() == h.present,
        (Some(_), None) => false,
        (Some(sm), Some(v)) => string_matches(sm, v),
    };
    hit != h.invert
}

// === impl Attributes ===

impl Attributes for RequestView<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        match name {
            ":path" => Some(self.path_and_query),
            ":method" => Some(self.method.as_str()),
            ":authority" => Some(self.authority),
            // The gateway's listeners speak plain HTTP (TLS is not terminated here).
            ":scheme" => Some("http"),
            _ => self.headers.get(name).and_then(|v| v.to_str().ok()),
        }
    }

    fn path(&self) -> Option<&str> {
        Some(self.path)
    }

    fn method(&self) -> Option<&str> {
        Some(self.method.as_str())
    }

    fn host(&self) -> Option<&str> {
        Some(self.authority)
    }
}

impl Attributes for Metadata {
    fn get(&self, name: &str) -> Option<&str> {
        Metadata::get(self, name)
    }

    fn path(&self) -> Option<&str> {
        // Dubbo names the service it calls; Thrift has no equivalent.
        Metadata::get(self, "interface")
    }

    fn method(&self) -> Option<&str> {
        Metadata::get(self, "method")
    }

    fn host(&self) -> Option<&str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{MessageType, ResponseStatus};
    use crate::model::route::StringMatch;
    use http::{HeaderMap, HeaderValue, Method};

    fn exact(key: HeaderKey, v: &str) -> HeaderMatcher {
        HeaderMatcher {
            key,
            value: Some(StringMatch::Exact(v.into(), false)),
            present: true,
            invert: false,
        }
    }

    #[test]
    fn an_http_head_answers_headers_and_pseudo_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-user", HeaderValue::from_static("alice"));
        let view = RequestView {
            method: &Method::POST,
            authority: "svc:80",
            path: "/pkg.Svc/Call",
            query: "a=1",
            path_and_query: "/pkg.Svc/Call?a=1",
            headers: &headers,
        };
        assert_eq!(view.get("x-user"), Some("alice"));
        assert_eq!(view.get("x-absent"), None);
        assert_eq!(view.get(":path"), Some("/pkg.Svc/Call?a=1"));
        assert_eq!(view.path(), Some("/pkg.Svc/Call"));
        assert_eq!(view.method(), Some("POST"));
        assert_eq!(view.host(), Some("svc:80"));
        assert!(matches(&exact(HeaderKey::Method, "POST"), &view));
        assert!(!matches(&exact(HeaderKey::Method, "GET"), &view));
        let user = HeaderKey::Named(http::HeaderName::from_static("x-user"));
        assert!(matches(&exact(user, "alice"), &view));
    }

    #[test]
    fn codec_metadata_answers_its_attributes() {
        let m = Metadata {
            message_type: MessageType::Request,
            request_id: 1,
            response_status: ResponseStatus::Ok,
            attributes: vec![
                ("interface".into(), "org.Greeter".into()),
                ("method".into(), "sayHello".into()),
            ],
            dialect: 0,
        };
        assert_eq!(m.path(), Some("org.Greeter"));
        assert_eq!(Attributes::method(&m), Some("sayHello"));
        assert_eq!(m.host(), None);
        assert!(matches(
            &exact(HeaderKey::Attribute("method".into()), "sayHello"),
            &m
        ));
        let mut absent = exact(HeaderKey::Attribute("version".into()), "1");
        assert!(!matches(&absent, &m));
        absent.invert = true;
        assert!(matches(&absent, &m), "invert negates a miss");
    }
}
