//! Reading a mapping file from disk: the only file I/O of the configuration.

use super::{validate, ConfigError, Snapshot};
use std::path::Path;

/// Reads and validates the mapping file at `path`.
///
/// # Errors
/// [`ConfigError::Read`] if the file cannot be read, [`ConfigError::Invalid`] with every
/// problem (line and field) otherwise.
pub fn load(path: &Path) -> Result<Snapshot, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    validate(path, &text)
}
