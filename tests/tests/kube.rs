//! Cluster mode end to end: the real `corridor-controller --kubernetes` against the fake
//! Kubernetes API server (`KUBECONFIG` pointing at it), a real `corridor-gateway` and a
//! real `corridor-dns` fed by it.
//!
//! The controller lists and watches the objects, elects itself leader on the Lease, writes
//! the gateway address Service of the meshed service (the fake gives it a ClusterIP, as
//! the API server would), keeps the CoreDNS hook in the coredns ConfigMap, writes status
//! conditions; the gateway listens on the allocated gateway port; DNS answers the address
//! Service's ClusterIP while a gateway pod is Ready, the real ClusterIP when none is.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;

use anyhow::{Context, anyhow, bail};
use corridor_controller::kube::fake::FakeApi;
use corridor_tests::bin::{Process, binary};
use corridor_tests::dns::objects::Svc;
use corridor_tests::dns::{Dns, svc_name};
use corridor_tests::manifests::{Endpoint, EndpointSlice, Pod};
use corridor_tests::{Backend, HttpClient, PATIENCE, eventually, unique_suffix};
use rand::Rng;
use serde_json::{Value, json};

/// Corridor's namespace (the controller's default).
const OWN_NS: &str = "corridor-system";
/// The real ClusterIP of `web`.
const WEB_IP: &str = "10.96.5.5";
/// `web`'s port.
const WEB_PORT: u16 = 8080;
/// corridor-dns's ClusterIP, where the CoreDNS hook forwards.
const DNS_IP: &str = "10.96.0.53";
/// kubeadm's default Corefile.
const KUBEADM_COREFILE: &str = ".:53 {\n    errors\n    health {\n       lameduck 5s\n    }\n    ready\n    \
    kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n       \
    ttl 30\n    }\n    prometheus :9153\n    forward . /etc/resolv.conf {\n       max_concurrent 1000\n    }\n    \
    cache 30\n    loop\n    reload\n    loadbalance\n}\n";

fn gateway_pod(ready: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "corridor-gateway-7d9f-x2", "namespace": OWN_NS,
                        "labels": {"app.kubernetes.io/name": "corridor-gateway"}},
           "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
}

fn virtual_service(name: &str, ns: &str, subset: Option<&str>) -> Value {
    let mut destination = json!({"host": "web"});
    if let Some(s) = subset {
        destination["subset"] = json!(s);
    }
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"hosts": ["web"], "http": [{"route": [{"destination": destination}]}]}})
}

/// The `Accepted` condition the controller wrote on a VirtualService, once there is one.
async fn accepted(fake: &FakeApi, ns: &str, name: &str) -> Value {
    eventually(
        PATIENCE,
        &format!("status of VirtualService {name}"),
        || async {
            let vs = fake
                .get("networking.istio.io/v1", "VirtualService", ns, name)
                .ok_or_else(|| anyhow!("no VirtualService {name}"))?;
            vs["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Accepted").cloned())
                .ok_or_else(|| anyhow!("no Accepted condition yet: {vs}"))
        },
    )
    .await
}

/// The gateway port allocated to `web:8080`, from its address Service in the API.
async fn gateway_port(fake: &FakeApi, ns: &str) -> (u16, String) {
    eventually(PATIENCE, "the address Service of web", || async {
        let svc = fake
            .all_objects()
            .into_iter()
            .find(|o| {
                o["kind"] == "Service"
                    && o["metadata"]["namespace"] == OWN_NS
                    && o["metadata"]["labels"]["corridor.io/service-name"] == "web"
                    && o["metadata"]["labels"]["corridor.io/service-namespace"] == ns
            })
            .ok_or_else(|| anyhow!("no address Service yet"))?;
        let ports: BTreeMap<String, u16> = serde_json::from_str(
            svc["metadata"]["annotations"]["corridor.io/ports"]
                .as_str()
                .ok_or_else(|| anyhow!("no ports annotation: {svc}"))?,
        )?;
        let port = *ports
            .get(&WEB_PORT.to_string())
            .ok_or_else(|| anyhow!("8080 not allocated: {svc}"))?;
        let ip = svc["spec"]["clusterIP"]
            .as_str()
            .context("no ClusterIP")?
            .to_string();
        Ok((port, ip))
    })
    .await
}

