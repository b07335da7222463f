//! Reading a mapping file from disk: the only file I/O of the configuration.

use super::{check, Checked, ConfigError, Snapshot};
use crate::sip::Key;
use std::path::Path;

/// Reads and validates the mapping file at `path`, and the branch key from `secret_file` when
/// it names one.
///
/// # Errors
/// [`ConfigError::Read`] if the file cannot be read, [`ConfigError::Invalid`] with every
/// problem (line and field) otherwise.
pub fn load(path: &Path) -> Result<Snapshot, ConfigError> {
    load_checked(path).map(|c| c.snapshot)
}

/// [`load()`], with the warnings of a file that loads.
///
/// # Errors
/// As [`load()`].
pub fn load_checked(path: &Path) -> Result<Checked, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut checked = check(path, &text)?;
    let snap = &mut checked.snapshot;
    if let Some(file) = snap.gateway.secret_file.clone() {
        let read = |e: std::io::Error| ConfigError::Read {
            path: file.clone(),
            source: e,
        };
        let text = std::fs::read_to_string(&file).map_err(read)?;
        let key = Key::from_hex(text.trim()).ok_or_else(|| {
            read(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "gateway.secret_file must hold exactly 32 hex digits",
            ))
        })?;
        snap.gateway.secret = Some(key);
    }
    Ok(checked)
}
