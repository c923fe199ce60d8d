//! HTTP forwarding: route, pick a cluster and an endpoint, send with retries and
//! timeouts, stream the response back.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::Either;
use http::header::{CONNECTION, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri, Version};
use http_body::Body;
use hyper::body::Incoming;
use hyper::client::conn::http1;

use super::HttpListener;
use super::attempts::{self, Plan, Transport, TryError};
use super::body::{ReplayBody, RequestBody, ResponseBody};
use super::exchange::{EndpointActive, Exchange};
use super::local_reply::{ResponseFlags, reply};
use super::retry::{self, RetryActive, TryFailure};
use crate::cluster::pool::Conn;
use crate::cluster::{ClusterState, Endpoint, Snapshot, lb};
use crate::model::cluster::Cluster;
use crate::model::route::{PathMatch, RetryPolicy, Route};
use crate::policy::chain::{Check, Pending};
use crate::policy::reject::{Reject, RejectKind};
use crate::policy::request::{Request as PolicyRequest, Source};
use crate::router::{self, RequestView};
use crate::telemetry::metrics::RequestProtocol;
use crate::telemetry::record as telemetry;
use crate::telemetry::trace::TRACEPARENT;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// What the proxy knows about a downstream connection, computed once per connection.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// Its IP as an `x-forwarded-for` value.
    pub forwarded_for: Option<HeaderValue>,
}

impl Peer {
    /// Describes a newly accepted connection.
    pub fn new(addr: SocketAddr) -> Self {
        Peer {
            addr,
            forwarded_for: HeaderValue::from_str(&addr.ip().to_string()).ok(),
        }
    }
}

/// The hyper service function of an HTTP listener.
pub fn handle(l: Arc<HttpListener>, peer: Peer, req: Request<Incoming>) -> Handle {
    Handle(HandleState::Start(Some((l, peer, req))))
}

/// The future of one proxied request. hyper (and any service wrapper) moves it by value
/// several times before its first poll; so it holds only its arguments until then, and
/// the proxy's state (kilobytes) goes into one box, which stays put. Copying that state
/// around was measured at ~1.5 us per request (memmove in perf samples).
pub struct Handle(HandleState);

type ProxyFuture = Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>;

enum HandleState {
    Start(Option<(Arc<HttpListener>, Peer, Request<Incoming>)>),
    Running(ProxyFuture),
}

impl Future for Handle {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match &mut self.0 {
                HandleState::Start(args) => {
                    let Some((l, peer, req)) = args.take() else {
                        // Never happens: the state becomes `Running` right away.
                        return Poll::Pending;
                    };
                    self.0 = HandleState::Running(Box::pin(proxy(l, peer, req)));
                }
                HandleState::Running(f) => return f.as_mut().poll(cx).map(Ok),
            }
        }
    }
}

async fn proxy(l: Arc<HttpListener>, peer: Peer, req: Request<Incoming>) -> Response<ResponseBody> {
    let start = Instant::now();
    // The request keeps this snapshot (and so its routes, clusters and endpoints) until
    // its response is done, whatever pushes happen meanwhile.
    let snap = l.shared.snapshot.load_full();
    // Routing is synchronous and kept out of this async fn: the locals of an async fn
    // stay in its state until their scope ends, even once moved, and this state is moved
    // by value on every request.
    let (mut attempts, pending) = match prepare(l, peer, req, &snap, start) {
        Ok(a) => a,
        Err(local) => return local,
    };
    // A filter's verdict still to wait for (none unless a filter waits).
    if let Some(pending) = pending
        && let Err(reject) = pending.await
    {
        return reply(attempts.ex, &reject);
    }
    match attempts.run().await {
        Ok((ep, (resp, pooled))) => forward_response(attempts.ex, ep, resp, pooled),
        Err(reject) => reply(attempts.ex, &reject),
    }
}

