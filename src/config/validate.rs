//! Raw -> [`Snapshot`]: every check a mapping file must pass, each problem collected with its
//! line and field. Pure: the file's text comes in, a snapshot or the list of issues comes out.

use super::raw::{RawFile, RawLegacy, RawTreatment};
use super::{
    Backend, Checked, Cidr, ConfigError, ConfigIssue, Failover, Gateway, Overload, Queue, QueueId,
    Related, Snapshot, TcpLimits, Trunk,
};
use crate::calendar::{Schedule, Treatment};
use crate::health::Policy;
use crate::hours::{Hours, Span};
use crate::limit::{Limits, Rate};
use crate::mapping::{Area, Legacy, Mappings};
use crate::number::{normalize, AreaCode, Dialled, Dialling, NumberError};
use crate::peer::Transport;
use crate::sip::{HostPort, Key, Scheme, Uri};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use std::time::SystemTime;
use toml::value::Datetime;
use toml::Spanned;

const DEFAULT_SIP: &str = "127.0.0.1:5060";
const DEFAULT_METRICS: &str = "127.0.0.1:9090";
const DEFAULT_MAX_SHARE: f64 = 0.01;

/// Collects issues while validating one file.
pub(crate) struct Issues<'t> {
    text: &'t str,
    list: Vec<ConfigIssue>,
    warnings: Vec<ConfigIssue>,
}

impl Issues<'_> {
    pub(crate) fn line_of(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    pub(crate) fn push(
        &mut self,
        span: Range<usize>,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) {
        let line = self.line_of(span);
        self.list.push(ConfigIssue {
            line,
            field: field.into(),
            problem: problem.into(),
            also: None,
        });
    }

    /// An error that involves two places in the file, e.g. both copies of a duplicate.
    pub(crate) fn push_both(
        &mut self,
        (span, field): (Range<usize>, String),
        problem: impl Into<String>,
        (other_span, other_field): (Range<usize>, String),
    ) {
        let issue = self.both((span, field), problem, (other_span, other_field));
        self.list.push(issue);
    }

    /// A warning: the file loads, but probably does not say what was meant.
    pub(crate) fn warn(
        &mut self,
        (span, field): (Range<usize>, String),
        problem: impl Into<String>,
        other: Option<(Range<usize>, String)>,
    ) {
        let mut issue = self.both((span.clone(), field), problem, (span, String::new()));
        issue.also = other.map(|(s, f)| Related {
            line: self.line_of(s),
            field: f,
        });
        self.warnings.push(issue);
    }

    fn both(
        &self,
        (span, field): (Range<usize>, String),
        problem: impl Into<String>,
        (other_span, other_field): (Range<usize>, String),
    ) -> ConfigIssue {
        ConfigIssue {
            line: self.line_of(span),
            field,
            problem: problem.into(),
            also: Some(Related {
                line: self.line_of(other_span),
                field: other_field,
            }),
        }
    }
}

/// "unknown queue `x`; queues: a, b" — an unknown reference lists the valid names.
pub(crate) fn unknown_queue(name: &str, queues: &[Queue]) -> String {
    let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
    if names.is_empty() {
        format!("unknown queue `{name}`; no [[queue]] is configured")
    } else {
        format!("unknown queue `{name}`; queues: {}", names.join(", "))
    }
}

/// The queues by name, for the references to them (a national file has 10 000).
struct QueueNames<'q> {
    queues: &'q [Queue],
    /// The first queue of each name, as a scan would find it.
    ids: HashMap<&'q str, QueueId>,
}

impl<'q> QueueNames<'q> {
    fn new(queues: &'q [Queue]) -> QueueNames<'q> {
        let mut ids = HashMap::with_capacity(queues.len());
        for (i, q) in queues.iter().enumerate() {
            ids.entry(q.name.as_str()).or_insert(QueueId::new(i));
        }
        QueueNames { queues, ids }
    }

    /// The queue `name` refers to, or the problem to report.
    fn id(&self, name: &str) -> Result<QueueId, String> {
        self.ids
            .get(name)
            .copied()
            .ok_or_else(|| unknown_queue(name, self.queues))
    }
}

/// [`crate::mapping::Legacy::area`] by hash lookups instead of a scan of every area per
/// number (a national file has 340 areas and 10 000 numbers).
pub(crate) struct AreaOf<'a> {
    areas: &'a [Area],
    /// The first area of each code.
    by_code: HashMap<&'a str, usize>,
    /// The lengths codes have, shortest first.
    lengths: Vec<usize>,
}

impl<'a> AreaOf<'a> {
    pub(crate) fn new(areas: &'a [Area]) -> AreaOf<'a> {
        let mut by_code = HashMap::with_capacity(areas.len());
        for (i, a) in areas.iter().enumerate() {
            by_code.entry(a.code.as_str()).or_insert(i);
        }
        let mut lengths: Vec<usize> = by_code.keys().map(|c| c.len()).collect();
        lengths.sort_unstable();
        lengths.dedup();
        AreaOf {
            areas,
            by_code,
            lengths,
        }
    }

    /// The first area (in file order) whose code starts `number`.
    pub(crate) fn get(&self, number: &str) -> Option<&'a Area> {
        self.lengths
            .iter()
            .filter_map(|n| number.get(..*n).and_then(|p| self.by_code.get(p)))
            .min()
            .and_then(|i| self.areas.get(*i))
    }
}

/// Parses and validates a mapping file's text; `path` is only used to name the file in errors.
///
/// # Errors
/// [`ConfigError::Invalid`] listing every problem found, each with its line and field.
pub fn validate(path: &Path, text: &str) -> Result<Snapshot, ConfigError> {
    check(path, text).map(|c| c.snapshot)
}

