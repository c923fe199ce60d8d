//! In-process ADS tests with tonic's generated client.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use corridor_proto::{
    envoy::{
        config::core::v3::Node,
        service::discovery::v3::{
            DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
            aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
        },
    },
    google::rpc::Status as RpcStatus,
    type_url,
};
use tokio::{net::TcpListener, sync::mpsc, sync::watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::Streaming;

use super::{AdsServer, snapshot::Snapshot};
use crate::{
    availability,
    store::store_from_yaml,
    translate::{TranslateOptions, tests::MESH, translate},
};

/// Bound on any single wait for a response, so a broken server fails the test instead of
/// hanging it.
const PATIENCE: Duration = Duration::from_secs(10);
const HOST: &str = "reviews.default.svc.cluster.local";

fn snapshot(yaml: &str) -> Snapshot {
    translate(&store_from_yaml(yaml), &TranslateOptions::default())
}

const EXTRA: &str = "---\napiVersion: v1\nkind: Service\nmetadata: { name: extra, namespace: default }\nspec: { ports: [ { name: http, port: 80 } ] }\n";

struct Server {
    addr: SocketAddr,
    publish: watch::Sender<Arc<Snapshot>>,
    /// The gateway pool's availability as the server's streams report it.
    available: watch::Receiver<bool>,
    _stop: watch::Sender<bool>,
}

/// An ADS server fed as the controller feeds it: `publish` is the source, and what is
/// served carries the gateway pool's availability.
async fn serve(first: Snapshot) -> Server {
    let (stop, stop_rx) = watch::channel(false);
    let (served_tx, served) = watch::channel(availability::stamp(&first, false));
    let (publish, source) = watch::channel(Arc::new(first));
    let ads = AdsServer::new(served, stop_rx.clone());
    let available = ads.gateway_available();
    tokio::spawn(availability::run(
        source,
        available.clone(),
        served_tx,
        stop_rx,
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = ads.into_service();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    Server {
        addr,
        publish,
        available,
        _stop: stop,
    }
}

fn node() -> Option<Node> {
    Some(Node {
        id: "test-node".into(),
        ..Default::default()
    })
}

struct Sotw {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
}

impl Sotw {
    async fn open(addr: SocketAddr) -> Self {
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(16);
        let rx = client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Sotw { tx, rx }
    }
    async fn send(
        &self,
        type_url: &str,
        names: &[&str],
        version: &str,
        nonce: &str,
        error: Option<&str>,
    ) {
        let req = DiscoveryRequest {
            node: node(),
            type_url: type_url.into(),
            resource_names: names.iter().map(|s| s.to_string()).collect(),
            version_info: version.into(),
            response_nonce: nonce.into(),
            error_detail: error.map(|m| RpcStatus {
                code: 3,
                message: m.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.tx.send(req).await.unwrap();
    }
    async fn recv(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(PATIENCE, self.rx.message())
            .await
            .expect("a response in time")
            .unwrap()
            .unwrap()
    }
}

#[tokio::test]
async fn sotw_initial_fetch_ack_push_and_nack() {
    let server = serve(snapshot(MESH)).await;
    let mut s = Sotw::open(server.addr).await;

    s.send(type_url::CLUSTER, &[], "", "", None).await;
    let cds = s.recv().await;
    assert_eq!(cds.type_url, type_url::CLUSTER);
    assert_eq!(cds.resources.len(), 9);
    assert!(!cds.version_info.is_empty() && !cds.nonce.is_empty());

    let wanted = format!("outbound|9080||{HOST}");
    s.send(type_url::ENDPOINT, &[&wanted], "", "", None).await;
    let eds = s.recv().await;
    assert_eq!(eds.type_url, type_url::ENDPOINT);
    assert_eq!(
        eds.resources.len(),
        1,
        "EDS answers only the requested names"
    );

    // ACKs produce no response; a new snapshot is pushed for both subscribed types.
    s.send(type_url::CLUSTER, &[], &cds.version_info, &cds.nonce, None)
        .await;
    s.send(
        type_url::ENDPOINT,
        &[&wanted],
        &eds.version_info,
        &eds.nonce,
        None,
    )
    .await;
    server.publish.send_replace(Arc::new(snapshot(
        &format!("{MESH}{EXTRA}").replace("10.0.0.1", "10.0.0.9"),
    )));
    let cds2 = s.recv().await;
    assert_eq!(cds2.type_url, type_url::CLUSTER);
    assert_eq!(cds2.resources.len(), 10);
    assert_ne!(cds2.version_info, cds.version_info);
    let eds2 = s.recv().await;
    assert_eq!(eds2.type_url, type_url::ENDPOINT);
    assert_ne!(eds2.version_info, eds.version_info);
    assert_ne!(eds2.nonce, eds.nonce);

    // A NACK is logged, not answered: the next response is for the next request's type.
    s.send(
        type_url::CLUSTER,
        &[],
        &cds.version_info,
        &cds2.nonce,
        Some("cluster x: bad"),
    )
    .await;
    s.send(type_url::LISTENER, &[], "", "", None).await;
    let lds = s.recv().await;
    assert_eq!(lds.type_url, type_url::LISTENER);
    assert_eq!(lds.resources.len(), 4);
    // A stale nonce is ignored, too.
    s.send(type_url::CLUSTER, &[], &cds.version_info, &cds.nonce, None)
        .await;
    s.send(type_url::ROUTE, &[&format!("{HOST}:9080")], "", "", None)
        .await;
    let rds = s.recv().await;
    assert_eq!(rds.type_url, type_url::ROUTE);
    assert_eq!(rds.resources.len(), 1);

    // A client reconnecting with the version and nonce of an earlier stream is answered.
    let mut again = Sotw::open(server.addr).await;
    again
        .send(
            type_url::CLUSTER,
            &[],
            &cds2.version_info,
            &cds2.nonce,
            None,
        )
        .await;
    let resync = again.recv().await;
    assert_eq!(resync.type_url, type_url::CLUSTER);
    assert_eq!(resync.version_info, cds2.version_info);
}

struct Delta {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    rx: Streaming<DeltaDiscoveryResponse>,
}

impl Delta {
    async fn open(addr: SocketAddr) -> Self {
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(16);
        let rx = client
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Delta { tx, rx }
    }
    async fn send(&self, req: DeltaDiscoveryRequest) {
        self.tx
            .send(DeltaDiscoveryRequest {
                node: node(),
                ..req
            })
            .await
            .unwrap();
    }
    async fn recv(&mut self) -> DeltaDiscoveryResponse {
        tokio::time::timeout(PATIENCE, self.rx.message())
            .await
            .expect("a response in time")
            .unwrap()
            .unwrap()
    }
}

fn versions(r: &DeltaDiscoveryResponse) -> HashMap<String, String> {
    r.resources
        .iter()
        .map(|x| (x.name.clone(), x.version.clone()))
        .collect()
}

#[tokio::test]
async fn delta_initial_reconnect_and_removal() {
    let server = serve(snapshot(MESH)).await;
    let eds_names = vec![
        format!("outbound|9080||{HOST}"),
        format!("outbound|9080|v3|{HOST}"),
    ];

    let mut first = Delta::open(server.addr).await;
    first
        .send(DeltaDiscoveryRequest {
            type_url: type_url::CLUSTER.into(),
            ..Default::default()
        })
        .await;
    let cds = first.recv().await;
    assert_eq!(cds.resources.len(), 9);
    assert!(
        cds.resources
            .iter()
            .all(|r| !r.version.is_empty() && r.resource.is_some())
    );
    first
        .send(DeltaDiscoveryRequest {
            type_url: type_url::ENDPOINT.into(),
            resource_names_subscribe: eds_names.clone(),
            ..Default::default()
        })
        .await;
    let eds = first.recv().await;
    assert_eq!(eds.resources.len(), 2);
    // An ACK brings nothing new.
    first
        .send(DeltaDiscoveryRequest {
            type_url: type_url::ENDPOINT.into(),
            response_nonce: eds.nonce.clone(),
            ..Default::default()
        })
        .await;
    let cds_versions = versions(&cds);
    let eds_versions = versions(&eds);
    drop(first);

    // While disconnected, the v1 pod moves: the v3 subset is untouched.
    server
        .publish
        .send_replace(Arc::new(snapshot(&MESH.replace("10.0.0.1", "10.0.0.9"))));

    let mut second = Delta::open(server.addr).await;
    second
        .send(DeltaDiscoveryRequest {
            type_url: type_url::CLUSTER.into(),
            initial_resource_versions: cds_versions,
            ..Default::default()
        })
        .await;
    let cds_again = second.recv().await;
    assert!(
        cds_again.resources.is_empty() && cds_again.removed_resources.is_empty(),
        "clusters did not change"
    );
    second
        .send(DeltaDiscoveryRequest {
            type_url: type_url::ENDPOINT.into(),
            resource_names_subscribe: eds_names.clone(),
            initial_resource_versions: eds_versions,
            ..Default::default()
        })
        .await;
    let eds_again = second.recv().await;
    let changed: Vec<&str> = eds_again
        .resources
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(changed, vec![eds_names[0].as_str()]);

    // Adding then removing a service: clusters added, then named in removed_resources.
    server.publish.send_replace(Arc::new(snapshot(
        &format!("{MESH}{EXTRA}").replace("10.0.0.1", "10.0.0.9"),
    )));
    let added = second.recv().await;
    assert_eq!(added.type_url, type_url::CLUSTER);
    assert_eq!(added.resources.len(), 1);
    server
        .publish
        .send_replace(Arc::new(snapshot(&MESH.replace("10.0.0.1", "10.0.0.9"))));
    let removed = second.recv().await;
    assert_eq!(removed.type_url, type_url::CLUSTER);
    assert!(removed.resources.is_empty());
    assert_eq!(
        removed.removed_resources,
        vec!["outbound|80||extra.default.svc.cluster.local".to_string()]
    );

    // A NACK is logged and not answered; unsubscribing works.
    second
        .send(DeltaDiscoveryRequest {
            type_url: type_url::CLUSTER.into(),
            response_nonce: removed.nonce.clone(),
            error_detail: Some(RpcStatus {
                code: 3,
                message: "nope".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    second
        .send(DeltaDiscoveryRequest {
            type_url: type_url::ROUTE.into(),
            resource_names_subscribe: vec![format!("{HOST}:9080"), "missing:1".into()],
            ..Default::default()
        })
        .await;
    let rds = second.recv().await;
    assert_eq!(rds.type_url, type_url::ROUTE);
    assert_eq!(rds.resources.len(), 1);
    assert_eq!(
        rds.removed_resources,
        vec!["missing:1".to_string()],
        "absent resources are reported"
    );
}

mod gateway_pool;

/// The pod table is a wildcard Delta type: a gateway gets one resource per pod IP, and a
/// pod that goes is named as removed, with no listener pushed again.
#[tokio::test]
async fn delta_serves_the_pod_table_and_pod_churn_leaves_listeners_alone() {
    let pod = |name: &str, ip: &str| {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{ name: {name}, namespace: a }}\nspec: {{ serviceAccountName: x, containers: [ {{ name: c, image: i }} ] }}\nstatus: {{ phase: Running, podIP: {ip} }}\n"
        )
    };
    let with_pods = format!("{MESH}{}{}", pod("one", "10.9.0.1"), pod("two", "10.9.0.2"));
    let server = serve(snapshot(&with_pods)).await;
    let mut d = Delta::open(server.addr).await;
    for t in [type_url::WORKLOAD, type_url::LISTENER] {
        d.send(DeltaDiscoveryRequest {
            type_url: t.into(),
            ..Default::default()
        })
        .await;
    }
    let wds = d.recv().await;
    assert_eq!(wds.type_url, type_url::WORKLOAD, "asked first, answered first");
    let mut names: Vec<&str> = wds.resources.iter().map(|r| r.name.as_str()).collect();
    names.sort();
    assert!(names.contains(&"10.9.0.1") && names.contains(&"10.9.0.2"), "{names:?}");
    let lds = d.recv().await;
    assert_eq!(lds.type_url, type_url::LISTENER);
    for (t, nonce) in [(type_url::WORKLOAD, &wds.nonce), (type_url::LISTENER, &lds.nonce)] {
        d.send(DeltaDiscoveryRequest {
            type_url: t.into(),
            response_nonce: nonce.clone(),
            ..Default::default()
        })
        .await;
    }

    server.publish.send_replace(Arc::new(snapshot(&format!(
        "{MESH}{}",
        pod("one", "10.9.0.1")
    ))));
    let churn = d.recv().await;
    assert_eq!(churn.type_url, type_url::WORKLOAD);
    assert_eq!(churn.removed_resources, vec!["10.9.0.2".to_string()]);
    assert!(churn.resources.is_empty());
    // Nothing else changed: the next message, if any, is not a listener push.
    let next = tokio::time::timeout(Duration::from_millis(300), d.rx.message()).await;
    assert!(next.is_err(), "unexpected push after pod churn: {next:?}");
}
