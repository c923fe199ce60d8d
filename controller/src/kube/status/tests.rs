//! The Accepted condition: what is written, when, and that other conditions stay.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::*;
use crate::{
    kube::{fake::FakeApi, source::Watches, watch::WatchOptions},
    probe::Readiness,
    resources::Kind,
};

#[test]
fn a_condition_is_rewritten_only_when_it_changes() {
    let accepted = Verdict::accepted(Some(3));
    let first = merged(&[], &accepted).expect("nothing there: write");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["status"], "True");
    assert_eq!(first[0]["reason"], REASON_ACCEPTED);
    assert_eq!(first[0]["observedGeneration"], 3);
    assert!(first[0]["lastTransitionTime"].is_string());
    assert!(
        merged(&first, &accepted).is_none(),
        "same condition: no write"
    );

    // A new generation, still accepted: rewritten, with the same transition time.
    let mut old = first.clone();
    old[0]["lastTransitionTime"] = json!("2020-01-01T00:00:00Z");
    let next = merged(&old, &Verdict::accepted(Some(4))).unwrap();
    assert_eq!(next[0]["observedGeneration"], 4);
    assert_eq!(next[0]["lastTransitionTime"], "2020-01-01T00:00:00Z");

    // Rejected: False, Invalid, the reason on one line, a new transition time; other
    // writers' conditions stay.
    let foreign = json!({"type": "Reconciled", "status": "True"});
    old.insert(0, foreign.clone());
    let rejected = merged(
        &old,
        &Verdict::rejected(Some(5), "route 0:\n  unknown subset v9"),
    )
    .unwrap();
    assert_eq!(rejected[0], foreign);
    let c = &rejected[1];
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("False"), Some(REASON_INVALID))
    );
    assert_eq!(c["message"], "route 0: unknown subset v9");
    assert_ne!(c["lastTransitionTime"], "2020-01-01T00:00:00Z");
}

#[test]
fn long_messages_are_cut_on_a_character_boundary() {
    let c = desired(&Verdict::rejected(None, "é".repeat(2000)));
    let m = c["message"].as_str().unwrap();
    assert!(m.len() <= MAX_MESSAGE && m.starts_with('é'));
    assert!(c.get("observedGeneration").is_none());
}

const VS: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: bookinfo}\n\
                  spec: {hosts: [reviews]}\nstatus: {conditions: [{type: Reconciled, status: 'True'}]}\n---\n\
                  apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\n\
                  spec: {host: reviews}\n";

fn object(kind: Kind, name: &str) -> ObjectRef {
    ObjectRef {
        kind,
        namespace: "bookinfo".into(),
        name: name.into(),
    }
}

async fn condition_of(fake: &FakeApi, kind: &str, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let o = fake
            .get("networking.istio.io/v1", kind, "bookinfo", "reviews")
            .unwrap();
        let found = o["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == CONDITION_TYPE).cloned());
        if found.is_some_and(|c| want(&c)) {
            return o;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition on {kind}: {o}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_leader_writes_accepted_and_rejected_conditions_once() {
    let fake = FakeApi::start().await.unwrap();
    fake.apply_yaml(VS).unwrap();
    let (_stop, shutdown) = watch::channel(false);
    let readiness = Arc::new(Readiness::default());
    let mut watches = Watches::start(
        fake.client(),
        &readiness,
        Arc::default(),
        WatchOptions::default(),
        shutdown.clone(),
    );
    watches.synced(Duration::from_secs(60)).await;
    let vs = object(Kind::VirtualService, "reviews");
    let dr = object(Kind::DestinationRule, "reviews");
    let (verdicts_tx, verdicts) = watch::channel(Arc::new(BTreeMap::from([(
        vs.clone(),
        Verdict::accepted(Some(1)),
    )])));
    let (leader_tx, leader) = watch::channel(false);
    let _writer = write_status(
        fake.client(),
        watches.shared.clone(),
        verdicts,
        leader,
        shutdown,
    );

    leader_tx.send_replace(true);
    let o = condition_of(&fake, "VirtualService", |c| c["status"] == "True").await;
    let conditions = o["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions[0]["type"], "Reconciled", "other conditions stay");
    assert_eq!(conditions[1]["observedGeneration"], 1);
    let rv = o["metadata"]["resourceVersion"].clone();

    // Another pass (a verdict for the DestinationRule) leaves the VirtualService alone.
    verdicts_tx.send_modify(|v| {
        Arc::make_mut(v).insert(dr.clone(), Verdict::accepted(Some(1)));
    });
    condition_of(&fake, "DestinationRule", |c| c["status"] == "True").await;
    let again = fake
        .get(
            "networking.istio.io/v1",
            "VirtualService",
            "bookinfo",
            "reviews",
        )
        .unwrap();
    assert_eq!(
        again["metadata"]["resourceVersion"], rv,
        "an unchanged condition is not rewritten"
    );

    verdicts_tx.send_modify(|v| {
        Arc::make_mut(v).insert(vs.clone(), Verdict::rejected(Some(2), "unknown subset v9"));
    });
    let o = condition_of(&fake, "VirtualService", |c| c["status"] == "False").await;
    let c = &o["status"]["conditions"][1];
    assert_eq!(
        (c["reason"].as_str(), c["message"].as_str()),
        (Some(REASON_INVALID), Some("unknown subset v9"))
    );
    assert_eq!(c["observedGeneration"], 2);
}
