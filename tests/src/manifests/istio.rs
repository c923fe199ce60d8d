//! networking.istio.io VirtualService and DestinationRule builders.

use serde_json::{Map, Value, json};

use super::metadata;

// === VirtualService ===

/// networking.istio.io/v1 VirtualService.
#[derive(Debug, Clone)]
pub struct VirtualService {
    name: String,
    namespace: String,
    hosts: Vec<String>,
    http: Vec<HttpRoute>,
}

impl VirtualService {
    /// A VirtualService without hosts or routes.
    pub fn new(name: &str, namespace: &str) -> Self {
        VirtualService {
            name: name.into(),
            namespace: namespace.into(),
            hosts: vec![],
            http: vec![],
        }
    }

    /// Adds a host (short name, FQDN, ...).
    pub fn host(mut self, host: &str) -> Self {
        self.hosts.push(host.into());
        self
    }

    /// Appends an HTTP route (first match wins).
    pub fn http(mut self, route: HttpRoute) -> Self {
        self.http.push(route);
        self
    }
}

impl From<VirtualService> for Value {
    fn from(vs: VirtualService) -> Value {
        let http: Vec<Value> = vs.http.into_iter().map(HttpRoute::into_value).collect();
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": metadata(&vs.name, &vs.namespace, &Map::new()),
            "spec": { "hosts": vs.hosts, "http": http },
        })
    }
}

/// One entry of a VirtualService's `http` list.
#[derive(Debug, Clone, Default)]
pub struct HttpRoute {
    name: Option<String>,
    matches: Vec<Match>,
    routes: Vec<Destination>,
    timeout: Option<String>,
    retries: Option<Value>,
}

impl HttpRoute {
    /// An empty route (no match = matches everything).
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the route.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a match condition (conditions are ORed; fields within one are ANDed).
    pub fn matching(mut self, m: Match) -> Self {
        self.matches.push(m);
        self
    }

    /// Adds a destination.
    pub fn to(mut self, destination: Destination) -> Self {
        self.routes.push(destination);
        self
    }

    /// Sets the route timeout (Istio duration, e.g. `"0.3s"`).
    pub fn timeout(mut self, timeout: &str) -> Self {
        self.timeout = Some(timeout.into());
        self
    }

    /// Sets the retry policy.
    pub fn retries(mut self, attempts: u32, retry_on: &str, per_try_timeout: Option<&str>) -> Self {
        let mut retries = json!({ "attempts": attempts, "retryOn": retry_on });
        if let Some(per_try) = per_try_timeout {
            retries["perTryTimeout"] = json!(per_try);
        }
        self.retries = Some(retries);
        self
    }

    fn into_value(self) -> Value {
        let mut route = Map::new();
        if let Some(name) = self.name {
            route.insert("name".into(), json!(name));
        }
        if !self.matches.is_empty() {
            let matches: Vec<Value> = self
                .matches
                .into_iter()
                .map(|m| Value::Object(m.0))
                .collect();
            route.insert("match".into(), json!(matches));
        }
        let routes: Vec<Value> = self
            .routes
            .into_iter()
            .map(Destination::into_value)
            .collect();
        route.insert("route".into(), json!(routes));
        if let Some(timeout) = self.timeout {
            route.insert("timeout".into(), json!(timeout));
        }
        if let Some(retries) = self.retries {
            route.insert("retries".into(), retries);
        }
        Value::Object(route)
    }
}

/// An `HTTPMatchRequest`.
#[derive(Debug, Clone, Default)]
pub struct Match(Map<String, Value>);

impl Match {
    /// An empty match.
    pub fn new() -> Self {
        Self::default()
    }

    /// `uri: {prefix}`.
    pub fn uri_prefix(mut self, prefix: &str) -> Self {
        self.0.insert("uri".into(), json!({ "prefix": prefix }));
        self
    }

    /// `uri: {exact}`.
    pub fn uri_exact(mut self, path: &str) -> Self {
        self.0.insert("uri".into(), json!({ "exact": path }));
        self
    }

    /// `uri: {regex}` (RE2, full match).
    pub fn uri_regex(mut self, regex: &str) -> Self {
        self.0.insert("uri".into(), json!({ "regex": regex }));
        self
    }

    /// `headers: {name: {exact: value}}`.
    pub fn header_exact(mut self, name: &str, value: &str) -> Self {
        let headers = self.0.entry("headers").or_insert_with(|| json!({}));
        headers[name] = json!({ "exact": value });
        self
    }

    /// `method: {exact}`.
    pub fn method(mut self, method: &str) -> Self {
        self.0.insert("method".into(), json!({ "exact": method }));
        self
    }
}

/// An `HTTPRouteDestination`.
#[derive(Debug, Clone)]
pub struct Destination {
    host: String,
    subset: Option<String>,
    port: Option<u16>,
    weight: Option<u32>,
}

impl Destination {
    /// A destination host (short name or FQDN).
    pub fn new(host: &str) -> Self {
        Destination {
            host: host.into(),
            subset: None,
            port: None,
            weight: None,
        }
    }

    /// A DestinationRule subset.
    pub fn subset(mut self, subset: &str) -> Self {
        self.subset = Some(subset.into());
        self
    }

    /// The destination port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The weight (percent).
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = Some(weight);
        self
    }

    fn into_value(self) -> Value {
        let mut destination = json!({ "host": self.host });
        if let Some(subset) = self.subset {
            destination["subset"] = json!(subset);
        }
        if let Some(port) = self.port {
            destination["port"] = json!({ "number": port });
        }
        let mut route = json!({ "destination": destination });
        if let Some(weight) = self.weight {
            route["weight"] = json!(weight);
        }
        route
    }
}

// === DestinationRule ===

/// networking.istio.io/v1 DestinationRule.
#[derive(Debug, Clone)]
pub struct DestinationRule {
    name: String,
    namespace: String,
    host: String,
    load_balancer: Option<String>,
    subsets: Vec<(String, Map<String, Value>)>,
}

impl DestinationRule {
    /// A rule for `host` without subsets.
    pub fn new(name: &str, namespace: &str, host: &str) -> Self {
        DestinationRule {
            name: name.into(),
            namespace: namespace.into(),
            host: host.into(),
            load_balancer: None,
            subsets: vec![],
        }
    }

    /// Adds a subset selecting pods with all of `labels`.
    pub fn subset(mut self, name: &str, labels: &[(&str, &str)]) -> Self {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.subsets.push((name.into(), labels));
        self
    }

    /// `trafficPolicy.loadBalancer.simple`.
    pub fn load_balancer(mut self, simple: &str) -> Self {
        self.load_balancer = Some(simple.into());
        self
    }
}

impl From<DestinationRule> for Value {
    fn from(dr: DestinationRule) -> Value {
        let mut spec = json!({ "host": dr.host });
        if let Some(lb) = dr.load_balancer {
            spec["trafficPolicy"] = json!({ "loadBalancer": { "simple": lb } });
        }
        if !dr.subsets.is_empty() {
            let subsets: Vec<Value> = dr
                .subsets
                .into_iter()
                .map(|(name, labels)| json!({ "name": name, "labels": labels }))
                .collect();
            spec["subsets"] = json!(subsets);
        }
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": metadata(&dr.name, &dr.namespace, &Map::new()),
            "spec": spec,
        })
    }
}
