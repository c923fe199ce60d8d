//! Status conditions on the routing resources (leader only): an `Accepted` condition,
//! True or False with the reason admission gave, and the generation it is about, merged
//! into `status.conditions` through the `/status` subresource. Conditions other writers
//! keep there (Istio's own, for instance) stay; nothing is written when the condition
//! the API holds already says the same.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use ::kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams},
};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use tokio::{sync::watch, task::JoinHandle};

use super::{apis::watched, reflect::Shared};
use crate::{
    admission::{Verdict, Verdicts},
    resources::{ObjectRef, one_line},
};

/// The condition type written.
pub const CONDITION_TYPE: &str = "Accepted";
/// Reason of an accepted object.
pub const REASON_ACCEPTED: &str = "Accepted";
/// Reason of a rejected object.
pub const REASON_INVALID: &str = "Invalid";
/// Field manager named on the writes.
pub const FIELD_MANAGER: &str = "corridor-controller";
/// Longest message written; the API server caps condition messages at 32768 bytes, and
/// a reason longer than this is a parser dump nobody reads in `kubectl describe`.
const MAX_MESSAGE: usize = 1024;
/// Wait before retrying writes that failed.
const RETRY: Duration = Duration::from_secs(5);

/// The condition to write for a verdict (without `lastTransitionTime`).
pub fn desired(verdict: &Verdict) -> Value {
    let (status, reason, message) = match &verdict.rejection {
        None => ("True", REASON_ACCEPTED, "accepted by Corridor".to_string()),
        Some(why) => {
            let mut m = one_line(why);
            if m.len() > MAX_MESSAGE {
                let mut cut = MAX_MESSAGE;
                while !m.is_char_boundary(cut) {
                    cut -= 1;
                }
                m.truncate(cut);
            }
            ("False", REASON_INVALID, m)
        }
    };
    let mut c =
        json!({"type": CONDITION_TYPE, "status": status, "reason": reason, "message": message});
    if let Some(g) = verdict.generation {
        c["observedGeneration"] = json!(g);
    }
    c
}

/// The full `status.conditions` to write, or None when `current` says the same already.
pub fn merged(current: &[Value], verdict: &Verdict) -> Option<Vec<Value>> {
    let want = desired(verdict);
    let existing = current.iter().find(|c| c["type"] == CONDITION_TYPE);
    let same = existing.is_some_and(|c| {
        ["status", "reason", "message", "observedGeneration"]
            .iter()
            .all(|k| c.get(*k) == want.get(*k))
    });
    if same {
        return None;
    }
    let mut condition = want;
    let transition = match existing {
        Some(c) if c["status"] == condition["status"] => c.get("lastTransitionTime").cloned(),
        _ => None,
    };
    condition["lastTransitionTime"] = transition
        .unwrap_or_else(|| json!(Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()));
    let mut out: Vec<Value> = current
        .iter()
        .filter(|c| c["type"] != CONDITION_TYPE)
        .cloned()
        .collect();
    out.push(condition);
    Some(out)
}

/// Writes conditions while `leader` is true, whenever verdicts or the objects change.
pub fn write_status(
    client: Client,
    shared: Arc<Shared>,
    mut verdicts: watch::Receiver<Arc<Verdicts>>,
    mut leader: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let mut revisions = shared.revisions();
    tokio::spawn(async move {
        // What this writer last wrote, and over which conditions, until the watch shows
        // it back: not written twice, but written again if someone else changed them.
        let mut written: BTreeMap<ObjectRef, Written> = BTreeMap::new();
        loop {
            let mut retry = false;
            if *leader.borrow_and_update() {
                let current = verdicts.borrow_and_update().clone();
                revisions.borrow_and_update();
                retry = pass(&client, &shared, &current, &mut written).await;
            } else {
                written.clear();
            }
            tokio::select! {
                _ = shutdown.wait_for(|v| *v) => return,
                r = leader.changed() => if r.is_err() { return },
                r = verdicts.changed() => if r.is_err() { return },
                r = revisions.changed() => if r.is_err() { return },
                () = tokio::time::sleep(RETRY), if retry => {}
            }
        }
    })
}

/// A condition written, and the conditions it was written over.
type Written = (Value, Vec<Value>);

/// One pass over every verdict; true when some write failed and should be retried.
async fn pass(
    client: &Client,
    shared: &Shared,
    verdicts: &Verdicts,
    written: &mut BTreeMap<ObjectRef, Written>,
) -> bool {
    let mut writes = Vec::new();
    {
        let reflected = shared.lock();
        for (object, verdict) in verdicts {
            let (Some(api), Some(version)) = (watched(object.kind), reflected.version(object.kind))
            else {
                continue;
            };
            let current = reflected
                .conditions()
                .get(object)
                .map_or(&[][..], Vec::as_slice);
            let Some(conditions) = merged(current, verdict) else {
                written.remove(object);
                continue;
            };
            let want = desired(verdict);
            let mark = (want, current.to_vec());
            if written.get(object) == Some(&mark) {
                continue; // written already; the watch has not shown it back yet
            }
            writes.push((object.clone(), api.resource(version), conditions, mark));
        }
    }
    let mut failed = false;
    for (object, resource, conditions, want) in writes {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &object.namespace, &resource);
        let patch = json!({"status": {"conditions": conditions}});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        match api
            .patch_status(&object.name, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::debug!(%object, status = %want.0["status"], "status written");
                written.insert(object, want);
            }
            Err(::kube::Error::Api(s)) if s.code == 404 => {} // deleted meanwhile
            Err(e) => {
                tracing::warn!(%object, error = %e, "cannot write the status condition; retrying (may this service account patch its /status?)");
                failed = true;
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests;
