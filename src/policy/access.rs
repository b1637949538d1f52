//! Access lists per route (README: Configuration walk-through, `access`): CIDR blocks
//! on the client IP as Parapet determined it (so a trusted proxy's clients are told
//! apart). A client in `deny` is refused; otherwise, when `allow` is not empty, only
//! clients in it pass. Deny wins, so `allow: [0.0.0.0/0], deny: [203.0.113.0/24]`
//! refuses that block alone. Refused requests get 403 and never reach the origin; the
//! list is checked before the rate limit, so they do not spend a client's budget.

use crate::config::{field, ConfigErrors};
use crate::http_util::Cidr;
use serde::Deserialize;
use std::net::IpAddr;

/// A route's `access` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AccessConfig {
    pub(crate) allow: Vec<String>,
    pub(crate) deny: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccessList {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
}

impl AccessList {
    /// `path` is the route's `access` field.
    pub(crate) fn from_config(
        config: AccessConfig,
        path: &str,
        errors: &mut ConfigErrors,
    ) -> Option<Self> {
        let blocks = |list: &[String], name: &str, errors: &mut ConfigErrors| -> Vec<Cidr> {
            let at = field(path, name);
            list.iter()
                .enumerate()
                .filter_map(|(i, text)| {
                    Cidr::parse(text)
                        .map_err(|m| errors.push(format!("{at}[{i}]"), m))
                        .ok()
                })
                .collect()
        };
        let allow = blocks(&config.allow, "allow", errors);
        let deny = blocks(&config.deny, "deny", errors);
        if config.allow.is_empty() && config.deny.is_empty() {
            errors.push(path, "list at least one block in allow or deny");
            return None;
        }
        Some(AccessList { allow, deny })
    }

    pub(crate) fn permits(&self, client: IpAddr) -> bool {
        let listed = |blocks: &[Cidr]| blocks.iter().any(|c| c.contains(client));
        !listed(&self.deny) && (self.allow.is_empty() || listed(&self.allow))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(yaml: &str) -> (Option<AccessList>, Vec<String>) {
        let config: AccessConfig = serde_yaml::from_str(yaml).unwrap();
        let mut errors = ConfigErrors::default();
        let list = AccessList::from_config(config, "routes[0].access", &mut errors);
        (list, errors.paths())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn deny_wins_and_allow_restricts() {
        let (l, _) = list("{allow: [0.0.0.0/0], deny: [203.0.113.0/24]}");
        let l = l.unwrap();
        assert!(l.permits(ip("198.51.100.7")));
        assert!(!l.permits(ip("203.0.113.9")));
        assert!(
            !l.permits(ip("::1")),
            "an IPv4 allow list does not admit IPv6"
        );
        let (l, _) = list("{allow: [10.0.0.0/8, '::1']}");
        let l = l.unwrap();
        assert!(l.permits(ip("10.1.1.1")) && l.permits(ip("::1")));
        assert!(!l.permits(ip("11.0.0.1")));
        let (l, _) = list("{deny: [10.0.0.0/8]}");
        let l = l.unwrap();
        assert!(l.permits(ip("11.0.0.1")) && !l.permits(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn bad_blocks_are_named() {
        let (_, problems) = list("{allow: [10.0.0.0/8, ten], deny: ['1.2.3.4/40']}");
        assert_eq!(
            problems,
            ["routes[0].access.allow[1]", "routes[0].access.deny[0]"]
        );
        let (l, problems) = list("{}");
        assert!(l.is_none());
        assert_eq!(problems, ["routes[0].access"]);
    }
}
