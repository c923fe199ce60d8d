//! HTTP side of the fake API server: URL routing as the real one does it
//! (`/api/v1/...`, `/apis/<group>/<version>/...`, namespaced or not, `/status`), lists,
//! newline-delimited watch streams, and `Status` errors.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::{
    ops::{self, Target},
    selector::{FieldSelector, LabelSelector},
    state::{ApiError, EventType, Filter, State, WatchStart},
};

/// Server-side watch timeout when the client sends none.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// Response body: a whole document or a watch stream.
pub type Body = BoxBody<Bytes, Infallible>;

/// State shared by every connection and the test controls.
#[derive(Debug)]
pub struct Shared {
    /// The objects.
    pub state: Mutex<State>,
    /// Bumped to end every open watch stream.
    pub closing: watch::Sender<u64>,
    /// While true, watch requests wait before answering.
    pub hold: watch::Sender<bool>,
}

impl Shared {
    /// Locks the state (a panicking test thread cannot leave it half-written: every
    /// mutation is one `commit`).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a URL names.
#[derive(Debug)]
struct Route {
    index: usize,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

/// Serves one request.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query().unwrap_or_default());
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(error(&ApiError::new(400, "BadRequest", e.to_string()))),
    };
    let route = match route(&shared.lock(), &path) {
        Ok(r) => r,
        Err(e) => return Ok(error(&e)),
    };
    let result = match (&method, &route.name) {
        (&Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            return Ok(watch_stream(shared, route, &query).await);
        }
        (&Method::GET, None) => {
            return Ok(list(&shared, &route, &query).unwrap_or_else(|e| error(&e)));
        }
        (&Method::POST, None) => parse_body(&body).and_then(|b| {
            ops::create(
                &mut shared.lock(),
                route.index,
                route.namespace.as_deref(),
                b,
                false,
            )
            .map(|o| (StatusCode::CREATED, o))
        }),
        (&Method::GET, Some(name)) => ops::get(&mut shared.lock(), target(&route, name)).map(ok),
        (&Method::PUT, Some(name)) => parse_body(&body).and_then(|b| {
            ops::replace(&mut shared.lock(), target(&route, name), b, route.status).map(ok)
        }),
        (&Method::PATCH, Some(name)) => patch(&shared, &route, name, &content_type, &body),
        (&Method::DELETE, Some(name)) => {
            ops::delete(&mut shared.lock(), target(&route, name)).map(ok)
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported here"),
        )),
    };
    let mut state = shared.lock();
    Ok(match result {
        Ok((code, object)) => {
            let def = state.table(route.index).def;
            json_response(code, &def.present(&object, &route.version, false))
        }
        Err(e) => error(&e),
    })
}

fn ok(object: Value) -> (StatusCode, Value) {
    (StatusCode::OK, object)
}

fn target<'a>(route: &'a Route, name: &'a str) -> Target<'a> {
    Target {
        index: route.index,
        namespace: route.namespace.as_deref(),
        name,
    }
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::new(400, "BadRequest", format!("body: {e}")))
}

fn patch(
    shared: &Shared,
    route: &Route,
    name: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(StatusCode, Value), ApiError> {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let upsert = match media {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => false,
        "application/apply-patch+yaml" => true,
        _ => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("the fake API server does not take {media:?} patches"),
            ));
        }
    };
    let patch = parse_body(body)?;
    ops::patch(
        &mut shared.lock(),
        target(route, name),
        &patch,
        route.status,
        upsert,
    )
    .map(ok)
}

fn list(
    shared: &Shared,
    route: &Route,
    query: &BTreeMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let filter = filter(route, query)?;
    let mut state = shared.lock();
    let (items, rv) = state.list(route.index, &filter);
    let def = state.table(route.index).def;
    let items: Vec<Value> = items
        .iter()
        .map(|o| def.present(o, &route.version, true))
        .collect();
    let body = json!({
        "kind": format!("{}List", def.kind),
        "apiVersion": def.api_version(&route.version),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    });
    Ok(json_response(StatusCode::OK, &body))
}

