//! Leader election on a coordination.k8s.io/v1 Lease: every replica serves xDS, only the
//! leader writes (address Services, the CoreDNS hook, status conditions).
//!
//! A candidate takes the Lease when nobody holds it or when its record has not changed
//! for a whole lease duration, measured on the candidate's own clock (as client-go does,
//! so clock skew between nodes does not matter); the holder renews it every renew period
//! and steps down at once when a renewal fails, well before anyone else may take over.
//! Every write carries the resourceVersion it read, so two candidates cannot both win.

use std::time::Duration;

use ::kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use tokio::{sync::watch, task::JoinHandle, time::Instant};

/// Default lease duration: how long a silent leader keeps others out.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// Default renew period: three renewals fit in a lease duration, so one slow request
/// does not cost the leadership.
pub const RENEW_PERIOD: Duration = Duration::from_secs(5);

/// Which Lease, who is asking, and the timing.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// Lease duration.
    pub duration: Duration,
    /// Renew (and retry) period.
    pub renew: Duration,
}

/// What was last seen of the Lease, and when it last changed.
#[derive(Debug)]
struct Observed {
    record: (Option<String>, Option<String>),
    since: Instant,
}

struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Option<Observed>,
}

/// Runs the election until `shutdown` turns true, publishing whether this replica leads.
/// On shutdown a leader releases the Lease so that another replica takes over at once.
pub fn elect(
    client: Client,
    config: LeaseConfig,
    mut shutdown: watch::Receiver<bool>,
) -> (watch::Receiver<bool>, JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let mut elector = Elector {
        api: Api::namespaced(client, &config.namespace),
        config,
        observed: None,
    };
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(elector.config.renew);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|v| *v) => break,
                _ = ticker.tick() => {}
            }
            let leading = *tx.borrow();
            let now = match elector.try_acquire_or_renew().await {
                Ok(won) => won,
                Err(e) => {
                    if leading {
                        tracing::warn!(lease = %elector.config.name, error = %e, "cannot renew the leader Lease; stepping down");
                    } else {
                        tracing::debug!(lease = %elector.config.name, error = %e, "cannot read the leader Lease");
                    }
                    false
                }
            };
            if now != leading {
                if now {
                    tracing::info!(lease = %elector.config.name, identity = %elector.config.identity, "became the leader");
                } else {
                    tracing::info!(lease = %elector.config.name, identity = %elector.config.identity, "no longer the leader");
                }
                tx.send_replace(now);
            }
        }
        if *tx.borrow() {
            tx.send_replace(false);
            elector.release().await;
        }
    });
    (rx, task)
}

impl Elector {
    /// One round: true when this replica holds the Lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, ::kube::Error> {
        let me = self.config.identity.clone();
        let Some(lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = (holder.clone(), lease.metadata.resource_version.clone());
        if self.observed.as_ref().is_none_or(|o| o.record != record) {
            self.observed = Some(Observed {
                record,
                since: Instant::now(),
            });
        }
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.config.duration, Duration::from_secs);
        let expired = self
            .observed
            .as_ref()
            .is_some_and(|o| o.since.elapsed() >= duration);
        // A Lease under this replica's name is renewed even when this run did not take it
        // (a restarted pod keeps its name): nobody else may take it before it expires.
        let mine = holder.as_deref() == Some(me.as_str());
        if !(mine || holder.is_none() || expired) {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine {
            spec.acquire_time.clone()
        } else {
            None
        };
        let mut renewed = lease;
        renewed.spec = Some(self.spec(acquired, transitions));
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &renewed)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A spec naming this replica, renewed now.
    fn spec(&self, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.duration.as_secs().max(1)).unwrap_or(i32::MAX),
            ),
            acquire_time: acquired.or_else(|| Some(now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Gives the Lease up (best effort): no holder, and a one-second duration.
    async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.config.name, "released the leader Lease"),
            Err(e) => {
                tracing::debug!(lease = %self.config.name, error = %e, "could not release the leader Lease")
            }
        }
    }
}

fn is_conflict(e: &::kube::Error) -> bool {
    matches!(e, ::kube::Error::Api(s) if s.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::fake::FakeApi;

    fn config(identity: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: "corridor-system".into(),
            name: "corridor-controller".into(),
            identity: identity.into(),
            duration: Duration::from_secs(1),
            renew: Duration::from_millis(100),
        }
    }

    async fn until(rx: &mut watch::Receiver<bool>, want: bool) {
        tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|v| *v == want))
            .await
            .expect("leadership in time")
            .unwrap();
    }

    fn holder(fake: &FakeApi) -> Option<String> {
        let lease = fake.get(
            "coordination.k8s.io/v1",
            "Lease",
            "corridor-system",
            "corridor-controller",
        )?;
        lease["spec"]["holderIdentity"].as_str().map(str::to_string)
    }

    #[tokio::test]
    async fn exactly_one_leads_and_the_other_takes_over_after_expiry() {
        let fake = FakeApi::start().await.unwrap();
        let (_stop, shutdown) = watch::channel(false);
        let (mut a, task_a) = elect(fake.client(), config("a"), shutdown.clone());
        until(&mut a, true).await;
        let (mut b, task_b) = elect(fake.client(), config("b"), shutdown.clone());
        // b keeps trying for a few lease durations and never wins while a renews.
        for _ in 0..15 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(*a.borrow() && !*b.borrow(), "exactly one leader");
        }
        assert_eq!(holder(&fake).as_deref(), Some("a"));

        // a stops renewing (its task is gone, no release): b takes over after expiry.
        task_a.abort();
        until(&mut b, true).await;
        assert_eq!(holder(&fake).as_deref(), Some("b"));
        let lease = fake
            .get(
                "coordination.k8s.io/v1",
                "Lease",
                "corridor-system",
                "corridor-controller",
            )
            .unwrap();
        assert_eq!(lease["spec"]["leaseTransitions"], 1);
        drop(task_b);
    }

    #[tokio::test]
    async fn a_leader_that_shuts_down_releases_the_lease() {
        let fake = FakeApi::start().await.unwrap();
        let (stop_a, shutdown_a) = watch::channel(false);
        let (mut a, task_a) = elect(fake.client(), config("a"), shutdown_a);
        until(&mut a, true).await;
        stop_a.send_replace(true);
        task_a.await.unwrap();
        assert_eq!(holder(&fake), None, "released");
        let (_stop_b, shutdown_b) = watch::channel(false);
        let (mut b, _task_b) = elect(fake.client(), config("b"), shutdown_b);
        until(&mut b, true).await;
    }

    #[tokio::test]
    async fn a_leader_that_cannot_renew_steps_down() {
        let fake = FakeApi::start().await.unwrap();
        let (_stop, shutdown) = watch::channel(false);
        let (mut a, _task) = elect(fake.client(), config("a"), shutdown);
        until(&mut a, true).await;
        fake.remove_api("coordination.k8s.io", "leases");
        until(&mut a, false).await;
    }
}
