//! The Kubernetes source against the fake API server: for every kind, add, update and
//! delete; a watch restart; a 410 Gone relist; a missing CRD, found later. Throughout,
//! the store it builds must equal the one the file source builds from the objects the
//! API holds (dumped as `kubectl get -o json` would).

use std::{path::PathBuf, sync::Arc, time::Duration};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::{
    apis::WATCHED,
    fake::FakeApi,
    source::{KubeSource, Watches},
    watch::WatchOptions,
};
use crate::{
    probe::{Metrics, Readiness},
    resources::{Kind, ObjectRef},
    source::{Source, file::ManifestDir},
    store::{ObjectKey, Store},
};

const FIXTURE: &str = include_str!("testdata/all-kinds.yaml");
/// How long a change may take to reach the store before a test fails.
const PATIENCE: Duration = Duration::from_secs(15);

struct Harness {
    fake: FakeApi,
    watches: Watches,
    source: KubeSource,
    metrics: Arc<Metrics>,
    dir: PathBuf,
    _stop: watch::Sender<bool>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start(fake: FakeApi, tag: &str) -> Harness {
    let (stop, shutdown) = watch::channel(false);
    let readiness = Arc::new(Readiness::default());
    let metrics = Arc::new(Metrics::default());
    let opts = WatchOptions {
        recheck: Duration::from_millis(100),
    };
    let mut watches = Watches::start(fake.client(), &readiness, metrics.clone(), opts, shutdown);
    tokio::time::timeout(PATIENCE, watches.synced(Duration::from_secs(60)))
        .await
        .expect("every API listed");
    assert!(readiness.is_ready(), "pending: {:?}", readiness.pending());
    let (source, _triggers) = watches.source(Duration::from_millis(1));
    let dir = std::env::temp_dir().join(format!("corridor-kube-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Harness {
        fake,
        watches,
        source,
        metrics,
        dir,
        _stop: stop,
    }
}

async fn fake_with_fixture() -> FakeApi {
    let fake = FakeApi::start().await.unwrap();
    fake.apply_yaml(FIXTURE).unwrap();
    fake
}

/// The store the file source builds from `text` (one file).
fn file_store(dir: &std::path::Path, text: &str) -> Store {
    std::fs::write(dir.join("objects.yaml"), text).unwrap();
    let mut m = ManifestDir::new(dir);
    m.rescan();
    m.store().0
}

/// The objects the fake holds, as one `List` document.
fn dump(fake: &FakeApi) -> String {
    json!({"apiVersion": "v1", "kind": "List", "items": fake.all_objects()}).to_string()
}

/// Which parts of two stores differ (for failure messages).
fn differences(a: &Store, b: &Store) -> Vec<&'static str> {
    let mut out = Vec::new();
    macro_rules! cmp {
        ($($f:ident),*) => {$( if a.$f != b.$f { out.push(stringify!($f)); } )*};
    }
    cmp!(
        namespaces,
        services,
        pods,
        endpoint_slices,
        virtual_services,
        destination_rules,
        meta_routers,
        secrets,
        redis_services,
        redis_destinations,
        authorization_policies
    );
    out
}

impl Harness {
    /// Waits until the Kubernetes source's store equals the file source's store of what
    /// the API holds now.
    async fn converges(&self, what: &str) {
        let want = file_store(&self.dir, &dump(&self.fake));
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let got = self.source.store();
            if got == want {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "{what}: the stores still differ in {:?}",
                    differences(&got, &want)
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The fixture's first object of a kind, with `name`.
fn sample(kind: &str, name: &str) -> Value {
    let mut o = serde_yaml_ng::Deserializer::from_str(FIXTURE)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .find(|o| o["kind"] == kind && o["type"] != "kubernetes.io/tls")
        .unwrap_or_else(|| panic!("the fixture has a {kind}"));
    o["metadata"]["name"] = json!(name);
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    o
}

#[tokio::test]
async fn the_kube_store_equals_the_file_store_of_the_same_objects() {
    let h = start(fake_with_fixture().await, "equal").await;
    h.converges("initial lists").await;
    let store = h.source.store();
    // Every kind is there, trimmed the same way.
    assert_eq!(store.namespaces.len(), 2);
    assert_eq!(store.services.len(), 3);
    assert_eq!(store.pods.len(), 2);
    assert_eq!(store.endpoint_slices.len(), 3);
    assert_eq!(store.secrets.len(), 1, "the TLS Secret is not kept");
    assert_eq!(
        (
            store.virtual_services.len(),
            store.destination_rules.len(),
            store.meta_routers.len()
        ),
        (1, 1, 1)
    );
    assert_eq!(
        (
            store.redis_services.len(),
            store.redis_destinations.len(),
            store.authorization_policies.len()
        ),
        (1, 1, 1)
    );
    let svc = &store.services[&ObjectKey::new("bookinfo", "reviews")];
    assert!(svc.metadata.managed_fields.is_none() && svc.metadata.annotations.is_none());
    let pod = &store.pods[&ObjectKey::new("bookinfo", "reviews-v1-7f9c")];
    assert!(pod.spec.as_ref().unwrap().containers.is_empty());
    assert_eq!(pod.metadata.generation, Some(1), "server fields are kept");

    // The same objects written as manifests, without what the API server adds, make the
    // same store as the fixture itself.
    let mut items = h.fake.all_objects();
    for o in &mut items {
        if let Some(m) = o["metadata"].as_object_mut() {
            for f in ["uid", "creationTimestamp", "resourceVersion", "generation"] {
                m.remove(f);
            }
        }
        if o["kind"] == "Service"
            && let Some(spec) = o["spec"].as_object_mut()
        {
            spec.remove("clusterIPs"); // defaulted from clusterIP
        }
    }
    let stripped = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
    let (from_api, from_fixture) = (file_store(&h.dir, &stripped), file_store(&h.dir, FIXTURE));
    assert!(
        from_api == from_fixture,
        "differ in {:?}",
        differences(&from_api, &from_fixture)
    );
}

#[tokio::test]
async fn every_kind_is_added_updated_and_deleted() {
    let h = start(fake_with_fixture().await, "lifecycle").await;
    h.converges("initial lists").await;
    for api in &WATCHED {
        let name = format!("{}-added", api.plural);
        let mut object = sample(api.kind_name, &name);
        h.fake.apply(object.clone()).unwrap();
        h.converges(&format!("{} added", api.kind_name)).await;
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = ObjectKey::new(
            if api.kind == Kind::Namespace {
                ""
            } else {
                &namespace
            },
            &name,
        );
        assert!(
            contains(&h.source.store(), api.kind, &key),
            "{} {key} added",
            api.kind_name
        );

        object["metadata"]["labels"] = json!({"revision": "2"});
        h.fake.apply(object.clone()).unwrap();
        h.converges(&format!("{} updated", api.kind_name)).await;

        let api_version = object["apiVersion"].as_str().unwrap().to_string();
        assert!(
            h.fake
                .delete(&api_version, api.kind_name, &namespace, &name)
        );
        h.converges(&format!("{} deleted", api.kind_name)).await;
        assert!(
            !contains(&h.source.store(), api.kind, &key),
            "{} {key} deleted",
            api.kind_name
        );
    }
}

fn contains(store: &Store, kind: Kind, key: &ObjectKey) -> bool {
    let mut probe = store.clone();
    probe.remove(&ObjectRef {
        kind,
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    })
}

#[tokio::test]
async fn a_restarted_watch_replays_what_it_missed_without_relisting() {
    let h = start(fake_with_fixture().await, "restart").await;
    h.converges("initial lists").await;
    let (lists, watches) = h.fake.requests("", "services");
    h.fake.hold_watches(true);
    h.fake.close_watches();
    h.fake.apply(sample("Service", "late")).unwrap();
    assert!(h.fake.delete("v1", "Pod", "bookinfo", "reviews-v2-5d4b"));
    h.fake.hold_watches(false);
    h.converges("after the restart").await;
    let (lists_after, watches_after) = h.fake.requests("", "services");
    assert_eq!(
        lists_after, lists,
        "no relist: the watch resumed from its resourceVersion"
    );
    assert!(watches_after > watches, "the watch was restarted");
}

#[tokio::test]
async fn a_410_gone_relists_and_drops_what_was_deleted_meanwhile() {
    let h = start(fake_with_fixture().await, "gone").await;
    h.converges("initial lists").await;
    let (lists, _) = h.fake.requests("", "services");
    h.fake.hold_watches(true);
    h.fake.close_watches();
    assert!(h.fake.delete("v1", "Service", "shop", "cache"));
    h.fake.apply(sample("Service", "fresh")).unwrap();
    h.fake.compact(); // the deletion event is gone from the history
    h.fake.hold_watches(false);
    h.converges("after the relist").await;
    assert!(
        !h.source
            .store()
            .services
            .contains_key(&ObjectKey::new("shop", "cache"))
    );
    assert!(h.fake.requests("", "services").0 > lists, "relisted");
    assert!(
        h.metrics.watch_restarts("Service") >= 1,
        "the 410 counts as a restart"
    );

    // The one-shot 410 on the next watch does the same for one resource.
    let (lists, _) = h.fake.requests("networking.istio.io", "virtualservices");
    h.fake.hold_watches(true);
    h.fake
        .gone_on_next_watch("networking.istio.io", "virtualservices");
    let mut vs = sample("VirtualService", "reviews");
    vs["spec"]["http"][1]["timeout"] = json!("5s");
    h.fake.apply(vs).unwrap();
    h.fake.hold_watches(false);
    h.converges("after the one-shot 410").await;
    assert!(h.fake.requests("networking.istio.io", "virtualservices").0 > lists);
}

#[tokio::test]
async fn a_missing_crd_turns_its_api_off_until_it_is_installed() {
    let fake = fake_with_fixture().await;
    fake.remove_api("metaprotocol.aeraki.io", "metarouters");
    let h = start(fake, "crd").await;
    h.converges("without MetaRouters").await;
    assert!(h.source.store().meta_routers.is_empty());
    assert_eq!(h.watches.shared.lock().version(Kind::MetaRouter), None);

    h.fake.install_api("metaprotocol.aeraki.io", "metarouters");
    h.fake.apply(sample("MetaRouter", "greeter")).unwrap();
    h.converges("MetaRouter CRD installed").await;
    assert_eq!(h.source.store().meta_routers.len(), 1);

    // Uninstalled while watched: its objects go, nothing crashes, and it comes back.
    h.fake.remove_api("networking.istio.io", "virtualservices");
    h.converges("VirtualService CRD removed").await;
    assert!(h.source.store().virtual_services.is_empty());
    h.fake.install_api("networking.istio.io", "virtualservices");
    h.fake.apply(sample("VirtualService", "reviews")).unwrap();
    h.converges("VirtualService CRD back").await;
    assert_eq!(h.source.store().virtual_services.len(), 1);
}

#[tokio::test]
async fn an_older_crd_version_is_used_when_the_newest_is_not_served() {
    let fake = fake_with_fixture().await;
    fake.serve_versions("networking.istio.io", "virtualservices", &["v1alpha3"]);
    fake.apply(sample("VirtualService", "reviews")).unwrap();
    let h = start(fake, "versions").await;
    h.converges("VirtualServices through v1alpha3").await;
    assert_eq!(h.source.store().virtual_services.len(), 1);
    assert_eq!(
        h.watches.shared.lock().version(Kind::VirtualService),
        Some("v1alpha3")
    );
}

#[tokio::test]
async fn an_unreadable_object_keeps_its_last_good_version_and_says_why() {
    let mut h = start(fake_with_fixture().await, "unreadable").await;
    h.converges("initial lists").await;
    let fake = &h.fake;
    let mut vs = sample("VirtualService", "reviews");
    vs["spec"]["hosts"] = json!("reviews"); // not a list
    fake.apply(vs).unwrap();
    let source = &mut h.source;
    let object = ObjectRef {
        kind: Kind::VirtualService,
        namespace: "bookinfo".into(),
        name: "reviews".into(),
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !source.unreadable().contains_key(&object) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bad version is noticed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(source.refresh());
    let verdict = &source.unreadable()[&object];
    assert_eq!(verdict.generation, Some(2));
    assert!(
        verdict
            .rejection
            .as_deref()
            .unwrap_or_default()
            .contains("sequence"),
        "{verdict:?}"
    );
    let kept = &source.store().virtual_services[&ObjectKey::new("bookinfo", "reviews")];
    assert_eq!(
        kept.spec.hosts,
        vec!["reviews"],
        "the last good version stays"
    );
    assert_eq!(source.origin(&object), "the Kubernetes API");
}
