//! Reading a mapping file from disk: the only file I/O of the configuration.

use super::{check, Checked, ConfigError, Snapshot};
use std::path::Path;

/// Reads and validates the mapping file at `path`.
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
    check(path, &text)
}
