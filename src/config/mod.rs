//! Configuration: the mapping file's serde shape ([`raw`]), its validation into an immutable
//! [`Snapshot`] ([`validate()`], pure), and reading it from disk ([`load()`], the edge).

pub mod cidr;
pub mod diff;
pub mod lint;
pub mod load;
pub mod parse;
pub mod raw;
pub mod validate;

pub use cidr::Cidr;
pub use load::{load, load_checked};
pub use validate::{check, parse_instant, validate};

use crate::health::Policy;
use crate::hours::Hours;
use crate::limit::Limits;
use crate::mapping::Mappings;
use crate::number::AreaCode;
use crate::peer::Transport;
use crate::sip::{header, HostPort, Key};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// The validated configuration every message is handled with; shared as `Arc<Snapshot>` and
/// replaced whole on reload.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The file it was read from.
    pub source: PathBuf,
    /// Listeners and SIP identity.
    pub gateway: Gateway,
    /// Call-centre queues.
    pub queues: Vec<Queue>,
    /// Carrier trunks.
    pub trunks: Vec<Trunk>,
    /// Numbers: the new number per area and the legacy numbers.
    pub mappings: Mappings,
    /// How backends are probed; `None` when probing is off (every backend counts as up).
    pub probe: Option<Policy>,
    /// Rate limits' answer and load shedding.
    pub overload: Overload,
    /// What callers get when backends fail.
    pub failover: Failover,
    /// Every backend's address (canonical IP), so telling a backend's message from a stranger's
    /// is one hash probe, not a walk over every queue's backends (a national file has hundreds).
    /// Derived from `queues` by validation, the only place a snapshot is built.
    backend_ips: HashSet<IpAddr>,
    /// Each queue's id by its name (a response's `dgq` mark names one): one hash probe, not a
    /// walk over the queues. Derived from `queues` by validation, like `backend_ips`.
    queue_index: HashMap<String, QueueId, foldhash::fast::RandomState>,
}

/// The `[overload]` table, beyond the per-trunk limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overload {
    /// Retry-After seconds on the 503 of a new call refused by a limit or shed.
    pub retry_after: u32,
    /// Refuse new calls while the UDP receive queue backs up.
    pub shed: bool,
}

/// The `[failover]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failover {
    /// The status a backend's 503 to an INVITE is forwarded as (503 = unchanged).
    pub backend_503: u16,
    /// The final status when no queue can take a call.
    pub status: u16,
    /// Its Retry-After, in seconds.
    pub retry_after: u32,
}

/// The `[gateway]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    /// UDP listen address, if SIP over UDP is served.
    pub sip_udp: Option<SocketAddr>,
    /// TCP listen address, if SIP over TCP is served.
    pub sip_tcp: Option<SocketAddr>,
    /// Prometheus listen address, if metrics are served.
    pub metrics: Option<SocketAddr>,
    /// `host:port` written in the gateway's Via and Record-Route (its port always set).
    pub advertised: Advertised,
    /// Insert a Record-Route on dialog-creating requests.
    pub record_route: bool,
    /// Mark legacy calls with History-Info (RFC 7044).
    pub history_info: bool,
    /// Mark legacy calls with Diversion (RFC 5806).
    pub diversion: bool,
    /// Value of the `replica` label on every metric.
    pub replica: String,
    /// Key of the MAC in the gateway's branches (`secret`, or read from `secret_file` by
    /// [`load()`]); `None` in the file means a random key per process, set by `main`.
    pub secret: Option<Key>,
    /// Where `secret_file` points, resolved against the mapping file's folder.
    pub secret_file: Option<PathBuf>,
    /// Answer requests from sources in no trunk with 403 (never larger than the request)
    /// instead of dropping them silently; TCP connections from them are then accepted within a
    /// small budget.
    pub answer_strangers: bool,
    /// TCP connection limits (read at start-up).
    pub tcp: TcpLimits,
}

/// The gateway's advertised `host:port` with its text, written once per snapshot: every
/// forwarded request carries it in its Via (and an initial INVITE in its Record-Route), so it
/// is copied, not formatted, per message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertised {
    host_port: HostPort,
    text: String,
    /// The host part of `text` (IPv6 in brackets, as a Via's sent-by writes it).
    host: String,
    /// The Record-Route entry naming it, over UDP and over TCP.
    route: [String; 2],
}

