//! Admission of routing objects: an invalid VirtualService, DestinationRule, MetaRouter,
//! RedisService, RedisDestination or AuthorizationPolicy never
//! reaches the translator; its last good version stays in effect instead, and the reason
//! is logged once, naming the object and where it came from.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::{
    resources::{
        AuthorizationPolicy, DestinationRule, Kind, MetaRouter, ObjectRef, RedisDestination,
        RedisService, VirtualService,
    },
    store::{ObjectKey, Store},
    translate::{
        TranslateOptions, Validator, validate_authorization_policy, validate_destination_rule,
    },
};

/// The verdict on one routing object, for status conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `metadata.generation` of the version judged.
    pub generation: Option<i64>,
    /// Why it was rejected; None when it was accepted.
    pub rejection: Option<String>,
}

impl Verdict {
    /// Accepted.
    pub fn accepted(generation: Option<i64>) -> Self {
        Self {
            generation,
            rejection: None,
        }
    }

    /// Rejected, and why.
    pub fn rejected(generation: Option<i64>, reason: impl Into<String>) -> Self {
        Self {
            generation,
            rejection: Some(reason.into()),
        }
    }
}

/// Verdicts by object.
pub type Verdicts = BTreeMap<ObjectRef, Verdict>;

/// The routing kinds admission judges, for the generation a verdict is about.
pub trait Judged {
    /// The object's metadata.
    fn meta(&self) -> &ObjectMeta;
}

macro_rules! judged {
    ($($t:ty),*) => {$(
        impl Judged for $t {
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
        }
    )*};
}
judged!(
    VirtualService,
    DestinationRule,
    MetaRouter,
    RedisService,
    RedisDestination,
    AuthorizationPolicy
);

/// Last good and currently rejected versions of one kind.
#[derive(Debug)]
struct Ledger<T> {
    last_good: BTreeMap<ObjectKey, T>,
    rejected: BTreeMap<ObjectKey, (T, String)>,
}

impl<T> Default for Ledger<T> {
    fn default() -> Self {
        Self {
            last_good: BTreeMap::new(),
            rejected: BTreeMap::new(),
        }
    }
}

impl<T> Ledger<T> {
    /// The objects rejected now and why.
    fn rejections(&self, kind: Kind) -> Vec<(ObjectRef, String)> {
        self.rejected
            .iter()
            .map(|(k, (_, reason))| {
                let object = ObjectRef {
                    kind,
                    namespace: k.namespace.clone(),
                    name: k.name.clone(),
                };
                (object, reason.clone())
            })
            .collect()
    }
}

impl<T: Judged> Ledger<T> {
    /// The verdict on every current object: rejected ones judged on their current
    /// version, accepted ones on their last good (= current) version.
    fn verdicts(&self, kind: Kind, out: &mut Verdicts) {
        let object = |k: &ObjectKey| ObjectRef {
            kind,
            namespace: k.namespace.clone(),
            name: k.name.clone(),
        };
        for (k, good) in &self.last_good {
            if !self.rejected.contains_key(k) {
                out.insert(object(k), Verdict::accepted(good.meta().generation));
            }
        }
        for (k, (current, reason)) in &self.rejected {
            out.insert(
                object(k),
                Verdict::rejected(current.meta().generation, reason.clone()),
            );
        }
    }
}

impl<T: Clone + PartialEq> Ledger<T> {
    /// Applies verdicts to `objects`: accepted ones are recorded as last good, rejected
    /// ones are replaced by their last good version (or dropped when there is none).
    fn apply(
        &mut self,
        kind: Kind,
        objects: &mut BTreeMap<ObjectKey, T>,
        verdicts: Vec<(ObjectKey, Result<(), String>)>,
        origin: &dyn Fn(&ObjectRef) -> String,
    ) {
        self.last_good.retain(|k, _| objects.contains_key(k));
        self.rejected.retain(|k, _| objects.contains_key(k));
        for (key, verdict) in verdicts {
            let Some(current) = objects.get(&key).cloned() else {
                continue;
            };
            let object = ObjectRef {
                kind,
                namespace: key.namespace.clone(),
                name: key.name.clone(),
            };
            match verdict {
                Ok(()) => {
                    if self.rejected.remove(&key).is_some() {
                        tracing::info!(source = %origin(&object), %object, "accepted again");
                    }
                    self.last_good.insert(key, current);
                }
                Err(reason) => {
                    let kept = self.last_good.get(&key).cloned();
                    let repeat = self
                        .rejected
                        .get(&key)
                        .is_some_and(|(o, r)| *o == current && *r == reason);
                    if !repeat {
                        let keeping = if kept.is_some() {
                            "keeping its last good version"
                        } else {
                            "no earlier version to keep"
                        };
                        let reason_line = crate::resources::one_line(&reason);
                        tracing::warn!(
                            "{}: rejected {object}: {reason_line}; {keeping}",
                            origin(&object)
                        );
                        self.rejected.insert(key.clone(), (current, reason));
                    }
                    match kept {
                        Some(good) => drop(objects.insert(key, good)),
                        None => drop(objects.remove(&key)),
                    }
                }
            }
        }
    }
}

