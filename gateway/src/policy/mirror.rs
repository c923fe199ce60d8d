//! Request mirroring, the same for every protocol: which mirrors a request gets (each
//! drawn with its share), and sending a copy in the background so that it never touches
//! the caller's call. A copy is admitted under its cluster's circuit breaker, counted as
//! active there while in flight, bounded in time and in number gateway-wide; its answer
//! is discarded. Each protocol builds its own copy (HTTP: the upstream head and a tee of
//! the body; Dubbo/Thrift: the decoded frame) and hands the sending to [`spawn`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use corridor_proto::envoy::config::route::v3::route_action::RequestMirrorPolicy;
use rand::Rng;

use super::fault::{sampled, share};
use super::reject::{Reject, RejectKind};
use super::route::Mirror;
use crate::cluster::ClusterState;
use crate::model::ModelError;
use crate::proxy::attempts;
use crate::proxy::exchange::ClusterActive;
use crate::telemetry::metrics::Metrics;

/// How long a mirrored call may take before it is abandoned (its answer is discarded
/// anyway; this only bounds the work). Envoy's default route timeout.
pub const MIRROR_TIMEOUT: Duration = Duration::from_secs(15);

/// Mirrored calls in flight across the gateway beyond which new copies are skipped: a
/// slow or dead shadow must not pile up tasks and memory without bound (at 15 s each,
/// this is about 270 copies per second against a shadow that never answers).
pub const MAX_MIRRORS_IN_FLIGHT: usize = 4096;

/// Copies sent, by mirror cluster.
pub const MIRROR_SENT: &str = "corridor_upstream_rq_mirror_total";
/// Copies skipped (breaker open, too many in flight, body too big to copy, unknown
/// cluster), by mirror cluster.
pub const MIRROR_SKIPPED: &str = "corridor_upstream_rq_mirror_skipped_total";

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// The mirrors of an Envoy route (`request_mirror_policies`); a share absent means all.
pub fn from_envoy(policies: &[RequestMirrorPolicy]) -> Result<Vec<Mirror>, ModelError> {
    policies
        .iter()
        .map(|p| {
            if p.cluster.is_empty() {
                return Err(ModelError::Missing("request_mirror_policies.cluster"));
            }
            let fraction = p
                .runtime_fraction
                .as_ref()
                .and_then(|f| f.default_value.as_ref());
            Ok(Mirror {
                cluster: Arc::from(p.cluster.as_str()),
                fraction: share(fraction, 1.0),
            })
        })
        .collect()
}

/// The clusters this request is copied to: each mirror drawn with its own share.
/// Allocates nothing for a route without mirrors.
pub fn sample(mirrors: &[Mirror], rng: &mut impl Rng) -> Vec<Arc<str>> {
    mirrors
        .iter()
        .filter(|m| sampled(m.fraction, rng))
        .map(|m| m.cluster.clone())
        .collect()
}

/// The authority a copy carries: Envoy's, with `-shadow` appended to the host (before
/// the port), so the shadow can tell copies from real calls.
pub fn shadow_host(host: &str) -> String {
    // A port follows the last colon unless the host is a bracketed IPv6 literal.
    match host.rsplit_once(':') {
        Some((name, port)) if !port.contains(']') && !port.is_empty() => {
            format!("{name}-shadow:{port}")
        }
        _ => format!("{host}-shadow"),
    }
}

/// Counts a copy skipped before it was built (say, a body too large to copy).
pub fn skipped(metrics: Option<&Metrics>, cluster: &str, why: &str) {
    tracing::debug!(%cluster, why, "mirror skipped");
    if let Some(m) = metrics {
        m.cluster_counter(MIRROR_SKIPPED, cluster).increment(1);
    }
}

/// Admits a copy to `cluster` under its circuit breaker, as a request (`Err`: open).
pub fn admit(cluster: &Arc<ClusterState>) -> Result<Option<ClusterActive>, Reject> {
    attempts::admit_request(cluster)
        .map(Some)
        .ok_or(Reject::of(RejectKind::Overflow))
}

