//! Services and EndpointSlices with the fields cluster DNS reads: cluster IPs (one or two
//! families), headless, ExternalName, `publishNotReadyAddresses`, endpoint hostnames and
//! IPv6 slices. [`crate::manifests`] builds what the gateway needs; these build what DNS
//! needs, rendered the same way (`manifests::yaml`).

use serde_json::{Value, json};

/// What kind of Service.
#[derive(Debug, Clone)]
enum Kind {
    ClusterIp(Vec<String>),
    Headless,
    ExternalName(String),
}

/// core/v1 Service as DNS sees it.
#[derive(Debug, Clone)]
pub struct Svc {
    name: String,
    namespace: String,
    kind: Kind,
    ports: Vec<Value>,
    meshed: bool,
    publish_not_ready: bool,
}

impl Svc {
    /// A ClusterIP service with these cluster IPs (two of different families: dual-stack).
    /// It is meshed unless [`Svc::unmeshed`] is called.
    pub fn cluster_ip(name: &str, namespace: &str, ips: &[&str]) -> Svc {
        Svc::new(
            name,
            namespace,
            Kind::ClusterIp(ips.iter().map(|s| s.to_string()).collect()),
        )
    }

    /// A headless service (`clusterIP: None`).
    pub fn headless(name: &str, namespace: &str) -> Svc {
        Svc::new(name, namespace, Kind::Headless)
    }

    /// An ExternalName service pointing at `target`.
    pub fn external_name(name: &str, namespace: &str, target: &str) -> Svc {
        Svc::new(name, namespace, Kind::ExternalName(target.to_string()))
    }

    fn new(name: &str, namespace: &str, kind: Kind) -> Svc {
        Svc {
            name: name.into(),
            namespace: namespace.into(),
            kind,
            ports: vec![],
            meshed: true,
            publish_not_ready: false,
        }
    }

    /// Adds a port; `name` "" leaves it unnamed; `protocol` is `TCP`, `UDP` or `SCTP`.
    pub fn port(mut self, name: &str, port: u16, protocol: &str) -> Svc {
        let mut value = json!({ "port": port, "protocol": protocol, "targetPort": port });
        if !name.is_empty() {
            value["name"] = json!(name);
        }
        self.ports.push(value);
        self
    }

    /// Labels the service `corridor.io/mesh: disabled`: its name keeps its real records.
    pub fn unmeshed(mut self) -> Svc {
        self.meshed = false;
        self
    }

    /// `publishNotReadyAddresses: true`.
    pub fn publish_not_ready(mut self) -> Svc {
        self.publish_not_ready = true;
        self
    }
}

impl From<Svc> for Value {
    fn from(svc: Svc) -> Value {
        let mut spec = json!({ "selector": { "app": svc.name }, "ports": svc.ports });
        match svc.kind {
            Kind::ClusterIp(ips) => {
                let families: Vec<&str> = ips
                    .iter()
                    .map(|ip| if ip.contains(':') { "IPv6" } else { "IPv4" })
                    .collect();
                spec["type"] = json!("ClusterIP");
                spec["clusterIP"] = json!(ips.first());
                spec["clusterIPs"] = json!(ips);
                spec["ipFamilies"] = json!(families);
                spec["ipFamilyPolicy"] = json!(if ips.len() > 1 {
                    "RequireDualStack"
                } else {
                    "SingleStack"
                });
            }
            Kind::Headless => {
                spec["clusterIP"] = json!("None");
                spec["clusterIPs"] = json!(["None"]);
            }
            Kind::ExternalName(target) => {
                spec =
                    json!({ "type": "ExternalName", "externalName": target, "ports": svc.ports });
            }
        }
        if svc.publish_not_ready {
            spec["publishNotReadyAddresses"] = json!(true);
        }
        let mut metadata = json!({ "name": svc.name, "namespace": svc.namespace });
        if !svc.meshed {
            metadata["labels"] = json!({ "corridor.io/mesh": "disabled" });
        }
        json!({ "apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec })
    }
}

/// One endpoint of a [`Slice`].
#[derive(Debug, Clone)]
pub struct Ep {
    address: String,
    hostname: Option<String>,
    ready: bool,
}

impl Ep {
    /// A ready endpoint at `address`, without a hostname.
    pub fn new(address: &str) -> Ep {
        Ep {
            address: address.into(),
            hostname: None,
            ready: true,
        }
    }

    /// Sets the endpoint's `hostname` (a pod's `spec.hostname`, as StatefulSets set it).
    pub fn hostname(mut self, hostname: &str) -> Ep {
        self.hostname = Some(hostname.into());
        self
    }

    /// Marks it not ready (`conditions.ready: false`).
    pub fn not_ready(mut self) -> Ep {
        self.ready = false;
        self
    }
}

/// discovery.k8s.io/v1 EndpointSlice as DNS sees it.
#[derive(Debug, Clone)]
pub struct Slice {
    name: String,
    namespace: String,
    service: String,
    ipv6: bool,
    ports: Vec<Value>,
    endpoints: Vec<Ep>,
}

impl Slice {
    /// An empty IPv4 slice `name` of `service`.
    pub fn new(name: &str, namespace: &str, service: &str) -> Slice {
        Slice {
            name: name.into(),
            namespace: namespace.into(),
            service: service.into(),
            ipv6: false,
            ports: vec![],
            endpoints: vec![],
        }
    }

    /// Makes it an IPv6 slice (`addressType: IPv6`).
    pub fn ipv6(mut self) -> Slice {
        self.ipv6 = true;
        self
    }

    /// Adds a port (the target port, named like the Service port).
    pub fn port(mut self, name: &str, port: u16, protocol: &str) -> Slice {
        self.ports
            .push(json!({ "name": name, "port": port, "protocol": protocol }));
        self
    }

    /// Adds an endpoint.
    pub fn endpoint(mut self, endpoint: Ep) -> Slice {
        self.endpoints.push(endpoint);
        self
    }
}

impl From<Slice> for Value {
    fn from(slice: Slice) -> Value {
        let endpoints: Vec<Value> = slice
            .endpoints
            .iter()
            .map(|e| {
                let mut endpoint = json!({
                    "addresses": [e.address],
                    "conditions": { "ready": e.ready, "serving": e.ready },
                });
                if let Some(hostname) = &e.hostname {
                    endpoint["hostname"] = json!(hostname);
                }
                endpoint
            })
            .collect();
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": slice.name,
                "namespace": slice.namespace,
                "labels": { "kubernetes.io/service-name": slice.service },
            },
            "addressType": if slice.ipv6 { "IPv6" } else { "IPv4" },
            "ports": slice.ports,
            "endpoints": endpoints,
        })
    }
}
