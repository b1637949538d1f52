//! Configuration: one YAML file holds Pingora's server keys at the top level and
//! Parapet's sections beside them. `load` reads it, deserializes each section on its
//! own (so one mistake does not hide the next) and validates everything into the
//! runtime model, reporting every problem with its field path.

pub mod file;
pub mod model;
pub mod units;
mod validate;

pub use model::Settings;

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
        if file::SECTIONS.contains(&name) {
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
