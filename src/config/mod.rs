//! Configuration: one YAML file holds Pingora's server keys at the top level and
//! Parapet's sections beside them. `load` reads it, deserializes each section on its
//! own (so one mistake does not hide the next) and validates everything into the
//! runtime model, reporting every problem with its field path.
//!
//! Each feature owns its part of the file: its serde struct (what the operator
//! wrote), its conversion into the runtime object (`from_config`, reporting problems
//! under the field's path) and the unit tests of both, in the feature's own module.
//! `validate` only dispatches the sections to their owners and checks what spans
//! two of them.

pub mod pem;
pub mod settings;
pub mod units;
mod validate;

pub use settings::Settings;

use http::HeaderName;
use pingora::server::configuration::ServerConf;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};
use std::fmt;

/// One problem in the configuration, with the path of the field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

/// Every problem found in one file.
#[derive(Debug, Default)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// The paths of the fields with problems, in the order found.
    pub fn paths(&self) -> Vec<String> {
        self.errors.iter().map(|e| e.path.clone()).collect()
    }

    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
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

/// Read, parse and validate the file at `path`.
pub fn load(path: &str) -> Result<Settings, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let mut errors = ConfigErrors::default();
        errors.push("", format!("cannot read the file: {e}"));
        errors
    });
    let result = text.and_then(|text| parse(&text));
    result.map_err(|mut errors| {
        errors.file = path.to_string();
        errors
    })
}

/// Parse and validate configuration text.
pub fn parse(text: &str) -> Result<Settings, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let root: Value = match serde_yaml::from_str(text) {
        Ok(Value::Null) => Value::Mapping(Mapping::new()),
        Ok(v) => v,
        Err(e) => {
            errors.push("", format!("not valid YAML: {e}"));
            return Err(errors);
        }
    };
    let Value::Mapping(root) = root else {
        errors.push("", "the top level must be a mapping of keys");
        return Err(errors);
    };
    let (server, sections) = split_top_level(root, &mut errors);
    let server = server_conf(server, &mut errors);
    let settings = validate::validate(server, &sections, &mut errors);
    match (settings, errors.errors.is_empty()) {
        (Some(settings), true) => Ok(settings),
        _ => Err(errors),
    }
}

/// Separate Pingora's server keys from Parapet's sections; any other key is a typo.
fn split_top_level(root: Mapping, errors: &mut ConfigErrors) -> (Mapping, Mapping) {
    let known_server_keys = match serde_yaml::to_value(ServerConf::default()) {
        Ok(Value::Mapping(m)) => m,
        _ => Mapping::new(),
    };
    let mut server = Mapping::new();
    let mut sections = Mapping::new();
    for (key, value) in root {
        let Some(name) = key.as_str() else {
            errors.push("", format!("top-level key {key:?} is not a string"));
            continue;
        };
        if validate::SECTIONS.contains(&name) {
            sections.insert(key, value);
        } else if known_server_keys.contains_key(name) {
            server.insert(key, value);
        } else {
            errors.push(
                name,
                "unknown key (neither a Parapet section nor a Pingora server setting)",
            );
        }
    }
    (server, sections)
}

fn server_conf(server: Mapping, errors: &mut ConfigErrors) -> ServerConf {
    let conf: Option<ServerConf> = section(&Value::Mapping(server), "", errors);
    match conf.map(ServerConf::validate) {
        Some(Ok(conf)) => conf,
        Some(Err(e)) => {
            errors.push("", format!("server settings: {}", e.context_str()));
            ServerConf::default()
        }
        None => ServerConf::default(),
    }
}

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

trait ContextStr {
    fn context_str(&self) -> String;
}

impl ContextStr for pingora::Error {
    fn context_str(&self) -> String {
        self.context
            .as_ref()
            .map(|c| c.as_str().to_string())
            .unwrap_or_else(|| self.to_string())
    }
}
