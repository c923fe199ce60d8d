//! The protocol of a Service port (DESIGN.md §3): the port's `appProtocol` first, then the
//! Istio/Aeraki port-name convention, else opaque TCP.

use std::fmt;

use k8s_openapi::api::core::v1::ServicePort;

/// Application protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// HTTP/1.1 (and HTTP/2 with prior knowledge, the gateway auto-detects).
    Http,
    /// HTTP/2 cleartext.
    Http2,
    /// gRPC (HTTP/2).
    Grpc,
    /// Dubbo.
    Dubbo,
    /// Thrift.
    Thrift,
    /// Redis.
    Redis,
    /// Opaque TCP.
    Tcp,
}

impl Protocol {
    /// The lowercase name used in metadata and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Http2 => "http2",
            Protocol::Grpc => "grpc",
            Protocol::Dubbo => "dubbo",
            Protocol::Thrift => "thrift",
            Protocol::Redis => "redis",
            Protocol::Tcp => "tcp",
        }
    }

    /// True for ports served by the HTTP connection manager.
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }

    /// True for ports served by the MetaProtocol proxy (a codec, one router).
    pub fn is_meta(self) -> bool {
        matches!(self, Protocol::Dubbo | Protocol::Thrift)
    }

    /// True for ports served by the Redis proxy.
    pub fn is_redis(self) -> bool {
        self == Protocol::Redis
    }

    /// True when upstream connections must speak HTTP/2.
    pub fn is_http2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc)
    }

    /// Detects the protocol of a Service port.
    pub fn of_port(port: &ServicePort) -> Protocol {
        port.app_protocol
            .as_deref()
            .and_then(from_app_protocol)
            .or_else(|| port.name.as_deref().and_then(from_port_name))
            .unwrap_or(Protocol::Tcp)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `appProtocol` values; unknown ones fall through to the port name.
fn from_app_protocol(value: &str) -> Option<Protocol> {
    Some(match value.to_ascii_lowercase().as_str() {
        "http" | "kubernetes.io/ws" | "grpc-web" => Protocol::Http,
        "kubernetes.io/h2c" | "http2" | "h2c" => Protocol::Http2,
        "grpc" => Protocol::Grpc,
        "dubbo" => Protocol::Dubbo,
        "thrift" => Protocol::Thrift,
        "redis" => Protocol::Redis,
        "tcp" => Protocol::Tcp,
        _ => return None,
    })
}

/// Port-name convention: `<proto>` or `<proto>-<suffix>`; `tcp-<codec>-*` and
/// `tcp-metaprotocol-<codec>-*` name the codec carried over TCP.
fn from_port_name(name: &str) -> Option<Protocol> {
    let name = name.to_ascii_lowercase();
    let mut parts = name.split('-');
    let first = parts.next()?;
    let by_name = |p: &str| match p {
        "http" | "grpc-web" => Some(Protocol::Http),
        "http2" => Some(Protocol::Http2),
        "grpc" => Some(Protocol::Grpc),
        "dubbo" => Some(Protocol::Dubbo),
        "thrift" => Some(Protocol::Thrift),
        "redis" => Some(Protocol::Redis),
        "tcp" => Some(Protocol::Tcp),
        _ => None,
    };
    if first == "tcp" {
        let second = parts.next();
        let codec = if second == Some("metaprotocol") {
            parts.next()
        } else {
            second
        };
        return Some(match codec {
            Some("dubbo") => Protocol::Dubbo,
            Some("thrift") => Protocol::Thrift,
            Some("redis") if second != Some("metaprotocol") => Protocol::Redis,
            _ => Protocol::Tcp,
        });
    }
    by_name(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: Option<&str>, app: Option<&str>) -> ServicePort {
        ServicePort {
            name: name.map(String::from),
            app_protocol: app.map(String::from),
            port: 80,
            ..Default::default()
        }
    }

    #[test]
    fn app_protocol_wins_over_name() {
        assert_eq!(
            Protocol::of_port(&port(Some("tcp-x"), Some("http"))),
            Protocol::Http
        );
        assert_eq!(
            Protocol::of_port(&port(Some("http"), Some("kubernetes.io/h2c"))),
            Protocol::Http2
        );
        assert_eq!(Protocol::of_port(&port(None, Some("grpc"))), Protocol::Grpc);
        assert_eq!(
            Protocol::of_port(&port(Some("http"), Some("redis"))),
            Protocol::Redis
        );
        // Unknown appProtocol: fall back to the name.
        assert_eq!(
            Protocol::of_port(&port(Some("grpc-api"), Some("example.com/x"))),
            Protocol::Grpc
        );
    }

    #[test]
    fn port_name_prefixes() {
        let cases = [
            ("http", Protocol::Http),
            ("http-web", Protocol::Http),
            ("HTTP-Web", Protocol::Http),
            ("http2-x", Protocol::Http2),
            ("grpc", Protocol::Grpc),
            ("grpc-api", Protocol::Grpc),
            ("redis-main", Protocol::Redis),
            ("thrift-a", Protocol::Thrift),
            ("dubbo-a", Protocol::Dubbo),
            ("tcp-dubbo-a", Protocol::Dubbo),
            ("tcp-thrift-a", Protocol::Thrift),
            ("tcp-redis-a", Protocol::Redis),
            ("tcp-metaprotocol-dubbo-a", Protocol::Dubbo),
            ("tcp-metaprotocol-thrift-a", Protocol::Thrift),
            ("tcp-metaprotocol-custom-a", Protocol::Tcp),
            ("tcp", Protocol::Tcp),
            ("httpx", Protocol::Tcp),
            ("web", Protocol::Tcp),
            ("mysql", Protocol::Tcp),
        ];
        for (name, want) in cases {
            assert_eq!(Protocol::of_port(&port(Some(name), None)), want, "{name}");
        }
        assert_eq!(Protocol::of_port(&port(None, None)), Protocol::Tcp);
    }
}