/// [`validate()`], with the warnings of a file that is valid. Problems of shape (unknown or
/// mistyped fields, see [`super::parse`]), of single fields and of the calendar as a whole (see
/// [`super::lint`]) are all reported together.
///
/// # Errors
/// [`ConfigError::Invalid`] listing every problem found, each with its line and field.
pub fn check(path: &Path, text: &str) -> Result<Checked, ConfigError> {
    let mut issues = Issues {
        text,
        list: Vec::new(),
        warnings: Vec::new(),
    };
    let parsed = super::parse::parse(text);
    for p in &parsed.problems {
        issues.push(p.span.clone(), p.field.clone(), p.problem.clone());
    }
    let Some(raw) = parsed.raw.as_ref() else {
        return Err(invalid(path, issues));
    };
    let found = issues.list.len();
    let snapshot = build(path, raw, &mut issues);
    super::lint::lint(raw, &snapshot, &mut issues);
    // Entries set aside while reading shift the indices `build` and `lint` saw.
    for i in issues
        .list
        .iter_mut()
        .skip(found)
        .chain(issues.warnings.iter_mut())
    {
        i.field = parsed.field_in_file(&i.field);
        if let Some(a) = i.also.as_mut() {
            a.field = parsed.field_in_file(&a.field);
        }
    }
    if issues.list.is_empty() {
        let mut warnings = issues.warnings;
        warnings.sort_by_key(|i| i.line);
        Ok(Checked { snapshot, warnings })
    } else {
        Err(invalid(path, issues))
    }
}

fn invalid(path: &Path, mut issues: Issues<'_>) -> ConfigError {
    issues.list.sort_by_key(|i| i.line);
    ConfigError::Invalid {
        path: path.to_path_buf(),
        issues: issues.list,
    }
}

fn build(path: &Path, raw: &RawFile, issues: &mut Issues<'_>) -> Snapshot {
    let gateway = gateway(path, raw, issues);
    let mut queues = queues(raw, issues);
    overflows(raw, &mut queues, issues);
    let names = QueueNames::new(&queues);
    let queue_index = |name: &Spanned<String>, field: String, issues: &mut Issues<'_>| {
        names
            .id(name.get_ref())
            .map_err(|problem| issues.push(name.span(), field, problem))
            .ok()
    };

    // The new number, and its area form per configured area.
    let nn = raw.new_number.get_ref();
    let new_number = nn.number.get_ref().trim().to_string();
    let short_ok = (3..=5).contains(&new_number.len())
        && new_number.starts_with('1')
        && new_number.bytes().all(|b| b.is_ascii_digit());
    if !short_ok {
        issues.push(
            nn.number.span(),
            "new_number.number",
            format!("`{new_number}` is not a short number (3-5 digits starting with 1)"),
        );
    }
    let default_queue = nn
        .default_queue
        .as_ref()
        .and_then(|q| queue_index(q, "new_number.default_queue".into(), issues));

    let mut areas: Vec<Area> = Vec::new();
    let mut area_spans: Vec<(usize, Range<usize>)> = Vec::new();
    for (i, a) in raw.area.iter().enumerate() {
        let r = a.get_ref();
        let field = |f: &str| format!("area[{i}].{f}");
        let code = match AreaCode::new(r.code.get_ref().trim()) {
            Ok(c) => c,
            Err(e) => {
                issues.push(r.code.span(), field("code"), e.to_string());
                continue;
            }
        };
        if let Some((j, first)) = areas
            .iter()
            .position(|x| x.code == code)
            .and_then(|k| area_spans.get(k))
        {
            issues.push_both(
                (r.code.span(), field("code")),
                format!("area `{}` is configured twice", code.as_str()),
                (first.clone(), format!("area[{j}].code")),
            );
        }
        area_spans.push((i, r.code.span()));
        let queue = queue_index(&r.queue, field("queue"), issues);
        let launch = r
            .launch
            .as_ref()
            .and_then(|d| instant_field(d, || field("launch"), issues));
        let new_number = format!("{}{}", code.as_str(), new_number);
        areas.push(Area {
            name: r.name.clone().unwrap_or_else(|| code.as_str().to_string()),
            code,
            queue: queue.unwrap_or(QueueId::new(0)),
            launch,
            answer_before_launch: r.answer_before_launch.unwrap_or(false),
            new_number,
        });
    }

    let (overload, default_limits) = overload(raw, issues);
    let trunks = trunks(raw, default_limits, issues);
    let probe = probe(raw, issues);
    let failover = failover(raw, issues);

    let max_share = match raw
        .retirement
        .as_ref()
        .and_then(|r| r.get_ref().max_share.as_ref())
    {
        Some(s) => share_field(s, "retirement.max_share", issues),
        None => DEFAULT_MAX_SHARE,
    };

    let mut legacy: Vec<Legacy> = Vec::new();
    // Hash lookups, not scans: a national file has 10 000 legacy numbers (issue 12).
    let mut seen: HashMap<String, (usize, Range<usize>)> = HashMap::new();
    let new_numbers: HashMap<&str, usize> = areas
        .iter()
        .enumerate()
        .rev()
        .map(|(k, a)| (a.new_number.as_str(), k))
        .collect();
    let area_of = AreaOf::new(&areas);
    for (i, l) in raw.legacy.iter().enumerate() {
        let r = l.get_ref();
        let normalized = normalize(r.number.get_ref(), &Dialling::default());
        // Duplicates are judged on the canonical number alone, even if the entry has other faults.
        if let Ok(d) = &normalized {
            let n = d.as_str().to_string();
            if let Some((j, first)) = seen.get(&n) {
                issues.push_both(
                    (r.number.span(), format!("legacy[{i}].number")),
                    format!("number `{n}` is configured twice"),
                    (first.clone(), format!("legacy[{j}].number")),
                );
            } else if let Some((k, a)) = new_numbers
                .get(n.as_str())
                .and_then(|&k| areas.get(k).map(|a| (k, a)))
            {
                let at = area_spans.get(k).map_or(0, |(j, _)| *j);
                let span = area_spans.get(k).map_or(0..0, |(_, s)| s.clone());
                issues.push_both(
                    (r.number.span(), format!("legacy[{i}].number")),
                    format!("`{n}` is the new number of area {}", a.code.as_str()),
                    (span, format!("area[{at}].code")),
                );
            }
            seen.entry(n).or_insert((i, r.number.span()));
        }
        if let Some(entry) = legacy_entry((i, r, normalized), &names, &area_of, max_share, issues) {
            legacy.push(entry);
        }
    }

    Snapshot {
        source: path.to_path_buf(),
        gateway,
        backend_ips: Snapshot::backend_ips(&queues),
        queue_index: Snapshot::queue_index(&queues),
        queues,
        trunks,
        mappings: Mappings::new(new_number, default_queue, areas, legacy),
        probe,
        overload,
        failover,
    }
}

