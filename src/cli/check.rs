//! `dualgate check`: the routing table and each legacy number's timeline (`render`), the
//! boundaries still ahead (`upcoming`), and what a new file would change (`diff`).

use super::{seconds_until, utc, IssueJson};
use crate::calendar::{phase_at, Treatment};
use crate::config::diff::{fingerprint, Diff};
use crate::config::{Checked, QueueId, Snapshot};
use crate::number::AreaCode;
use crate::timeline::{self, countdown, describe, local, local_and_utc, next_for, Boundary, What};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::SystemTime;

/// A listen address as the operator writes it: `127.0.0.1:5060` or `off`.
pub fn addr(a: Option<SocketAddr>) -> String {
    a.map_or_else(|| "off".to_string(), |a| a.to_string())
}

fn queue(s: &Snapshot, i: QueueId) -> &str {
    s.queue(i).name.as_str()
}

fn treatment(s: &Snapshot, t: &Treatment) -> String {
    match t {
        Treatment::Announce { queue: q } => format!("announce via queue {}", queue(s, *q)),
        Treatment::Redirect { status } => format!("redirect {status} to the area's new number"),
        Treatment::Reject { status, reason } => format!("reject {status} \"{reason}\""),
        Treatment::Route => "route (grace period, marked)".to_string(),
    }
}

/// The legacy number's next boundary as a [`Boundary`], for [`describe`].
fn next_boundary<'m>(l: &'m crate::mapping::Legacy, now: SystemTime) -> Option<Boundary<'m>> {
    next_for(l, now).map(|(at, phase)| Boundary {
        at,
        what: What::Legacy { legacy: l, phase },
    })
}

/// The text `check` prints for a valid file at `now`.
pub fn render(path: &Path, c: &Checked, now: SystemTime) -> String {
    let snap = &c.snapshot;
    let m = &snap.mappings;
    let g = &snap.gateway;
    let mut o = String::new();
    let _ = writeln!(o, "{}: OK", path.display());
    let _ = writeln!(
        o,
        "routing fingerprint (dualgate_config_info sha256): {}",
        fingerprint(snap)
    );
    let _ = writeln!(
        o,
        "\ngateway: sip udp {}, tcp {}, metrics {}, advertised {}, record-route {}, replica {}",
        addr(g.sip_udp),
        addr(g.sip_tcp),
        addr(g.metrics),
        g.advertised,
        g.record_route,
        g.replica
    );
    let _ = writeln!(
        o,
        "branch key: {}; strangers: {}; tcp message deadline {:?}, output budget {} bytes per connection",
        if g.secret.is_some() || g.secret_file.is_some() {
            "configured"
        } else {
            "none (random per process: replicas cannot share responses)"
        },
        if g.answer_strangers {
            "answered 403 (never larger than the request)"
        } else {
            "dropped silently"
        },
        g.tcp.message_deadline,
        g.tcp.output_budget,
    );
    let _ = writeln!(o, "\nqueues:");
    for q in &snap.queues {
        let backends: Vec<&str> = q.backends.iter().map(|b| b.uri.as_str()).collect();
        let _ = writeln!(
            o,
            "  {:<14} target {:<16} backends {}",
            q.name,
            q.target,
            backends.join(", ")
        );
    }
    let _ = writeln!(o, "\ntrunks:");
    for t in &snap.trunks {
        let sources: Vec<String> = t.sources.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            o,
            "  {:<14} origin area {:<6} sources {}",
            t.name,
            t.origin_area.as_ref().map_or("-", AreaCode::as_str),
            sources.join(", ")
        );
    }
    let _ = writeln!(
        o,
        "\nnew number {} (no area known: queue {}):",
        m.new_number,
        m.default_queue.map_or("none (404)", |i| queue(snap, i))
    );
    for a in &m.areas {
        let launch = match (a.launch, timeline::launch(a)) {
            (None, _) => "always".to_string(),
            (Some(l), None) => format!("launch {} (answers before it too)", local_and_utc(l)),
            (Some(l), Some(_)) if l > now => {
                format!("from {} ({})", local_and_utc(l), countdown(now, l))
            }
            (Some(l), Some(_)) => format!("from {}", local_and_utc(l)),
        };
        let _ = writeln!(
            o,
            "  {:<10} {:<24} -> {:<12} {launch}",
            a.new_number,
            a.name,
            queue(snap, a.queue)
        );
    }
    let _ = writeln!(o, "\nlegacy numbers (phase at {}):", local_and_utc(now));
    for l in &m.legacy {
        let s = &l.schedule;
        let _ = writeln!(o, "  {} {} -> {}", l.number, l.name, queue(snap, l.queue));
        let _ = writeln!(
            o,
            "    before          until {}",
            local_and_utc(s.parallel_from)
        );
        let _ = writeln!(
            o,
            "    parallel        {} .. {}",
            local_and_utc(s.parallel_from),
            local_and_utc(s.retired_from)
        );
        let _ = writeln!(
            o,
            "    retired         from {}: {}",
            local_and_utc(s.retired_from),
            treatment(snap, &s.when_retired)
        );
        if let Some(d) = s.decommissioned_from {
            let _ = writeln!(o, "    decommissioned  from {}: 410", local_and_utc(d));
        }
        let phase = phase_at(s, now).as_str();
        match next_boundary(l, now) {
            Some(b) => {
                let _ = writeln!(
                    o,
                    "    now: {phase} until {} ({}), then {}",
                    local(b.at),
                    countdown(now, b.at),
                    describe(&b, snap)
                );
            }
            None => {
                let _ = writeln!(o, "    now: {phase} (no further change)");
            }
        }
    }
    o
}

