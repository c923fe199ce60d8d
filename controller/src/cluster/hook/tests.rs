//! The hook against the fake API server: written once, idempotent, removed cleanly, and
//! never overwriting a concurrent edit.

use std::future::ready;

use serde_json::json;

use super::*;
use crate::{
    cluster::corefile::{
        BEGIN_MARKER,
        tests::{CUSTOM, KUBEADM},
    },
    kube::fake::FakeApi,
};

const NS: &str = "kube-system";
const NAME: &str = "coredns";

fn stub() -> Hook {
    Hook::Stub {
        zone: "cluster.local".to_string(),
        target: "10.96.0.53:53".parse().unwrap(),
    }
}

fn configmap(corefile: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"namespace": NS, "name": NAME},
        "data": {"Corefile": corefile}
    })
}

fn stored(fake: &FakeApi) -> (String, String) {
    let cm = fake.get("v1", "ConfigMap", NS, NAME).unwrap();
    (
        cm["data"]["Corefile"].as_str().unwrap().to_string(),
        cm["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

#[tokio::test]
async fn added_once_kept_and_removed_exactly() {
    let fake = FakeApi::start().await.unwrap();
    fake.apply(configmap(KUBEADM)).unwrap();
    let client = fake.client();

    let outcome = ensure_hook(client.clone(), NS, NAME, &stub())
        .await
        .unwrap();
    assert_eq!(outcome, HookOutcome::Changed);
    let (corefile, version) = stored(&fake);
    assert!(corefile.starts_with(BEGIN_MARKER) && corefile.ends_with(KUBEADM));
    assert_eq!(corefile.matches("cluster.local:53 {").count(), 1);

    let again = ensure_hook(client.clone(), NS, NAME, &stub())
        .await
        .unwrap();
    assert_eq!(again, HookOutcome::Unchanged);
    assert_eq!(stored(&fake), (corefile, version), "nothing written");

    let removed = ensure_hook(client.clone(), NS, NAME, &Hook::Absent)
        .await
        .unwrap();
    assert_eq!(removed, HookOutcome::Changed);
    assert_eq!(stored(&fake).0, KUBEADM);
    let again = ensure_hook(client, NS, NAME, &Hook::Absent).await.unwrap();
    assert_eq!(again, HookOutcome::Unchanged);
}

#[tokio::test]
async fn a_concurrent_edit_is_kept_not_overwritten() {
    let fake = FakeApi::start().await.unwrap();
    fake.apply(configmap(KUBEADM)).unwrap();
    let mut attempts = Vec::new();
    // Between the controller's read and its write, an operator adds a stub domain.
    let outcome = ensure_hook_with(fake.client(), NS, NAME, &stub(), |attempt| {
        attempts.push(attempt);
        if attempt == 1 {
            fake.apply(configmap(CUSTOM)).unwrap();
        }
        ready(())
    })
    .await
    .unwrap();
    assert_eq!(outcome, HookOutcome::Changed);
    assert_eq!(
        attempts,
        [1, 2],
        "the first write met the conflict and was retried"
    );
    let (corefile, _) = stored(&fake);
    assert!(corefile.ends_with(CUSTOM), "the operator's edit survives");
    assert!(corefile.starts_with(BEGIN_MARKER));
}

#[tokio::test]
async fn errors_name_the_configmap_and_write_nothing() {
    let fake = FakeApi::start().await.unwrap();
    let err = ensure_hook(fake.client(), NS, NAME, &stub())
        .await
        .unwrap_err();
    assert!(matches!(&err, HookError::Api { verb: "get", .. }), "{err}");
    assert!(err.to_string().contains("kube-system/coredns"), "{err}");

    fake.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"namespace": NS, "name": NAME}, "data": {"other": "x"}}))
        .unwrap();
    let err = ensure_hook(fake.client(), NS, NAME, &stub())
        .await
        .unwrap_err();
    assert!(matches!(err, HookError::NoCorefile { .. }), "{err}");

    let taken = format!("{KUBEADM}cluster.local:53 {{\n    forward . 10.0.0.9\n}}\n");
    fake.apply(configmap(&taken)).unwrap();
    let version = stored(&fake).1;
    let err = ensure_hook(fake.client(), NS, NAME, &stub())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            HookError::Corefile {
                source: CorefileError::ZoneTaken { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(stored(&fake), (taken, version));
}
