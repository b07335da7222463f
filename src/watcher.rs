//! Reload on change: watches the mapping file and sends this process SIGHUP when it changes, so
//! that the change goes through the one reload path (`main.rs`: validate the whole file, swap
//! the snapshot, keep the old one on error). Made for a Kubernetes ConfigMap mounted as a
//! directory, which the kubelet updates by swapping a `..data` symlink: the path then resolves
//! to another file. An edit in place (a new inode, size or mtime) counts too.
//!
//! Enabled by `DUALGATE_WATCH_CONFIG=1` in the environment (deploy/k8s sets it); polling, not
//! inotify: a symlink swap two directories up raises no inotify event on the watched path, and
//! a check every [`EVERY`] costs nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How often the file is looked at.
pub const EVERY: Duration = Duration::from_secs(2);

/// The environment variable that turns watching on (`1`).
pub const ENV: &str = "DUALGATE_WATCH_CONFIG";

/// What identifies the file's content without reading it: where the path resolves, and the
/// resolved file's inode, size and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    resolved: PathBuf,
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn look(path: &Path) -> Option<Seen> {
    use std::os::unix::fs::MetadataExt;
    let resolved = std::fs::canonicalize(path).ok()?;
    let m = std::fs::metadata(&resolved).ok()?;
    Some(Seen {
        resolved,
        inode: m.ino(),
        len: m.len(),
        modified: m.modified().ok(),
    })
}

/// Whether `ENV` asks for watching.
pub fn enabled() -> bool {
    std::env::var(ENV).is_ok_and(|v| v == "1")
}

/// Polls `path` every `every` and sends this process SIGHUP each time what it resolves to
/// changes. A file that cannot be read is not a change (the kubelet's swap is atomic; a
/// missing file would only fail the reload). Runs until the runtime stops.
pub async fn mapping_file(path: PathBuf, every: Duration) {
    let mut last = look(&path);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = look(&path);
        if now.is_none() || now == last {
            continue;
        }
        tracing::info!(config = %path.display(), resolved = ?now.as_ref().map(|s| &s.resolved), "mapping file changed: reloading");
        last = now;
        let me = rustix::process::getpid();
        if let Err(e) = rustix::process::kill_process(me, rustix::process::Signal::HUP) {
            tracing::error!(error = %e, "cannot signal a reload to this process");
        }
    }
}
