//! Test support: an in-process ADS server the test drives by hand, Envoy resource
//! builders, and a configurable hyper backend.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use corridor_proto::envoy::config::cluster::v3 as cl;
use corridor_proto::envoy::config::core::v3 as core;
use corridor_proto::envoy::config::endpoint::v3 as ep;
use corridor_proto::envoy::config::listener::v3 as lis;
use corridor_proto::envoy::config::route::v3 as rt;
use corridor_proto::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use corridor_proto::envoy::extensions::upstreams::http::v3 as up;
use corridor_proto::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use corridor_proto::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource,
};
use corridor_proto::google::protobuf::{
    Duration as PbDuration, Struct, UInt32Value, Value, value::Kind,
};
use corridor_proto::pack_any;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

type RespTx = mpsc::UnboundedSender<Result<DeltaDiscoveryResponse, tonic::Status>>;

#[derive(Default)]
struct AdsShared {
    current: Mutex<Option<RespTx>>,
    requests: Mutex<Option<mpsc::UnboundedSender<DeltaDiscoveryRequest>>>,
    streams: std::sync::atomic::AtomicUsize,
}

struct AdsService(Arc<AdsShared>);

type BoxStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = BoxStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = BoxStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        _: tonic::Request<tonic::Streaming<DiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::StreamAggregatedResourcesStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("delta only"))
    }

    async fn delta_aggregated_resources(
        &self,
        req: tonic::Request<tonic::Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::DeltaAggregatedResourcesStream>, tonic::Status> {
        let mut incoming = req.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        *self.0.current.lock().unwrap() = Some(tx);
        self.0
            .streams
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let shared = self.0.clone();
        tokio::spawn(async move {
            while let Ok(Some(r)) = incoming.message().await {
                let sink = shared.requests.lock().unwrap().clone();
                if let Some(s) = sink {
                    let _ = s.send(r);
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(
            UnboundedReceiverStream::new(rx),
        )))
    }
}

/// An ADS server whose responses the test sends by hand.
pub struct TestAds {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<AdsShared>,
    requests: mpsc::UnboundedReceiver<DeltaDiscoveryRequest>,
    nonce: u64,
}

impl TestAds {
    /// Starts the server on a free port.
    pub async fn start() -> TestAds {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(AdsShared::default());
        let (tx, rx) = mpsc::unbounded_channel();
        *shared.requests.lock().unwrap() = Some(tx);
        let svc = AggregatedDiscoveryServiceServer::new(AdsService(shared.clone()));
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        TestAds {
            addr,
            shared,
            requests: rx,
            nonce: 0,
        }
    }

    /// The next request the client sent (panics after 10 s).
    pub async fn next_request(&mut self) -> DeltaDiscoveryRequest {
        tokio::time::timeout(Duration::from_secs(10), self.requests.recv())
            .await
            .expect("no xDS request within 10s")
            .expect("request channel closed")
    }

    /// Skips requests until one for `type_url` satisfying `pred` arrives.
    pub async fn request_where(
        &mut self,
        type_url: &str,
        pred: impl Fn(&DeltaDiscoveryRequest) -> bool,
    ) -> DeltaDiscoveryRequest {
        loop {
            let r = self.next_request().await;
            if r.type_url == type_url && pred(&r) {
                return r;
            }
        }
    }

    /// Sends a response on the current stream; returns its nonce.
    pub fn push(
        &mut self,
        type_url: &str,
        resources: Vec<Resource>,
        removed: Vec<String>,
    ) -> String {
        self.nonce += 1;
        let nonce = format!("n{}", self.nonce);
        let resp = DeltaDiscoveryResponse {
            system_version_info: format!("v{}", self.nonce),
            resources,
            type_url: type_url.to_string(),
            removed_resources: removed,
            nonce: nonce.clone(),
            ..Default::default()
        };
        let tx = self
            .shared
            .current
            .lock()
            .unwrap()
            .clone()
            .expect("no stream");
        tx.send(Ok(resp)).unwrap();
        nonce
    }

    /// Ends the current stream (server side).
    pub fn disconnect(&self) {
        self.shared.current.lock().unwrap().take();
    }

    /// Streams opened so far.
    pub fn streams(&self) -> usize {
        self.shared
            .streams
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Wraps a message as a delta resource.
pub fn resource<M: prost::Message + prost::Name>(name: &str, version: &str, m: M) -> Resource {
    Resource {
        name: name.into(),
        version: version.into(),
        resource: Some(pack_any(m)),
        ..Default::default()
    }
}

fn socket(addr: SocketAddr) -> core::Address {
    core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: addr.ip().to_string(),
            port_specifier: Some(core::socket_address::PortSpecifier::PortValue(u32::from(
                addr.port(),
            ))),
            ..Default::default()
        })),
    }
}

fn corridor_metadata(fields: &[(&str, &str)]) -> core::Metadata {
    let s = Struct {
        fields: fields
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value {
                        kind: Some(Kind::StringValue(v.to_string())),
                    },
                )
            })
            .collect(),
    };
    core::Metadata {
        filter_metadata: [("corridor".to_string(), s)].into_iter().collect(),
        ..Default::default()
    }
}

