//! Builders for the Kubernetes and Istio objects the controller reads, rendered as
//! multi-document YAML.
//!
//! ```ignore
//! let yaml = manifests::yaml([
//!     Service::new("reviews", ns).port(ServicePort::new("http-web", 9080).target(port)).into(),
//!     EndpointSlice::new("reviews-1", ns, "reviews").port("http-web", port)
//!         .endpoint(Endpoint::new("127.0.0.1").pod("reviews-v1")).into(),
//! ]);
//! ```

use serde_json::{Map, Value, json};

/// Renders objects as one multi-document YAML file.
pub fn yaml(objects: impl IntoIterator<Item = Value>) -> String {
    objects
        .into_iter()
        .map(|object| match serde_yaml_ng::to_string(&object) {
            Ok(text) => text,
            Err(e) => panic!("rendering {object}: {e}"),
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

fn metadata(name: &str, namespace: &str, labels: &Map<String, Value>) -> Value {
    let mut meta = json!({ "name": name, "namespace": namespace });
    if !labels.is_empty() {
        meta["labels"] = Value::Object(labels.clone());
    }
    meta
}

// === Namespace ===

/// core/v1 Namespace.
#[derive(Debug, Clone)]
pub struct Namespace {
    name: String,
    labels: Map<String, Value>,
}

impl Namespace {
    /// A namespace without labels.
    pub fn new(name: &str) -> Self {
        Namespace {
            name: name.into(),
            labels: Map::new(),
        }
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

impl From<Namespace> for Value {
    fn from(ns: Namespace) -> Value {
        let mut meta = json!({ "name": ns.name });
        if !ns.labels.is_empty() {
            meta["labels"] = Value::Object(ns.labels);
        }
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": meta })
    }
}

// === Service ===

/// core/v1 Service.
#[derive(Debug, Clone)]
pub struct Service {
    name: String,
    namespace: String,
    labels: Map<String, Value>,
    ports: Vec<ServicePort>,
}

/// One port of a [`Service`].
#[derive(Debug, Clone)]
pub struct ServicePort {
    name: Option<String>,
    port: u16,
    target_port: Option<u16>,
    app_protocol: Option<String>,
}

impl ServicePort {
    /// A named port (the name carries the protocol: `http-*`, `http2-*`, `grpc-*`, ...).
    pub fn new(name: &str, port: u16) -> Self {
        ServicePort {
            name: Some(name.into()),
            port,
            target_port: None,
            app_protocol: None,
        }
    }

    /// An unnamed port.
    pub fn unnamed(port: u16) -> Self {
        ServicePort {
            name: None,
            port,
            target_port: None,
            app_protocol: None,
        }
    }

    /// The port's name ("" when unnamed).
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// The Service's port number.
    pub fn number(&self) -> u16 {
        self.port
    }

    /// The pods' port (defaults to `port`).
    pub fn target(mut self, port: u16) -> Self {
        self.target_port = Some(port);
        self
    }

    /// `appProtocol` (`http`, `kubernetes.io/h2c`, `grpc`, ...).
    pub fn app_protocol(mut self, protocol: &str) -> Self {
        self.app_protocol = Some(protocol.into());
        self
    }
}

impl Service {
    /// A Service selecting `app: <name>`.
    pub fn new(name: &str, namespace: &str) -> Self {
        Service {
            name: name.into(),
            namespace: namespace.into(),
            labels: Map::new(),
            ports: vec![],
        }
    }

    /// Adds a port.
    pub fn port(mut self, port: ServicePort) -> Self {
        self.ports.push(port);
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

impl From<Service> for Value {
    fn from(svc: Service) -> Value {
        let ports: Vec<Value> = svc
            .ports
            .iter()
            .map(|p| {
                let mut port = json!({
                    "port": p.port,
                    "protocol": "TCP",
                    "targetPort": p.target_port.unwrap_or(p.port),
                });
                if let Some(name) = &p.name {
                    port["name"] = json!(name);
                }
                if let Some(app) = &p.app_protocol {
                    port["appProtocol"] = json!(app);
                }
                port
            })
            .collect();
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(&svc.name, &svc.namespace, &svc.labels),
            "spec": { "selector": { "app": svc.name }, "ports": ports },
        })
    }
}

// === EndpointSlice ===

/// discovery.k8s.io/v1 EndpointSlice.
#[derive(Debug, Clone)]
pub struct EndpointSlice {
    name: String,
    namespace: String,
    service: String,
    ports: Vec<(Option<String>, u16)>,
    endpoints: Vec<Endpoint>,
}

/// One endpoint of an [`EndpointSlice`].
#[derive(Debug, Clone)]
pub struct Endpoint {
    address: String,
    ready: Option<bool>,
    terminating: Option<bool>,
    pod: Option<String>,
    zone: Option<String>,
}

impl Endpoint {
    /// A ready endpoint at `address`.
    pub fn new(address: impl ToString) -> Self {
        Endpoint {
            address: address.to_string(),
            ready: Some(true),
            terminating: None,
            pod: None,
            zone: None,
        }
    }

    /// Sets `conditions.ready`.
    pub fn ready(mut self, ready: bool) -> Self {
        self.ready = Some(ready);
        self
    }

    /// Sets `conditions.terminating` (and `ready: false`, as Kubernetes does).
    pub fn terminating(mut self) -> Self {
        self.terminating = Some(true);
        self.ready = Some(false);
        self
    }

    /// `targetRef` to the Pod `name` (same namespace as the slice).
    pub fn pod(mut self, name: &str) -> Self {
        self.pod = Some(name.into());
        self
    }

    /// The endpoint's zone.
    pub fn zone(mut self, zone: &str) -> Self {
        self.zone = Some(zone.into());
        self
    }
}

impl EndpointSlice {
    /// An empty IPv4 slice of `service`.
    pub fn new(name: &str, namespace: &str, service: &str) -> Self {
        EndpointSlice {
            name: name.into(),
            namespace: namespace.into(),
            service: service.into(),
            ports: vec![],
            endpoints: vec![],
        }
    }

    /// Adds a port; `name` must equal the Service port's name (or be empty for an unnamed port).
    pub fn port(mut self, name: &str, port: u16) -> Self {
        self.ports
            .push(((!name.is_empty()).then(|| name.to_string()), port));
        self
    }

    /// Adds an endpoint.
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }
}

impl From<EndpointSlice> for Value {
    fn from(slice: EndpointSlice) -> Value {
        let ports: Vec<Value> = slice
            .ports
            .iter()
            .map(|(name, port)| match name {
                Some(name) => json!({ "name": name, "port": port, "protocol": "TCP" }),
                None => json!({ "port": port, "protocol": "TCP" }),
            })
            .collect();
        let endpoints: Vec<Value> = slice
            .endpoints
            .iter()
            .map(|e| {
                let mut conditions = Map::new();
                if let Some(ready) = e.ready {
                    conditions.insert("ready".into(), json!(ready));
                    conditions.insert("serving".into(), json!(ready));
                }
                if let Some(terminating) = e.terminating {
                    conditions.insert("terminating".into(), json!(terminating));
                }
                let mut endpoint = json!({ "addresses": [e.address], "conditions": conditions });
                if let Some(pod) = &e.pod {
                    endpoint["targetRef"] =
                        json!({ "kind": "Pod", "name": pod, "namespace": slice.namespace });
                }
                if let Some(zone) = &e.zone {
                    endpoint["zone"] = json!(zone);
                }
                endpoint
            })
            .collect();
        let mut labels = Map::new();
        labels.insert("kubernetes.io/service-name".into(), json!(slice.service));
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": metadata(&slice.name, &slice.namespace, &labels),
            "addressType": "IPv4",
            "ports": ports,
            "endpoints": endpoints,
        })
    }
}

// === Pod ===

/// core/v1 Pod (only what the controller reads: labels and IP).
#[derive(Debug, Clone)]
pub struct Pod {
    name: String,
    namespace: String,
    labels: Map<String, Value>,
    ip: Option<String>,
}

impl Pod {
    /// A pod without labels or IP.
    pub fn new(name: &str, namespace: &str) -> Self {
        Pod {
            name: name.into(),
            namespace: namespace.into(),
            labels: Map::new(),
            ip: None,
        }
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets `status.podIP`.
    pub fn ip(mut self, ip: impl ToString) -> Self {
        self.ip = Some(ip.to_string());
        self
    }
}

impl From<Pod> for Value {
    fn from(pod: Pod) -> Value {
        let mut value = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata(&pod.name, &pod.namespace, &pod.labels),
            "spec": { "containers": [{ "name": "app", "image": "example.invalid/app" }] },
        });
        if let Some(ip) = pod.ip {
            value["status"] = json!({ "phase": "Running", "podIP": ip, "podIPs": [{ "ip": ip }] });
        }
        value
    }
}

mod istio;
pub use istio::{Destination, DestinationRule, HttpRoute, Match, VirtualService};
