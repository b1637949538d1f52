//! The fleet's top-level keys: `name` (this instance in `CDN-Loop`) and `redis`
//! (the store that global rate limits and purges share), validated into
//! [`FleetSettings`].

use crate::config::units::Span;
use crate::config::{field, ConfigErrors};
use http::HeaderValue;
use serde::Deserialize;
use std::time::Duration;

/// `redis` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedisConfig {
    url: String,
    #[serde(default = "default_timeout")]
    timeout: Span,
}

fn default_timeout() -> Span {
    Span(Duration::from_millis(5))
}

/// The validated `redis` section.
#[derive(Debug, Clone)]
pub(crate) struct RedisSettings {
    pub(crate) url: String,
    /// The longest a request waits on Redis before the local limiter decides.
    pub(crate) timeout: Duration,
}

/// The validated fleet keys.
#[derive(Debug, Clone)]
pub(crate) struct FleetSettings {
    /// This instance's `CDN-Loop` member (RFC 8586).
    pub(crate) name: HeaderValue,
    pub(crate) redis: Option<RedisSettings>,
}

impl FleetSettings {
    pub(crate) fn from_config(
        name: Option<String>,
        redis: Option<RedisConfig>,
        errors: &mut ConfigErrors,
    ) -> FleetSettings {
        let name = match name {
            Some(name) if is_token(&name) => HeaderValue::from_str(&name).ok(),
            Some(_) => {
                let why =
                    "must be a token (letters, digits and !#$%&'*+-.^_`|~), as CDN-Loop wants";
                errors.push("name", why);
                None
            }
            None => None,
        };
        let redis = redis.and_then(|r| RedisSettings::from_config(r, errors));
        FleetSettings {
            name: name.unwrap_or_else(default_name),
            redis,
        }
    }
}

impl RedisSettings {
    fn from_config(config: RedisConfig, errors: &mut ConfigErrors) -> Option<RedisSettings> {
        let mut ok = true;
        match redis::Client::open(config.url.as_str()) {
            Ok(_) if config.url.starts_with("redis://") => {}
            Ok(_) | Err(_) => {
                errors.push(
                    field("redis", "url"),
                    "must be a URL like redis://127.0.0.1:6379",
                );
                ok = false;
            }
        }
        if config.timeout.0.is_zero() {
            errors.push(field("redis", "timeout"), "must be greater than 0");
            ok = false;
        }
        ok.then_some(RedisSettings {
            url: config.url,
            timeout: config.timeout.0,
        })
    }
}

/// RFC 9110 §5.6.2: a token.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `parapet-HOST-PID`: unique per instance, several on one host included, so an
/// edge's hop to a shield on the same machine is not taken for a loop.
fn default_name() -> HeaderValue {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let name = format!(
        "parapet-{}-{}",
        if host.is_empty() { "host" } else { &host },
        std::process::id()
    );
    HeaderValue::from_str(&name).unwrap_or_else(|_| HeaderValue::from_static("parapet"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(name: Option<&str>, redis: Option<&str>) -> (FleetSettings, Vec<String>) {
        let mut errors = ConfigErrors::default();
        let redis = redis.map(|y| serde_yaml::from_str(y).unwrap());
        let s = FleetSettings::from_config(name.map(str::to_string), redis, &mut errors);
        (s, errors.paths())
    }

    #[test]
    fn names_are_tokens_and_default_to_one_per_process() {
        let (s, problems) = fleet(Some("edge-1.example"), None);
        assert!(problems.is_empty());
        assert_eq!(s.name, "edge-1.example");
        assert!(s.redis.is_none());
        let (_, problems) = fleet(Some("two words"), None);
        assert_eq!(problems, ["name"]);
        let (s, _) = fleet(None, None);
        let pid = std::process::id().to_string();
        assert!(s.name.to_str().unwrap().ends_with(&pid), "{:?}", s.name);
    }

    #[test]
    fn the_redis_url_and_timeout_are_checked() {
        let (s, problems) = fleet(None, Some("{url: 'redis://127.0.0.1:6379'}"));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.redis.unwrap().timeout, Duration::from_millis(5));
        let (_, problems) = fleet(None, Some("{url: 'http://x', timeout: 0s}"));
        assert_eq!(problems, ["redis.url", "redis.timeout"]);
        let (_, problems) = fleet(None, Some("{url: 'redis://[::1'}"));
        assert_eq!(problems, ["redis.url"]);
    }
}
