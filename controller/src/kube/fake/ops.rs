//! Writes with the API server's bookkeeping: uid, creationTimestamp, generation (bumped
//! when anything but metadata and status changes), optimistic concurrency on
//! resourceVersion, and the status subresource (status writes change only `status`, other
//! writes never change it).

use serde_json::Value;

use super::state::{ApiError, State, merge_patch, spec_part};

/// Which object a request is about.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Table index.
    pub index: usize,
    /// Namespace (None for cluster-scoped resources).
    pub namespace: Option<&'a str>,
    /// Object name.
    pub name: &'a str,
}

impl Target<'_> {
    fn key(&self) -> (String, String) {
        (
            self.namespace.unwrap_or_default().to_string(),
            self.name.to_string(),
        )
    }
}

fn not_found(state: &mut State, t: &Target<'_>) -> ApiError {
    let def = state.table(t.index).def;
    let what = if def.group.is_empty() {
        def.plural.to_string()
    } else {
        format!("{}.{}", def.plural, def.group)
    };
    ApiError::new(404, "NotFound", format!("{what} \"{}\" not found", t.name))
}

/// Reads one object.
pub fn get(state: &mut State, t: Target<'_>) -> Result<Value, ApiError> {
    let key = t.key();
    match state.table(t.index).objects.get(&key) {
        Some(o) => Ok(o.clone()),
        None => Err(not_found(state, &t)),
    }
}

/// Creates an object; `keep_status` keeps a status given in the body (test controls
/// stand in for kubelet and other status writers).
pub fn create(
    state: &mut State,
    index: usize,
    namespace: Option<&str>,
    mut body: Value,
    keep_status: bool,
) -> Result<Value, ApiError> {
    let name = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "metadata.name: Required value",
        ));
    }
    if body
        .pointer("/metadata/resourceVersion")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApiError::new(
            422,
            "Invalid",
            "metadata.resourceVersion: Invalid value: must be empty on create",
        ));
    }
    let t = Target {
        index,
        namespace,
        name: &name,
    };
    if let Some(ns) = namespace
        && let Some(given) = body.pointer("/metadata/namespace").and_then(Value::as_str)
        && given != ns
    {
        return Err(ApiError::new(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if state.table(index).objects.contains_key(&t.key()) {
        let def = state.table(index).def;
        return Err(ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", def.plural),
        ));
    }
    if !keep_status && let Value::Object(m) = &mut body {
        m.remove("status");
    }
    if is_service(state, index) {
        allocate_cluster_ip(state, &mut body);
    }
    let uid = state.uid();
    let meta = &mut body["metadata"];
    meta["uid"] = Value::String(uid);
    meta["creationTimestamp"] = Value::String(now());
    meta["generation"] = Value::from(1);
    stamp(state, &t, &mut body);
    state
        .commit(index, t.key(), Some(body))
        .ok_or_else(|| ApiError::new(500, "InternalError", "create lost its object"))
}

/// Replaces an object (or only its status). A resourceVersion in the body must be the
/// current one.
pub fn replace(
    state: &mut State,
    t: Target<'_>,
    body: Value,
    status: bool,
) -> Result<Value, ApiError> {
    let old = get(state, t)?;
    let given = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str);
    let current = old
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str);
    if given.is_some_and(|g| Some(g) != current) {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                state.table(t.index).def.plural,
                t.name
            ),
        ));
    }
    write(state, t, old, body, status)
}

/// Applies a JSON merge patch (strategic merge and server-side apply patches are read
/// the same way, which is what they amount to for the fields the controller writes).
/// `upsert` creates a missing object (server-side apply does).
pub fn patch(
    state: &mut State,
    t: Target<'_>,
    patch: &Value,
    status: bool,
    upsert: bool,
) -> Result<Value, ApiError> {
    let old = match get(state, t) {
        Ok(o) => o,
        Err(e) if upsert && e.code == 404 => {
            let mut body = patch.clone();
            body["metadata"]["name"] = Value::String(t.name.to_string());
            if let Value::Object(m) = &mut body["metadata"] {
                m.remove("resourceVersion");
            }
            return create(state, t.index, t.namespace, body, false);
        }
        Err(e) => return Err(e),
    };
    let mut new = old.clone();
    merge_patch(&mut new, patch);
    if let Some(rv) = patch
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        && Some(rv)
            != old
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            "the object has been modified",
        ));
    }
    write(state, t, old, new, status)
}

