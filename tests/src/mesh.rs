//! A controller + gateway pair running on a fresh manifests directory.
//!
//! Each [`Mesh`] owns a temporary directory, a random gateway CIDR `127.<101..=250>.0.0/16`
//! and a unique namespace, so tests can run side by side without sharing addresses or names.
//! Test backends live on `127.<same octet>.250.<n>`. The octet is claimed for the life of the
//! mesh (see `claim_octet`), so concurrent tests never share a range.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use rand::Rng;
use serde_json::Value;

use crate::backend::Backend;
use crate::bin::{Lines, Process, binary};
use crate::client::{HttpClient, Reply};
use crate::eventually::{PATIENCE, eventually};
use crate::manifests::{Endpoint, EndpointSlice, Pod, Service, ServicePort};

/// Debounce passed to the controller: the default push delay, kept explicit so a test can
/// reason about propagation time.
const DEBOUNCE_MS: &str = "100";

/// The third octet of test backend addresses.
const BACKEND_OCTET: u8 = 250;

/// A controller and (usually) a gateway on a temporary manifests directory.
pub struct Mesh {
    _tmp: tempfile::TempDir,
    /// Held for the mesh's lifetime so no other test process picks the same /16.
    _claim: std::net::TcpListener,
    /// The directory the controller watches.
    pub manifests: PathBuf,
    staging: PathBuf,
    octet: u8,
    /// A namespace name unique to this test run.
    pub ns: String,
    controller: Option<Process>,
    xds: Option<SocketAddr>,
    gateway: Option<Process>,
    envoy: Option<crate::envoy::Envoy>,
    admin: Option<SocketAddr>,
    next_backend_host: u8,
    admin_client: HttpClient,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("cidr", &self.cidr())
            .field("ns", &self.ns)
            .field("xds", &self.xds)
            .field("admin", &self.admin)
            .finish()
    }
}

