//! `dualgate route NUMBER`: what a call would do at an instant, without sending anything, and
//! until when that holds.

use super::{seconds_until, utc};
use crate::config::{Snapshot, Trunk};
use crate::mapping::Entry;
use crate::number::{normalize, AreaCode, Dialling};
use crate::route::{decide, Decision, Facts, Source};
use crate::sip::Method;
use crate::timeline::{self, countdown, describe, local, local_and_utc, next_for, Boundary, What};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::SystemTime;
use thiserror::Error;

/// What to route.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    /// The dialled number or Request-URI.
    pub number: &'a str,
    /// The trunk the call arrives on.
    pub trunk: Option<&'a str>,
    /// The caller's area, instead of a trunk.
    pub from_area: Option<AreaCode>,
    /// A Call-ID, to pick the backend.
    pub call_id: Option<&'a str>,
}

/// Why a route cannot be rehearsed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RouteError {
    /// `--trunk` names no configured trunk.
    #[error("no trunk named `{name}`; trunks: {}", known.join(", "))]
    UnknownTrunk {
        /// The name given.
        name: String,
        /// The configured trunks.
        known: Vec<String>,
    },
}

/// The rehearsed call: what `route` prints (field names are the JSON ones).
#[derive(Debug, Serialize, PartialEq)]
pub struct Rehearsal {
    /// The instant routed at (RFC 3339 UTC).
    pub at: String,
    /// The trunk (`(command line)` for `--from-area` or neither).
    pub trunk: String,
    /// The area assumed for numbers dialled without one.
    pub origin_area: Option<String>,
    /// The Request-URI routed.
    pub request_uri: String,
    /// The canonical number, when it is one.
    pub canonical: Option<String>,
    /// Why it is not a number, when it is not.
    pub not_a_number: Option<String>,
    /// The `number` metric label: the configured number or `other`.
    pub number: String,
    /// The phase label (`before`, `parallel`, `retired`, `decommissioned`, `new`, `none`).
    pub phase: String,
    /// `forward` or `reply`.
    pub decision: &'static str,
    /// Forward: the queue.
    pub queue: Option<String>,
    /// Forward: the Request-URI user the call centre receives.
    pub user: Option<String>,
    /// Forward: marked as a legacy call (History-Info/Diversion).
    pub marked: bool,
    /// The Call-ID given, if any.
    pub call_id: Option<String>,
    /// Forward: the backend for `call_id`.
    pub backend: Option<String>,
    /// Forward: every backend of the queue that takes the call (an overflow queue when the
    /// routed one is closed).
    pub backends: Vec<String>,
    /// Forward: the queues' service hours and overflow chain at this instant.
    pub hours: Vec<String>,
    /// Reply: status code.
    pub status: Option<u16>,
    /// Reply: reason phrase.
    pub reason: Option<String>,
    /// Reply: Reason header.
    pub reason_header: Option<String>,
    /// Reply: Contact header (redirects).
    pub contact: Option<String>,
    /// The next instant at which this call would be routed differently, if any.
    pub until: Option<Next>,
}

/// The next boundary of the dialled number.
#[derive(Debug, Serialize, PartialEq)]
pub struct Next {
    /// The instant.
    #[serde(skip)]
    pub instant: SystemTime,
    /// RFC 3339 UTC.
    pub at: String,
    /// In the mappings' zone.
    pub at_local: String,
    /// Seconds from the instant routed at.
    pub in_seconds: i64,
    /// The number's state from then on (`parallel`, `retired`, `decommissioned`, `launched`).
    pub state: &'static str,
    /// What changes, in words.
    pub change: String,
}

