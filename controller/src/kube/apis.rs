//! The APIs the Kubernetes source watches, one per [`Kind`] of the store.

use ::kube::core::{ApiResource, GroupVersionKind};

use crate::resources::{Kind, aeraki, authz, istio, redis};

/// One watched API: where the objects of a [`Kind`] are served.
#[derive(Debug)]
pub struct WatchedApi {
    /// The store kind.
    pub kind: Kind,
    /// API group (empty for core).
    pub group: &'static str,
    /// Versions to try, preferred first: a cluster with older CRDs may serve only an
    /// older version, which carries the same schema for the fields the controller reads.
    pub versions: &'static [&'static str],
    /// Resource name in URLs.
    pub plural: &'static str,
    /// Kind name in objects.
    pub kind_name: &'static str,
    /// True for the kinds whose status the leader writes.
    pub routing: bool,
}

impl WatchedApi {
    /// The kube-rs resource description for one of the versions.
    pub fn resource(&self, version: &str) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group, version, self.kind_name),
            self.plural,
        )
    }

    /// `apiVersion` for one of the versions.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// The API named for logs: `VirtualService (networking.istio.io v1, v1beta1, v1alpha3)`.
    pub fn describe(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        format!("{} ({group} {})", self.kind_name, self.versions.join(", "))
    }
}

const fn api(
    kind: Kind,
    group: &'static str,
    versions: &'static [&'static str],
    plural: &'static str,
    kind_name: &'static str,
    routing: bool,
) -> WatchedApi {
    WatchedApi {
        kind,
        group,
        versions,
        plural,
        kind_name,
        routing,
    }
}

const V1: &[&str] = &["v1"];

/// Every API the source watches.
pub const WATCHED: [WatchedApi; 11] = [
    api(Kind::Namespace, "", V1, "namespaces", "Namespace", false),
    api(Kind::Service, "", V1, "services", "Service", false),
    api(Kind::Pod, "", V1, "pods", "Pod", false),
    api(
        Kind::EndpointSlice,
        "discovery.k8s.io",
        V1,
        "endpointslices",
        "EndpointSlice",
        false,
    ),
    api(Kind::Secret, "", V1, "secrets", "Secret", false),
    api(
        Kind::VirtualService,
        istio::GROUP,
        &istio::VERSIONS,
        "virtualservices",
        "VirtualService",
        true,
    ),
    api(
        Kind::DestinationRule,
        istio::GROUP,
        &istio::VERSIONS,
        "destinationrules",
        "DestinationRule",
        true,
    ),
    api(
        Kind::MetaRouter,
        aeraki::GROUP,
        &aeraki::VERSIONS,
        "metarouters",
        "MetaRouter",
        true,
    ),
    api(
        Kind::RedisService,
        redis::GROUP,
        &redis::VERSIONS,
        "redisservices",
        "RedisService",
        true,
    ),
    api(
        Kind::RedisDestination,
        redis::GROUP,
        &redis::VERSIONS,
        "redisdestinations",
        "RedisDestination",
        true,
    ),
    api(
        Kind::AuthorizationPolicy,
        authz::GROUP,
        &authz::VERSIONS,
        "authorizationpolicies",
        "AuthorizationPolicy",
        true,
    ),
];

/// The watched API of a kind.
pub fn watched(kind: Kind) -> Option<&'static WatchedApi> {
    WATCHED.iter().find(|a| a.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_kind_is_watched_once() {
        let mut kinds: Vec<Kind> = WATCHED.iter().map(|a| a.kind).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), WATCHED.len());
        let r = watched(Kind::VirtualService).unwrap().resource("v1beta1");
        assert_eq!(
            (r.api_version.as_str(), r.plural.as_str()),
            ("networking.istio.io/v1beta1", "virtualservices")
        );
        assert_eq!(watched(Kind::Service).unwrap().api_version("v1"), "v1");
    }
}