/// `"2s"`, `"500ms"`, `"1.5s"`.
fn duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v > 0.0).then(|| Duration::from_secs_f64(v * scale))
}

fn probe(raw: &RawFile, issues: &mut Issues<'_>) -> Option<Policy> {
    let mut p = Policy::default();
    let Some(r) = raw.probe.as_ref().map(Spanned::get_ref) else {
        return Some(p);
    };
    if let Some(i) = &r.interval {
        match duration(i.get_ref()) {
            Some(d) if d >= Duration::from_millis(50) => p.interval = d,
            _ => issues.push(
                i.span(),
                "probe.interval",
                format!(
                    "`{}` is not a duration of at least 50ms, e.g. \"2s\"",
                    i.get_ref()
                ),
            ),
        }
    }
    for (v, name, slot) in [
        (&r.down_after, "probe.down_after", &mut p.down_after),
        (&r.up_after, "probe.up_after", &mut p.up_after),
    ] {
        if let Some(v) = v {
            if *v.get_ref() == 0 {
                issues.push(v.span(), name, "must be at least 1");
            }
            *slot = *v.get_ref();
        }
    }
    p.require_2xx = r.require_2xx.unwrap_or(false);
    r.enabled.unwrap_or(true).then_some(p)
}

fn status_field(
    v: &Spanned<u16>,
    field: &str,
    ok: &[std::ops::RangeInclusive<u16>],
    issues: &mut Issues<'_>,
) -> u16 {
    let s = *v.get_ref();
    if !ok.iter().any(|r| r.contains(&s)) {
        issues.push(
            v.span(),
            field,
            format!("{s} is not a 4xx-6xx final status"),
        );
    }
    s
}

fn failover(raw: &RawFile, issues: &mut Issues<'_>) -> Failover {
    let r = raw.failover.as_ref().map(Spanned::get_ref);
    let finals = [400..=699];
    Failover {
        backend_503: r.and_then(|r| r.backend_503.as_ref()).map_or(480, |v| {
            status_field(v, "failover.backend_503", &finals, issues)
        }),
        status: r
            .and_then(|r| r.status.as_ref())
            .map_or(503, |v| status_field(v, "failover.status", &finals, issues)),
        retry_after: r
            .and_then(|r| r.retry_after.as_ref())
            .map_or(30, |v| *v.get_ref()),
    }
}

/// The `[overload]` table, the default trunk rate, and the default source rate if one is set
/// (otherwise each trunk's sources get the trunk's own rate).
fn overload(raw: &RawFile, issues: &mut Issues<'_>) -> (Overload, (Rate, Option<Rate>)) {
    let r = raw.overload.as_ref().map(Spanned::get_ref);
    let mut limits = (Rate::TRUNK_DEFAULT, None);
    if let Some(r) = r {
        limits.0 = rate(
            (r.trunk_rate.as_ref(), r.trunk_burst.as_ref()),
            Rate::TRUNK_DEFAULT,
            "overload.trunk_rate",
            issues,
        );
        limits.1 = r.source_rate.is_some().then(|| {
            rate(
                (r.source_rate.as_ref(), r.source_burst.as_ref()),
                limits.0,
                "overload.source_rate",
                issues,
            )
        });
    }
    let overload = Overload {
        retry_after: r
            .and_then(|r| r.retry_after.as_ref())
            .map_or(5, |v| *v.get_ref()),
        shed: r.and_then(|r| r.shed).unwrap_or(true),
    };
    (overload, limits)
}

/// A rate and its burst; a rate given without a burst gets a burst of twice the rate.
fn rate(
    (per_second, burst): (Option<&Spanned<u32>>, Option<&Spanned<u32>>),
    default: Rate,
    field: &str,
    issues: &mut Issues<'_>,
) -> Rate {
    let per_second = per_second.map_or(default.per_second, |v| *v.get_ref());
    let burst = match burst {
        Some(b) if *b.get_ref() == 0 && per_second > 0 => {
            issues.push(
                b.span(),
                field.replace("rate", "burst"),
                "must be at least 1",
            );
            1
        }
        Some(b) => *b.get_ref(),
        None if per_second == default.per_second => default.burst,
        None => per_second.saturating_mul(2),
    };
    Rate { per_second, burst }
}

