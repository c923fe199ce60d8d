//! A fake Kubernetes API server for tests: real HTTP on 127.0.0.1, real API JSON, objects
//! in memory.
//!
//! It serves what the controller reads and writes (core/v1 namespaces, services, pods,
//! secrets, configmaps; EndpointSlices; Leases; and the Istio and Aeraki custom
//! resources) with the semantics clients depend on: lists carry a resourceVersion, one
//! counter orders every change, watches replay the changes after the resourceVersion they
//! start from (or answer 410 Gone when it was compacted away), label and field selectors
//! filter lists and watches (objects entering or leaving a filtered watch are ADDED or
//! DELETED), writes check resourceVersions and keep `status` behind the `/status`
//! subresource, and `metadata.generation` follows spec changes. Tests drive it through
//! [`FakeApi`]: change objects, uninstall or install a resource (a missing CRD answers
//! 404), close every watch (a watch restart), compact the history or answer the next
//! watch with 410 (a relist), hold watches, and count requests.

mod ops;
mod selector;
mod server;
mod state;

use std::{
    io,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::{net::TcpListener, sync::watch, task::JoinSet};

pub use selector::{FieldSelector, LabelSelector};
use server::Shared;
use state::State;

/// One resource the fake serves.
#[derive(Debug)]
pub struct ResourceDef {
    /// API group (empty for core).
    pub group: &'static str,
    /// Versions, preferred first.
    pub versions: &'static [&'static str],
    /// Plural (the URL segment).
    pub plural: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
}

impl ResourceDef {
    /// `apiVersion` for a version of this resource.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// Built-in kinds list their items without `apiVersion` and `kind`, as the real API
    /// server does (custom resources keep them).
    fn built_in(&self) -> bool {
        self.group.is_empty() || self.group.ends_with(".k8s.io")
    }

    /// The object as served under `version`.
    fn present(&self, object: &Value, version: &str, in_list: bool) -> Value {
        let mut o = object.clone();
        if let Value::Object(m) = &mut o {
            if in_list && self.built_in() {
                m.remove("apiVersion");
                m.remove("kind");
            } else {
                m.insert(
                    "apiVersion".into(),
                    Value::String(self.api_version(version)),
                );
                m.insert("kind".into(), Value::String(self.kind.into()));
            }
        }
        o
    }
}

const fn def(
    group: &'static str,
    versions: &'static [&'static str],
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> ResourceDef {
    ResourceDef {
        group,
        versions,
        plural,
        kind,
        namespaced,
    }
}

const ISTIO_VERSIONS: &[&str] = &["v1", "v1beta1", "v1alpha3"];

/// Every resource the fake serves.
pub const RESOURCES: &[ResourceDef] = &[
    def("", &["v1"], "namespaces", "Namespace", false),
    def("", &["v1"], "services", "Service", true),
    def("", &["v1"], "pods", "Pod", true),
    def("", &["v1"], "secrets", "Secret", true),
    def("", &["v1"], "configmaps", "ConfigMap", true),
    def(
        "discovery.k8s.io",
        &["v1"],
        "endpointslices",
        "EndpointSlice",
        true,
    ),
    def("coordination.k8s.io", &["v1"], "leases", "Lease", true),
    def(
        "networking.istio.io",
        ISTIO_VERSIONS,
        "virtualservices",
        "VirtualService",
        true,
    ),
    def(
        "networking.istio.io",
        ISTIO_VERSIONS,
        "destinationrules",
        "DestinationRule",
        true,
    ),
    def(
        "security.istio.io",
        &["v1", "v1beta1"],
        "authorizationpolicies",
        "AuthorizationPolicy",
        true,
    ),
    def(
        "metaprotocol.aeraki.io",
        &["v1alpha1"],
        "metarouters",
        "MetaRouter",
        true,
    ),
    def(
        "redis.aeraki.io",
        &["v1alpha1"],
        "redisservices",
        "RedisService",
        true,
    ),
    def(
        "redis.aeraki.io",
        &["v1alpha1"],
        "redisdestinations",
        "RedisDestination",
        true,
    ),
];

/// A running fake API server; stops when dropped.
#[derive(Debug)]
pub struct FakeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.server.abort();
        self.close_watches();
    }
}

