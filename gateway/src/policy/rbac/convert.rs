//! Envoy's RBAC messages → the evaluator's form, validated once when the listener is
//! accepted. A rule the gateway cannot evaluate refuses the listener, naming the rule:
//! skipping it would widen an ALLOW or narrow a DENY without anyone noticing.

use std::net::IpAddr;

use corridor_proto::envoy::config::core::v3::CidrRange;
use corridor_proto::envoy::config::rbac::v3::{
    Permission as PbPermission, Principal as PbPrincipal, permission::Rule, principal::Identifier,
    rbac::Action as PbAction,
};
use corridor_proto::envoy::config::route::v3::HeaderMatcher as PbHeaderMatcher;
use corridor_proto::envoy::extensions::filters::http::rbac::v3::Rbac as PbRbacFilter;
use corridor_proto::envoy::r#type::matcher::v3::{PathMatcher, path_matcher};

use super::{Action, Cidr, Permission, Policy, Principal, Rbac};
use crate::model::ModelError;
use crate::model::route::{
    HeaderMatcher, StringMatch, attribute_matcher, header_matcher, string_match,
};

/// How header rules name what they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseMode {
    /// HTTP headers and pseudo-headers (`:method`, `:authority`), case-insensitive.
    Http,
    /// Attributes of a Dubbo or Thrift message (`interface`, `method`, attachments,
    /// THeader headers), by exact name.
    Meta,
}