/// Resolves each queue's `overflow` by name once every queue is known, and refuses cycles.
fn overflows(raw: &RawFile, queues: &mut [Queue], issues: &mut Issues<'_>) {
    for (i, q) in raw.queue.iter().enumerate() {
        let Some(name) = q.get_ref().overflow.as_ref() else {
            continue;
        };
        let field = format!("queue[{i}].overflow");
        match queues.iter().position(|x| x.name == name.get_ref().trim()) {
            Some(j) if j == i => {
                issues.push(name.span(), field, "a queue cannot overflow to itself")
            }
            Some(j) => {
                if let Some(q) = queues.get_mut(i) {
                    q.overflow = Some(QueueId::new(j));
                }
            }
            None => issues.push(
                name.span(),
                field,
                format!("unknown queue `{}`", name.get_ref()),
            ),
        }
    }
    for (i, q) in raw.queue.iter().enumerate() {
        let Some(name) = q.get_ref().overflow.as_ref() else {
            continue;
        };
        // Follow the chain: more steps than queues means it comes back on itself.
        let mut at = Some(i);
        let mut path = Vec::new();
        for _ in 0..=queues.len() {
            let Some(k) = at else { break };
            path.push(queues.get(k).map_or("?", |q| q.name.as_str()).to_string());
            at = queues.get(k).and_then(|q| q.overflow).map(QueueId::index);
            if at == Some(i) {
                path.push(queues.get(i).map_or("?", |q| q.name.as_str()).to_string());
                issues.push(
                    name.span(),
                    format!("queue[{i}].overflow"),
                    format!("overflow cycle: {}", path.join(" -> ")),
                );
                break;
            }
        }
    }
}

fn socket_field(s: &Spanned<String>, field: &str, issues: &mut Issues<'_>) -> Option<SocketAddr> {
    match SocketAddr::from_str(s.get_ref().trim()) {
        Ok(a) => Some(a),
        Err(_) => {
            issues.push(
                s.span(),
                field,
                format!("`{}` is not an ip:port address", s.get_ref()),
            );
            None
        }
    }
}

fn gateway(path: &Path, raw: &RawFile, issues: &mut Issues<'_>) -> Gateway {
    let g = raw.gateway.as_ref().map(Spanned::get_ref);
    let addr =
        |f: Option<&Spanned<String>>, name: &str, default: &str, issues: &mut Issues<'_>| match f {
            Some(s) if s.get_ref().trim().is_empty() || s.get_ref().trim() == "off" => None,
            Some(s) => socket_field(s, name, issues),
            None => SocketAddr::from_str(default).ok(),
        };
    let sip_udp = addr(
        g.and_then(|g| g.sip_udp.as_ref()),
        "gateway.sip_udp",
        DEFAULT_SIP,
        issues,
    );
    let sip_tcp = addr(
        g.and_then(|g| g.sip_tcp.as_ref()),
        "gateway.sip_tcp",
        DEFAULT_SIP,
        issues,
    );
    let metrics = addr(
        g.and_then(|g| g.metrics.as_ref()),
        "gateway.metrics",
        DEFAULT_METRICS,
        issues,
    );
    if sip_udp.is_none() && sip_tcp.is_none() {
        let span = raw.gateway.as_ref().map_or(0..0, Spanned::span);
        issues.push(
            span,
            "gateway.sip_udp",
            "neither sip_udp nor sip_tcp is set: nothing to listen on",
        );
    }
    let listen = sip_udp
        .or(sip_tcp)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)));
    let advertised = match g.and_then(|g| g.advertised.as_ref()) {
        Some(a) => match HostPort::parse(a.get_ref().trim()) {
            Some(hp) => HostPort {
                port: Some(hp.port_or_default()),
                ..hp
            },
            None => {
                issues.push(
                    a.span(),
                    "gateway.advertised",
                    format!("`{}` is not host[:port]", a.get_ref()),
                );
                HostPort::from(listen)
            }
        },
        None => HostPort::from(listen),
    };
    let mut history_info = true;
    let mut diversion = false;
    if let Some(marks) = g.and_then(|g| g.mark_legacy.as_ref()) {
        history_info = false;
        for m in marks {
            match m.get_ref().as_str() {
                "history-info" => history_info = true,
                "diversion" => diversion = true,
                other => issues.push(
                    m.span(),
                    "gateway.mark_legacy",
                    format!("`{other}` is not one of \"history-info\", \"diversion\""),
                ),
            }
        }
    }
    let replica = g
        .and_then(|g| g.replica.as_ref())
        .map_or_else(|| advertised.to_string(), |r| r.get_ref().clone());
    let secret = g.and_then(|g| g.secret.as_ref()).and_then(|s| {
        let key = Key::from_hex(s.get_ref().trim());
        if key.is_none() {
            issues.push(
                s.span(),
                "gateway.secret",
                "must be exactly 32 hex digits (128 bits, e.g. `openssl rand -hex 16`)",
            );
        }
        key
    });
    let secret_file = g.and_then(|g| g.secret_file.as_ref()).map(|f| {
        if g.is_some_and(|g| g.secret.is_some()) {
            issues.push(
                f.span(),
                "gateway.secret_file",
                "set either secret or secret_file, not both",
            );
        }
        let file = Path::new(f.get_ref().trim());
        match path.parent() {
            Some(dir) if file.is_relative() => dir.join(file),
            _ => file.to_path_buf(),
        }
    });
    Gateway {
        sip_udp,
        sip_tcp,
        metrics,
        advertised: advertised.into(),
        record_route: g.and_then(|g| g.record_route).unwrap_or(true),
        history_info,
        diversion,
        replica,
        secret,
        secret_file,
        answer_strangers: g.and_then(|g| g.answer_strangers).unwrap_or(false),
        tcp: tcp_limits(raw, issues),
    }
}