/// Keeps the last good version of each routing object across store rebuilds.
#[derive(Debug, Default)]
pub struct Admission {
    virtual_services: Ledger<VirtualService>,
    destination_rules: Ledger<DestinationRule>,
    meta_routers: Ledger<MetaRouter>,
    redis_services: Ledger<RedisService>,
    redis_destinations: Ledger<RedisDestination>,
    authorization_policies: Ledger<AuthorizationPolicy>,
}

impl Admission {
    /// Validates the routing objects of `store` in place. `origin` names where an object
    /// came from (a file path) for the log line.
    pub fn admit(
        &mut self,
        store: &mut Store,
        opts: &TranslateOptions,
        origin: &dyn Fn(&ObjectRef) -> String,
    ) {
        let verdicts = store
            .destination_rules
            .iter()
            .map(|(k, dr)| (k.clone(), validate_destination_rule(dr)))
            .collect();
        self.destination_rules.apply(
            Kind::DestinationRule,
            &mut store.destination_rules,
            verdicts,
            origin,
        );

        let (verdicts, meta_verdicts) = {
            let validator = Validator::new(store, opts);
            let vs = store
                .virtual_services
                .iter()
                .map(|(k, vs)| (k.clone(), validator.virtual_service(k, vs)))
                .collect();
            let mr = store
                .meta_routers
                .iter()
                .map(|(k, mr)| (k.clone(), validator.meta_router(k, mr)))
                .collect();
            (vs, mr)
        };
        self.virtual_services.apply(
            Kind::VirtualService,
            &mut store.virtual_services,
            verdicts,
            origin,
        );
        self.meta_routers.apply(
            Kind::MetaRouter,
            &mut store.meta_routers,
            meta_verdicts,
            origin,
        );
        self.admit_redis(store, opts, origin);

        // A rejected AuthorizationPolicy keeps its last good version, like a route: a
        // DENY that vanished on a typo would let through what it stopped.
        let verdicts = store
            .authorization_policies
            .iter()
            .map(|(k, p)| (k.clone(), validate_authorization_policy(p)))
            .collect();
        self.authorization_policies.apply(
            Kind::AuthorizationPolicy,
            &mut store.authorization_policies,
            verdicts,
            origin,
        );
    }

    /// RedisServices and RedisDestinations: validated against the Services and Secrets of
    /// this store (so one rejected for a missing Secret is accepted once it arrives); an
    /// accepted one replaces the stored one with its Secret references resolved, so the
    /// last good version carries the credentials it was accepted with.
    fn admit_redis(
        &mut self,
        store: &mut Store,
        opts: &TranslateOptions,
        origin: &dyn Fn(&ObjectRef) -> String,
    ) {
        let (services, destinations) = {
            let validator = Validator::new(store, opts);
            let rs: Vec<_> = store
                .redis_services
                .iter()
                .map(|(k, rs)| (k.clone(), validator.redis_service(k, rs)))
                .collect();
            let rd: Vec<_> = store
                .redis_destinations
                .iter()
                .map(|(k, rd)| (k.clone(), validator.redis_destination(k, rd)))
                .collect();
            (rs, rd)
        };
        let verdicts = resolved_into(&mut store.redis_services, services);
        self.redis_services.apply(Kind::RedisService, &mut store.redis_services, verdicts, origin);
        let verdicts = resolved_into(&mut store.redis_destinations, destinations);
        self.redis_destinations.apply(
            Kind::RedisDestination,
            &mut store.redis_destinations,
            verdicts,
            origin,
        );
    }

    /// The verdict on every routing object of the last [`Admission::admit`].
    pub fn verdicts(&self) -> Verdicts {
        let mut out = Verdicts::new();
        self.virtual_services
            .verdicts(Kind::VirtualService, &mut out);
        self.destination_rules
            .verdicts(Kind::DestinationRule, &mut out);
        self.meta_routers.verdicts(Kind::MetaRouter, &mut out);
        self.redis_services.verdicts(Kind::RedisService, &mut out);
        self.redis_destinations
            .verdicts(Kind::RedisDestination, &mut out);
        self.authorization_policies
            .verdicts(Kind::AuthorizationPolicy, &mut out);
        out
    }

    /// Rejected objects and why, for status reporting.
    pub fn rejections(&self) -> Vec<(ObjectRef, String)> {
        let mut out = self.virtual_services.rejections(Kind::VirtualService);
        out.extend(self.destination_rules.rejections(Kind::DestinationRule));
        out.extend(self.meta_routers.rejections(Kind::MetaRouter));
        out.extend(self.redis_services.rejections(Kind::RedisService));
        out.extend(self.redis_destinations.rejections(Kind::RedisDestination));
        out.extend(
            self.authorization_policies
                .rejections(Kind::AuthorizationPolicy),
        );
        out
    }
}

/// Stores each accepted object's resolved form and returns the bare verdicts.
fn resolved_into<T>(
    objects: &mut BTreeMap<ObjectKey, T>,
    verdicts: Vec<(ObjectKey, Result<T, String>)>,
) -> Vec<(ObjectKey, Result<(), String>)> {
    verdicts
        .into_iter()
        .map(|(key, verdict)| {
            let verdict = verdict.map(|resolved| drop(objects.insert(key.clone(), resolved)));
            (key, verdict)
        })
        .collect()
}