impl Mesh {
    /// A new, not yet started mesh; `tag` becomes the namespace prefix.
    pub fn new(tag: &str) -> Mesh {
        let tmp = tempfile::Builder::new()
            .prefix("corridor-e2e-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temp dir: {e}"));
        let manifests = tmp.path().join("manifests");
        let staging = tmp.path().join("staging");
        for dir in [&manifests, &staging] {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        }
        let (octet, claim) = claim_octet();
        Mesh {
            _tmp: tmp,
            _claim: claim,
            manifests,
            staging,
            octet,
            ns: format!("{tag}-{}", crate::unique_suffix()),
            controller: None,
            xds: None,
            gateway: None,
            envoy: None,
            admin: None,
            next_backend_host: 1,
            admin_client: HttpClient::http1(),
        }
    }

    /// Writes `files`, then starts the controller and the gateway and waits until the
    /// gateway is ready.
    pub async fn start(tag: &str, files: &[(&str, String)]) -> Mesh {
        let mut mesh = Mesh::new(tag);
        for (name, contents) in files {
            mesh.write(name, contents);
        }
        mesh.start_controller().await;
        mesh.start_gateway().await;
        mesh
    }

    /// The gateway CIDR handed to the controller.
    pub fn cidr(&self) -> String {
        format!("127.{}.0.0/16", self.octet)
    }

    // === manifests ===

    /// Writes a manifest file atomically (staged outside the watched directory, then renamed
    /// into it), so the controller never sees half a file.
    pub fn write(&self, file: &str, contents: &str) {
        let staged = self.staging.join(file);
        let target = self.manifests.join(file);
        std::fs::write(&staged, contents)
            .and_then(|()| std::fs::rename(&staged, &target))
            .unwrap_or_else(|e| panic!("writing {}: {e}", target.display()));
    }

    /// Removes a manifest file.
    pub fn remove(&self, file: &str) {
        let path = self.manifests.join(file);
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
    }

    /// The path of a manifest file (for matching log lines).
    pub fn path_of(&self, file: &str) -> PathBuf {
        self.manifests.join(file)
    }

    // === processes ===

    /// Starts the controller (again on the same xDS address if it ran before).
    pub async fn start_controller(&mut self) {
        let listen = self
            .xds
            .map_or_else(|| "127.0.0.1:0".to_string(), |a| a.to_string());
        let mut cmd = Command::new(binary("corridor-controller"));
        cmd.arg("--manifests").arg(&self.manifests).args([
            "--xds-listen",
            &listen,
            "--gateway-cidr",
            &self.cidr(),
            "--debounce-ms",
            DEBOUNCE_MS,
        ]);
        let mut process = Process::spawn("controller", cmd).unwrap_or_else(|e| panic!("{e:#}"));
        let xds = process
            .wait_bound("corridor-controller bound", "xds")
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        self.xds = Some(xds);
        self.controller = Some(process);
    }

    /// Starts the gateway against the controller and waits until `/ready` answers 200.
    pub async fn start_gateway(&mut self) {
        self.start_gateway_with(&[]).await;
    }

    /// Like [`Mesh::start_gateway`], with extra flags.
    ///
    /// With `CORRIDOR_E2E_GATEWAY=envoy` in the environment, a stock Envoy (Delta ADS) stands
    /// in for corridor-gateway and the flags are ignored: a way to check the tests themselves
    /// against a reference data plane (Corridor-only features such as `/metrics` names or
    /// the SIGTERM drain will of course differ).
    pub async fn start_gateway_with(&mut self, extra: &[&str]) {
        self.spawn_gateway(extra).await;
        self.wait_ready().await;
    }

    /// Starts the gateway and waits only for its `bound` line, not for `/ready`.
    pub async fn spawn_gateway(&mut self, extra: &[&str]) {
        if std::env::var("CORRIDOR_E2E_GATEWAY").is_ok_and(|v| v == "envoy") {
            let envoy = crate::envoy::Envoy::start(self.xds(), crate::envoy::Ads::Delta).await;
            self.admin = Some(envoy.admin);
            self.envoy = Some(envoy);
            return;
        }
        let xds = self.xds().to_string();
        let mut cmd = Command::new(binary("corridor-gateway"));
        cmd.args(["--xds", &xds, "--admin", "127.0.0.1:0"])
            .args(extra);
        let mut process = Process::spawn("gateway", cmd).unwrap_or_else(|e| panic!("{e:#}"));
        let admin = process
            .wait_bound("corridor-gateway bound", "admin")
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        self.admin = Some(admin);
        self.gateway = Some(process);
    }

    /// Waits until the gateway's `/ready` answers 200.
    pub async fn wait_ready(&self) {
        let admin = self.admin();
        let client = self.admin_client.clone();
        eventually(PATIENCE, "gateway /ready to answer 200", || {
            let client = client.clone();
            async move {
                let reply = client.get(admin, "/ready").await?;
                if reply.status != 200 {
                    bail!("/ready answered {}: {}", reply.status, reply.text());
                }
                Ok(())
            }
        })
        .await;
    }

    /// Picks the xDS address a controller started later will listen on (a port that was
    /// free a moment ago), so a gateway can be pointed at a controller that is not there yet.
    pub fn reserve_xds_addr(&mut self) -> SocketAddr {
        let probe =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = probe
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"));
        self.xds = Some(addr);
        addr
    }

    /// The controller's xDS address.
    pub fn xds(&self) -> SocketAddr {
        self.xds
            .unwrap_or_else(|| panic!("the controller has not been started"))
    }

    /// The gateway's admin address.
    pub fn admin(&self) -> SocketAddr {
        self.admin
            .unwrap_or_else(|| panic!("the gateway has not been started"))
    }

    /// The controller process.
    pub fn controller(&mut self) -> &mut Process {
        self.controller
            .as_mut()
            .unwrap_or_else(|| panic!("no controller running"))
    }

    /// The gateway process.
    pub fn gateway(&mut self) -> &mut Process {
        match (&mut self.gateway, &mut self.envoy) {
            (Some(gateway), _) => gateway,
            (None, Some(envoy)) => &mut envoy.process,
            (None, None) => panic!("no gateway running"),
        }
    }

    /// The controller's stderr (log) lines.
    pub fn controller_log(&self) -> Lines {
        self.controller
            .as_ref()
            .map(|p| p.stderr.clone())
            .unwrap_or_default()
    }

    /// The gateway's stderr (log and access log) lines.
    pub fn gateway_log(&self) -> Lines {
        self.gateway
            .as_ref()
            .map(|p| p.stderr.clone())
            .unwrap_or_default()
    }

    /// Waits until the gateway's log has a line containing every one of `needles`.
    pub async fn wait_for_gateway_log(&self, needles: &[&str]) -> String {
        let log = self.gateway_log();
        eventually(
            PATIENCE,
            &format!("a gateway log line with {needles:?}"),
            || {
                let found = log.find(needles);
                async move { found.ok_or_else(|| anyhow!("no such line yet")) }
            },
        )
        .await
    }

    /// Kills the controller with SIGKILL (the xDS address is kept for a restart).
    pub fn kill_controller(&mut self) {
        if let Some(mut controller) = self.controller.take() {
            controller.kill();
        }
    }

    // === gateway admin ===

    /// `GET` on the gateway's admin port.
    pub async fn admin_get(&self, path: &str) -> anyhow::Result<Reply> {
        self.admin_client.get(self.admin(), path).await
    }

    /// Waits until the gateway's `/metrics` has samples of `name` with all of `labels`
    /// summing to at least `at_least`, and returns that sum.
    pub async fn wait_for_metric(&self, name: &str, labels: &[(&str, &str)], at_least: f64) -> f64 {
        eventually(
            PATIENCE,
            &format!("{name}{labels:?} >= {at_least}"),
            || async move {
                let text = self.admin_get("/metrics").await?.text();
                match crate::metrics::sum(&text, name, labels) {
                    Some(v) if v >= at_least => Ok(v),
                    other => bail!("{name}{labels:?} is {other:?}; /metrics:\n{text}"),
                }
            },
        )
        .await
    }

    /// The listener name of a service port in this mesh's namespace.
    pub fn listener_name(&self, service: &str, port: u16) -> String {
        format!("{service}.{}.svc.cluster.local:{port}", self.ns)
    }

    /// Waits until the gateway has a listener for `service:port` and returns its address.
    pub async fn service_addr(&self, service: &str, port: u16) -> SocketAddr {
        let name = self.listener_name(service, port);
        let admin = self.admin();
        let client = self.admin_client.clone();
        eventually(PATIENCE, &format!("gateway listener {name}"), || {
            let (client, name) = (client.clone(), name.clone());
            async move { listener_addr(&client, admin, &name).await }
        })
        .await
    }

    // === backends ===

    /// A fresh loopback address for a test upstream (`127.<octet>.250.<n>`) with `port`.
    pub fn upstream_addr(&mut self, port: u16) -> SocketAddr {
        let host = self.next_backend_host;
        self.next_backend_host = self.next_backend_host.checked_add(1).unwrap_or(1);
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, self.octet, BACKEND_OCTET, host)),
            port,
        )
    }

    /// Starts one backend per name, all on the same port, on distinct loopback addresses
    /// (so that one EndpointSlice with one port lists them all, as in a real cluster).
    pub async fn backends(&mut self, names: &[&str]) -> Vec<Backend> {
        let mut backends: Vec<Backend> = Vec::new();
        for name in names {
            let port = backends.first().map_or(0, |b| b.addr().port());
            let addr = self.upstream_addr(port);
            let backend = Backend::start(name, addr)
                .await
                .unwrap_or_else(|e| panic!("{e:#}"));
            backends.push(backend);
        }
        backends
    }

    /// Service + EndpointSlice + Pods for `service` with one port, whose endpoints are the
    /// `upstreams` (all on the port of the first), each pod labelled `app: <service>`,
    /// `version: <v>`.
    pub fn service_objects<U: Upstream>(
        &self,
        service: &str,
        port: ServicePort,
        upstreams: &[(&U, &str)],
    ) -> Vec<Value> {
        let target = upstreams.first().map_or(1, |(u, _)| u.addr().port());
        let port_name = port.name().to_string();
        let mut objects = vec![
            Service::new(service, &self.ns)
                .port(port.target(target))
                .into(),
        ];
        let mut slice = EndpointSlice::new(&format!("{service}-x1"), &self.ns, service)
            .port(&port_name, target);
        for (upstream, version) in upstreams {
            let pod = format!("{service}-{}", upstream.name());
            let ip = upstream.addr().ip();
            slice = slice.endpoint(Endpoint::new(ip).pod(&pod).zone("zone-a"));
            objects.push(
                Pod::new(&pod, &self.ns)
                    .label("app", service)
                    .label("version", version)
                    .ip(ip)
                    .into(),
            );
        }
        objects.insert(1, slice.into());
        objects
    }
}

