//! Reconcile against the fake API server: the diff's Services appear, change and go, and
//! a second pass over what the server then holds has nothing to do.

use ::kube::api::ListParams;
use k8s_openapi::api::core::v1::Service;
use serde_json::json;

use super::*;
use crate::{
    cluster::{
        address::{
            plan,
            tests::{NS, opts, service},
        },
        published::Published,
    },
    kube::fake::FakeApi,
    resources::Object,
    store::{ObjectKey, Store},
};

/// `store` with the own namespace's Services replaced by what the server holds now (what
/// the watch would deliver).
async fn refreshed(client: &Client, store: &Store) -> Store {
    let mut out = store.clone();
    out.services.retain(|k, _| k.namespace != NS);
    let api: Api<Service> = Api::namespaced(client.clone(), NS);
    for svc in api.list(&ListParams::default()).await.unwrap() {
        out.insert(Object::Service(Box::new(svc)));
    }
    out
}

#[tokio::test]
async fn creates_updates_and_deletes_address_services() {
    let fake = FakeApi::start().await.unwrap();
    let client = fake.client();
    let mut store = Store::default();
    for name in ["reviews", "ratings"] {
        store.insert(Object::Service(Box::new(service(
            "default",
            name,
            &[80, 9090],
        ))));
    }

    let diff = plan(&store, &opts());
    let report = reconcile(client.clone(), NS, &diff).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.created, report.updated, report.deleted), (2, 0, 0));
    // What the server stored comes back, ready to fold into the store.
    let mut folded = store.clone();
    for svc in &report.written {
        folded.insert(Object::Service(Box::new(svc.clone())));
    }
    assert!(plan(&folded, &opts()).is_empty());
    let stored = fake.get("v1", "Service", NS, "reviews-default").unwrap();
    assert_eq!(
        stored["metadata"]["labels"]["corridor.io/service-name"],
        "reviews"
    );
    assert_eq!(
        stored["spec"]["selector"]["app.kubernetes.io/name"],
        "corridor-gateway"
    );
    let store = refreshed(&client, &store).await;
    assert!(
        plan(&store, &opts()).is_empty(),
        "the server holds what was planned"
    );

    // reviews gains a port, ratings goes.
    let mut next = store.clone();
    next.insert(Object::Service(Box::new(service(
        "default",
        "reviews",
        &[80, 9090, 9100],
    ))));
    next.services.remove(&ObjectKey::new("default", "ratings"));
    let diff = plan(&next, &opts());
    let report = reconcile(client.clone(), NS, &diff).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.created, report.updated, report.deleted), (0, 1, 1));
    assert_eq!(report.gone, ["ratings-default"]);
    assert!(fake.get("v1", "Service", NS, "ratings-default").is_none());
    let next = refreshed(&client, &next).await;
    let published = Published::read(&next, NS);
    let reviews = published.of(&ObjectKey::new("default", "reviews")).unwrap();
    assert_eq!(reviews.ports.len(), 3);
    assert!(plan(&next, &opts()).is_empty());

    // Replaying the same diffs: an existing create and a missing delete are fine.
    let again = reconcile(client.clone(), NS, &plan(&store, &opts())).await;
    assert_eq!(again.errors.len(), 0);
}

#[tokio::test]
async fn a_stale_update_fails_alone_and_is_reported() {
    let fake = FakeApi::start().await.unwrap();
    let client = fake.client();
    let mut store = Store::default();
    store.insert(Object::Service(Box::new(service(
        "default",
        "reviews",
        &[80],
    ))));
    reconcile(client.clone(), NS, &plan(&store, &opts())).await;
    let store = refreshed(&client, &store).await;

    // Someone edits the address Service after the store saw it: the update computed from
    // the store carries an old resourceVersion.
    let mut edited = fake.get("v1", "Service", NS, "reviews-default").unwrap();
    edited["metadata"]["labels"]["team"] = json!("platform");
    fake.apply(edited).unwrap();
    let mut next = store.clone();
    next.insert(Object::Service(Box::new(service(
        "default",
        "reviews",
        &[80, 81],
    ))));
    next.insert(Object::Service(Box::new(service(
        "default",
        "ratings",
        &[80],
    ))));
    let diff = plan(&next, &opts());
    assert_eq!((diff.create.len(), diff.update.len()), (1, 1));
    let report = reconcile(client, NS, &diff).await;
    assert_eq!(report.created, 1, "the other write still happens");
    let [err] = &report.errors[..] else {
        panic!("{:?}", report.errors)
    };
    assert_eq!(
        (err.verb, err.name.as_str()),
        ("replace", "reviews-default")
    );
    assert!(
        err.to_string().contains("corridor-system/reviews-default"),
        "{err}"
    );
}