async fn get_ok(client: &HttpClient, addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let reply = client.get(addr, path).await?;
    if reply.status != 200 {
        bail!("{path} answered {}: {}", reply.status, reply.text());
    }
    Ok(reply.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_serves_a_cluster_from_the_kubernetes_api() {
    let fake = FakeApi::start().await.unwrap_or_else(|e| panic!("{e:#}"));
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e:#}"));
    let kubeconfig = tmp.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig)
        .unwrap_or_else(|e| panic!("{e:#}"));
    // A cluster without the Aeraki Redis CRDs: those APIs are simply off.
    fake.remove_api("redis.aeraki.io", "redisservices");
    fake.remove_api("redis.aeraki.io", "redisdestinations");

    let ns = format!("kube-{}", unique_suffix());
    let backend = Backend::start(
        "web-v1",
        "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e:#}")),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let objects: Vec<Value> = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        Svc::cluster_ip("web", &ns, &[WEB_IP])
            .port("http", WEB_PORT, "TCP")
            .into(),
        EndpointSlice::new("web-x1", &ns, "web")
            .port("http", backend.addr().port())
            .endpoint(Endpoint::new(backend.addr().ip()).pod("web-v1"))
            .into(),
        Pod::new("web-v1", &ns)
            .label("app", "web")
            .label("version", "v1")
            .ip(backend.addr().ip())
            .into(),
        gateway_pod(true),
        Svc::cluster_ip("corridor-dns", OWN_NS, &[DNS_IP])
            .port("dns", 53, "UDP")
            .unmeshed()
            .into(),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"},
               "data": {"Corefile": KUBEADM_COREFILE}}),
        virtual_service("web", &ns, None),
        virtual_service("web-broken", &ns, Some("no-such-subset")),
    ];
    for o in objects {
        fake.apply(o).unwrap_or_else(|e| panic!("{e:#}"));
    }

    let base = 40_000 + 100 * rand::rng().random_range(0..190u16);
    let range = format!("{base}-{}", base + 99);
    let mut cmd = Command::new(binary("corridor-controller"));
    cmd.env("KUBECONFIG", &kubeconfig)
        .env_remove("RUST_LOG")
        .args([
            "--kubernetes",
            "--xds-listen",
            "127.0.0.1:0",
            "--probe-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--pod-name",
            "corridor-controller-0",
            "--dns-mode",
            "stub",
            "--gateway-ports",
            &range,
            "--debounce-ms",
            "50",
        ]);
    let mut controller = Process::spawn("controller", cmd).unwrap_or_else(|e| panic!("{e:#}"));
    let xds = controller
        .wait_bound("corridor-controller bound", "xds")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let probe = controller
        .wait_bound("corridor-controller bound", "probe")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let client = HttpClient::http1();

    // Ready (every API listed, the Redis ones found off), and the leader.
    get_ok(&client, probe, "/ready")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    get_ok(&client, probe, "/healthz")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    eventually(PATIENCE, "the leader gauge", || async {
        let text = get_ok(&client, probe, "/metrics").await?;
        if !text.contains("corridor_controller_leader 1") {
            bail!("not leader yet:\n{text}");
        }
        Ok(())
    })
    .await;
    assert!(
        controller
            .stderr
            .find(&["RedisService", "not served by this cluster"])
            .is_some(),
        "a missing CRD is logged:\n{}",
        controller.stderr.text()
    );

    // The leader allocated web's gateway port on an address Service; the gateway listens
    // there and proxies to the pod.
    let (port, address_ip) = gateway_port(&fake, &ns).await;
    assert!((base..base + 100).contains(&port), "{port} in {range}");
    let mut gw = Command::new(binary("corridor-gateway"));
    gw.args(["--xds", &xds.to_string(), "--admin", "127.0.0.1:0"]);
    let mut gateway = Process::spawn("gateway", gw).unwrap_or_else(|e| panic!("{e:#}"));
    let admin = gateway
        .wait_bound("corridor-gateway bound", "admin")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    eventually(PATIENCE, "gateway /ready", || {
        get_ok(&client, admin, "/ready")
    })
    .await;
    let web: SocketAddr = ([127, 0, 0, 1], port).into();
    eventually(PATIENCE, "a reply from web through the gateway", || async {
        let reply = client.get(web, "/hello").await?;
        if reply.backend() != "web-v1" {
            bail!("answered by {:?}: {}", reply.backend(), reply.text());
        }
        Ok(())
    })
    .await;

    // Status conditions from admission.
    let ok = accepted(&fake, &ns, "web").await;
    assert_eq!(
        (ok["status"].as_str(), ok["reason"].as_str()),
        (Some("True"), Some("Accepted")),
        "{ok}"
    );
    let bad = accepted(&fake, &ns, "web-broken").await;
    assert_eq!(
        (bad["status"].as_str(), bad["reason"].as_str()),
        (Some("False"), Some("Invalid")),
        "{bad}"
    );
    assert!(
        bad["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no-such-subset"),
        "{bad}"
    );

    // The CoreDNS hook forwards the cluster zone to corridor-dns.
    eventually(PATIENCE, "the CoreDNS hook", || async {
        let cm = fake
            .get("v1", "ConfigMap", "kube-system", "coredns")
            .context("no coredns ConfigMap")?;
        let corefile = cm["data"]["Corefile"].as_str().unwrap_or_default();
        if !(corefile.contains(DNS_IP) && corefile.contains(KUBEADM_COREFILE)) {
            bail!("Corefile:\n{corefile}");
        }
        Ok(())
    })
    .await;

    // DNS answers the address Service's ClusterIP while the gateway pod is Ready, the real
    // ClusterIP once it is not.
    let dns = Dns::start_ready(xds, &[]).await;
    let name = svc_name("web", &ns);
    dns.wait_for(&name, "A", "web to answer its address Service", |r| {
        r.addresses() == [address_ip.clone()]
    })
    .await;
    fake.apply(gateway_pod(false))
        .unwrap_or_else(|e| panic!("{e:#}"));
    dns.wait_for(&name, "A", "web to fail open", |r| {
        r.addresses() == [WEB_IP.to_string()]
    })
    .await;

    // Graceful stop releases the Lease.
    controller.terminate().unwrap_or_else(|e| panic!("{e:#}"));
    controller
        .wait_exit(PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let lease = fake
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            OWN_NS,
            "corridor-controller",
        )
        .unwrap_or_else(|| panic!("the Lease is gone"));
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "released: {lease}"
    );
}