impl Advertised {
    /// The address.
    pub fn host_port(&self) -> &HostPort {
        &self.host_port
    }

    /// The text as written on the wire (`Display` of the [`HostPort`]).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The Record-Route entry naming the gateway over `transport`.
    fn route_entry(&self, transport: Transport) -> &str {
        let [udp, tcp] = &self.route;
        match transport {
            Transport::Udp => udp,
            Transport::Tcp => tcp,
        }
    }

    /// The Record-Route value for a dialog from an `inbound` caller to an `outbound` backend
    /// (see [`crate::sip::header::record_route`]): the kept entry when both use one transport.
    pub fn record_route(&self, inbound: Transport, outbound: Transport) -> Cow<'_, str> {
        if inbound == outbound {
            Cow::Borrowed(self.route_entry(inbound))
        } else {
            Cow::Owned(header::record_route(&self.text, inbound, outbound))
        }
    }

    /// Whether a sent-by written as `host` and `port` is, byte for byte, this address (a port
    /// left out is 5060): the gateway's own Via on a response, known without parsing the host.
    pub fn is_sent_by(&self, host: &str, port: Option<u16>) -> bool {
        self.host == host
            && port.unwrap_or(crate::sip::uri::DEFAULT_PORT) == self.host_port.port_or_default()
    }

    /// Whether a Route entry is, byte for byte, a Record-Route entry the gateway writes: the
    /// usual in-dialog Route, known to be the gateway's without parsing it.
    pub fn wrote_route(&self, entry: &str) -> bool {
        let entry = entry.trim_ascii();
        self.route.iter().any(|r| r == entry)
    }
}

impl From<HostPort> for Advertised {
    fn from(host_port: HostPort) -> Advertised {
        let text = host_port.to_string();
        let host = host_port.host.to_string();
        let route = [Transport::Udp, Transport::Tcp].map(|t| header::record_route_entry(&text, t));
        Advertised {
            host_port,
            text,
            host,
            route,
        }
    }
}

impl From<SocketAddr> for Advertised {
    fn from(a: SocketAddr) -> Advertised {
        HostPort::from(a).into()
    }
}

impl fmt::Display for Advertised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The `[tcp]` table: limits that keep peers from exhausting the gateway's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Time a peer has to complete a message once its first byte arrived (slowloris).
    pub message_deadline: Duration,
    /// Bytes queued for one connection before it is cut off (a peer that stops reading).
    pub output_budget: usize,
    /// Connections one trunk or backend address may hold; `None`: derived from the budget.
    pub max_per_source: Option<usize>,
}

impl Default for TcpLimits {
    fn default() -> TcpLimits {
        TcpLimits {
            message_deadline: Duration::from_secs(10),
            output_budget: 1 << 20,
            max_per_source: None,
        }
    }
}

/// A call-centre queue and its backends.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    /// Configured name, used in metric labels.
    pub name: String,
    /// User part of the forwarded Request-URI.
    pub target: String,
    /// Backends, chosen per call by rendezvous hashing of the Call-ID.
    pub backends: Vec<Backend>,
    /// The queue that takes calls when this one is closed or has no backend up.
    pub overflow: Option<QueueId>,
    /// When the queue answers.
    pub hours: Hours,
    /// Whether its backends are probed (when off they always count as up).
    pub probe: bool,
}

/// One backend SIP server of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The URI as written in the file.
    pub uri: String,
    /// Where to send.
    pub addr: SocketAddr,
    /// How to send.
    pub transport: Transport,
    /// Stable key for rendezvous hashing (`ip:port/transport`).
    pub key: String,
    /// `key`'s [`crate::sip::hash64`], the part of each rendezvous score that is the same
    /// for every call.
    pub key_hash: u64,
    /// The Request-URI of a call forwarded here: the queue's `target` at this address
    /// ([`crate::sip::header::request_uri`]), written once per snapshot.
    pub request_uri: String,
}

/// A carrier trunk: who may send initial requests, and the area assumed for local numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// Configured name, used in metric labels.
    pub name: String,
    /// Source networks.
    pub sources: Vec<Cidr>,
    /// Area for numbers dialled without one.
    pub origin_area: Option<AreaCode>,
    /// Rate limits on its new calls.
    pub limits: Limits,
}