/// Sends one copy to `cluster` in the background with `send`, unless its breaker
/// refused it (`admitted`: the breaker's verdict, holding the copy as active on the
/// cluster while it runs) or too many copies are in flight; both are counted as
/// skipped. `send`'s outcome is only logged.
pub fn spawn<F>(
    cluster: Arc<str>,
    admitted: Result<Option<ClusterActive>, Reject>,
    metrics: Option<&Metrics>,
    send: F,
) where
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    let Ok(active) = admitted else {
        return skipped(metrics, &cluster, "circuit breaker open");
    };
    let Some(slot) = Slot::take() else {
        return skipped(metrics, &cluster, "too many mirrored calls in flight");
    };
    if let Some(m) = metrics {
        m.cluster_counter(MIRROR_SENT, &cluster).increment(1);
    }
    tokio::spawn(async move {
        let _held = (active, slot);
        match tokio::time::timeout(MIRROR_TIMEOUT, send).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(%cluster, error = %e, "mirrored call failed"),
            Err(_) => tracing::debug!(%cluster, "mirrored call timed out"),
        }
    });
}

/// One of the [`MAX_MIRRORS_IN_FLIGHT`] places, given back on drop.
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        IN_FLIGHT
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_MIRRORS_IN_FLIGHT).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn copies_carry_a_shadow_authority() {
        assert_eq!(shadow_host("reviews:9080"), "reviews-shadow:9080");
        assert_eq!(shadow_host("reviews"), "reviews-shadow");
        assert_eq!(shadow_host("[::1]"), "[::1]-shadow");
        assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
    }

    /// Half of 10,000 draws: 5,000 expected, sigma 50; six sigmas either side. A mirror
    /// at 100 % takes every request, one at 0 % none.
    #[test]
    fn each_mirror_takes_its_share() {
        let mirrors = [
            Mirror {
                cluster: Arc::from("half"),
                fraction: 0.5,
            },
            Mirror {
                cluster: Arc::from("all"),
                fraction: 1.0,
            },
            Mirror {
                cluster: Arc::from("none"),
                fraction: 0.0,
            },
        ];
        let mut rng = StdRng::seed_from_u64(3);
        let (mut half, mut all, mut none) = (0, 0, 0);
        for _ in 0..10_000 {
            for c in sample(&mirrors, &mut rng) {
                match &*c {
                    "half" => half += 1,
                    "all" => all += 1,
                    _ => none += 1,
                }
            }
        }
        assert!((4_700..=5_300).contains(&half), "{half}");
        assert_eq!((all, none), (10_000, 0));
    }

    #[test]
    fn envoy_mirror_policies_read_with_their_share() {
        use corridor_proto::envoy::config::core::v3::RuntimeFractionalPercent;
        use corridor_proto::envoy::r#type::v3::FractionalPercent;
        let policy = |cluster: &str, numerator: Option<u32>| RequestMirrorPolicy {
            cluster: cluster.into(),
            runtime_fraction: numerator.map(|numerator| RuntimeFractionalPercent {
                default_value: Some(FractionalPercent {
                    numerator,
                    denominator: 1,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mirrors = from_envoy(&[policy("a", Some(5_000)), policy("b", None)]).unwrap();
        assert_eq!(
            mirrors,
            [
                Mirror {
                    cluster: Arc::from("a"),
                    fraction: 0.5
                },
                Mirror {
                    cluster: Arc::from("b"),
                    fraction: 1.0
                }
            ]
        );
        assert!(from_envoy(&[policy("", None)]).is_err());
    }

    #[tokio::test]
    async fn a_copy_runs_in_the_background_and_gives_its_place_back() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        spawn(Arc::from("c"), Ok(None), None, async move {
            tx.send(()).map_err(|_| "gone".to_string())
        });
        rx.await.unwrap();
        // The slot is given back once the task ends.
        crate::testing::eventually(|| async {
            (IN_FLIGHT.load(Ordering::Acquire) == 0).then_some(())
        })
        .await;
    }
}