/// An HTTP listener on `addr` using RDS `route`.
pub fn http_listener(name: &str, addr: SocketAddr, route: &str) -> lis::Listener {
    let hcm = hcm::HttpConnectionManager {
        stat_prefix: name.into(),
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
            hcm::Rds {
                route_config_name: route.into(),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    lis::Listener {
        name: name.into(),
        address: Some(socket(addr)),
        filter_chains: vec![lis::FilterChain {
            filters: vec![lis::Filter {
                name: crate::model::listener::HCM_FILTER.into(),
                config_type: Some(lis::filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        metadata: Some(corridor_metadata(&[
            ("service", "svc.default.svc.cluster.local"),
            ("name", "svc"),
            ("namespace", "default"),
            ("protocol", "http"),
        ])),
        ..Default::default()
    }
}

/// A TCP proxy listener on `addr` to `cluster`.
pub fn tcp_listener(name: &str, addr: SocketAddr, cluster: &str) -> lis::Listener {
    use corridor_proto::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
    let cfg = tcp::TcpProxy {
        stat_prefix: name.into(),
        cluster_specifier: Some(tcp::tcp_proxy::ClusterSpecifier::Cluster(cluster.into())),
        ..Default::default()
    };
    let mut l = http_listener(name, addr, "unused");
    l.filter_chains[0].filters[0] = lis::Filter {
        name: crate::model::listener::TCP_PROXY_FILTER.into(),
        config_type: Some(lis::filter::ConfigType::TypedConfig(pack_any(cfg))),
    };
    l
}

/// An EDS cluster; `http2` adds explicit HTTP/2 protocol options.
pub fn cluster(name: &str, http2: bool) -> cl::Cluster {
    let mut c = cl::Cluster {
        name: name.into(),
        cluster_discovery_type: Some(cl::cluster::ClusterDiscoveryType::Type(
            cl::cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cl::cluster::EdsClusterConfig {
            service_name: name.into(),
            ..Default::default()
        }),
        connect_timeout: Some(PbDuration {
            seconds: 1,
            nanos: 0,
        }),
        ..Default::default()
    };
    if http2 {
        let opts = up::HttpProtocolOptions {
            upstream_protocol_options: Some(up::http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                up::http_protocol_options::ExplicitHttpConfig {
                    protocol_config: Some(up::http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                        Default::default(),
                    )),
                },
            )),
            ..Default::default()
        };
        c.typed_extension_protocol_options.insert(
            crate::model::cluster::HTTP_PROTOCOL_OPTIONS.into(),
            pack_any(opts),
        );
    }
    c
}

/// An assignment with the given (address, healthy) endpoints.
pub fn assignment(name: &str, endpoints: &[(SocketAddr, bool)]) -> ep::ClusterLoadAssignment {
    ep::ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![ep::LocalityLbEndpoints {
            lb_endpoints: endpoints
                .iter()
                .map(|(a, healthy)| ep::LbEndpoint {
                    health_status: if *healthy {
                        core::HealthStatus::Healthy
                    } else {
                        core::HealthStatus::Unhealthy
                    } as i32,
                    host_identifier: Some(ep::lb_endpoint::HostIdentifier::Endpoint(
                        ep::Endpoint {
                            address: Some(socket(*a)),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A prefix route to one cluster.
pub fn prefix_route(name: &str, prefix: &str, cluster: &str) -> rt::Route {
    rt::Route {
        name: name.into(),
        r#match: Some(rt::RouteMatch {
            path_specifier: Some(rt::route_match::PathSpecifier::Prefix(prefix.into())),
            ..Default::default()
        }),
        action: Some(rt::route::Action::Route(rt::RouteAction {
            cluster_specifier: Some(rt::route_action::ClusterSpecifier::Cluster(cluster.into())),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The `RouteAction` of a route built by [`prefix_route`].
pub fn action_mut(r: &mut rt::Route) -> &mut rt::RouteAction {
    match r.action.as_mut() {
        Some(rt::route::Action::Route(a)) => a,
        _ => panic!("not a route action"),
    }
}

/// A retry policy.
pub fn retry_policy(on: &str, n: u32) -> rt::RetryPolicy {
    rt::RetryPolicy {
        retry_on: on.into(),
        num_retries: Some(UInt32Value { value: n }),
        ..Default::default()
    }
}

/// A route configuration with one `*` virtual host.
pub fn route_config(name: &str, routes: Vec<rt::Route>) -> rt::RouteConfiguration {
    rt::RouteConfiguration {
        name: name.into(),
        virtual_hosts: vec![rt::VirtualHost {
            name: name.into(),
            domains: vec!["*".into()],
            routes,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A response body a backend can send.
pub type TestBody = BoxBody<Bytes, Infallible>;

/// A full body.
pub fn full(s: impl Into<Bytes>) -> TestBody {
    Full::new(s.into()).boxed()
}

/// A handler of the test backend.
pub type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<TestBody>> + Send>>
        + Send
        + Sync,
>;

/// Starts an HTTP/1.1 + h2c backend on a free port.
pub async fn backend(handler: Handler) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let h = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let h = h.clone();
                    async move { Ok::<_, Infallible>(h(req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// A backend answering `status` with body `text`.
pub async fn text_backend(status: u16, text: &'static str) -> SocketAddr {
    backend(Arc::new(move |_req| {
        Box::pin(async move {
            let mut r = Response::new(full(text));
            *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
            r
        })
    }))
    .await
}

/// Polls `f` until it returns `Some`, for at most 10 s.
pub async fn eventually<T, F: Future<Output = Option<T>>>(mut f: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within 10s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
