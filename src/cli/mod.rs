//! What the `check` and `route` commands print, as text for a person or JSON for automation.
//! Pure: a snapshot and an instant come in, a string comes out; `main.rs` parses arguments,
//! writes the string and maps errors to exit codes.
//!
//! JSON field names are stable (README, "Ops commands"): instants are RFC 3339 in UTC
//! (`…Z`), with `*_local` twins in the mappings' zone (+08:00) where a person reads them.

pub mod check;
pub mod route;

use crate::config::ConfigIssue;
use serde::Serialize;
use std::path::Path;
use std::time::SystemTime;

/// How a command prints.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Aligned text for a person.
    #[default]
    Table,
    /// One JSON document.
    Json,
}

/// A problem or warning in a mapping file, as JSON.
#[derive(Debug, Serialize)]
pub struct IssueJson<'a> {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// Dotted field path.
    pub field: &'a str,
    /// What is wrong.
    pub problem: &'a str,
    /// The other line the problem involves.
    pub also_line: Option<usize>,
    /// The other field the problem involves.
    pub also_field: Option<&'a str>,
}

impl<'a> IssueJson<'a> {
    /// The JSON shape of `i`, found in `path`.
    pub fn of(path: &Path, i: &'a ConfigIssue) -> IssueJson<'a> {
        IssueJson {
            file: path.display().to_string(),
            line: i.line,
            field: &i.field,
            problem: &i.problem,
            also_line: i.also.as_ref().map(|a| a.line),
            also_field: i.also.as_ref().map(|a| a.field.as_str()),
        }
    }
}

/// `{"file": …, "ok": false, "problems": […]}` for a file that does not validate.
pub fn problems_json(path: &Path, issues: &[ConfigIssue]) -> String {
    let problems: Vec<IssueJson<'_>> = issues.iter().map(|i| IssueJson::of(path, i)).collect();
    let doc = serde_json::json!({
        "file": path.display().to_string(),
        "ok": false,
        "problems": problems,
    });
    format!("{doc:#}\n")
}

/// An instant as JSON: RFC 3339 UTC.
pub(crate) fn utc(t: SystemTime) -> String {
    crate::timeline::utc(t)
}

/// Seconds from `now` to `t` (negative when past).
pub(crate) fn seconds_until(now: SystemTime, t: SystemTime) -> i64 {
    let s = |x: SystemTime| crate::clock::unix_seconds(x).floor() as i64;
    s(t) - s(now)
}
