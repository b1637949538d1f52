//! The `admin` section: the admin listener's address and token, checked once at load
//! (README, "Observe it": a token is required off loopback; the address may not be a
//! proxy listener's). Apart from the service in `admin/mod.rs`, so that the settings
//! the runtime holds do not import the runtime back.

use crate::config::ConfigErrors;
use crate::listener::Listener;
use serde::Deserialize;
use std::net::SocketAddr;

/// The `admin` section as the operator wrote it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminConfig {
    pub(crate) address: String,
    /// When set, every admin request needs `Authorization: Bearer <token>`.
    pub(crate) token: Option<String>,
}

/// The admin listener's address and token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AdminSettings {
    pub(crate) address: SocketAddr,
    pub(crate) token: Option<String>,
}

impl AdminSettings {
    /// `listeners` are the proxy's: the admin listener may not share one's address.
    pub(crate) fn from_config(
        config: AdminConfig,
        listeners: &[Listener],
        errors: &mut ConfigErrors,
    ) -> Option<AdminSettings> {
        let Ok(address) = config.address.parse::<SocketAddr>() else {
            let msg = format!("'{}' is not an IP:port address", config.address);
            errors.push("admin.address", msg);
            return None;
        };
        if listeners.iter().any(|l| l.address == address) {
            errors.push(
                "admin.address",
                format!("'{address}' is already a proxy listener"),
            );
        }
        match config.token.as_deref() {
            Some(t) if t.trim().is_empty() => errors.push(
                "admin.token",
                "must not be empty (leave it out to need no token on a loopback address)",
            ),
            // Purge and status must not be open to the network by default.
            None if !address.ip().to_canonical().is_loopback() => errors.push(
                "admin.token",
                format!(
                    "required when admin.address ({address}) is not a loopback address: \
                     set admin.token, or bind admin.address to 127.0.0.1"
                ),
            ),
            _ => {}
        }
        Some(AdminSettings {
            address,
            token: config.token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_validated_with_field_paths() {
        let proxy = [Listener::cleartext("127.0.0.1:8080".parse().unwrap())];
        let check = |address: &str, token: Option<&str>| {
            let config = AdminConfig {
                address: address.into(),
                token: token.map(str::to_string),
            };
            let mut errors = ConfigErrors::default();
            let got = AdminSettings::from_config(config, &proxy, &mut errors);
            let paths = errors.paths();
            (got.map(|a| a.address.to_string()), paths)
        };
        assert_eq!(
            check("127.0.0.1:9901", Some("t")),
            (Some("127.0.0.1:9901".into()), vec![])
        );
        assert_eq!(
            check("localhost:9901", None),
            (None, vec!["admin.address".into()])
        );
        assert_eq!(check("127.0.0.1:8080", None).1, ["admin.address"]);
        assert_eq!(check("127.0.0.1:9901", Some(" ")).1, ["admin.token"]);
        // Off loopback, a token is required.
        for open in [
            "0.0.0.0:9901",
            "[::]:9901",
            "10.0.0.1:9901",
            "[::ffff:10.0.0.1]:1",
        ] {
            assert_eq!(check(open, None).1, ["admin.token"], "{open}");
            assert!(check(open, Some("t")).1.is_empty(), "{open}");
        }
        for local in [
            "127.0.0.1:9901",
            "127.9.9.9:9901",
            "[::1]:9901",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(check(local, None).1.is_empty(), "{local}");
        }
    }
}
