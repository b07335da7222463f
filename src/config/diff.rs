//! What would change between two snapshots: numbers, queues, trunks and areas added or removed,
//! backends, queues and treatments changed, dates moved; and which `[gateway]` changes only take
//! effect on restart. Also the routing fingerprint (`dualgate_config_info{sha256}`), computed
//! from the same description so that two files that route alike have the same one. Pure.

use super::{QueueId, Snapshot};
use crate::calendar::Treatment;
use crate::timeline::local;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::SystemTime;

/// One field of one entry, before and after (`None`: the entry is not in that file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The entry: `legacy 059185666661`, `queue fuzhou`, `area 0591`, `trunk loopback`,
    /// `new_number`, `gateway`.
    pub entry: String,
    /// The field, or `(entry)` when the whole entry is added or removed.
    pub field: String,
    /// Before (absent when added).
    pub old: Option<String>,
    /// After (absent when removed).
    pub new: Option<String>,
    /// True for `[gateway]` fields a running gateway reads only at start-up.
    pub needs_restart: bool,
}

/// Every change from one snapshot to another, in entry order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// The changes.
    pub changes: Vec<Change>,
}

impl Diff {
    /// True when nothing routes or is timed differently.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes a running gateway applies on reload.
    pub fn applied(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| !c.needs_restart)
    }

    /// The `[gateway]` changes that wait for a restart.
    pub fn needing_restart(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.needs_restart)
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_string());
        match (&self.old, &self.new, self.field.as_str()) {
            (None, Some(n), WHOLE) => write!(f, "{}: added ({n})", self.entry)?,
            (Some(_), None, WHOLE) => write!(f, "{}: removed", self.entry)?,
            (old, new, field) => {
                write!(f, "{}: {field} {} -> {}", self.entry, dash(old), dash(new))?
            }
        }
        if self.needs_restart {
            f.write_str(" (takes effect on restart)")?;
        }
        Ok(())
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return writeln!(f, "no change in routing, calendar or gateway settings");
        }
        for c in &self.changes {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}

const WHOLE: &str = "(entry)";

/// `[gateway]` fields read only at start-up: listeners are bound and the `replica` label is
/// installed on the exporter once.
const RESTART_FIELDS: [&str; 4] = ["sip_udp", "sip_tcp", "metrics", "replica"];

/// The fields of one entry, values as an operator reads them.
type Fields = Vec<(&'static str, String)>;

/// A snapshot as an operator reads it: every entry with its fields, `[gateway]` first. Both
/// [`diff`] and [`fingerprint`] are computed from it, so a running gateway describes each file
/// once and keeps the description of the one it serves (a national file has 10 000 entries).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Description {
    /// `[gateway]`.
    gateway: Fields,
    /// The entries that decide routing and the calendar, in file order.
    routing: Vec<(String, Fields)>,
}

/// Every entry of `s` as an operator reads it.
pub fn describe(s: &Snapshot) -> Description {
    let queue = |i: QueueId| s.queue(i).name.clone();
    let addr = |a: Option<std::net::SocketAddr>| a.map_or("off".to_string(), |a| a.to_string());
    let g = &s.gateway;
    let mut marks = Vec::new();
    if g.history_info {
        marks.push("history-info");
    }
    if g.diversion {
        marks.push("diversion");
    }
    Description {
        gateway: vec![
            ("sip_udp", addr(g.sip_udp)),
            ("sip_tcp", addr(g.sip_tcp)),
            ("metrics", addr(g.metrics)),
            ("replica", g.replica.clone()),
            ("advertised", g.advertised.to_string()),
            ("record_route", g.record_route.to_string()),
            ("mark_legacy", marks.join(", ")),
        ],
        routing: routing(s, &queue),
    }
}

impl Description {
    /// Every entry, `[gateway]` first.
    fn entries(&self) -> impl Iterator<Item = (&str, &Fields)> {
        std::iter::once(("gateway", &self.gateway))
            .chain(self.routing.iter().map(|(e, f)| (e.as_str(), f)))
    }