/// Routes the request and builds its upstream head, or says which local reply it gets.
fn prepare(
    l: Arc<HttpListener>,
    peer: Peer,
    req: Request<Incoming>,
    snap: &Arc<Snapshot>,
    start: Instant,
) -> Result<(Attempts<'_>, Option<Pending>), Response<ResponseBody>> {
    let (mut parts, body) = req.into_parts();
    let grpc = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let request_id = match parts.headers.get(&X_REQUEST_ID) {
        Some(v) => v.clone(),
        None => {
            let v = new_request_id();
            parts.headers.insert(X_REQUEST_ID.clone(), v.clone());
            v
        }
    };
    let mut ex = Exchange::new(l.clone(), snap.clone(), start, &parts, request_id, grpc);
    ex.source = telemetry::source_of(peer.addr, snap);
    ex.span = l
        .shared
        .tracer
        .start(parts.headers.get(TRACEPARENT).map(HeaderValue::as_bytes))
        .map(Box::new);

    let Some(rc) = snap.routes.get(&l.route_config) else {
        return Err(reply(ex, &Reject::of(RejectKind::NoRoute)));
    };
    let authority: HeaderValue = match (parts.uri.authority(), parts.headers.get(HOST)) {
        (Some(a), _) => {
            HeaderValue::from_str(a.as_str()).unwrap_or_else(|_| HeaderValue::from_static(""))
        }
        (None, Some(h)) => h.clone(),
        (None, None) => HeaderValue::from_static(""),
    };
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let view = RequestView {
        method: &parts.method,
        authority: authority.to_str().unwrap_or(""),
        path,
        query,
        path_and_query,
        headers: &parts.headers,
    };
    let route = router::select(rc, &view);
    // The listener's filters run before the router answers "no route", as in Envoy;
    // without filters this is one branch.
    let pending = if l.chain.is_empty() {
        None
    } else {
        // Who the caller is, from the pod table of this request's snapshot.
        let source = Source::resolved(peer.addr, &snap);
        let protocol = if grpc {
            RequestProtocol::Grpc
        } else {
            RequestProtocol::Http
        };
        let req = PolicyRequest {
            protocol,
            source: &source,
            attrs: &view,
        };
        match l
            .chain
            .check(&req, route.map(|r| &r.action.policy), &mut ex.flags)
        {
            Check::Done(Ok(())) => None,
            Check::Done(Err(reject)) => return Err(reply(ex, &reject)),
            Check::Wait(pending) => Some(pending),
        }
    };
    let Some(route) = route else {
        return Err(reply(ex, &Reject::of(RejectKind::NoRoute)));
    };
    ex.route = Some(route.name.clone());
    let action = &route.action;
    let hash_key = crate::policy::hash::key(&action.policy.hash, &view, &Source::new(peer.addr));
    let cluster_name = router::pick_cluster(&action.target, &mut rand::rng());
    let mirrors = crate::policy::mirror::sample(&action.policy.mirrors, &mut rand::rng());
    ex.cluster = Some(cluster_name.clone());
    let Some(cluster) = snap.clusters.get(&**cluster_name) else {
        return Err(reply(ex, &Reject::of(RejectKind::NoCluster)));
    };
    let Some(active) = attempts::admit_request(cluster) else {
        return Err(reply(ex, &Reject::of(RejectKind::Overflow)));
    };
    ex.cluster_active = Some(active);
    if cluster.healthy.is_empty() {
        return Err(reply(ex, &Reject::of(RejectKind::NoHealthyUpstream)));
    }

    // The upstream request head, built once and cloned per try.
    strip_hop_by_hop(&mut parts.headers);
    if !parts.headers.contains_key(&X_FORWARDED_FOR)
        && let Some(v) = peer.forwarded_for
    {
        parts.headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    // The upstream continues the trace under the gateway's span.
    if let Some(span) = &ex.span
        && let Ok(v) = HeaderValue::from_str(&span.traceparent())
    {
        parts.headers.insert(TRACEPARENT, v);
    }
    if !parts.headers.contains_key(&X_FORWARDED_PROTO) {
        parts
            .headers
            .insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    let host = action.host_rewrite.clone().unwrap_or(authority);
    let pq = rewrite_path(route, parts.uri.path_and_query());
    let uri = upstream_uri(cluster.config.http2, &host, pq, &parts.uri);
    let shadow_host = (!mirrors.is_empty()).then(|| host.clone());
    if cluster.config.http2 {
        parts.headers.remove(HOST);
    } else if !host.is_empty() {
        parts.headers.insert(HOST, host);
    }

    let body_kind = if body.is_end_stream() {
        BodyKind::Empty
    } else if action.policy.retry.is_some() || !mirrors.is_empty() {
        BodyKind::Replay(ReplayBody::new(body, ex.bytes_in_counter()))
    } else {
        BodyKind::Stream(Some(body))
    };
    if let Some(host) = &shadow_host {
        let copy = super::shadow::Copy {
            parts: &parts,
            host,
            uri: &uri,
        };
        let tees = || match &body_kind {
            BodyKind::Replay(r) => Some(r.tee()),
            BodyKind::Empty | BodyKind::Stream(_) => None,
        };
        super::shadow::launch(snap, &l.shared.metrics, mirrors, &copy, tees);
    }
    // `run` borrows the attempts rather than consuming them: an async fn keeps its
    // by-value arguments in its state besides their moved copies.
    Ok((
        Attempts {
            ex,
            cluster,
            route,
            uri,
            parts,
            body: body_kind,
            start,
            ep: None,
            resent_stale: false,
            hash_key,
        },
        pending,
    ))
}

/// The upstream answer of a try: the response, and its HTTP/1.1 connection when it can
/// be pooled again.
type Answer = (Response<Incoming>, Option<http1::SendRequest<RequestBody>>);

enum BodyKind {
    Empty,
    Stream(Option<Incoming>),
    Replay(ReplayBody),
}

struct Attempts<'a> {
    ex: Exchange,
    cluster: &'a Arc<ClusterState>,
    route: &'a Route,
    uri: Uri,
    parts: http::request::Parts,
    body: BodyKind,
    start: Instant,
    /// The endpoint of the last try.
    ep: Option<Arc<Endpoint>>,
    /// Whether the request was already sent again after dying on a stale connection.
    resent_stale: bool,
    /// The consistent-hash key, when the route hashes.
    hash_key: Option<u64>,
}

impl Attempts<'_> {
    /// Tries the request (see `attempts::run`); the response to forward, or the local
    /// reply's refusal.
    async fn run(&mut self) -> Result<(Arc<Endpoint>, Answer), Reject> {
        let action = &self.route.action;
        let plan = Plan {
            retry: action.policy.retry.as_ref(),
            deadline: action.policy.timeout.map(|t| self.start + t),
        };
        let tries = attempts::run(self, plan).await;
        let answer = tries.result?;
        if tries.retriable_answer && tries.retries > 0 {
            self.ex.flags |= ResponseFlags::URX;
        }
        // An answer comes from a picked endpoint; never `None` here.
        let ep = self.ep.clone().ok_or(Reject::of(RejectKind::Internal))?;
        Ok((ep, answer))
    }

    /// One send on a connection to `ep`: a pooled one unless `fresh`. On failure, says
    /// whether the request died on a reused HTTP/1.1 connection.
    async fn send_once(
        &mut self,
        ep: &Arc<Endpoint>,
        last_try: bool,
        fresh: bool,
    ) -> Result<Answer, (TryFailure, bool)> {
        let cfg = &self.cluster.config;
        let checkout = if fresh {
            ep.pool.checkout_fresh(cfg.connect_timeout).await
        } else {
            ep.pool.checkout(cfg.connect_timeout).await
        };
        let (conn, reused) = checkout.map_err(|e| {
            tracing::debug!(error = %e, "upstream connect failed");
            (TryFailure::Connect, false)
        })?;
        let stale_risk = reused && matches!(conn, Conn::H1(_)) && self.resendable();
        let req = self.request(last_try && !stale_risk);
        send(ep, cfg, conn, reused, req)
            .await
            .map_err(|f| (f, stale_risk))
    }

    /// Whether the request may be sent again after an upstream connection died under it.
    fn resendable(&self) -> bool {
        let idempotent = matches!(
            self.parts.method,
            http::Method::GET
                | http::Method::HEAD
                | http::Method::OPTIONS
                | http::Method::PUT
                | http::Method::DELETE
        );
        idempotent && matches!(self.body, BodyKind::Empty) && !self.parts.headers.is_empty()
    }

    /// The request for one try. Only the last try may consume the head and the body.
    fn request(&mut self, last_try: bool) -> Request<RequestBody> {
        let body = match &mut self.body {
            BodyKind::Empty => RequestBody::Empty,
            BodyKind::Stream(b) => match b.take() {
                Some(b) => RequestBody::Stream(b, self.ex.bytes_in_counter()),
                None => RequestBody::Empty,
            },
            BodyKind::Replay(r) => RequestBody::Replay(r.next_try()),
        };
        let mut req = Request::new(body);
        *req.method_mut() = self.parts.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = if self.cluster.config.http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        *req.headers_mut() = if last_try {
            std::mem::take(&mut self.parts.headers)
        } else {
            self.parts.headers.clone()
        };
        req
    }
}