fn tcp_limits(raw: &RawFile, issues: &mut Issues<'_>) -> TcpLimits {
    let mut limits = TcpLimits::default();
    let Some(t) = raw.tcp.as_ref().map(Spanned::get_ref) else {
        return limits;
    };
    if let Some(d) = &t.message_deadline_seconds {
        match std::time::Duration::try_from_secs_f64(*d.get_ref()) {
            Ok(d) if d >= std::time::Duration::from_millis(100) => limits.message_deadline = d,
            _ => issues.push(
                d.span(),
                "tcp.message_deadline_seconds",
                "must be at least 0.1 seconds",
            ),
        }
    }
    let count =
        |v: &Spanned<i64>, field: &str, min: i64, issues: &mut Issues<'_>| match usize::try_from(
            *v.get_ref(),
        ) {
            Ok(n) if *v.get_ref() >= min => Some(n),
            _ => {
                issues.push(v.span(), field, format!("must be at least {min}"));
                None
            }
        };
    if let Some(b) = &t.output_budget_bytes {
        if let Some(n) = count(b, "tcp.output_budget_bytes", 65_536, issues) {
            limits.output_budget = n;
        }
    }
    if let Some(m) = &t.max_per_source {
        limits.max_per_source = count(m, "tcp.max_per_source", 1, issues);
    }
    limits
}

/// A backend URI: `sip:IP[:PORT][;transport=udp|tcp]`. Hosts must be IP literals: a stateless
/// gateway resolves nothing per message.
fn backend(uri: &str, target: &str) -> Result<Backend, String> {
    let parsed = Uri::parse(uri.trim())
        .filter(|u| u.scheme == Scheme::Sip && !uri.contains('<'))
        .ok_or_else(|| {
            format!("`{uri}` is not a sip: URI (e.g. \"sip:10.0.0.5:5060;transport=udp\")")
        })?;
    if parsed.user.is_some() {
        return Err(format!(
            "`{uri}` has a user part; the queue's `target` supplies it"
        ));
    }
    let Some(host_port) = parsed.host_port.as_ref() else {
        return Err(format!("`{uri}` has no valid host:port"));
    };
    let Some(addr) = host_port.socket_addr() else {
        return Err(format!(
            "`{}` is not an IP address (backends are IP literals; no DNS)",
            host_port.host
        ));
    };
    let mut transport = Transport::Udp;
    for p in parsed.params.split(';').filter(|p| !p.is_empty()) {
        match p.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("transport") => {
                transport = Transport::from_token(v)
                    .ok_or_else(|| format!("transport `{v}` is not udp or tcp"))?;
            }
            _ => return Err(format!("unknown URI parameter `{p}` in `{uri}`")),
        }
    }
    let key = format!("{addr}/{transport}");
    Ok(Backend {
        uri: uri.to_string(),
        addr,
        transport,
        key_hash: crate::sip::hash64(&[key.as_bytes()]),
        key,
        request_uri: crate::sip::header::request_uri(target, addr, transport),
    })
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn queues(raw: &RawFile, issues: &mut Issues<'_>) -> Vec<Queue> {
    let new_number = raw.new_number.get_ref().number.get_ref().trim();
    let mut queues: Vec<Queue> = Vec::new();
    for (i, q) in raw.queue.iter().enumerate() {
        let r = q.get_ref();
        let name = r.name.get_ref().trim().to_string();
        if !is_token(&name) {
            issues.push(
                r.name.span(),
                format!("queue[{i}].name"),
                format!("`{name}` must be letters, digits, `-`, `_` or `.`"),
            );
        } else if let Some(j) = queues.iter().position(|x| x.name == name) {
            let first = raw.queue.get(j).map_or(0..0, |q| q.get_ref().name.span());
            issues.push_both(
                (r.name.span(), format!("queue[{i}].name")),
                format!("queue `{name}` is configured twice"),
                (first, format!("queue[{j}].name")),
            );
        }
        let target = r
            .target
            .as_ref()
            .map_or(new_number, |t| t.get_ref().trim())
            .to_string();
        if !is_token(&target) {
            let span = r.target.as_ref().map_or(r.name.span(), Spanned::span);
            issues.push(
                span,
                format!("queue[{i}].target"),
                format!("`{target}` is not a valid SIP user part"),
            );
        }
        let mut backends = Vec::new();
        let mut backend_spans: Vec<Range<usize>> = Vec::new();
        for b in r.backends.get_ref() {
            match backend(b.get_ref().trim(), &target) {
                Ok(be) if backends.iter().any(|x: &Backend| x.key == be.key) => {
                    let k = backends.iter().position(|x: &Backend| x.key == be.key);
                    let first = k.and_then(|k| backend_spans.get(k)).cloned();
                    issues.push_both(
                        (b.span(), format!("queue[{i}].backends")),
                        format!("backend `{}` is listed twice", be.uri),
                        (first.unwrap_or(0..0), format!("queue[{i}].backends")),
                    );
                }
                Ok(be) => {
                    backends.push(be);
                    backend_spans.push(b.span());
                }
                Err(problem) => issues.push(b.span(), format!("queue[{i}].backends"), problem),
            }
        }
        if r.backends.get_ref().is_empty() {
            issues.push(
                r.backends.span(),
                format!("queue[{i}].backends"),
                "a queue needs at least one backend",
            );
        }
        let mut spans = Vec::new();
        for h in r.hours.as_ref().map_or(&[][..], |h| h.get_ref().as_slice()) {
            match Span::parse(h.get_ref()) {
                Ok(s) => spans.push(s),
                Err(e) => issues.push(h.span(), format!("queue[{i}].hours"), e.to_string()),
            }
        }
        if let Some(h) = r.hours.as_ref().filter(|h| h.get_ref().is_empty()) {
            issues.push(
                h.span(),
                format!("queue[{i}].hours"),
                "no periods: leave `hours` out for a queue that always answers",
            );
        }
        queues.push(Queue {
            name,
            target,
            backends,
            overflow: None,
            hours: Hours::new(spans),
            probe: r.probe.unwrap_or(true),
        });
    }
    queues
}