    /// The routing fingerprint of the snapshot described: see [`fingerprint`].
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for (entry, fields) in &self.routing {
            for (k, v) in fields {
                for part in [entry.as_str(), "\t", k, "\t", v.as_str(), "\n"] {
                    h.update(part.as_bytes());
                }
            }
        }
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    }

    /// What changes from the snapshot described by `self` to the one `new` describes.
    pub fn diff(&self, new: &Description) -> Diff {
        let before: HashMap<&str, &Fields> = self.entries().collect();
        // Sets, not scans: a national file has 10 000 entries a side (issue 12).
        let kept: HashSet<&str> = new.entries().map(|(e, _)| e).collect();
        let mut changes = Vec::new();
        let restart =
            |entry: &str, field: &str| entry == "gateway" && RESTART_FIELDS.contains(&field);
        for (entry, fields) in new.entries() {
            match before.get(entry) {
                None => changes.push(Change {
                    entry: entry.to_string(),
                    field: WHOLE.to_string(),
                    old: None,
                    new: Some(
                        fields
                            .iter()
                            .map(|(k, v)| format!("{k} {v}"))
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                    needs_restart: false,
                }),
                Some(was) => {
                    for (field, value) in fields {
                        let old_value = was.iter().find(|(f, _)| f == field).map(|(_, v)| v);
                        if old_value != Some(value) {
                            changes.push(Change {
                                entry: entry.to_string(),
                                field: (*field).to_string(),
                                old: old_value.cloned(),
                                new: Some(value.clone()),
                                needs_restart: restart(entry, field),
                            });
                        }
                    }
                }
            }
        }
        for (entry, _) in self.entries() {
            if !kept.contains(entry) {
                changes.push(Change {
                    entry: entry.to_string(),
                    field: WHOLE.to_string(),
                    old: Some(String::new()),
                    new: None,
                    needs_restart: false,
                });
            }
        }
        Diff { changes }
    }
}