fn filter(route: &Route, query: &BTreeMap<String, String>) -> Result<Filter, ApiError> {
    let bad = |e: String| ApiError::new(400, "BadRequest", e);
    Ok(Filter {
        namespace: route.namespace.clone(),
        labels: LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
            .map_err(bad)?,
        fields: FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))
            .map_err(bad)?,
    })
}

/// A watch: replayed events, then live ones, one JSON document per line, until the
/// timeout, a test closes it, or the client goes away.
async fn watch_stream(
    shared: Arc<Shared>,
    route: Route,
    query: &BTreeMap<String, String>,
) -> Response<Body> {
    let filter = match filter(&route, query) {
        Ok(f) => f,
        Err(e) => return error(&e),
    };
    let _ = shared.hold.subscribe().wait_for(|held| !*held).await;
    let from = query
        .get("resourceVersion")
        .and_then(|v| v.parse::<u64>().ok());
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
    let (start, def, mut closing) = {
        let mut state = shared.lock();
        let start = state.watch(route.index, from);
        (
            start,
            state.table(route.index).def,
            shared.closing.subscribe(),
        )
    };
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
    tokio::spawn(async move {
        let line = |kind: &str, object: &Value| {
            let mut text = json!({"type": kind, "object": object}).to_string();
            text.push('\n');
            Ok(Frame::data(Bytes::from(text)))
        };
        let (replay, mut live) = match start {
            WatchStart::Gone(message) => {
                let status = ApiError::new(410, "Expired", message).status();
                let _ = tx.send(line("ERROR", &status)).await;
                return;
            }
            WatchStart::Events(replay, live) => (replay, live),
        };
        let send = |event: &super::state::Event| {
            filter.view(event).map(|(kind, object)| {
                let kind = match kind {
                    EventType::Added => "ADDED",
                    EventType::Modified => "MODIFIED",
                    EventType::Deleted => "DELETED",
                };
                line(kind, &def.present(&object, &route.version, false))
            })
        };
        for event in &replay {
            if let Some(frame) = send(event)
                && tx.send(frame).await.is_err()
            {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                event = live.recv() => match event {
                    // A stream closed by a test sends nothing after the close, even when
                    // the close has not been seen by this task yet.
                    Ok(_) if closing.has_changed().unwrap_or(true) => return,
                    Ok(event) => if let Some(frame) = send(&event)
                        && tx.send(frame).await.is_err() { return },
                    Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
                },
                _ = closing.changed() => return,
                () = &mut deadline => return,
                () = tx.closed() => return,
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(StreamBody::new(ReceiverStream::new(rx)).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

/// Resolves a URL path to a table, namespace, name and subresource.
fn route(state: &State, path: &str) -> Result<Route, ApiError> {
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found()),
    };
    let namespaced_plural = |p: &str| {
        state
            .index(group, p)
            .is_some_and(|i| state.def(i).namespaced)
    };
    let (namespace, plural, name, sub) = match rest {
        ["namespaces", ns, plural, tail @ ..] if namespaced_plural(plural) => {
            (Some(ns.to_string()), *plural, tail.first(), tail.get(1))
        }
        [plural, tail @ ..] => (None, *plural, tail.first(), tail.get(1)),
        _ => return Err(not_found()),
    };
    let index = state.served(group, version, plural)?;
    let def = state.def(index);
    if def.namespaced && namespace.is_none() && name.is_some() {
        return Err(not_found());
    }
    let status = match sub {
        None => false,
        Some(&"status") => true,
        Some(_) => return Err(not_found()),
    };
    Ok(Route {
        index,
        version: version.to_string(),
        namespace,
        name: name.map(|n| n.to_string()),
        status,
    })
}

fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `application/x-www-form-urlencoded` text.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_response(code: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

fn error(e: &ApiError) -> Response<Body> {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &e.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded() {
        let q = parse_query("watch=true&labelSelector=app.kubernetes.io%2Fname%3Dgw&x=a+b&bad=%zz");
        assert_eq!(q["labelSelector"], "app.kubernetes.io/name=gw");
        assert_eq!(q["x"], "a b");
        assert_eq!(q["bad"], "%zz");
    }
}