fn trunks(
    raw: &RawFile,
    (default_trunk, default_source): (Rate, Option<Rate>),
    issues: &mut Issues<'_>,
) -> Vec<Trunk> {
    let mut trunks: Vec<Trunk> = Vec::new();
    for (i, t) in raw.trunk.iter().enumerate() {
        let r = t.get_ref();
        let name = r.name.get_ref().trim().to_string();
        if !is_token(&name) {
            issues.push(
                r.name.span(),
                format!("trunk[{i}].name"),
                format!("`{name}` must be letters, digits, `-`, `_` or `.`"),
            );
        } else if let Some(j) = trunks.iter().position(|x| x.name == name) {
            let first = raw.trunk.get(j).map_or(0..0, |t| t.get_ref().name.span());
            issues.push_both(
                (r.name.span(), format!("trunk[{i}].name")),
                format!("trunk `{name}` is configured twice"),
                (first, format!("trunk[{j}].name")),
            );
        } else if name == "backend" || name == "unknown" {
            issues.push(
                r.name.span(),
                format!("trunk[{i}].name"),
                format!(
                    "trunk name `{name}` is taken (it labels calls from backends and strangers)"
                ),
            );
        }
        let mut sources = Vec::new();
        for s in r.sources.get_ref() {
            match Cidr::from_str(s.get_ref()) {
                Ok(c) => {
                    let clash = trunks
                        .iter()
                        .enumerate()
                        .find(|(_, o)| o.sources.iter().any(|x| x.overlaps(&c)));
                    if let Some((j, o)) = clash {
                        let first = raw
                            .trunk
                            .get(j)
                            .and_then(|t| {
                                t.get_ref().sources.get_ref().iter().find(|x| {
                                    Cidr::from_str(x.get_ref()).is_ok_and(|x| x.overlaps(&c))
                                })
                            })
                            .map_or(0..0, Spanned::span);
                        issues.push_both(
                            (s.span(), format!("trunk[{i}].sources")),
                            format!("{c} overlaps a source of trunk `{}`", o.name),
                            (first, format!("trunk[{j}].sources")),
                        );
                    }
                    sources.push(c);
                }
                Err(e) => issues.push(
                    s.span(),
                    format!("trunk[{i}].sources"),
                    format!("`{}`: {e}", s.get_ref()),
                ),
            }
        }
        if r.sources.get_ref().is_empty() {
            issues.push(
                r.sources.span(),
                format!("trunk[{i}].sources"),
                "a trunk needs at least one source network",
            );
        }
        let origin_area =
            r.origin_area
                .as_ref()
                .and_then(|a| match AreaCode::new(a.get_ref().trim()) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        issues.push(a.span(), format!("trunk[{i}].origin_area"), e.to_string());
                        None
                    }
                });
        let trunk_rate = rate(
            (r.rate.as_ref(), r.burst.as_ref()),
            default_trunk,
            &format!("trunk[{i}].rate"),
            issues,
        );
        let limits = Limits {
            trunk: trunk_rate,
            source: rate(
                (r.source_rate.as_ref(), r.source_burst.as_ref()),
                default_source.unwrap_or(trunk_rate),
                &format!("trunk[{i}].source_rate"),
                issues,
            ),
        };
        trunks.push(Trunk {
            name,
            sources,
            origin_area,
            limits,
        });
    }
    trunks
}

fn share_field(s: &Spanned<f64>, field: &str, issues: &mut Issues<'_>) -> f64 {
    let v = *s.get_ref();
    if !(0.0..=1.0).contains(&v) {
        issues.push(
            s.span(),
            field,
            format!("{v} is not a share between 0 and 1"),
        );
    }
    v
}

/// The `i`-th `[[legacy]]` entry, `r`, whose number normalizes to `normalized`.
fn legacy_entry(
    (i, r, normalized): (usize, &RawLegacy, Result<Dialled, NumberError>),
    queues: &QueueNames<'_>,
    areas: &AreaOf<'_>,
    default_share: f64,
    issues: &mut Issues<'_>,
) -> Option<Legacy> {
    let field = |f: &str| format!("legacy[{i}].{f}");
    let number = match normalized {
        Ok(d) if d.area().is_some() => d.as_str().to_string(),
        Ok(d) => {
            issues.push(
                r.number.span(),
                field("number"),
                format!(
                    "`{}` has no area code; write it in national form, e.g. 0591-85666661",
                    d.as_str()
                ),
            );
            return None;
        }
        Err(e) => {
            issues.push(
                r.number.span(),
                field("number"),
                format!("`{}`: {e}", r.number.get_ref()),
            );
            return None;
        }
    };
    let queue = queues
        .id(r.queue.get_ref())
        .map_err(|problem| issues.push(r.queue.span(), field("queue"), problem))
        .ok();
    let parallel_from = instant_field(&r.parallel_from, || field("parallel_from"), issues);
    let retired_from = instant_field(&r.retired_from, || field("retired_from"), issues);
    let decommissioned_from = r
        .decommissioned_from
        .as_ref()
        .and_then(|d| instant_field(d, || field("decommissioned_from"), issues));
    if let (Some(p), Some(rf)) = (parallel_from, retired_from) {
        if rf <= p {
            issues.push_both(
                (r.retired_from.span(), field("retired_from")),
                format!(
                    "must be after parallel_from {}: the parallel period would be empty",
                    r.parallel_from.get_ref()
                ),
                (r.parallel_from.span(), field("parallel_from")),
            );
        }
    }
    if let (Some(rf), Some(d), Some(span)) = (
        retired_from,
        decommissioned_from,
        r.decommissioned_from.as_ref().map(Spanned::span),
    ) {
        if d <= rf {
            issues.push_both(
                (span, field("decommissioned_from")),
                format!(
                    "must be after retired_from {}: a number is retired before it is decommissioned",
                    r.retired_from.get_ref()
                ),
                (r.retired_from.span(), field("retired_from")),
            );
        }
    }
    let when_retired = treatment(r.when_retired.get_ref(), queues)
        .map_err(|p| issues.push(r.when_retired.span(), field("when_retired"), p))
        .ok();
    let max_share = r.max_share.as_ref().map_or(default_share, |s| {
        share_field(s, &field("max_share"), issues)
    });
    if matches!(when_retired, Some(Treatment::Redirect { .. })) && areas.get(&number).is_none() {
        let known: Vec<&str> = areas.areas.iter().map(|a| a.code.as_str()).collect();
        issues.push(
            r.when_retired.span(),
            field("when_retired"),
            format!(
                "redirect needs the number's area among [[area]] (the Contact is that area's new number); areas: {}",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ),
        );
    }
    Some(Legacy {
        number,
        name: r.name.clone().unwrap_or_default(),
        queue: queue?,
        schedule: Schedule {
            parallel_from: parallel_from?,
            retired_from: retired_from?,
            decommissioned_from,
            when_retired: when_retired?,
        },
        max_share,
    })
}