/// The JSON `check --format json` prints for a valid file at `now`.
pub fn render_json(path: &Path, c: &Checked, now: SystemTime) -> String {
    let snap = &c.snapshot;
    let m = &snap.mappings;
    let g = &snap.gateway;
    let opt_addr = |a: Option<SocketAddr>| a.map(|a| a.to_string());
    let mut marks = Vec::new();
    if g.history_info {
        marks.push("history-info");
    }
    if g.diversion {
        marks.push("diversion");
    }
    let legacy: Vec<Value> = m
        .legacy
        .iter()
        .map(|l| {
            let s = &l.schedule;
            let when_retired = match &s.when_retired {
                Treatment::Route => json!({"treatment": "route"}),
                Treatment::Announce { queue: q } => {
                    json!({"treatment": "announce", "queue": queue(snap, *q)})
                }
                Treatment::Redirect { status } => {
                    json!({"treatment": "redirect", "status": status})
                }
                Treatment::Reject { status, reason } => {
                    json!({"treatment": "reject", "status": status, "reason": reason})
                }
            };
            json!({
                "number": l.number,
                "name": l.name,
                "queue": queue(snap, l.queue),
                "parallel_from": utc(s.parallel_from),
                "retired_from": utc(s.retired_from),
                "decommissioned_from": s.decommissioned_from.map(utc),
                "when_retired": when_retired,
                "max_share": l.max_share,
                "phase": phase_at(s, now).as_str(),
                "next": next_boundary(l, now).map(|b| boundary_json(&b, snap, now)),
            })
        })
        .collect();
    let doc = json!({
        "file": path.display().to_string(),
        "ok": true,
        "sha256": fingerprint(snap),
        "at": utc(now),
        "gateway": {
            "sip_udp": opt_addr(g.sip_udp),
            "sip_tcp": opt_addr(g.sip_tcp),
            "metrics": opt_addr(g.metrics),
            "advertised": g.advertised.to_string(),
            "record_route": g.record_route,
            "mark_legacy": marks,
            "replica": g.replica,
        },
        "queues": snap.queues.iter().map(|q| json!({
            "name": q.name,
            "target": q.target,
            "backends": q.backends.iter().map(|b| b.uri.as_str()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "trunks": snap.trunks.iter().map(|t| json!({
            "name": t.name,
            "sources": t.sources.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "origin_area": t.origin_area.as_ref().map(AreaCode::as_str),
        })).collect::<Vec<_>>(),
        "new_number": {
            "number": m.new_number,
            "default_queue": m.default_queue.map(|i| queue(snap, i)),
        },
        "areas": m.areas.iter().map(|a| json!({
            "code": a.code.as_str(),
            "name": a.name,
            "new_number": a.new_number,
            "queue": queue(snap, a.queue),
            "launch": a.launch.map(utc),
            "answer_before_launch": a.answer_before_launch,
        })).collect::<Vec<_>>(),
        "legacy": legacy,
        "warnings": c.warnings.iter().map(|w| IssueJson::of(path, w)).collect::<Vec<_>>(),
    });
    format!("{doc:#}\n")
}

fn boundary_json(b: &Boundary<'_>, snap: &Snapshot, now: SystemTime) -> Value {
    let (kind, area) = match b.what {
        What::Legacy { legacy, .. } => (
            "legacy",
            legacy
                .area(&snap.mappings.areas)
                .map(|a| a.code.as_str().to_string()),
        ),
        What::Launch { area } => ("launch", Some(area.code.as_str().to_string())),
    };
    json!({
        "at": utc(b.at),
        "at_local": local(b.at),
        "in_seconds": seconds_until(now, b.at),
        "kind": kind,
        "number": b.what.number(),
        "area": area,
        "state": b.what.state(),
        "change": describe(b, snap),
    })
}

/// `check --upcoming`: every boundary after `now`, in the mappings' zone and UTC, with a
/// countdown.
pub fn upcoming(path: &Path, snap: &Snapshot, now: SystemTime) -> String {
    let all = timeline::upcoming(&snap.mappings, now);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}: {} upcoming boundar{} after {}",
        path.display(),
        all.len(),
        if all.len() == 1 { "y" } else { "ies" },
        local_and_utc(now)
    );
    for b in &all {
        let subject = match b.what {
            What::Legacy { legacy, .. } => format!("legacy {}", legacy.number),
            What::Launch { area } => format!("area {} {}", area.code.as_str(), area.new_number),
        };
        let _ = writeln!(
            o,
            "  {}  {}  {:<16} {subject}: {}",
            local(b.at),
            utc(b.at),
            countdown(now, b.at),
            describe(b, snap)
        );
    }
    if all.is_empty() {
        let _ = writeln!(o, "  none: every number is in its last phase");
    }
    o
}

/// `check --upcoming --format json`.
pub fn upcoming_json(path: &Path, snap: &Snapshot, now: SystemTime) -> String {
    let all: Vec<Value> = timeline::upcoming(&snap.mappings, now)
        .iter()
        .map(|b| boundary_json(b, snap, now))
        .collect();
    let doc = json!({
        "file": path.display().to_string(),
        "now": utc(now),
        "boundaries": all,
    });
    format!("{doc:#}\n")
}

/// `check --diff RUNNING NEW`.
pub fn diff(running: &Path, new: &Path, d: &Diff) -> String {
    let mut o = format!("{} -> {}:\n", running.display(), new.display());
    for line in d.to_string().lines() {
        let _ = writeln!(o, "  {line}");
    }
    o
}

/// `check --diff RUNNING NEW --format json`.
pub fn diff_json(running: &Path, new: &Path, d: &Diff) -> String {
    let doc = json!({
        "running": running.display().to_string(),
        "new": new.display().to_string(),
        "changes": d.changes,
    });
    format!("{doc:#}\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::check;

    const FILE: &str = include_str!("../../mappings/fujian.toml");

    fn at(s: &str) -> SystemTime {
        crate::config::parse_instant(s).unwrap()
    }

    #[test]
    fn addresses_print_as_written_or_off() {
        let c = check(
            Path::new("f.toml"),
            &FILE.replace("\"127.0.0.1:9090\"", "\"off\""),
        )
        .unwrap();
        let out = render(Path::new("f.toml"), &c, at("2025-04-20T10:00:00+08:00"));
        assert!(
            out.contains("gateway: sip udp 127.0.0.1:5060, tcp 127.0.0.1:5060, metrics off,"),
            "{out}"
        );
        assert!(!out.contains("Some("), "{out}");
    }

    #[test]
    fn each_legacy_number_says_until_when_and_what_comes_next() {
        let c = check(Path::new("f.toml"), FILE).unwrap();
        let out = render(Path::new("f.toml"), &c, at("2025-05-06T23:59:00+08:00"));
        assert_eq!(
            out.matches("    now: parallel until 2025-05-07T00:00:00+08:00 (in 1m 0s), then retired: announce via queue announcement\n").count(),
            3,
            "{out}"
        );
        let out = render(Path::new("f.toml"), &c, at("2025-05-07T00:00:00+08:00"));
        assert_eq!(
            out.matches("    now: retired (no further change)\n")
                .count(),
            3,
            "{out}"
        );
    }

    #[test]
    fn upcoming_lists_boundaries_in_both_zones_with_a_countdown() {
        let c = check(Path::new("f.toml"), FILE).unwrap();
        let out = upcoming(
            Path::new("f.toml"),
            &c.snapshot,
            at("2025-04-06T23:00:00+08:00"),
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "f.toml: 15 upcoming boundaries after 2025-04-06T23:00:00+08:00 (2025-04-06T15:00:00Z)"
        );
        assert_eq!(lines[1], "  2025-04-07T00:00:00+08:00  2025-04-06T16:00:00Z  in 1h 0m         legacy 059185666661: parallel: routes to queue fuzhou, marked as a legacy call");
        assert!(out.contains("  2025-04-07T00:00:00+08:00  2025-04-06T16:00:00Z  in 1h 0m         area 0592 059212356: 059212356 starts answering in Xiamen (queue xiamen)\n"), "{out}");
        assert!(out.contains("  2025-05-07T00:00:00+08:00  2025-05-06T16:00:00Z  in 30d 1h 0m     legacy 059185666222: retired: announce via queue announcement\n"), "{out}");
        let json: Value = serde_json::from_str(&upcoming_json(
            Path::new("f.toml"),
            &c.snapshot,
            at("2025-04-06T23:00:00+08:00"),
        ))
        .unwrap();
        let first = &json["boundaries"][0];
        assert_eq!(first["at"], "2025-04-06T16:00:00Z");
        assert_eq!(first["at_local"], "2025-04-07T00:00:00+08:00");
        assert_eq!(first["in_seconds"], 3600);
        assert_eq!(first["kind"], "legacy");
        assert_eq!(first["number"], "059185666661");
        assert_eq!(first["area"], "0591");
        assert_eq!(first["state"], "parallel");
    }

    #[test]
    fn json_has_the_documented_fields() {
        let c = check(Path::new("f.toml"), FILE).unwrap();
        let v: Value = serde_json::from_str(&render_json(
            Path::new("f.toml"),
            &c,
            at("2025-04-20T10:00:00+08:00"),
        ))
        .unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
        assert_eq!(v["gateway"]["metrics"], "127.0.0.1:9090");
        assert_eq!(v["areas"][1]["new_number"], "059212356");
        assert_eq!(v["areas"][1]["launch"], "2025-04-06T16:00:00Z");
        let l = &v["legacy"][0];
        assert_eq!(l["phase"], "parallel");
        assert_eq!(l["when_retired"]["treatment"], "announce");
        assert_eq!(l["when_retired"]["queue"], "announcement");
        assert_eq!(l["next"]["state"], "retired");
        assert_eq!(l["next"]["at"], "2025-05-06T16:00:00Z");
        assert_eq!(v["warnings"].as_array().unwrap().len(), 0);
    }
}