impl Transport for Attempts<'_> {
    type Answer = Answer;

    async fn try_once(&mut self, avoid: &[SocketAddr], last: bool) -> Result<Answer, TryError> {
        self.ep = None;
        let zone = &self.ex.listener.shared.zone;
        let Some(ep) = lb::pick(self.cluster, avoid, self.hash_key, zone, &mut rand::rng()) else {
            return Err(TryError::Final(Reject::of(RejectKind::NoHealthyUpstream)));
        };
        self.ex.upstream = Some(ep.addr);
        self.ex.destination = telemetry::destination_of(&ep);
        self.ex.endpoint_active = Some(EndpointActive::new(ep.clone()));
        self.ep = Some(ep.clone());
        let mut res = self.send_once(&ep, last, false).await;
        // An idempotent request that died on a reused HTTP/1.1 connection (closed by the
        // peer while idle, a race no pool can rule out) is sent once more on a new
        // connection, outside the retry policy, as browsers and HTTP clients do.
        if let Err((TryFailure::Reset, true)) = res
            && !self.resent_stale
            && self.resendable()
        {
            self.resent_stale = true;
            res = self.send_once(&ep, last, true).await;
        }
        res.map_err(|(failure, _)| {
            let kind = match failure {
                TryFailure::Connect => RejectKind::ConnectFailure,
                TryFailure::PerTryTimeout => RejectKind::Timeout,
                TryFailure::Reset | TryFailure::RefusedStream => RejectKind::UpstreamReset,
            };
            TryError::Failed(failure, Reject::of(kind))
        })
    }

    fn endpoint(&self) -> Option<&Arc<Endpoint>> {
        self.ep.as_ref()
    }

    fn upstream(&self) -> Option<SocketAddr> {
        self.ep.as_ref().map(|ep| ep.addr)
    }

    fn status(&self, (resp, _): &Answer) -> u16 {
        attempts::answer_status(resp.status().as_u16(), resp.headers())
    }

    fn cluster(&self) -> Option<&Arc<ClusterState>> {
        Some(self.cluster)
    }

    fn retries_answer(&self, policy: &RetryPolicy, (resp, _): &Answer) -> bool {
        retry::retries_response(policy, resp.status().as_u16(), resp.headers())
    }

    /// The body must be replayable, and the cluster's retry budget must allow it.
    fn admit_retry(&mut self) -> Option<RetryActive> {
        let replayable = match &self.body {
            BodyKind::Empty => true,
            BodyKind::Stream(_) => false,
            BodyKind::Replay(r) => r.can_replay(),
        };
        if !replayable {
            return None;
        }
        RetryActive::admit(self.cluster, &self.ex.listener.shared.metrics)
    }

    fn timed_out(&self, _per_try: bool) -> Reject {
        Reject::of(RejectKind::Timeout)
    }
}

