//! MetaProtocol route configurations (Aeraki's `RouteConfiguration`): ordered routes
//! matched on the attributes a codec reads, with the same matchers and cluster targets as
//! HTTP routes, plus request/response mutations and mirrors.

use std::sync::Arc;

use corridor_proto::aeraki::meta_protocol_proxy::config::route::v1alpha as pb;

use super::ModelError;
use super::route::{
    ClusterTarget, HeaderMatcher, attribute_matcher, retry_policy, weighted_target,
};
use crate::policy::route::{HashPolicy, RoutePolicy};

/// A validated MetaProtocol route configuration.
#[derive(Debug)]
pub struct MetaRouteConfig {
    /// Resource name.
    pub name: String,
    /// Routes in match order.
    pub routes: Vec<MetaRoute>,
    /// Every cluster referenced (sorted, deduplicated).
    pub clusters: Vec<Arc<str>>,
}

/// One route.
#[derive(Debug)]
pub struct MetaRoute {
    /// Name, for logs and metrics.
    pub name: Arc<str>,
    /// Conditions on attributes, all of which must hold (none: every request).
    pub matchers: Vec<HeaderMatcher>,
    /// Where requests go.
    pub target: ClusterTarget,
    /// Attributes written into each request.
    pub request_mutation: Vec<(String, String)>,
    /// Attributes written into each response.
    pub response_mutation: Vec<(String, String)>,
    /// Timeout, retries (Corridor extensions), mirrors and hash policy: the call
    /// policies every protocol's routes carry.
    pub policy: Arc<RoutePolicy>,
}

pub use crate::policy::route::Mirror;

impl TryFrom<&pb::RouteConfiguration> for MetaRouteConfig {
    type Error = ModelError;

    fn try_from(rc: &pb::RouteConfiguration) -> Result<Self, ModelError> {
        if rc.name.is_empty() {
            return Err(ModelError::Missing("name"));
        }
        let mut routes = Vec::with_capacity(rc.routes.len());
        let mut clusters: Vec<Arc<str>> = Vec::new();
        for (i, r) in rc.routes.iter().enumerate() {
            let route = convert(r).map_err(|e| ModelError::Invalid {
                field: "routes",
                reason: format!("route {i} ({:?}): {e}", r.name),
            })?;
            match &route.target {
                ClusterTarget::Single(c) => clusters.push(c.clone()),
                ClusterTarget::Weighted { clusters: cs, .. } => {
                    clusters.extend(cs.iter().map(|(c, _)| c.clone()))
                }
            }
            clusters.extend(route.policy.mirrors.iter().map(|m| m.cluster.clone()));
            routes.push(route);
        }
        clusters.sort();
        clusters.dedup();
        Ok(MetaRouteConfig {
            name: rc.name.clone(),
            routes,
            clusters,
        })
    }
}

fn convert(r: &pb::Route) -> Result<MetaRoute, ModelError> {
    let matchers = r
        .r#match
        .iter()
        .flat_map(|m| &m.metadata)
        .map(attribute_matcher)
        .collect::<Result<_, _>>()?;
    let action = r.route.as_ref().ok_or(ModelError::Missing("route"))?;
    use pb::route_action::ClusterSpecifier as C;
    let target = match &action.cluster_specifier {
        Some(C::Cluster(c)) if !c.is_empty() => ClusterTarget::Single(Arc::from(c.as_str())),
        Some(C::WeightedClusters(wc)) => weighted_target(wc)?,
        Some(C::Cluster(_)) | None => return Err(ModelError::Missing("route.cluster")),
    };
    let mirrors = action
        .request_mirror_policies
        .iter()
        .map(|m| {
            if m.cluster.is_empty() {
                return Err(ModelError::Missing("request_mirror_policies.cluster"));
            }
            Ok(Mirror {
                cluster: Arc::from(m.cluster.as_str()),
                fraction: mirror_fraction(m),
            })
        })
        .collect::<Result<_, _>>()?;
    let pairs = |kvs: &[pb::KeyValue]| -> Result<Vec<(String, String)>, ModelError> {
        kvs.iter()
            .map(|kv| {
                if kv.key.is_empty() {
                    Err(ModelError::Missing("mutation.key"))
                } else {
                    Ok((kv.key.clone(), kv.value.clone()))
                }
            })
            .collect()
    };
    Ok(MetaRoute {
        name: Arc::from(if r.name.is_empty() {
            "-"
        } else {
            r.name.as_str()
        }),
        matchers,
        target,
        request_mutation: pairs(&r.request_mutation)?,
        response_mutation: pairs(&r.response_mutation)?,
        policy: Arc::new(RoutePolicy {
            timeout: match &action.timeout {
                Some(d) => Some(super::duration(d, "route.timeout")?).filter(|d| !d.is_zero()),
                None => None,
            },
            retry: action.retry_policy.as_ref().map(retry_policy).transpose()?,
            fault: action
                .fault
                .as_ref()
                .map(crate::policy::fault::from_envoy)
                .transpose()?
                .flatten(),
            mirrors,
            hash: action
                .hash_policy
                .iter()
                .map(|name| HashPolicy::from_attribute(name))
                .collect(),
            rate_limits: Default::default(),
        }),
    })
}

/// The share of a mirror policy's runtime fraction (absent: everything).
fn mirror_fraction(m: &pb::route_action::RequestMirrorPolicy) -> f64 {
    let percent = m
        .runtime_fraction
        .as_ref()
        .and_then(|f| f.default_value.as_ref());
    crate::policy::fault::share(percent, 1.0)
}