fn treatment(t: &RawTreatment, queues: &QueueNames<'_>) -> Result<Treatment, String> {
    let unexpected = |what: &str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(format!(
                "`{what}` does not apply to treatment \"{}\"",
                t.treatment
            ))
        }
    };
    match t.treatment.as_str() {
        "route" => {
            unexpected("queue", t.queue.is_none())?;
            unexpected("status", t.status.is_none())?;
            unexpected("reason", t.reason.is_none())?;
            Ok(Treatment::Route)
        }
        "announce" => {
            unexpected("status", t.status.is_none())?;
            unexpected("reason", t.reason.is_none())?;
            let name = t
                .queue
                .as_deref()
                .ok_or("treatment \"announce\" needs `queue` (the announcement service)")?;
            let queue = queues.id(name)?;
            Ok(Treatment::Announce { queue })
        }
        "redirect" => {
            unexpected("queue", t.queue.is_none())?;
            unexpected("reason", t.reason.is_none())?;
            match t.status.unwrap_or(302) {
                s @ (301 | 302) => Ok(Treatment::Redirect { status: s }),
                s => Err(format!("redirect status {s} is not 301 or 302")),
            }
        }
        "reject" => {
            unexpected("queue", t.queue.is_none())?;
            let status = t.status.unwrap_or(410);
            if !(400..=699).contains(&status) {
                return Err(format!(
                    "reject status {status} is not a 4xx-6xx final response"
                ));
            }
            let reason = t
                .reason
                .clone()
                .unwrap_or_else(|| "Number Changed, Please Dial The New Number".to_string());
            if reason.is_empty() || reason.contains(|c: char| c.is_control() || c == '"') {
                return Err("reason must be one line of text without quotes".to_string());
            }
            Ok(Treatment::Reject { status, reason })
        }
        other => Err(format!(
            "treatment `{other}` is not one of \"route\", \"announce\", \"redirect\", \"reject\""
        )),
    }
}

/// `field` names the field only when there is a problem to report: a national file has 20 000
/// dates, and formatting every name up front was a tenth of validating them.
fn instant_field(
    d: &Spanned<Datetime>,
    field: impl FnOnce() -> String,
    issues: &mut Issues<'_>,
) -> Option<SystemTime> {
    match instant(d.get_ref()) {
        Ok(t) => Some(t),
        Err(problem) => {
            issues.push(d.span(), field(), problem);
            None
        }
    }
}

/// Converts a TOML offset datetime to an instant; local datetimes and bare dates are refused,
/// because a cut-over must not depend on the machine's time zone.
pub(crate) fn instant(d: &Datetime) -> Result<SystemTime, String> {
    if d.date.is_none() || d.time.is_none() || d.offset.is_none() {
        return Err(format!(
            "`{d}` needs a date, a time and an offset, e.g. 2025-04-07T00:00:00+08:00"
        ));
    }
    if let Some(t) = exact(d) {
        return Ok(t);
    }
    // Whatever the fields cannot say directly, jiff explains from the text.
    let t = jiff::Timestamp::from_str(&d.to_string()).map_err(|e| format!("`{d}`: {e}"))?;
    Ok(SystemTime::from(t))
}

/// An offset datetime's instant from its fields, without printing and parsing it again (a
/// national file has 30 000 dates). `None` when a field is out of jiff's range; a leap second
/// counts as :59, as jiff's parser reads it.
fn exact(d: &Datetime) -> Option<SystemTime> {
    use toml::value::Offset;
    let (date, time, offset) = (d.date?, d.time?, d.offset?);
    let civil = jiff::civil::DateTime::new(
        i16::try_from(date.year).ok()?,
        i8::try_from(date.month).ok()?,
        i8::try_from(date.day).ok()?,
        i8::try_from(time.hour).ok()?,
        i8::try_from(time.minute).ok()?,
        i8::try_from(time.second.unwrap_or(0).min(59)).ok()?,
        i32::try_from(time.nanosecond.unwrap_or(0)).ok()?,
    )
    .ok()?;
    let minutes = match offset {
        Offset::Z => 0,
        Offset::Custom { minutes } => i32::from(minutes),
    };
    let offset = jiff::tz::Offset::from_seconds(minutes * 60).ok()?;
    offset.to_timestamp(civil).ok().map(SystemTime::from)
}