/// Sends one try on a pooled connection. A request that never left on a reused
/// connection (closed by the peer while idle) is sent again on a fresh one.
///
/// Not an async fn: the request goes to the connection before the returned future
/// exists, so that future (part of every request's state, moved by value) holds no copy
/// of it. The resend path is boxed for the same reason.
fn send<'a>(
    ep: &'a Arc<Endpoint>,
    c: &'a Cluster,
    conn: Conn,
    reused: bool,
    req: Request<RequestBody>,
) -> impl Future<
    Output = Result<(Response<Incoming>, Option<http1::SendRequest<RequestBody>>), TryFailure>,
> + 'a {
    match conn {
        Conn::H1(mut s) => {
            let sent = s.try_send_request(req);
            Either::Left(async move {
                let unsent = match sent.await {
                    Ok(resp) => return Ok((resp, Some(s))),
                    Err(mut e) => match e.take_message() {
                        Some(req) if reused => req,
                        _ => return Err(classify(e.error())),
                    },
                };
                Box::pin(resend_fresh(ep, c, unsent)).await
            })
        }
        Conn::H2(mut s) => {
            let sent = s.try_send_request(req);
            Either::Right(async move {
                let unsent = match sent.await {
                    Ok(resp) => return Ok((resp, None)),
                    Err(mut e) => {
                        if s.is_closed() {
                            ep.pool.reset_shared();
                        }
                        match e.take_message() {
                            Some(req) if reused => req,
                            _ => return Err(classify(e.error())),
                        }
                    }
                };
                Box::pin(resend_fresh(ep, c, unsent)).await
            })
        }
    }
}