/// Something a Service's endpoints can point at: a test backend or a Python gRPC server.
pub trait Upstream {
    /// Its name (pods are named `<service>-<name>`).
    fn name(&self) -> &str;
    /// Its address.
    fn addr(&self) -> SocketAddr;
}

/// The port of the socket that marks a /16 as taken (see [`claim_octet`]); any free
/// unprivileged port would do, it only has to be the same in every test process.
const CLAIM_PORT: u16 = 47_999;

/// Picks a random second octet for this test's `127.<n>.0.0/16` and claims it by binding
/// `127.<n>.255.254:CLAIM_PORT`, so tests running at the same time never share a range.
fn claim_octet() -> (u8, std::net::TcpListener) {
    let mut rng = rand::rng();
    for _ in 0..200 {
        let octet = rng.random_range(101..=250u8);
        if let Ok(claim) =
            std::net::TcpListener::bind((Ipv4Addr::new(127, octet, 255, 254), CLAIM_PORT))
        {
            return (octet, claim);
        }
    }
    panic!("no free 127.<101..=250>.0.0/16 range for a test mesh");
}

/// Looks `name` up in an admin `/listeners` JSON (the gateway's or Envoy's).
pub async fn listener_addr(
    client: &HttpClient,
    admin: SocketAddr,
    name: &str,
) -> anyhow::Result<SocketAddr> {
    let reply = client.get(admin, "/listeners?format=json").await?;
    let json: Value = serde_json::from_slice(&reply.body)
        .with_context(|| format!("/listeners is not JSON: {}", reply.text()))?;
    let statuses = json["listener_statuses"]
        .as_array()
        .ok_or_else(|| anyhow!("no listener_statuses in {json}"))?;
    let listener = statuses
        .iter()
        .find(|l| l["name"] == name)
        .ok_or_else(|| anyhow!("no listener {name} in {json}"))?;
    let socket = &listener["local_address"]["socket_address"];
    let ip: IpAddr = socket["address"]
        .as_str()
        .ok_or_else(|| anyhow!("listener {name} has no address: {listener}"))?
        .parse()?;
    let port = socket["port_value"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| anyhow!("listener {name} has no port: {listener}"))?;
    if port == 0 {
        bail!("listener {name} not bound yet: {listener}");
    }
    Ok(SocketAddr::new(ip, port))
}

/// The patience for a restarted controller to be found again by the gateway's backoff.
pub const RESYNC_PATIENCE: Duration = Duration::from_secs(60);