/// Parses an operator-given instant (`--at`, `--now`): an RFC 3339 datetime with offset.
///
/// # Errors
/// A message saying what form is expected.
pub fn parse_instant(s: &str) -> Result<SystemTime, String> {
    jiff::Timestamp::from_str(s.trim())
        .map(SystemTime::from)
        .map_err(|_| {
            format!("`{s}` is not a datetime with an offset; use e.g. 2025-04-07T00:00:00+08:00")
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[new_number]\nnumber = \"12356\"\n";

    #[test]
    fn secrets_are_32_hex_digits_once_and_tcp_limits_are_checked() {
        let with = |extra: &str| {
            validate(
                Path::new("/etc/dualgate/m.toml"),
                &format!("{extra}\n{MINIMAL}"),
            )
        };
        let g = with("[gateway]\nsecret = \"00112233445566778899AABBCCDDEEFF\"")
            .unwrap()
            .gateway;
        assert!(g.secret.is_some() && !g.answer_strangers);
        assert_eq!(g.tcp, TcpLimits::default());
        let g = with("[gateway]\nsecret_file = \"key\"\nanswer_strangers = true")
            .unwrap()
            .gateway;
        assert_eq!(
            g.secret_file.as_deref(),
            Some(Path::new("/etc/dualgate/key"))
        );
        assert!(g.secret.is_none() && g.answer_strangers);
        let g = with("[tcp]\nmessage_deadline_seconds = 2.5\noutput_budget_bytes = 262144\nmax_per_source = 8").unwrap().gateway;
        assert_eq!(
            g.tcp,
            TcpLimits {
                message_deadline: Duration::from_millis(2500),
                output_budget: 262_144,
                max_per_source: Some(8),
            }
        );
        for (bad, field) in [
            ("[gateway]\nsecret = \"too-short\"", "gateway.secret"),
            (
                "[gateway]\nsecret = \"00112233445566778899aabbccddeeff\"\nsecret_file = \"k\"",
                "gateway.secret_file",
            ),
            (
                "[tcp]\nmessage_deadline_seconds = 0.0",
                "tcp.message_deadline_seconds",
            ),
            (
                "[tcp]\noutput_budget_bytes = 100",
                "tcp.output_budget_bytes",
            ),
            ("[tcp]\nmax_per_source = 0", "tcp.max_per_source"),
        ] {
            let Err(ConfigError::Invalid { issues, .. }) = with(bad) else {
                panic!("accepted: {bad}");
            };
            assert!(issues.iter().any(|i| i.field == field), "{bad}: {issues:?}");
        }
    }

    #[test]
    fn offset_datetimes_become_the_same_instant_in_any_zone() {
        let a = parse_instant("2025-05-07T00:00:00+08:00").unwrap();
        let b = parse_instant("2025-05-06T16:00:00Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_746_547_200
        );
        let ms = parse_instant("2025-05-06T23:59:59.999+08:00").unwrap();
        assert_eq!(
            a.duration_since(ms).unwrap(),
            std::time::Duration::from_millis(1)
        );
    }

    #[test]
    fn a_file_datetime_is_read_from_its_fields_as_jiff_reads_its_text() {
        for text in [
            "2025-05-07T00:00:00+08:00",
            "2025-05-06T16:00:00Z",
            "2025-05-06T23:59:59.999+08:00",
            "2025-05-06T23:59:59.000000001-05:30",
            "2016-12-31T23:59:60Z",
            "2025-05-07T00:00+08:00",
            "1979-05-27T07:32:00-23:59",
        ] {
            let d: Datetime = text.parse().unwrap();
            let by_text = jiff::Timestamp::from_str(&d.to_string()).map(SystemTime::from);
            assert_eq!(exact(&d), Some(by_text.unwrap()), "{text}");
            assert_eq!(instant(&d), Ok(exact(&d).unwrap()), "{text}");
        }
        for local in ["2025-05-07T00:00:00", "2025-05-07", "00:00:00"] {
            let d: Datetime = local.parse().unwrap();
            assert_eq!(exact(&d), None, "{local}");
            assert!(instant(&d)
                .unwrap_err()
                .contains("needs a date, a time and an offset"));
        }
    }

    #[test]
    fn local_datetimes_and_dates_are_refused() {
        assert!(parse_instant("2025-05-07T00:00:00")
            .unwrap_err()
            .contains("offset"));
        assert!(parse_instant("2025-05-07").unwrap_err().contains("offset"));
        assert!(parse_instant("tomorrow").is_err());
    }

    #[test]
    fn backend_uris_need_ip_literals_and_known_transports() {
        let b = backend("sip:127.0.0.1:5091;transport=tcp", "q").unwrap();
        assert_eq!(
            (b.addr.to_string(), b.transport),
            ("127.0.0.1:5091".to_string(), Transport::Tcp)
        );
        let b = backend("sip:[::1]", "q").unwrap();
        assert_eq!(b.addr.to_string(), "[::1]:5060");
        assert!(backend("sip:cc.example.net:5060", "q")
            .unwrap_err()
            .contains("no DNS"));
        assert!(backend("sip:12356@10.0.0.1", "q")
            .unwrap_err()
            .contains("user part"));
        assert!(backend("sip:10.0.0.1;transport=sctp", "q")
            .unwrap_err()
            .contains("sctp"));
        assert!(backend("http://10.0.0.1", "q").is_err());
    }

    #[test]
    fn the_area_of_a_number_is_the_first_in_file_order_whose_code_starts_it() {
        let areas: Vec<Area> = ["0591", "010", "020", "0595", "0591"]
            .iter()
            .map(|c| Area {
                code: AreaCode::new(c).unwrap(),
                name: (*c).to_string(),
                queue: QueueId::new(0),
                launch: None,
                answer_before_launch: false,
                new_number: format!("{c}12356"),
            })
            .collect();
        let by_hash = AreaOf::new(&areas);
        for number in [
            "059185666661",
            "059585666661",
            "059285666661",
            "01012345678",
            "021",
            "",
        ] {
            let by_scan = areas.iter().find(|a| number.starts_with(a.code.as_str()));
            assert_eq!(
                by_hash.get(number).map(|a| a as *const Area),
                by_scan.map(|a| a as *const Area),
                "{number}"
            );
        }
    }
}
