//! The `cache.disk` section: where the disk tier keeps its files and how much it
//! may use.

use crate::config::units::Size;
use crate::config::{field, ConfigErrors};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The smallest `max_size` accepted: below it the tier would hold almost nothing.
const SMALLEST: u64 = 1 << 20;

/// `cache.disk` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiskConfig {
    pub path: PathBuf,
    #[serde(default = "default_max_size")]
    pub max_size: Size,
}

fn default_max_size() -> Size {
    Size(10 << 30)
}

/// The validated `cache.disk` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DiskSettings {
    pub path: PathBuf,
    /// Bytes of object files the tier keeps (headers, meta and bodies).
    pub max_size: u64,
}

impl DiskSettings {
    pub(crate) fn from_config(config: DiskConfig, errors: &mut ConfigErrors) -> DiskSettings {
        let at = |name: &str| field("cache.disk", name);
        if config.max_size.0 < SMALLEST {
            errors.push(at("max_size"), "must be at least 1MiB");
        }
        if let Err(problem) = writable_dir(&config.path) {
            errors.push(at("path"), problem);
        }
        DiskSettings {
            path: config.path,
            max_size: config.max_size.0,
        }
    }
}

/// Whether `path` is a directory this process may create files in.
fn writable_dir(path: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let shown = path.display();
    if !path.is_absolute() {
        return Err(format!("'{shown}' must be an absolute path"));
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(format!("'{shown}' is not a directory")),
        Err(e) => return Err(format!("'{shown}': {e}")),
    }
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return Err(format!("'{shown}' holds a NUL byte"));
    };
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call.
    let allowed = unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) } == 0;
    match allowed {
        true => Ok(()),
        false => Err(format!(
            "'{shown}' is not writable: {}",
            std::io::Error::last_os_error()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> (DiskSettings, Vec<String>) {
        let config: DiskConfig = serde_yaml::from_str(yaml).unwrap();
        let mut errors = ConfigErrors::default();
        let settings = DiskSettings::from_config(config, &mut errors);
        (settings, errors.paths())
    }

    #[test]
    fn a_writable_directory_with_a_size_is_accepted() {
        let dir = std::env::temp_dir();
        let (s, problems) = check(&format!("{{path: {}, max_size: 2GiB}}", dir.display()));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.max_size, 2 << 30);
        let (s, _) = check(&format!("{{path: {}}}", dir.display()));
        assert_eq!(s.max_size, 10 << 30);
    }

    #[test]
    fn each_problem_names_its_field() {
        let (_, problems) = check("{path: /nonexistent/parapet-disk, max_size: 1KiB}");
        assert_eq!(problems, ["cache.disk.max_size", "cache.disk.path"]);
        assert_eq!(check("{path: relative/dir}").1, ["cache.disk.path"]);
        assert_eq!(check("{path: /etc/hostname}").1, ["cache.disk.path"]);
        assert!(serde_yaml::from_str::<DiskConfig>("{max_size: 1GiB}").is_err());
        assert!(serde_yaml::from_str::<DiskConfig>("{path: /tmp, size: 1GiB}").is_err());
    }
}
