//! An upstream's `retries`, `retry_on` and `retry_budget` as written, validated
//! into `RetrySettings`.

use crate::config::units::{Percent, Span};
use crate::config::{field, require_nonzero, ConfigErrors};
use serde::Deserialize;
use std::time::Duration;

/// One `retry_on` entry: a failure's name or a status.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RetryOnEntry {
    Status(u16),
    Name(String),
}

/// `retry_budget` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RetryBudgetConfig {
    pub(crate) ratio: Percent,
    pub(crate) min_per_second: u32,
    pub(crate) window: Span,
}

impl Default for RetryBudgetConfig {
    /// linkerd2-proxy's default: 20% of requests plus 10 per second, over 10 s.
    fn default() -> Self {
        RetryBudgetConfig {
            ratio: Percent(0.2),
            min_per_second: 10,
            window: Span(Duration::from_secs(10)),
        }
    }
}

/// What may be retried: the transport failures (`connect_error`, `timeout`,
/// `reset`) and 5xx statuses named in `retry_on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryOn {
    pub(crate) connect_error: bool,
    pub(crate) timeout: bool,
    pub(crate) reset: bool,
    /// A bit per status from 500 (bit 0) to 599.
    statuses: u128,
}

impl RetryOn {
    /// Today's behaviour: the three transport failures, no answers.
    pub(crate) const TRANSPORT: RetryOn = RetryOn {
        connect_error: true,
        timeout: true,
        reset: true,
        statuses: 0,
    };

    pub(crate) fn status(&self, status: u16) -> bool {
        (500..600).contains(&status) && self.statuses & (1 << (status - 500)) != 0
    }

    /// The statuses listed, in order.
    pub(crate) fn statuses(&self) -> impl Iterator<Item = u16> + '_ {
        (500..600).filter(|s| self.status(*s))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RetryBudgetSettings {
    pub(crate) ratio: f64,
    pub(crate) min_per_second: u32,
    pub(crate) window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RetrySettings {
    /// Extra attempts after the first.
    pub(crate) retries: u8,
    pub(crate) on: RetryOn,
    pub(crate) budget: RetryBudgetSettings,
}

impl RetrySettings {
    /// `path` is the upstream's (`upstreams.NAME`).
    pub(crate) fn from_config(
        retries: u8,
        retry_on: Option<Vec<RetryOnEntry>>,
        budget: Option<RetryBudgetConfig>,
        path: &str,
        errors: &mut ConfigErrors,
    ) -> RetrySettings {
        if retries > 10 {
            errors.push(field(path, "retries"), "must be at most 10");
        }
        let on = match retry_on {
            Some(entries) => retry_on_of(&entries, &field(path, "retry_on"), errors),
            None => RetryOn::TRANSPORT,
        };
        let budget = budget.unwrap_or_default();
        let at = field(path, "retry_budget");
        if !(0.0..=1.0).contains(&budget.ratio.0) {
            errors.push(field(&at, "ratio"), "must be between 0% and 100%");
        }
        require_nonzero(&at, &[("window", budget.window.0)], errors);
        RetrySettings {
            retries,
            on,
            budget: RetryBudgetSettings {
                ratio: budget.ratio.0,
                min_per_second: budget.min_per_second,
                window: budget.window.0,
            },
        }
    }
}

fn retry_on_of(entries: &[RetryOnEntry], path: &str, errors: &mut ConfigErrors) -> RetryOn {
    let mut on = RetryOn {
        connect_error: false,
        timeout: false,
        reset: false,
        statuses: 0,
    };
    for (i, entry) in entries.iter().enumerate() {
        let status = match entry {
            RetryOnEntry::Name(name) => match name.as_str() {
                "connect_error" => {
                    on.connect_error = true;
                    continue;
                }
                "timeout" => {
                    on.timeout = true;
                    continue;
                }
                "reset" => {
                    on.reset = true;
                    continue;
                }
                other => other.parse::<u16>().ok(),
            },
            RetryOnEntry::Status(status) => Some(*status),
        };
        match status {
            Some(s @ 500..=599) => on.statuses |= 1 << (s - 500),
            _ => errors.push(
                format!("{path}[{i}]"),
                "must be connect_error, timeout, reset or a 5xx status",
            ),
        }
    }
    on
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::config::UpstreamConfig;
    use crate::upstream::UpstreamSettings;

    fn settings(extra: &str) -> (RetrySettings, Vec<String>) {
        let yaml = format!("{{backends: [{{address: '127.0.0.1:1'}}], {extra}}}");
        let config: UpstreamConfig = serde_yaml::from_str(&yaml).unwrap();
        let mut errors = ConfigErrors::default();
        let s = UpstreamSettings::from_config("app", config, "upstreams.app", &mut errors);
        (s.retry, errors.paths())
    }

    #[test]
    fn defaults_are_the_transport_failures_within_linkerds_budget() {
        let (s, problems) = settings("retries: 1");
        assert!(problems.is_empty());
        assert_eq!(s.on, RetryOn::TRANSPORT);
        assert_eq!(s.on.statuses().count(), 0);
        let budget = s.budget;
        assert_eq!((budget.ratio, budget.min_per_second), (0.2, 10));
        assert_eq!(budget.window, Duration::from_secs(10));
    }

    #[test]
    fn statuses_and_names() {
        let (s, problems) = settings(
            "retry_on: [connect_error, 503, '504'], retry_budget: {ratio: 50%, min_per_second: 0}",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert!(s.on.connect_error && !s.on.timeout && !s.on.reset);
        assert_eq!(s.on.statuses().collect::<Vec<_>>(), [503, 504]);
        assert!(!s.on.status(502) && !s.on.status(200));
        assert_eq!((s.budget.ratio, s.budget.min_per_second), (0.5, 0));
    }

    #[test]
    fn bad_entries_are_named() {
        let (_, problems) = settings(
            "retries: 11, retry_on: [timeout, 404, sometimes], \
             retry_budget: {ratio: 150%, window: 0s}",
        );
        assert_eq!(
            problems,
            [
                "upstreams.app.retries",
                "upstreams.app.retry_on[1]",
                "upstreams.app.retry_on[2]",
                "upstreams.app.retry_budget.ratio",
                "upstreams.app.retry_budget.window",
            ]
        );
    }
}