/// Routes `q` on `snap` at `now`, as the gateway would.
///
/// # Errors
/// [`RouteError::UnknownTrunk`] when `q.trunk` names no trunk.
pub fn rehearse(snap: &Snapshot, q: &Query<'_>, now: SystemTime) -> Result<Rehearsal, RouteError> {
    let synthetic;
    let t: &Trunk =
        match q.trunk {
            Some(name) => snap.trunks.iter().find(|t| t.name == name).ok_or_else(|| {
                RouteError::UnknownTrunk {
                    name: name.to_string(),
                    known: snap.trunks.iter().map(|t| t.name.clone()).collect(),
                }
            })?,
            None => {
                synthetic = Trunk {
                    name: "(command line)".into(),
                    sources: Vec::new(),
                    origin_area: q.from_area.clone(),
                    limits: crate::limit::Limits::default(),
                };
                &synthetic
            }
        };
    let uri = if q.number.contains(':') {
        q.number.to_string()
    } else {
        format!(
            "sip:{}@{}",
            q.number.replace(' ', ""),
            snap.gateway.advertised
        )
    };
    let dialled = normalize(
        &uri,
        &Dialling {
            origin_area: t.origin_area.as_ref(),
        },
    );
    let routed = decide(
        &Facts {
            method: Method::Invite,
            request_uri: &uri,
            source: Source::Trunk(t),
        },
        snap,
        now,
    );
    let mut r = Rehearsal {
        at: utc(now),
        trunk: t.name.clone(),
        origin_area: t.origin_area.as_ref().map(|a| a.as_str().to_string()),
        request_uri: uri.clone(),
        canonical: dialled.as_ref().ok().map(|d| d.as_str().to_string()),
        not_a_number: dialled.as_ref().err().map(ToString::to_string),
        number: routed.number.to_string(),
        phase: routed.phase().to_string(),
        decision: "reply",
        queue: None,
        user: None,
        marked: false,
        call_id: q.call_id.map(str::to_string),
        backend: None,
        backends: Vec::new(),
        hours: Vec::new(),
        status: None,
        reason: None,
        reason_header: None,
        contact: None,
        until: None,
    };
    match routed.decision {
        Decision::Forward { queue, mark } => {
            r.decision = "forward";
            r.user = Some(snap.queue(queue).target.clone());
            r.marked = mark;
            r.hours = crate::backend::explain(snap, queue, now);
            // With every backend up: the queue its hours send the call to.
            let down = crate::health::Down::none();
            let taken = match crate::backend::pick(snap, queue, b"", &down, now) {
                crate::backend::Pick::To { queue, .. } => queue,
                crate::backend::Pick::Nowhere { .. } => queue,
            };
            r.queue = Some(snap.queue(queue).name.clone());
            {
                let qu = snap.queue(taken);
                r.backends = qu.backends.iter().map(|b| b.uri.clone()).collect();
                r.backend = q
                    .call_id
                    .and_then(|c| crate::proxy::choose(&qu.backends, c.as_bytes()))
                    .map(|b| b.uri.clone());
            }
        }
        Decision::Reply {
            status,
            reason,
            cause,
            redirect_to,
            ..
        } => {
            r.status = Some(status);
            r.reason = Some(reason.into_owned());
            r.reason_header = cause.as_ref().map(crate::sip::header::reason);
            r.contact = redirect_to
                .map(|n| crate::sip::header::contact(n, snap.gateway.advertised.as_str()));
        }
    }
    let next = dialled.ok().and_then(|d| match snap.mappings.lookup(&d)? {
        Entry::Legacy(l) => next_for(l, now).map(|(at, phase)| Boundary {
            at,
            what: What::Legacy { legacy: l, phase },
        }),
        Entry::NewNumber { area: Some(a) } => {
            timeline::launch(a).filter(|l| *l > now).map(|at| Boundary {
                at,
                what: What::Launch { area: a },
            })
        }
        Entry::NewNumber { area: None } => None,
    });
    r.until = next.map(|b| Next {
        instant: b.at,
        at: utc(b.at),
        at_local: local(b.at),
        in_seconds: seconds_until(now, b.at),
        state: b.what.state(),
        change: describe(&b, snap),
    });
    Ok(r)
}

