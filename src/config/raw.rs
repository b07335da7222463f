//! The mapping file's serde shape, with spans so validation can name the line. No checks here
//! beyond TOML syntax and types.

use serde::Deserialize;
use toml::value::Datetime;
use toml::Spanned;

/// A whole mapping file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// `[gateway]`: listeners and SIP identity.
    pub gateway: Option<Spanned<RawGateway>>,
    /// `[new_number]`: the new short number.
    pub new_number: Spanned<RawNewNumber>,
    #[serde(default)]
    /// `[[queue]]` tables.
    pub queue: Vec<Spanned<RawQueue>>,
    #[serde(default)]
    /// `[[area]]` tables.
    pub area: Vec<Spanned<RawArea>>,
    #[serde(default)]
    /// `[[trunk]]` tables.
    pub trunk: Vec<Spanned<RawTrunk>>,
    #[serde(default)]
    /// `[[legacy]]` tables.
    pub legacy: Vec<Spanned<RawLegacy>>,
    /// `[retirement]`: report thresholds.
    pub retirement: Option<Spanned<RawRetirement>>,
    /// `[tcp]`: connection limits.
    pub tcp: Option<Spanned<RawTcp>>,
    /// `[probe]`: backend health probing.
    pub probe: Option<Spanned<RawProbe>>,
    /// `[overload]`: rate limits for new calls and load shedding.
    pub overload: Option<Spanned<RawOverload>>,
    /// `[failover]`: what callers get when backends fail.
    pub failover: Option<Spanned<RawFailover>>,
}

/// `[gateway]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    /// UDP listen address.
    pub sip_udp: Option<Spanned<String>>,
    /// TCP listen address.
    pub sip_tcp: Option<Spanned<String>>,
    /// Prometheus listen address.
    pub metrics: Option<Spanned<String>>,
    /// `host:port` for Via and Record-Route.
    pub advertised: Option<Spanned<String>>,
    /// Insert Record-Route on initial INVITEs.
    pub record_route: Option<bool>,
    /// `history-info` and/or `diversion`.
    pub mark_legacy: Option<Vec<Spanned<String>>>,
    /// The `replica` metric label.
    pub replica: Option<Spanned<String>>,
    /// Key of the branch MAC, 32 hex digits.
    pub secret: Option<Spanned<String>>,
    /// File holding the key of the branch MAC.
    pub secret_file: Option<Spanned<String>>,
    /// Answer requests from sources in no trunk (403) instead of dropping them.
    pub answer_strangers: Option<bool>,
}

/// `[tcp]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcp {
    /// Seconds a peer has to complete a message it started.
    pub message_deadline_seconds: Option<Spanned<f64>>,
    /// Bytes queued for one connection before it is cut off.
    pub output_budget_bytes: Option<Spanned<i64>>,
    /// Connections one trunk or backend address may hold.
    pub max_per_source: Option<Spanned<i64>>,
}

/// `[new_number]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNewNumber {
    /// The number as written.
    pub number: Spanned<String>,
    /// Queue for the new number with no area known.
    pub default_queue: Option<Spanned<String>>,
}

/// `[[queue]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    /// Queue name (metric label).
    pub name: Spanned<String>,
    /// User part for the backend.
    pub target: Option<Spanned<String>>,
    /// Backend SIP URIs.
    pub backends: Spanned<Vec<Spanned<String>>>,
    /// Queue taking the calls when this one is closed or all its backends are down.
    pub overflow: Option<Spanned<String>>,
    /// Service hours, `HH:MM-HH:MM` in China Standard Time.
    pub hours: Option<Spanned<Vec<Spanned<String>>>>,
    /// Whether the backends are probed (default true).
    pub probe: Option<bool>,
}

/// `[[area]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArea {
    /// Area code with its 0.
    pub code: Spanned<String>,
    /// Name as written.
    pub name: Option<String>,
    /// Queue name.
    pub queue: Spanned<String>,
    /// When the new number starts answering here.
    pub launch: Option<Spanned<Datetime>>,
    /// Whether it answers before `launch`.
    pub answer_before_launch: Option<bool>,
}

/// `[[trunk]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrunk {
    /// Trunk name (metric label).
    pub name: Spanned<String>,
    /// Source CIDRs.
    pub sources: Spanned<Vec<Spanned<String>>>,
    /// Area assumed for numbers without one.
    pub origin_area: Option<Spanned<String>>,
    /// New calls per second for the whole trunk (overrides `[overload] trunk_rate`).
    pub rate: Option<Spanned<u32>>,
    /// Burst for `rate`.
    pub burst: Option<Spanned<u32>>,
    /// New calls per second per source address.
    pub source_rate: Option<Spanned<u32>>,
    /// Burst for `source_rate`.
    pub source_burst: Option<Spanned<u32>>,
}

/// `[[legacy]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLegacy {
    /// The number as written.
    pub number: Spanned<String>,
    /// Name as written.
    pub name: Option<String>,
    /// Queue name.
    pub queue: Spanned<String>,
    /// Start of the parallel period.
    pub parallel_from: Spanned<Datetime>,
    /// End of the parallel period.
    pub retired_from: Spanned<Datetime>,
    /// When the number goes out of service.
    pub decommissioned_from: Option<Spanned<Datetime>>,
    /// Treatment once retired.
    pub when_retired: Spanned<RawTreatment>,
    /// Share of the area's calls below which retiring is safe.
    pub max_share: Option<Spanned<f64>>,
}

/// `when_retired = { treatment = "...", ... }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTreatment {
    /// `route`, `announce`, `redirect` or `reject`.
    pub treatment: String,
    /// Queue name.
    pub queue: Option<String>,
    /// Status code for `redirect`/`reject`.
    pub status: Option<u16>,
    /// Reason phrase for `reject`.
    pub reason: Option<String>,
}

/// `[retirement]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetirement {
    /// Share of the area's calls below which retiring is safe.
    pub max_share: Option<Spanned<f64>>,
}

/// `[probe]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    /// Time between probes, e.g. `"2s"`, `"500ms"`.
    pub interval: Option<Spanned<String>>,
    /// Consecutive misses that mark a backend down.
    pub down_after: Option<Spanned<u32>>,
    /// Consecutive answers that mark it up again.
    pub up_after: Option<Spanned<u32>>,
    /// Only a 2xx counts as an answer.
    pub require_2xx: Option<bool>,
    /// Probe at all (default true).
    pub enabled: Option<bool>,
}

/// `[overload]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverload {
    /// Default new calls per second per trunk.
    pub trunk_rate: Option<Spanned<u32>>,
    /// Default burst per trunk.
    pub trunk_burst: Option<Spanned<u32>>,
    /// Default new calls per second per source address.
    pub source_rate: Option<Spanned<u32>>,
    /// Default burst per source address.
    pub source_burst: Option<Spanned<u32>>,
    /// Retry-After (seconds) on the 503 of a refused new call.
    pub retry_after: Option<Spanned<u32>>,
    /// Refuse new calls while the UDP receive queue backs up (default true).
    pub shed: Option<bool>,
}

/// `[failover]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFailover {
    /// Status a backend's 503 to an INVITE becomes (default 480); 503 keeps it.
    pub backend_503: Option<Spanned<u16>>,
    /// Final status when no queue can take a call (default 503).
    pub status: Option<Spanned<u16>>,
    /// Retry-After (seconds) with that status.
    pub retry_after: Option<Spanned<u32>>,
}