impl FakeApi {
    /// Starts a server on a free port of 127.0.0.1 with every resource installed and no
    /// objects.
    pub async fn start() -> io::Result<FakeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(RESOURCES)),
            closing: watch::channel(0).0,
            hold: watch::channel(false).0,
        });
        let serving = shared.clone();
        let server = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let shared = serving.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| server::handle(shared.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(FakeApi {
            addr,
            shared,
            server,
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client talking to this server.
    pub fn client(&self) -> ::kube::Client {
        let uri = self.url().parse().unwrap_or_default();
        let config = ::kube::Config::new(uri);
        ::kube::Client::try_from(config)
            .unwrap_or_else(|e| panic!("a client for the fake API server: {e}"))
    }

    /// A kubeconfig whose current context points at this server.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{}\"}}\n\
             users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake, namespace: default}}\n\
             current-context: fake\n",
            self.url()
        )
    }

    /// Writes [`FakeApi::kubeconfig`] to `path` (for `KUBECONFIG=path`).
    pub fn write_kubeconfig(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    // === objects ===

    /// Creates or replaces an object, status included (tests stand in for kubelet and
    /// other status writers). Returns the stored object.
    pub fn apply(&self, object: Value) -> Result<Value, String> {
        let (index, namespace, name) = self.locate(&object)?;
        let mut state = self.shared.lock();
        let t = ops::Target {
            index,
            namespace: namespace.as_deref(),
            name: &name,
        };
        let mut body = object;
        if let Some(m) = body["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        let stored = if state
            .table(index)
            .objects
            .contains_key(&(namespace.clone().unwrap_or_default(), name.clone()))
        {
            let stored = ops::replace(&mut state, t, body.clone(), false).map_err(|e| e.message)?;
            if body.get("status") != stored.get("status") {
                ops::replace(&mut state, t, body, true).map_err(|e| e.message)?
            } else {
                stored
            }
        } else {
            ops::create(&mut state, index, namespace.as_deref(), body, true)
                .map_err(|e| e.message)?
        };
        Ok(stored)
    }

    /// Applies every document of a multi-document YAML text.
    pub fn apply_yaml(&self, text: &str) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for doc in serde_yaml_ng::Deserializer::from_str(text) {
            let value: Value = serde::Deserialize::deserialize(doc).map_err(|e| e.to_string())?;
            if !value.is_null() {
                out.push(self.apply(value)?);
            }
        }
        Ok(out)
    }

    /// The stored object, if any.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let object = serde_json::json!({"apiVersion": api_version, "kind": kind,
                                         "metadata": {"namespace": namespace, "name": name}});
        let (index, ns, name) = self.locate(&object).ok()?;
        let key = (ns.unwrap_or_default(), name);
        self.shared.lock().table(index).objects.get(&key).cloned()
    }

    /// Deletes an object; true when it existed.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> bool {
        let object = serde_json::json!({"apiVersion": api_version, "kind": kind,
                                         "metadata": {"namespace": namespace, "name": name}});
        let Ok((index, ns, name)) = self.locate(&object) else {
            return false;
        };
        let t = ops::Target {
            index,
            namespace: ns.as_deref(),
            name: &name,
        };
        ops::delete(&mut self.shared.lock(), t).is_ok()
    }

    /// Every stored object of every resource, as `kubectl get -o json` shows them (with
    /// `apiVersion` and `kind`, in the preferred version).
    pub fn all_objects(&self) -> Vec<Value> {
        let state = self.shared.lock();
        let mut out = Vec::new();
        for i in 0..RESOURCES.len() {
            out.extend(state.objects_of(i));
        }
        out
    }

    fn locate(&self, object: &Value) -> Result<(usize, Option<String>, String), String> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let state = self.shared.lock();
        let index = state
            .index_of_kind(group, kind)
            .ok_or_else(|| format!("the fake API server has no {api_version} {kind}"))?;
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or("metadata.name is missing")?
            .to_string();
        let namespace = state.def(index).namespaced.then(|| {
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
                .to_string()
        });
        Ok((index, namespace, name))
    }

    // === the API itself ===

    /// Uninstalls a resource (a CRD deleted): its objects are deleted, open watches
    /// close, and every request for it answers 404 until [`FakeApi::install_api`].
    pub fn remove_api(&self, group: &str, plural: &str) {
        self.serve_versions(group, plural, &[]);
    }

    /// Installs a resource in all its versions.
    pub fn install_api(&self, group: &str, plural: &str) {
        let versions = RESOURCES
            .iter()
            .find(|d| d.group == group && d.plural == plural)
            .map_or(&[][..], |d| d.versions);
        self.serve_versions(group, plural, versions);
    }

    /// Serves a resource in exactly `versions` (none: uninstalled, objects deleted).
    pub fn serve_versions(&self, group: &str, plural: &str, versions: &[&'static str]) {
        {
            let mut state = self.shared.lock();
            let Some(index) = state.index(group, plural) else {
                return;
            };
            if versions.is_empty() {
                let keys: Vec<_> = state.table(index).objects.keys().cloned().collect();
                for key in keys {
                    state.commit(index, key, None);
                }
            }
            state.table(index).served = versions.to_vec();
        }
        self.close_watches();
    }

    /// Ends every open watch stream (clients re-watch from their last resourceVersion).
    pub fn close_watches(&self) {
        self.shared.closing.send_modify(|epoch| *epoch += 1);
    }

    /// Forgets the event history: a watch from any earlier resourceVersion gets 410 Gone.
    pub fn compact(&self) {
        self.shared.lock().compact();
    }

    /// Answers the next watch of a resource with 410 Gone (an `ERROR` event with code
    /// 410, reason `Expired`), and closes the open watches so that it comes soon.
    pub fn gone_on_next_watch(&self, group: &str, plural: &str) {
        {
            let mut state = self.shared.lock();
            if let Some(index) = state.index(group, plural) {
                state.table(index).gone_next = true;
            }
        }
        self.close_watches();
    }

    /// While held, watch requests wait before answering (changes made meanwhile can only
    /// reach clients through the replay, or a relist).
    pub fn hold_watches(&self, hold: bool) {
        self.shared.hold.send_replace(hold);
    }

    /// Numbers of list and watch requests served for a resource.
    pub fn requests(&self, group: &str, plural: &str) -> (u64, u64) {
        let mut state = self.shared.lock();
        match state.index(group, plural) {
            Some(i) => {
                let t = state.table(i);
                (t.lists, t.watches)
            }
            None => (0, 0),
        }
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv()
    }
}

#[cfg(test)]
mod tests;