/// The text `route` prints.
pub fn render(r: &Rehearsal, now: SystemTime) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "at:        {}", local_and_utc(now));
    let _ = writeln!(
        o,
        "trunk:     {} (origin area {})",
        r.trunk,
        r.origin_area.as_deref().unwrap_or("none")
    );
    match (&r.canonical, &r.not_a_number) {
        (Some(c), _) => {
            let _ = writeln!(o, "canonical: {c}");
        }
        (None, e) => {
            let _ = writeln!(
                o,
                "canonical: not a number: {}",
                e.as_deref().unwrap_or("?")
            );
        }
    }
    let _ = writeln!(o, "number:    {} (phase {})", r.number, r.phase);
    if r.decision == "forward" {
        let _ = writeln!(
            o,
            "decision:  forward to queue {} as sip:{}@<backend>{}",
            r.queue.as_deref().unwrap_or("?"),
            r.user.as_deref().unwrap_or("?"),
            if r.marked {
                ", marked as a legacy call (History-Info/Diversion)"
            } else {
                ""
            }
        );
        for line in &r.hours {
            let _ = writeln!(o, "           {line}");
        }
        match &r.backend {
            Some(b) => {
                let _ = writeln!(
                    o,
                    "backend:   {b} (Call-ID {})",
                    r.call_id.as_deref().unwrap_or("?")
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "backend:   one of {} by Call-ID (give --call-id to see which)",
                    r.backends.join(", ")
                );
            }
        }
    } else {
        let _ = writeln!(
            o,
            "decision:  answer {} {}",
            r.status.unwrap_or(0),
            r.reason.as_deref().unwrap_or("")
        );
        if let Some(h) = &r.reason_header {
            let _ = writeln!(o, "           Reason: {h}");
        }
        if let Some(c) = &r.contact {
            let _ = writeln!(o, "           Contact: {c}");
        }
    }
    match &r.until {
        Some(n) => {
            let _ = writeln!(
                o,
                "until:     {} ({}), then {}",
                local_and_utc(n.instant),
                countdown(now, n.instant),
                n.change
            );
        }
        None => {
            let _ = writeln!(o, "until:     no further change in the calendar");
        }
    }
    o
}

/// The JSON `route --format json` prints.
pub fn render_json(r: &Rehearsal) -> String {
    match serde_json::to_string_pretty(r) {
        Ok(s) => format!("{s}\n"),
        Err(e) => format!("{{\"error\": \"{e}\"}}\n"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::validate;
    use std::path::Path;

    const FILE: &str = include_str!("../../mappings/fujian.toml");

    fn at(s: &str) -> SystemTime {
        crate::config::parse_instant(s).unwrap()
    }

    #[test]
    fn a_parallel_call_says_until_when_and_what_then() {
        let snap = validate(Path::new("f.toml"), FILE).unwrap();
        let now = at("2025-05-06T23:59:50+08:00");
        let q = Query {
            number: "85666221",
            trunk: Some("loopback"),
            ..Query::default()
        };
        let r = rehearse(&snap, &q, now).unwrap();
        let text = render(&r, now);
        assert_eq!(
            text,
            "at:        2025-05-06T23:59:50+08:00 (2025-05-06T15:59:50Z)\n\
             trunk:     loopback (origin area 0591)\n\
             canonical: 059185666221\n\
             number:    059185666221 (phase parallel)\n\
             decision:  forward to queue fuzhou as sip:12356@<backend>, marked as a legacy call (History-Info/Diversion)\n           queue fuzhou: hours always: open; if all its backends are down: 503 with Retry-After: 30\n           takes the call (backends up): fuzhou\n\
             backend:   one of sip:127.0.0.1:5091;transport=udp by Call-ID (give --call-id to see which)\n\
             until:     2025-05-07T00:00:00+08:00 (2025-05-06T16:00:00Z) (in 10s), then retired: announce via queue announcement\n"
        );
        let v: serde_json::Value = serde_json::from_str(&render_json(&r)).unwrap();
        assert_eq!(v["decision"], "forward");
        assert_eq!(v["queue"], "fuzhou");
        assert_eq!(v["marked"], true);
        assert_eq!(v["until"]["in_seconds"], 10);
        assert_eq!(v["until"]["state"], "retired");
    }

    #[test]
    fn a_refused_call_shows_status_and_reason_and_an_unknown_trunk_lists_the_real_ones() {
        let snap = validate(Path::new("f.toml"), FILE).unwrap();
        let now = at("2025-05-07T00:00:00+08:00");
        let q = Query {
            number: "059100000000",
            ..Query::default()
        };
        let text = render(&rehearse(&snap, &q, now).unwrap(), now);
        assert!(text.contains("decision:  answer 404 Not Found\n"), "{text}");
        assert!(
            text.contains("until:     no further change in the calendar\n"),
            "{text}"
        );
        let q = Query {
            number: "12356",
            trunk: Some("lopback"),
            ..Query::default()
        };
        assert_eq!(
            rehearse(&snap, &q, now).unwrap_err().to_string(),
            "no trunk named `lopback`; trunks: loopback"
        );
    }
}
