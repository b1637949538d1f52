//! The toolkit every feature uses to read its own section of the file: errors with
//! the field's path (`ConfigErrors`), deserializing a section on its own so that one
//! mistake does not hide the next (`section`), field paths, header names, non-zero
//! durations, units (`units`) and PEM files (`pem`).
//!
//! It knows no feature: reading the file and handing each section to its owner is
//! the loader's work (`src/load/`), above every feature.

pub(crate) mod pem;
pub(crate) mod units;

use http::HeaderName;
use serde::de::DeserializeOwned;
use serde_yaml::Value;
use std::fmt;

/// One problem in the configuration, with the path of the field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    pub(crate) path: String,
    pub(crate) message: String,
}

/// Every problem found in one file.
#[derive(Debug, Default)]
pub struct ConfigErrors {
    pub(crate) file: String,
    pub(crate) errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// How many problems were found.
    pub fn count(&self) -> usize {
        self.errors.len()
    }

    /// The paths of the fields with problems, in the order found.
    #[cfg(test)]
    pub(crate) fn paths(&self) -> Vec<String> {
        self.errors.iter().map(|e| e.path.clone()).collect()
    }

    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match e.path.is_empty() {
                true => write!(f, "{}: {}", self.file, e.message)?,
                false => write!(f, "{}: {}: {}", self.file, e.path, e.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Deserialize one value, recording a failure with its full field path.
pub(crate) fn section<T: DeserializeOwned>(
    value: &Value,
    path: &str,
    errors: &mut ConfigErrors,
) -> Option<T> {
    match serde_path_to_error::deserialize(value.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let full = match (path.is_empty(), inner == ".") {
                (_, true) => path.to_string(),
                (true, false) => inner,
                (false, false) if inner.starts_with('[') => format!("{path}{inner}"),
                (false, false) => format!("{path}.{inner}"),
            };
            errors.push(full, e.into_inner().to_string());
            None
        }
    }
}

/// Deserialize `value` when present (and not null), else take the default.
pub(crate) fn section_or_default<T: DeserializeOwned + Default>(
    value: Option<&Value>,
    path: &str,
    errors: &mut ConfigErrors,
) -> T {
    value
        .and_then(|v| section(v, path, errors))
        .unwrap_or_default()
}

/// The path of field `name` inside the field at `path`.
pub(crate) fn field(path: &str, name: &str) -> String {
    format!("{path}.{name}")
}

/// A configured header name, or an error at `path`.
pub(crate) fn header_name(text: &str, path: &str, errors: &mut ConfigErrors) -> Option<HeaderName> {
    HeaderName::from_bytes(text.as_bytes())
        .map_err(|_| errors.push(path, format!("'{text}' is not a valid header name")))
        .ok()
}

/// Push an error at `path` for each duration of `fields` that is zero.
pub(crate) fn require_nonzero(
    path: &str,
    fields: &[(&str, std::time::Duration)],
    errors: &mut ConfigErrors,
) {
    for (name, value) in fields {
        if value.is_zero() {
            errors.push(field(path, name), "must be greater than 0");
        }
    }
}