impl Rbac {
    /// Validates and converts the filter's configuration.
    pub fn from_filter(f: &PbRbacFilter, mode: ParseMode) -> Result<Rbac, ModelError> {
        if f.matcher.is_some() {
            return Err(ModelError::Unsupported("rbac.matcher (use rules)".into()));
        }
        // Shadow rules only feed statistics in Envoy; they never change a verdict.
        let Some(rules) = &f.rules else {
            return Ok(Rbac {
                action: Action::Allow,
                policies: None,
            });
        };
        let action = match PbAction::try_from(rules.action) {
            Ok(PbAction::Allow) => Action::Allow,
            Ok(PbAction::Deny) => Action::Deny,
            Ok(PbAction::Log) => return Err(ModelError::Unsupported("rbac action LOG".into())),
            Err(_) => {
                return Err(ModelError::invalid(
                    "rbac.rules.action",
                    format!("unknown action {}", rules.action),
                ));
            }
        };
        if rules.audit_logging_options.is_some() {
            return Err(ModelError::Unsupported("rbac audit logging".into()));
        }
        let mut policies = rules
            .policies
            .iter()
            .map(|(name, p)| {
                if p.condition.is_some() || p.checked_condition.is_some() {
                    return Err(ModelError::Unsupported(format!(
                        "rbac policy {name:?}: CEL conditions"
                    )));
                }
                let permissions = p
                    .permissions
                    .iter()
                    .map(|x| permission(x, mode))
                    .collect::<Result<Box<[_]>, _>>()
                    .map_err(|e| in_policy(name, e))?;
                let principals = p
                    .principals
                    .iter()
                    .map(|x| principal(x, mode))
                    .collect::<Result<Box<[_]>, _>>()
                    .map_err(|e| in_policy(name, e))?;
                Ok((
                    name.clone(),
                    Policy {
                        permissions,
                        principals,
                    },
                ))
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        policies.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Rbac {
            action,
            policies: Some(policies.into_boxed_slice()),
        })
    }
}

fn in_policy(name: &str, e: ModelError) -> ModelError {
    ModelError::Unsupported(format!("rbac policy {name:?}: {e}"))
}

fn header(h: &PbHeaderMatcher, mode: ParseMode) -> Result<HeaderMatcher, ModelError> {
    match mode {
        ParseMode::Http => header_matcher(h),
        ParseMode::Meta => attribute_matcher(h),
    }
}

fn path(p: &PathMatcher) -> Result<StringMatch, ModelError> {
    match &p.rule {
        Some(path_matcher::Rule::Path(sm)) => string_match(sm),
        None => Err(ModelError::Missing("url_path.path")),
    }
}

fn permission(p: &PbPermission, mode: ParseMode) -> Result<Permission, ModelError> {
    let all = |set: &[PbPermission]| {
        set.iter()
            .map(|x| permission(x, mode))
            .collect::<Result<Box<[_]>, _>>()
    };
    Ok(match &p.rule {
        Some(Rule::Any(true)) => Permission::Any,
        Some(Rule::AndRules(set)) => Permission::And(all(&set.rules)?),
        Some(Rule::OrRules(set)) => Permission::Or(all(&set.rules)?),
        Some(Rule::NotRule(inner)) => Permission::Not(Box::new(permission(inner, mode)?)),
        Some(Rule::Header(h)) => Permission::Header(header(h, mode)?),
        Some(Rule::UrlPath(pm)) => Permission::Path(path(pm)?),
        Some(Rule::Any(false)) => return Err(ModelError::invalid("permission.any", "false")),
        Some(other) => {
            return Err(ModelError::Unsupported(format!(
                "permission {}",
                rule_name(other)
            )));
        }
        None => return Err(ModelError::Missing("permission.rule")),
    })
}

fn principal(p: &PbPrincipal, mode: ParseMode) -> Result<Principal, ModelError> {
    let all = |set: &[PbPrincipal]| {
        set.iter()
            .map(|x| principal(x, mode))
            .collect::<Result<Box<[_]>, _>>()
    };
    #[allow(deprecated)]
    Ok(match &p.identifier {
        Some(Identifier::Any(true)) => Principal::Any,
        Some(Identifier::AndIds(set)) => Principal::And(all(&set.ids)?),
        Some(Identifier::OrIds(set)) => Principal::Or(all(&set.ids)?),
        Some(Identifier::NotId(inner)) => Principal::Not(Box::new(principal(inner, mode)?)),
        Some(Identifier::Authenticated(a)) => {
            Principal::Authenticated(a.principal_name.as_ref().map(string_match).transpose()?)
        }
        // No proxy protocol or forwarding headers are trusted here: the downstream
        // peer is the source, whichever of the address principals names it.
        Some(Identifier::DirectRemoteIp(c)) | Some(Identifier::SourceIp(c)) => {
            Principal::DirectIp(cidr(c)?)
        }
        Some(Identifier::Header(h)) => Principal::Header(header(h, mode)?),
        Some(Identifier::Any(false)) => return Err(ModelError::invalid("principal.any", "false")),
        Some(Identifier::RemoteIp(_)) => {
            return Err(ModelError::Unsupported(
                "principal remote_ip (forwarded addresses are not trusted; use direct_remote_ip)"
                    .into(),
            ));
        }
        Some(_) => return Err(ModelError::Unsupported("principal kind".into())),
        None => return Err(ModelError::Missing("principal.identifier")),
    })
}

fn cidr(c: &CidrRange) -> Result<Cidr, ModelError> {
    let addr: IpAddr = c.address_prefix.parse().map_err(|_| {
        ModelError::invalid(
            "cidr.address_prefix",
            format!("{:?} is not an IP address", c.address_prefix),
        )
    })?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = c.prefix_len.as_ref().map_or(0, |v| v.value);
    if len > max {
        return Err(ModelError::invalid(
            "cidr.prefix_len",
            format!("{len} is longer than {max}"),
        ));
    }
    Ok(Cidr {
        addr,
        len: len as u8,
    })
}

#[allow(deprecated)]
fn rule_name(r: &Rule) -> &'static str {
    match r {
        Rule::DestinationIp(_) => "destination_ip",
        Rule::DestinationPort(_) => "destination_port",
        Rule::DestinationPortRange(_) => "destination_port_range",
        Rule::Metadata(_) => "metadata",
        Rule::RequestedServerName(_) => "requested_server_name",
        Rule::Matcher(_) => "matcher",
        Rule::UriTemplate(_) => "uri_template",
        _ => "kind",
    }
}
