//! Aeraki MetaRouters: validation now; translation into MetaProtocol routes comes with
//! the gateway's Dubbo/Thrift proxy (issue 4).

use super::{
    Context,
    route::{check_destination, check_string_match},
};
use crate::{
    resources::{
        MetaRouter,
        aeraki::{MetaRouteMatch, TokenBucket},
        duration::parse_duration,
    },
    store::ObjectKey,
};

/// Checks a MetaRouter; the error names the field that is wrong and why.
pub(super) fn validate(ctx: &Context<'_>, key: &ObjectKey, mr: &MetaRouter) -> Result<(), String> {
    let Some(host) = mr.spec.hosts.first() else {
        return Err("spec.hosts is empty".to_string());
    };
    ctx.resolve(host, &key.namespace).ok_or_else(|| {
        format!(
            "spec.hosts[0] {host:?} is not a known service (from namespace {})",
            key.namespace
        )
    })?;
    for (i, route) in mr.spec.routes.iter().enumerate() {
        let at = format!("spec.routes[{i}]");
        if let Some(m) = &route.matches {
            check_match(&format!("{at}.match"), m)?;
        }
        if route.route.is_empty() {
            return Err(format!("{at}.route is empty"));
        }
        let mut total = 0u64;
        for (j, d) in route.route.iter().enumerate() {
            let dp = format!("{at}.route[{j}]");
            let w = d.weight.unwrap_or(0);
            if w > 100 {
                return Err(format!("{dp}.weight is {w}; weights are percentages (0-100)"));
            }
            total += u64::from(w);
            check_destination(ctx, key, &format!("{dp}.destination"), &d.destination)?;
        }
        if route.route.len() > 1 && total != 100 {
            return Err(format!("{at}.route weights add up to {total}, not 100"));
        }
        if let Some(m) = &route.mirror {
            check_destination(ctx, key, &format!("{at}.mirror"), m)?;
        }
        if let Some(p) = &route.mirror_percentage
            && !(0.0..=100.0).contains(&p.value)
        {
            return Err(format!("{at}.mirrorPercentage.value {} is not in 0-100", p.value));
        }
        for (j, kv) in route.request_mutation.iter().chain(&route.response_mutation).enumerate() {
            if kv.key.is_empty() {
                return Err(format!("{at}: mutation {j} has an empty key"));
            }
        }
    }
    if let Some(limit) = &mr.spec.local_rate_limit {
        let at = "spec.localRateLimit";
        if limit.token_bucket.is_none() && limit.conditions.is_empty() {
            return Err(format!("{at} sets neither tokenBucket nor conditions"));
        }
        if let Some(b) = &limit.token_bucket {
            check_bucket(&format!("{at}.tokenBucket"), b)?;
        }
        for (i, c) in limit.conditions.iter().enumerate() {
            let cp = format!("{at}.conditions[{i}]");
            if let Some(m) = &c.matches {
                check_match(&format!("{cp}.match"), m)?;
            }
            check_bucket(&format!("{cp}.tokenBucket"), &c.token_bucket)?;
        }
    }
    if let Some(g) = &mr.spec.global_rate_limit {
        let at = "spec.globalRateLimit";
        if g.domain.is_empty() || g.rate_limit_service.is_empty() {
            return Err(format!("{at} needs both domain and rateLimitService"));
        }
        if let Some(m) = &g.matches {
            check_match(&format!("{at}.match"), m)?;
        }
        if let Some(t) = &g.request_timeout {
            parse_duration(t).map_err(|e| format!("{at}.requestTimeout: {e}"))?;
        }
    }
    Ok(())
}

fn check_match(path: &str, m: &MetaRouteMatch) -> Result<(), String> {
    for (name, s) in &m.attributes {
        check_string_match(&format!("{path}.attributes.{name}"), s, true)?;
    }
    Ok(())
}

fn check_bucket(path: &str, b: &TokenBucket) -> Result<(), String> {
    if b.max_tokens == 0 {
        return Err(format!("{path}.maxTokens must be greater than 0"));
    }
    if b.tokens_per_fill == Some(0) {
        return Err(format!("{path}.tokensPerFill must be greater than 0"));
    }
    let interval = parse_duration(&b.fill_interval).map_err(|e| format!("{path}.fillInterval: {e}"))?;
    if interval.is_zero() {
        return Err(format!("{path}.fillInterval must be positive"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{
        admission::Admission,
        resources::ObjectRef,
        store::{ObjectKey, store_from_yaml},
        translate::{TranslateOptions, Validator, tests::MESH},
    };

    const ROUTER: &str = r#"
apiVersion: metaprotocol.aeraki.io/v1alpha1
kind: MetaRouter
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews.default.svc.cluster.local]
  routes:
  - name: split
    match: { attributes: { method: { exact: sayHello }, tenant: {} } }
    route:
    - { destination: { host: reviews, subset: v1 }, weight: 80 }
    - { destination: { host: reviews, subset: v3 }, weight: 20 }
    requestMutation: [ { key: from, value: corridor } ]
  localRateLimit:
    tokenBucket: { maxTokens: 10, tokensPerFill: 5, fillInterval: 1s }
"#;

    fn verdict(yaml: &str) -> Result<(), String> {
        let store = store_from_yaml(&format!("{MESH}---{yaml}"));
        let opts = TranslateOptions::default();
        let key = ObjectKey::new("default", "reviews");
        Validator::new(&store, &opts).meta_router(&key, &store.meta_routers[&key])
    }

    #[test]
    fn a_good_meta_router_is_accepted() {
        verdict(ROUTER).unwrap();
    }

    #[test]
    fn each_mistake_is_named_by_its_field() {
        for (bad, field) in [
            (ROUTER.replace("weight: 20", "weight: 30"), "spec.routes[0].route weights add up to 110"),
            (ROUTER.replace("subset: v3", "subset: v9"), "spec.routes[0].route[1].destination.subset"),
            (ROUTER.replace("{ host: reviews, subset: v1 }", "{ host: nowhere }"), "spec.routes[0].route[0].destination.host"),
            (ROUTER.replace("{ exact: sayHello }", "{ regex: \"(open\" }"), "spec.routes[0].match.attributes.method.regex"),
            (ROUTER.replace("{ exact: sayHello }", "{ exact: a, prefix: b }"), "spec.routes[0].match.attributes.method"),
            (ROUTER.replace("maxTokens: 10", "maxTokens: 0"), "spec.localRateLimit.tokenBucket.maxTokens"),
            (ROUTER.replace("fillInterval: 1s", "fillInterval: soon"), "spec.localRateLimit.tokenBucket.fillInterval"),
            (ROUTER.replace("[reviews.default.svc.cluster.local]", "[]"), "spec.hosts is empty"),
        ] {
            let reason = verdict(&bad).unwrap_err();
            assert!(reason.starts_with(field), "{reason:?} should start with {field:?}");
        }
    }

    #[test]
    fn a_rejected_meta_router_keeps_its_last_good_version() {
        let opts = TranslateOptions::default();
        let mut admission = Admission::default();
        let origin = |_: &ObjectRef| "test.yaml".to_string();
        let mut good = store_from_yaml(&format!("{MESH}---{ROUTER}"));
        admission.admit(&mut good, &opts, &origin);
        let key = ObjectKey::new("default", "reviews");
        let kept = good.meta_routers[&key].clone();

        let mut bad = store_from_yaml(&format!("{MESH}---{}", ROUTER.replace("weight: 20", "weight: 30")));
        admission.admit(&mut bad, &opts, &origin);
        assert_eq!(bad.meta_routers[&key], kept);
        assert_eq!(admission.rejections().len(), 1);
    }
}