/// Deletes an object and returns its last state.
pub fn delete(state: &mut State, t: Target<'_>) -> Result<Value, ApiError> {
    get(state, t)?;
    state
        .commit(t.index, t.key(), None)
        .ok_or_else(|| not_found(state, &t))
}

/// Stores `new` over `old` with the server's bookkeeping.
fn write(
    state: &mut State,
    t: Target<'_>,
    old: Value,
    mut new: Value,
    status: bool,
) -> Result<Value, ApiError> {
    if status {
        let mut kept = old.clone();
        match new.get("status") {
            Some(s) => kept["status"] = s.clone(),
            None => drop(kept.as_object_mut().and_then(|m| m.remove("status"))),
        }
        new = kept;
    } else {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => drop(new.as_object_mut().and_then(|m| m.remove("status"))),
        }
        for field in ["uid", "creationTimestamp"] {
            if let Some(v) = old["metadata"].get(field) {
                new["metadata"][field] = v.clone();
            }
        }
        // A Service's ClusterIP is immutable; an update that leaves it out keeps it.
        if is_service(state, t.index) && new.pointer("/spec/clusterIP").is_none_or(|ip| ip == "") {
            for field in ["clusterIP", "clusterIPs"] {
                if let Some(v) = old["spec"].get(field) {
                    new["spec"][field] = v.clone();
                }
            }
        }
    }
    let generation = old
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let bump = i64::from(spec_part(&old) != spec_part(&new));
    new["metadata"]["generation"] = Value::from(generation + bump);
    stamp(state, &t, &mut new);
    state
        .commit(t.index, t.key(), Some(new))
        .ok_or_else(|| ApiError::new(500, "InternalError", "write lost its object"))
}

fn is_service(state: &mut State, index: usize) -> bool {
    let def = state.table(index).def;
    def.group.is_empty() && def.kind == "Service"
}

/// Gives a new Service a ClusterIP, as the API server does, unless it is headless
/// (`None`), an ExternalName, or names its own.
fn allocate_cluster_ip(state: &mut State, service: &mut Value) {
    let external = service.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
    let given = service
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if external {
        return;
    }
    if given.is_empty() {
        let ip = state.cluster_ip();
        service["spec"]["clusterIP"] = Value::String(ip.clone());
        service["spec"]["clusterIPs"] = serde_json::json!([ip]);
    } else if service.pointer("/spec/clusterIPs").is_none() {
        let given = given.to_string();
        service["spec"]["clusterIPs"] = serde_json::json!([given]);
    }
}

/// Sets the fields every stored object has: apiVersion, kind, name, namespace; and, as
/// the API server does for Secrets, moves `stringData` into `data` (base64).
fn stamp(state: &mut State, t: &Target<'_>, object: &mut Value) {
    let def = state.table(t.index).def;
    if def.group.is_empty()
        && def.kind == "Secret"
        && let Some(Value::Object(plain)) =
            object.as_object_mut().and_then(|m| m.remove("stringData"))
    {
        for (k, v) in plain {
            let bytes = k8s_openapi::ByteString(v.as_str().unwrap_or_default().as_bytes().to_vec());
            object["data"][k] = serde_json::to_value(bytes).unwrap_or_default();
        }
    }
    object["apiVersion"] = Value::String(def.api_version(def.versions[0]));
    object["kind"] = Value::String(def.kind.to_string());
    object["metadata"]["name"] = Value::String(t.name.to_string());
    match t.namespace {
        Some(ns) => object["metadata"]["namespace"] = Value::String(ns.to_string()),
        None => drop(
            object["metadata"]
                .as_object_mut()
                .and_then(|m| m.remove("namespace")),
        ),
    }
}

/// The current time as the API server writes timestamps.
fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
