//! The fake API server through kube's own client: what the controller relies on.

use std::time::Duration;

use ::kube::{
    Api,
    api::{DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    core::{ApiResource, GroupVersionKind},
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::FakeApi;

fn vs_resource(version: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.istio.io", version, "VirtualService"),
        "virtualservices",
    )
}

fn vs(name: &str, host: &str) -> serde_json::Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
           "metadata": {"name": name, "namespace": "default"}, "spec": {"hosts": [host]}})
}

async fn next<S, T>(stream: &mut S) -> T
where
    S: futures::Stream<Item = Result<T, ::kube::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event in time")
        .expect("the stream is open")
        .expect("not an error")
}

#[tokio::test]
async fn lists_watches_and_replays_in_resource_version_order() {
    let fake = FakeApi::start().await.unwrap();
    fake.apply(vs("a", "a")).unwrap();
    let api: Api<DynamicObject> =
        Api::namespaced_with(fake.client(), "default", &vs_resource("v1beta1"));
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(
        list.items[0].types.as_ref().unwrap().api_version,
        "networking.istio.io/v1beta1"
    );
    let rv = list.metadata.resource_version.clone().unwrap();

    // Changes made before the watch starts are replayed from the list's version.
    fake.apply(vs("b", "b")).unwrap();
    let mut events = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    assert!(
        matches!(next(&mut events).await, WatchEvent::Added(o) if o.metadata.name.as_deref() == Some("b"))
    );
    fake.apply(vs("a", "changed")).unwrap();
    let WatchEvent::Modified(o) = next(&mut events).await else {
        panic!("a MODIFIED event")
    };
    assert_eq!(o.data["spec"]["hosts"][0], "changed");
    assert_eq!(
        o.metadata.generation,
        Some(2),
        "a spec change bumps the generation"
    );
    assert!(fake.delete("networking.istio.io/v1", "VirtualService", "default", "b"));
    assert!(matches!(next(&mut events).await, WatchEvent::Deleted(_)));

    // A closed stream ends; compacted history means 410 for the old version.
    fake.close_watches();
    assert!(
        tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .is_none()
    );
    fake.compact();
    let mut events = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let WatchEvent::Error(status) = next(&mut events).await else {
        panic!("an ERROR event")
    };
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn missing_resources_answer_404_until_installed() {
    let fake = FakeApi::start().await.unwrap();
    fake.remove_api("networking.istio.io", "virtualservices");
    let api: Api<DynamicObject> = Api::all_with(fake.client(), &vs_resource("v1"));
    let err = api.list(&ListParams::default()).await.unwrap_err();
    assert!(matches!(err, ::kube::Error::Api(s) if s.code == 404));
    fake.serve_versions("networking.istio.io", "virtualservices", &["v1alpha3"]);
    assert!(
        api.list(&ListParams::default()).await.is_err(),
        "v1 is still not served"
    );
    let old: Api<DynamicObject> = Api::all_with(fake.client(), &vs_resource("v1alpha3"));
    assert!(old.list(&ListParams::default()).await.is_ok());
}

#[tokio::test]
async fn writes_keep_status_behind_its_subresource_and_check_versions() {
    let fake = FakeApi::start().await.unwrap();
    fake.apply(vs("a", "a")).unwrap();
    let api: Api<DynamicObject> =
        Api::namespaced_with(fake.client(), "default", &vs_resource("v1"));
    let status = json!({"status": {"conditions": [{"type": "Accepted", "status": "True"}]}});
    let patched = api
        .patch_status("a", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(patched.data["status"]["conditions"][0]["type"], "Accepted");
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "status writes leave the generation"
    );
    // A plain patch cannot change status; it keeps the one there.
    let sneaky = json!({"status": {"conditions": []}, "metadata": {"labels": {"x": "y"}}});
    let o = api
        .patch("a", &PatchParams::default(), &Patch::Merge(&sneaky))
        .await
        .unwrap();
    assert_eq!(o.data["status"]["conditions"][0]["type"], "Accepted");
    assert_eq!(o.metadata.labels.unwrap()["x"], "y");

    let mut stale = api.get("a").await.unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"hosts": ["z"]}})),
    )
    .await
    .unwrap();
    let err = api
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(matches!(err, ::kube::Error::Api(s) if s.code == 409));
    stale.metadata.resource_version = None;
    let err = api
        .create(&PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ::kube::Error::Api(s) if s.code == 409),
        "already exists"
    );
}

#[tokio::test]
async fn label_selectors_filter_watches() {
    let fake = FakeApi::start().await.unwrap();
    let pod = |name: &str, app: &str| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "gw", "labels": {"app": app}}})
    };
    fake.apply(pod("one", "gateway")).unwrap();
    fake.apply(pod("other", "web")).unwrap();
    let api: Api<Pod> = Api::namespaced(fake.client(), "gw");
    let list = api
        .list(&ListParams::default().labels("app=gateway"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let rv = list.metadata.resource_version.unwrap();
    let mut events = api
        .watch(&WatchParams::default().labels("app=gateway"), &rv)
        .await
        .unwrap()
        .boxed();
    fake.apply(pod("other", "gateway")).unwrap();
    assert!(
        matches!(next(&mut events).await, WatchEvent::Added(p) if p.metadata.name.as_deref() == Some("other"))
    );
    fake.apply(pod("one", "web")).unwrap();
    assert!(
        matches!(next(&mut events).await, WatchEvent::Deleted(p) if p.metadata.name.as_deref() == Some("one"))
    );
    let names: Vec<String> = api
        .list(&ListParams::default().labels("app=gateway"))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert_eq!(names, vec!["other"]);
}
