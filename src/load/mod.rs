//! The loader, above every feature: one YAML file holds Pingora's server keys at the
//! top level and Parapet's sections beside them (README, "Configuration walk-through"). `load`
//! reads it, separates the two, hands each section to the feature that owns it
//! (`validate`) and returns the validated `Settings`, or every problem with its field
//! path; `assemble` then builds the `Runtime` from them. Runs once at start (and
//! for `parapet -t`); the request path never parses.
//!
//! Each feature owns its part of the file: its serde struct (what the operator
//! wrote), its conversion into the runtime object (`from_config`, reporting problems
//! under the field's path, with the toolkit in `crate::config`) and the unit tests of
//! both, in the feature's own module. This module only dispatches and checks what
//! spans two sections.

mod assemble;
mod settings;
mod validate;

pub(crate) use assemble::assemble;
pub use settings::Settings;

use crate::config::{section, ConfigErrors};
use pingora::server::configuration::ServerConf;
use serde_yaml::{Mapping, Value};

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
fn parse(text: &str) -> Result<Settings, ConfigErrors> {
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