/// The entries that decide routing and the calendar (everything but `[gateway]`).
fn routing(
    s: &Snapshot,
    queue: &dyn Fn(QueueId) -> String,
) -> Vec<(String, Vec<(&'static str, String)>)> {
    let m = &s.mappings;
    // Printing a date is most of describing a number, and a national file's 10 000 numbers
    // share a handful of dates: each is printed once.
    let mut dates: HashMap<SystemTime, String> = HashMap::new();
    let mut date = |t: SystemTime| dates.entry(t).or_insert_with(|| local(t)).clone();
    let mut out = vec![(
        "new_number".to_string(),
        vec![
            ("number", m.new_number.clone()),
            (
                "default_queue",
                m.default_queue.map_or("(none)".to_string(), queue),
            ),
        ],
    )];
    for q in &s.queues {
        let backends: Vec<&str> = q.backends.iter().map(|b| b.uri.as_str()).collect();
        out.push((
            format!("queue {}", q.name),
            vec![
                ("target", q.target.clone()),
                ("backends", backends.join(", ")),
                ("overflow", q.overflow.map_or("(none)".to_string(), queue)),
                ("hours", q.hours.to_string()),
                ("probe", q.probe.to_string()),
            ],
        ));
    }
    for t in &s.trunks {
        let sources: Vec<String> = t.sources.iter().map(ToString::to_string).collect();
        out.push((
            format!("trunk {}", t.name),
            vec![
                ("sources", sources.join(", ")),
                ("limits", format!("{:?}", t.limits)),
                (
                    "origin_area",
                    t.origin_area
                        .as_ref()
                        .map_or("(none)".to_string(), |a| a.as_str().to_string()),
                ),
            ],
        ));
    }
    for a in &m.areas {
        out.push((
            format!("area {}", a.code.as_str()),
            vec![
                ("name", a.name.clone()),
                ("queue", queue(a.queue)),
                ("launch", a.launch.map_or("(none)".to_string(), &mut date)),
                ("answer_before_launch", a.answer_before_launch.to_string()),
            ],
        ));
    }
    for l in &m.legacy {
        let s = &l.schedule;
        let treatment = match &s.when_retired {
            Treatment::Route => "route".to_string(),
            Treatment::Announce { queue: q } => format!("announce via queue {}", queue(*q)),
            Treatment::Redirect { status } => format!("redirect {status}"),
            Treatment::Reject { status, reason } => format!("reject {status} \"{reason}\""),
        };
        out.push((
            format!("legacy {}", l.number),
            vec![
                ("name", l.name.clone()),
                ("queue", queue(l.queue)),
                ("parallel_from", date(s.parallel_from)),
                ("retired_from", date(s.retired_from)),
                (
                    "decommissioned_from",
                    s.decommissioned_from
                        .map_or("(none)".to_string(), &mut date),
                ),
                ("when_retired", treatment),
                ("max_share", l.max_share.to_string()),
            ],
        ));
    }
    out
}

/// What changes from `old` to `new`.
pub fn diff(old: &Snapshot, new: &Snapshot) -> Diff {
    describe(old).diff(&describe(new))
}

/// SHA-256 (hex) of everything that decides routing and the calendar, in a canonical form:
/// equal for two files that route alike whatever their comments, order of keys or `[gateway]`
/// (which differs per replica); what `dualgate_config_info{sha256}` exports and `check` prints.
pub fn fingerprint(s: &Snapshot) -> String {
    describe(s).fingerprint()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::validate;
    use std::path::Path;

    const FILE: &str = include_str!("../../mappings/fujian.toml");

    fn snap(text: &str) -> Snapshot {
        validate(Path::new("fujian.toml"), text).unwrap()
    }

    #[test]
    fn the_same_file_has_no_changes_and_one_fingerprint() {
        let a = snap(FILE);
        assert!(diff(&a, &a).is_empty());
        let commented = format!("# a comment\n{}", FILE.replace("fujian-1", "fujian-2"));
        let b = snap(&commented);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a).len(), 64);
        let d = diff(&a, &b);
        assert_eq!(d.changes.len(), 1, "{d}");
        assert_eq!(
            d.to_string(),
            "gateway: replica fujian-1 -> fujian-2 (takes effect on restart)\n"
        );
    }

    #[test]
    fn a_moved_date_a_new_queue_and_a_changed_treatment_are_each_one_line() {
        let a = snap(FILE);
        let moved = FILE
            .replacen(
                "retired_from = 2025-05-07T00:00:00+08:00",
                "retired_from = 2025-05-14T00:00:00+08:00",
                1,
            )
            .replacen(
                "when_retired = { treatment = \"announce\", queue = \"announcement\" }",
                "when_retired = { treatment = \"reject\", status = 410 }",
                1,
            );
        let b = snap(&format!(
            "{moved}\n[[queue]]\nname = \"spare\"\nbackends = [\"sip:127.0.0.1:5088\"]\n"
        ));
        let text = diff(&a, &b).to_string();
        assert!(text.contains("legacy 059185666661: retired_from 2025-05-07T00:00:00+08:00 -> 2025-05-14T00:00:00+08:00\n"), "{text}");
        assert!(
            text.contains("queue spare: added (target 12356; backends sip:127.0.0.1:5088; overflow (none); hours always; probe true)\n"),
            "{text}"
        );
        assert!(text.contains("legacy 059185666661: when_retired announce via queue announcement -> reject 410 \"Number Changed, Please Dial The New Number\"\n"), "{text}");
        assert_ne!(fingerprint(&a), fingerprint(&b));
        let back = diff(&b, &a).to_string();
        assert!(back.contains("queue spare: removed\n"), "{back}");
    }
}