impl Snapshot {
    /// The trunk whose sources contain `ip`, if any.
    pub fn trunk_for(&self, ip: IpAddr) -> Option<&Trunk> {
        let ip = cidr::canonical_ip(ip);
        self.trunks
            .iter()
            .find(|t| t.sources.iter().any(|c| c.contains_canonical(ip)))
    }

    /// Whether `addr` is one of the configured backends (for in-dialog requests from the call
    /// centre).
    pub fn is_backend(&self, ip: IpAddr) -> bool {
        self.backend_ips.contains(&cidr::canonical_ip(ip))
    }

    /// The set [`Snapshot::is_backend`] reads, from `queues`.
    fn queue_index(queues: &[Queue]) -> HashMap<String, QueueId, foldhash::fast::RandomState> {
        let mut ids = HashMap::with_capacity_and_hasher(queues.len(), Default::default());
        for (i, q) in queues.iter().enumerate() {
            // The first of a name, as a walk over the queues would find it.
            ids.entry(q.name.clone()).or_insert(QueueId(i));
        }
        ids
    }

    fn backend_ips(queues: &[Queue]) -> HashSet<IpAddr> {
        queues
            .iter()
            .flat_map(|q| &q.backends)
            .map(|b| cidr::canonical_ip(b.addr.ip()))
            .collect()
    }

    /// Whether `hp` names this gateway: its advertised address, or a listen address (an IP
    /// sent-by or Route a peer wrote from the socket it reached). The one place that decides.
    pub fn is_ours(&self, hp: &HostPort) -> bool {
        let g = &self.gateway;
        hp.same(g.advertised.host_port())
            || [g.sip_udp, g.sip_tcp]
                .into_iter()
                .flatten()
                .any(|a| hp.same(&HostPort::from(a)))
    }

    /// The position of a trunk of this snapshot (its rate-limit bucket).
    pub fn trunk_index(&self, t: &Trunk) -> usize {
        self.trunks
            .iter()
            .position(|x| std::ptr::eq(x, t))
            .unwrap_or(self.trunks.len())
    }

    /// The queue `id` names: it cannot fail, because only validation makes a [`QueueId`], for
    /// the snapshot it builds.
    pub fn queue(&self, id: QueueId) -> &Queue {
        self.queues
            .get(id.0)
            .expect("invariant: a QueueId indexes the snapshot whose validation made it")
    }

    /// The `queue` label of `id`: the queue's name, or `none`.
    pub fn queue_label(&self, id: Option<QueueId>) -> &str {
        id.map_or("none", |q| self.queue(q).name.as_str())
    }

    /// The queue named `name`.
    pub fn queue_id(&self, name: &str) -> Option<QueueId> {
        self.queue_index.get(name).copied()
    }

    /// Every queue with its id.
    pub fn queue_ids(&self) -> impl Iterator<Item = (QueueId, &Queue)> {
        self.queues.iter().enumerate().map(|(i, q)| (QueueId(i), q))
    }
}

/// A queue of a [`Snapshot`]. Only the validator builds one (for the snapshot it returns), so
/// [`Snapshot::queue`] cannot fail and nothing re-checks an index with an invented fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(usize);

impl QueueId {
    /// The id of the `i`-th queue of a snapshot being validated.
    pub(crate) fn new(i: usize) -> QueueId {
        QueueId(i)
    }

    /// Its position among the snapshot's queues.
    pub fn index(self) -> usize {
        self.0
    }
}

/// One problem in a mapping file, located by line and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// 1-based line number.
    pub line: usize,
    /// Dotted field path, e.g. `legacy[2].queue`.
    pub field: String,
    /// What is wrong.
    pub problem: String,
    /// The other place the problem involves (the first of two duplicates, the area launch a
    /// legacy date contradicts), if any.
    pub also: Option<Related>,
}

/// The second place a [`ConfigIssue`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    /// 1-based line number.
    pub line: usize,
    /// Dotted field path.
    pub field: String,
}

impl ConfigIssue {
    /// `FILE:LINE: field: problem (FILE:LINE: other field)`, as printed for the operator.
    pub fn display<'a>(&'a self, path: &'a std::path::Path) -> impl fmt::Display + 'a {
        struct D<'a>(&'a ConfigIssue, &'a std::path::Path);
        impl fmt::Display for D<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let (i, p) = (self.0, self.1.display());
                write!(f, "{p}:{}: {}: {}", i.line, i.field, i.problem)?;
                if let Some(a) = &i.also {
                    write!(f, " ({p}:{}: {})", a.line, a.field)?;
                }
                Ok(())
            }
        }
        D(self, path)
    }
}