/// Sends a request that never left again, on a new connection of the same protocol.
async fn resend_fresh(
    ep: &Arc<Endpoint>,
    c: &Cluster,
    req: Request<RequestBody>,
) -> Result<(Response<Incoming>, Option<http1::SendRequest<RequestBody>>), TryFailure> {
    let (conn, _) = ep
        .pool
        .checkout_fresh(c.connect_timeout)
        .await
        .map_err(|_| TryFailure::Connect)?;
    match conn {
        Conn::H1(mut s) => {
            let resp = s.send_request(req).await.map_err(|e| classify(&e))?;
            Ok((resp, Some(s)))
        }
        Conn::H2(mut s) => s
            .send_request(req)
            .await
            .map(|r| (r, None))
            .map_err(|e| classify(&e)),
    }
}

fn classify(e: &hyper::Error) -> TryFailure {
    tracing::debug!(error = ?e, "upstream request failed");
    TryFailure::of_http(e)
}

fn forward_response(
    mut ex: Exchange,
    ep: Arc<Endpoint>,
    resp: Response<Incoming>,
    pooled: Option<http1::SendRequest<RequestBody>>,
) -> Response<ResponseBody> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    ex.status = parts.status.as_u16();
    if ex.grpc {
        ex.observe_grpc_status(&parts.headers);
    }
    ex.pool_return = pooled.map(|s| (ep, s));
    if body.is_end_stream() {
        ex.upstream_complete();
    }
    parts.version = Version::HTTP_11;
    Response::from_parts(parts, ResponseBody::Upstream(body, ex))
}

/// Removes connection-specific headers (RFC 9110 §7.6.1); `te: trailers` stays, gRPC
/// needs it.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    // One pass over the names finds which are present: most messages carry none of
    // them, or only `connection: keep-alive`, and a lookup per candidate name costs a
    // hash each (measured: ~1,200 instructions per message before).
    let mut found = 0u8;
    for name in h.keys() {
        found |= hop_by_hop_bit(name);
    }
    if found == 0 {
        return;
    }
    if found & HOP_CONNECTION != 0 {
        for conn in h.get_all(CONNECTION) {
            let Ok(list) = conn.to_str() else { continue };
            for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                // A `keep-alive` header, if any, was seen by the scan above.
                if !name.eq_ignore_ascii_case("keep-alive")
                    && !name.eq_ignore_ascii_case("te")
                    && !name.eq_ignore_ascii_case("close")
                {
                    found |= HOP_LISTED;
                }
            }
        }
    }
    if found & HOP_LISTED != 0 {
        // Rare: `connection` names other headers; look them up by name.
        let listed: Vec<HeaderName> = h
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case("te"))
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        for n in listed {
            h.remove(n);
        }
    }
    if found & HOP_CONNECTION != 0 {
        h.remove(CONNECTION);
    }
    if found & HOP_KEEP_ALIVE != 0 {
        h.remove(&KEEP_ALIVE);
    }
    if found & HOP_PROXY_CONNECTION != 0 {
        h.remove(&PROXY_CONNECTION);
    }
    if found & HOP_TRANSFER_ENCODING != 0 {
        h.remove(TRANSFER_ENCODING);
    }
    if found & HOP_UPGRADE != 0 {
        h.remove(UPGRADE);
    }
    if found & HOP_TRAILER != 0 {
        h.remove(TRAILER);
    }
    if found & HOP_TE != 0
        && h.get(TE)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        h.remove(TE);
    }
}

const HOP_CONNECTION: u8 = 1;
const HOP_KEEP_ALIVE: u8 = 1 << 1;
const HOP_PROXY_CONNECTION: u8 = 1 << 2;
const HOP_TRANSFER_ENCODING: u8 = 1 << 3;
const HOP_UPGRADE: u8 = 1 << 4;
const HOP_TRAILER: u8 = 1 << 5;
const HOP_TE: u8 = 1 << 6;
/// `connection` lists a header other than `keep-alive`, `te` or `close`.
const HOP_LISTED: u8 = 1 << 7;

fn hop_by_hop_bit(name: &HeaderName) -> u8 {
    // Dispatch on the length first: most names are ruled out by one comparison.
    let s = name.as_str();
    match s.len() {
        2 if s == "te" => HOP_TE,
        7 if s == "upgrade" => HOP_UPGRADE,
        7 if s == "trailer" => HOP_TRAILER,
        10 if s == "connection" => HOP_CONNECTION,
        10 if s == "keep-alive" => HOP_KEEP_ALIVE,
        16 if s == "proxy-connection" => HOP_PROXY_CONNECTION,
        17 if s == "transfer-encoding" => HOP_TRANSFER_ENCODING,
        _ => 0,
    }
}

