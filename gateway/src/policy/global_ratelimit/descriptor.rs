//! Descriptors: what a request tells the rate limit service about itself, as ordered
//! `(key, value)` entries. Envoy's form evaluates each `rate_limits` rule's actions in
//! order (a rule whose action cannot produce its entry sends no descriptor); Aeraki's
//! reads request attributes.

use corridor_proto::aeraki::meta_protocol_proxy::filters::ratelimit::v1alpha::RateLimit as AerakiRateLimit;
use corridor_proto::envoy::extensions::common::ratelimit::v3::{
    RateLimitDescriptor, rate_limit_descriptor::Entry,
};

use crate::model::ModelError;
use crate::model::route::{HeaderMatcher, attribute_matcher};
use crate::policy::local_ratelimit::envoy::{Action, RateLimitRule};
use crate::policy::request::{Attributes, Request, matches};

/// One descriptor's entries, in order.
pub(super) type Descriptor = Vec<(String, String)>;

/// Envoy's descriptor key of a `remote_address` action.
const REMOTE_ADDRESS_KEY: &str = "remote_address";

/// Aeraki's descriptor: for requests whose attributes satisfy every matcher, one entry
/// per configured attribute.
#[derive(Debug)]
pub(super) struct AttributeDescriptor {
    matchers: Vec<HeaderMatcher>,
    /// `(descriptor key, attribute name)`, in order.
    entries: Vec<(String, String)>,
}

impl AttributeDescriptor {
    /// Validates Aeraki's `match` and `descriptors`.
    pub(super) fn new(config: &AerakiRateLimit) -> Result<AttributeDescriptor, ModelError> {
        let matchers = config
            .r#match
            .iter()
            .flat_map(|m| &m.metadata)
            .map(attribute_matcher)
            .collect::<Result<_, _>>()?;
        if config.descriptors.is_empty() {
            return Err(ModelError::Missing("ratelimit.descriptors"));
        }
        let entries = config
            .descriptors
            .iter()
            .map(|d| {
                if d.property.is_empty() || d.descriptor_key.is_empty() {
                    return Err(ModelError::Missing(
                        "ratelimit.descriptors.property and descriptor_key",
                    ));
                }
                Ok((d.descriptor_key.clone(), d.property.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(AttributeDescriptor { matchers, entries })
    }

    /// The descriptor of a request with `attrs`; none when the match does not select it
    /// or an attribute is absent (as Envoy drops a descriptor whose header is missing).
    pub(super) fn build(&self, attrs: &dyn Attributes) -> Option<Descriptor> {
        if !self.matchers.iter().all(|m| matches(m, attrs)) {
            return None;
        }
        self.entries
            .iter()
            .map(|(key, property)| Some((key.clone(), attrs.get(property)?.to_owned())))
            .collect()
    }
}

/// The descriptors `rules` produce for `req`, one per producing rule, in order.
pub(super) fn from_rules<'r>(
    rules: impl Iterator<Item = &'r RateLimitRule>,
    req: &Request<'_>,
) -> Vec<Descriptor> {
    rules.filter_map(|rule| from_rule(rule, req)).collect()
}

/// One rule's descriptor: every action adds its entry, or the rule produces nothing.
fn from_rule(rule: &RateLimitRule, req: &Request<'_>) -> Option<Descriptor> {
    let mut out = Vec::with_capacity(rule.actions.len());
    for action in &rule.actions {
        match action {
            Action::Fixed(key, value) => out.push((key.clone(), value.clone())),
            Action::IfMatches {
                matchers,
                expect,
                key,
                value,
            } => {
                if matchers.iter().all(|m| matches(m, req.attrs)) != *expect {
                    return None;
                }
                out.push((key.clone(), value.clone()));
            }
            Action::Header {
                name,
                key,
                skip_if_absent,
            } => match req.attrs.get(name) {
                Some(v) => out.push((key.clone(), v.to_owned())),
                None if *skip_if_absent => {}
                None => return None,
            },
            Action::RemoteAddress => {
                out.push((
                    REMOTE_ADDRESS_KEY.to_owned(),
                    req.source.addr.ip().to_string(),
                ));
            }
            Action::Unsupported => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A descriptor as the service's protocol carries it.
pub(super) fn to_proto(d: Descriptor) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: d
            .into_iter()
            .map(|(key, value)| Entry { key, value })
            .collect(),
        ..Default::default()
    }
}
