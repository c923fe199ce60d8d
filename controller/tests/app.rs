//! The whole controller in-process: manifests directory in, snapshots and ADS out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use corridor_controller::{
    app::{Config, build},
    xds::snapshot::Snapshot,
};
use corridor_proto::{
    envoy::service::discovery::v3::{
        DiscoveryRequest, aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
    },
    type_url,
};
use tokio::sync::watch;

/// Patience for a change to show up: well above the one-second goal so a loaded CI
/// machine does not flake, while a broken watcher still fails.
const PATIENCE: Duration = Duration::from_secs(10);

fn service(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{ name: {name}, namespace: default }}\n\
         spec: {{ ports: [ {{ name: http, port: {port} }} ] }}\n"
    )
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("corridor-app-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes atomically (write elsewhere, rename in), as editors and `kubectl` tooling do.
fn write(dir: &Path, file: &str, text: &str) {
    let staged = dir.with_extension(format!("staged-{file}"));
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(&staged, dir.join(file)).unwrap();
}

async fn until(
    rx: &mut watch::Receiver<std::sync::Arc<Snapshot>>,
    what: &str,
    check: impl Fn(&Snapshot) -> bool,
) {
    let wait = async {
        loop {
            if check(&rx.borrow_and_update()) {
                return;
            }
            rx.changed().await.unwrap();
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

fn has_listener(s: &Snapshot, name: &str) -> bool {
    s.get(type_url::LISTENER)
        .is_some_and(|t| t.resources.contains_key(name))
}

#[tokio::test]
async fn manifests_changes_reach_the_snapshot_and_ads() {
    let dir = tempdir("changes");
    write(&dir, "a.yaml", &service("alpha", 80));
    let mut config = Config::new(&dir, "127.0.0.1:0".parse().unwrap());
    config.debounce_ms = 20;
    let bound = build(config).await.unwrap();
    let mut snapshots = bound.snapshots();
    assert!(
        has_listener(&snapshots.borrow(), "alpha.default.svc.cluster.local:80"),
        "first snapshot is complete"
    );

    // ADS serves it.
    let mut client =
        AggregatedDiscoveryServiceClient::connect(format!("http://{}", bound.xds_addr))
            .await
            .unwrap();
    let request = DiscoveryRequest {
        type_url: type_url::LISTENER.into(),
        ..Default::default()
    };
    let mut responses = client
        .stream_aggregated_resources(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(PATIENCE, responses.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.resources.len(), 1);

    // A new file, next to an invalid VirtualService in another file: the service appears.
    let bad_vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: alpha, namespace: default }\n\
                  spec:\n  hosts: [alpha]\n  http:\n  - route: [ { destination: { host: nowhere } } ]\n";
    write(&dir, "bad.yaml", bad_vs);
    write(&dir, "b.yaml", &service("beta", 81));
    until(&mut snapshots, "beta's listener", |s| {
        has_listener(s, "beta.default.svc.cluster.local:81")
    })
    .await;

    // Deleting a file removes its objects.
    std::fs::remove_file(dir.join("a.yaml")).unwrap();
    until(&mut snapshots, "alpha's listener to go", |s| {
        !has_listener(s, "alpha.default.svc.cluster.local:80")
    })
    .await;

    tokio::time::timeout(PATIENCE, bound.shutdown())
        .await
        .expect("shutdown in time")
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn bad_configuration_is_reported() {
    let config = Config::new("/nonexistent/corridor", "127.0.0.1:0".parse().unwrap());
    let err = build(config).await.unwrap_err().to_string();
    assert!(err.contains("--manifests"), "{err}");
}