/// Applies the route's `prefix_rewrite` to the path (the query is kept).
fn rewrite_path(route: &Route, pq: Option<&PathAndQuery>) -> Option<PathAndQuery> {
    let rw = route.action.prefix_rewrite.as_deref()?;
    let full = pq.map_or("/", |p| p.as_str());
    let (path, query) = match full.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (full, None),
    };
    let rest = match &route.matcher.path {
        PathMatch::Prefix { value, .. } => path.get(value.len()..).unwrap_or(""),
        PathMatch::Exact { .. } => "",
        PathMatch::Regex(_) => return None,
    };
    let mut out = String::with_capacity(rw.len() + rest.len() + query.map_or(0, |q| q.len() + 1));
    out.push_str(rw);
    out.push_str(rest);
    if out.is_empty() {
        out.push('/');
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    PathAndQuery::try_from(out).ok()
}

/// Origin-form for HTTP/1.1, absolute form (which becomes `:authority`) for HTTP/2.
fn upstream_uri(
    http2: bool,
    host: &HeaderValue,
    rewritten: Option<PathAndQuery>,
    orig: &Uri,
) -> Uri {
    let pq = rewritten
        .or_else(|| orig.path_and_query().cloned())
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(pq);
    if http2 {
        let authority = Authority::try_from(host.as_bytes())
            .ok()
            .or_else(|| orig.authority().cloned());
        if let Some(a) = authority {
            parts.scheme = Some(Scheme::HTTP);
            parts.authority = Some(a);
        }
    }
    Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
}

/// A random UUID-shaped request id, formatted without intermediate strings.
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n: u128 = rand::random();
    let mut buf = [0u8; 36];
    for i in (0..36).rev() {
        if matches!(i, 8 | 13 | 18 | 23) {
            buf[i] = b'-';
        } else {
            buf[i] = HEX[(n & 0xf) as usize];
            n >>= 4;
        }
    }
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[cfg(test)]
mod unit_tests {
    use super::*;
    use crate::model::route::RouteConfig;
    use crate::testing::{action_mut, prefix_route, route_config};

    #[test]
    fn hop_by_hop_headers_go_te_trailers_stays() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, "keep-alive, x-private".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert(TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert(TE, "trailers".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, vec!["te", "x-keep"]);
        let mut h = HeaderMap::new();
        h.insert(TE, "gzip".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn every_connection_header_value_names_hop_by_hop_headers() {
        let mut h = HeaderMap::new();
        h.append(CONNECTION, "Keep-Alive".parse().unwrap());
        h.append(CONNECTION, "X-Private-A, close".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-private-a", "1".parse().unwrap());
        h.insert("proxy-connection", "keep-alive".parse().unwrap());
        h.insert(UPGRADE, "h2c".parse().unwrap());
        h.insert(TRAILER, "x-t".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-keep"]);
        // Nothing hop-by-hop: nothing changes.
        let mut h = HeaderMap::new();
        h.insert(HOST, "a".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        let before = h.clone();
        strip_hop_by_hop(&mut h);
        assert_eq!(h, before);
    }

    #[test]
    fn prefix_rewrite_keeps_the_rest_and_the_query() {
        let mut r = prefix_route("r", "/api/", "c");
        action_mut(&mut r).prefix_rewrite = "/".into();
        let rc = RouteConfig::try_from(&route_config("rc", vec![r])).unwrap();
        let route = &rc.virtual_hosts[0].routes[0];
        let pq = PathAndQuery::from_static("/api/users/1?x=y");
        assert_eq!(
            rewrite_path(route, Some(&pq)).unwrap().as_str(),
            "/users/1?x=y"
        );
    }

    #[test]
    fn request_ids_look_like_uuids() {
        let id = new_request_id();
        let s = id.to_str().unwrap();
        assert_eq!(s.len(), 36);
        assert_eq!(s.matches('-').count(), 4);
        assert_ne!(new_request_id(), id);
    }

    #[test]
    fn upstream_uri_is_absolute_only_for_http2() {
        let orig: Uri = "/a?b".parse().unwrap();
        let host = HeaderValue::from_static("svc:80");
        assert_eq!(upstream_uri(false, &host, None, &orig).to_string(), "/a?b");
        assert_eq!(
            upstream_uri(true, &host, None, &orig).to_string(),
            "http://svc:80/a?b"
        );
    }
}