/// A valid mapping file: the snapshot to serve, and what is allowed but probably not meant.
#[derive(Debug, Clone)]
pub struct Checked {
    /// What the gateway serves.
    pub snapshot: Snapshot,
    /// Problems that do not stop the file from loading, each with line and field.
    pub warnings: Vec<ConfigIssue>,
}

/// Why a mapping file was rejected.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is invalid.
    #[error("{}", Invalid { path, issues })]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        issues: Vec<ConfigIssue>,
    },
}

struct Invalid<'a> {
    path: &'a PathBuf,
    issues: &'a [ConfigIssue],
}

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        write!(
            f,
            "{}: {n} problem{}",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for i in self.issues {
            write!(f, "\n  {}", i.display(self.path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_queue_is_found_by_its_name_and_nothing_else_is() {
        let path =
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/fujian.toml"));
        let text = std::fs::read_to_string(path).unwrap();
        let snap = validate(path, &text).unwrap();
        assert!(snap.queues.len() > 5);
        for (id, q) in snap.queue_ids() {
            assert_eq!(snap.queue_id(&q.name), Some(id), "{}", q.name);
        }
        assert_eq!(snap.queue_id("no-such-queue"), None);
        assert_eq!(snap.queue_id(""), None);
    }

    #[test]
    fn the_kept_record_route_texts_are_the_ones_header_writes() {
        use crate::sip::uri::Uri;
        for at in ["192.0.2.10:5060", "[2001:db8::1]:5070", "gw.example:5060"] {
            let a = Advertised::from(at.parse::<HostPort>().unwrap());
            assert_eq!(a.as_str(), at);
            for inbound in [Transport::Udp, Transport::Tcp] {
                for outbound in [Transport::Udp, Transport::Tcp] {
                    assert_eq!(
                        a.record_route(inbound, outbound),
                        header::record_route(at, inbound, outbound)
                    );
                }
                // The Route a peer echoes back is recognized, and it names the gateway.
                let entry = header::record_route_entry(at, inbound);
                assert!(a.wrote_route(&format!(" {entry} ")), "{entry}");
                let named = Uri::parse(&entry).and_then(|u| u.host_port).unwrap();
                assert!(named.same(a.host_port()), "{entry}");
            }
            // The gateway's own sent-by is recognized as written, and it is the address.
            let via = crate::sip::header::via(
                Transport::Udp,
                a.as_str(),
                &crate::sip::Branch {
                    txn: 1,
                    loop_key: 2,
                    mac: 3,
                },
                &crate::sip::header::ViaMarks::default(),
            );
            let v = crate::sip::Via::parse(&via).unwrap();
            assert!(a.is_sent_by(v.host, v.port), "{via}");
            assert!(v.sent_by().unwrap().same(a.host_port()), "{via}");
            let port = a.host_port().port_or_default();
            assert!(!a.is_sent_by(v.host, Some(port + 1)));
            assert!(!a.is_sent_by("192.0.2.99", v.port));
            for other in [
                "<sip:192.0.2.11:5060;lr>",
                "<sip:192.0.2.10:5060>",
                "<sip:x@192.0.2.10:5060;lr>",
                "",
            ] {
                assert!(!a.wrote_route(other), "{other}");
            }
        }
    }

    #[test]
    fn a_backend_is_known_by_its_address_in_any_ip_spelling_and_nothing_else_is() {
        let snap = validate::validate(
            std::path::Path::new("fixture.toml"),
            crate::route::tests::FIXTURE,
        )
        .unwrap();
        for b in snap.queues.iter().flat_map(|q| &q.backends) {
            let ip = b.addr.ip();
            assert!(snap.is_backend(ip), "{ip}");
            if let IpAddr::V4(v4) = ip {
                // The same host as an IPv4-mapped IPv6 source (a dual-stack socket).
                assert!(snap.is_backend(IpAddr::V6(v4.to_ipv6_mapped())), "{ip}");
            }
        }
        for stranger in ["127.0.0.2", "192.0.2.10", "::1", "203.0.113.5"] {
            let ip: IpAddr = stranger.parse().unwrap();
            assert!(!snap.is_backend(ip), "{ip}");
        }
    }
}
