//! The tests' one mapping file: Fujian-like (12356 with the Fuzhou and Xiamen areas, the queues
//! `fuzhou`, `xiamen` and `announcement`, the legacy numbers 0591-85666661 and 0591-85666221
//! retiring on 2025-05-07), with each test's backends as parameters and small additions a test
//! names where it needs them, so what a test changes stays visible in that test.
//!
//! `@SIP@` and `@METRICS@` stay in the text; [`Gateway::start`] fills them in.

use super::{Gateway, Peer};

/// `when_retired` that keeps routing a retired legacy number.
pub const ROUTE: &str = r#"{ treatment = "route" }"#;
/// `when_retired` that sends a retired legacy number to the announcement queue.
pub const ANNOUNCE: &str = r#"{ treatment = "announce", queue = "announcement" }"#;

/// A `[probe]` table for tests of probing: a backend is marked down after 300 ms of silence.
pub const FAST_PROBE: &str = "[probe]\ninterval = \"100ms\"\ndown_after = 3\nup_after = 2\n";

/// The `fuzhou` trunk's table: 127.0.0.2 with origin area 0591.
macro_rules! fuzhou_trunk {
    () => {
        "
[[trunk]]
name = \"fuzhou\"
sources = [\"127.0.0.2/32\"]
origin_area = \"0591\"
"
    };
}

/// The one trunk `fuzhou` (127.0.0.2, origin area 0591): every other address is a stranger.
pub const FUZHOU_TRUNK: &str = fuzhou_trunk!();

/// Two trunks: `fuzhou` = 127.0.0.2 (origin 0591) and `xiamen` = 127.0.0.3 (origin 0592), so a
/// test picks the caller's area by the address it sends from.
pub const TWO_TRUNKS: &str = concat!(
    fuzhou_trunk!(),
    "
[[trunk]]
name = \"xiamen\"
sources = [\"127.0.0.3/32\"]
origin_area = \"0592\"
"
);

/// One trunk for all of 127.0.0.0/8 with origin area 0591 (sipp peers all bind 127.0.0.1).
pub const LOOPBACK_TRUNK: &str = r#"
[[trunk]]
name = "loopback"
sources = ["127.0.0.0/8"]
origin_area = "0591"
"#;

/// The harness's backends are plain sockets (or sipp scenarios) that do not answer OPTIONS, so
/// its mapping files turn probing off; a test of probing replaces this table.
pub const PROBE_OFF: &str = "[probe]\nenabled = false\n";

/// `sip:127.0.0.1:PORT;transport=udp`: a backend on loopback that is not a bound [`Peer`] (a
/// sipp UAS, or a port nothing answers on).
pub fn udp_uri(port: u16) -> String {
    format!("sip:127.0.0.1:{port};transport=udp")
}

/// A mapping file under construction; [`Mapping::text`] writes it.
#[derive(Debug, Clone)]
pub struct Mapping {
    fuzhou: Vec<String>,
    xiamen: String,
    announcement: String,
    when_retired: String,
    fuzhou_queue: String,
    gateway: String,
    trunks: String,
    probe: String,
    tables: String,
}

impl Mapping {
    /// The `fuzhou` queue on `fuzhou`'s backends, `xiamen` and `announcement` on one each; the
    /// provincial legacy number keeps routing when retired ([`ROUTE`]); the trunks are
    /// [`TWO_TRUNKS`]; probing is off ([`PROBE_OFF`]).
    pub fn new(fuzhou: &[String], xiamen: &str, announcement: &str) -> Mapping {
        Mapping {
            fuzhou: fuzhou.to_vec(),
            xiamen: xiamen.to_string(),
            announcement: announcement.to_string(),
            when_retired: ROUTE.to_string(),
            fuzhou_queue: String::new(),
            gateway: String::new(),
            trunks: TWO_TRUNKS.to_string(),
            probe: PROBE_OFF.to_string(),
            tables: String::new(),
        }
    }

    /// [`Mapping::new`] with one backend peer for each queue.
    pub fn on(fuzhou: &Peer, xiamen: &Peer, announcement: &Peer) -> Mapping {
        Mapping::new(&[fuzhou.uri()], &xiamen.uri(), &announcement.uri())
    }

    /// Each queue on a sipp peer's loopback UDP port, with the one [`LOOPBACK_TRUNK`] (sipp
    /// callers bind 127.0.0.1).
    pub fn sipp(fuzhou: u16, xiamen: u16, announcement: u16) -> Mapping {
        Mapping::ports(fuzhou, xiamen, announcement).trunks(LOOPBACK_TRUNK)
    }

    /// Every queue on the one `backend`.
    pub fn one_backend(backend: &str) -> Mapping {
        Mapping::new(&[backend.to_string()], backend, backend)
    }

    /// Each queue on a loopback UDP port ([`udp_uri`]).
    pub fn ports(fuzhou: u16, xiamen: u16, announcement: u16) -> Mapping {
        Mapping::new(&[udp_uri(fuzhou)], &udp_uri(xiamen), &udp_uri(announcement))
    }

    /// What the provincial legacy number (0591-85666661) gets once retired.
    pub fn when_retired(mut self, treatment: &str) -> Mapping {
        self.when_retired = treatment.to_string();
        self
    }

    /// Other `[[trunk]]` tables instead of [`TWO_TRUNKS`].
    pub fn trunks(mut self, trunks: &str) -> Mapping {
        self.trunks = trunks.to_string();
        self
    }

    /// Lines added to the `fuzhou` queue's table (`overflow`, `hours` ...).
    pub fn fuzhou_queue(mut self, lines: &str) -> Mapping {
        self.fuzhou_queue.push_str(lines);
        self.fuzhou_queue.push('\n');
        self
    }

    /// Lines added at the end of `[gateway]`.
    pub fn gateway(mut self, lines: &str) -> Mapping {
        self.gateway.push_str(lines);
        self.gateway.push('\n');
        self
    }

    /// A `[probe]` table instead of [`PROBE_OFF`].
    pub fn probe(mut self, table: &str) -> Mapping {
        self.probe = table.to_string();
        self
    }

    /// Tables added at the end of the file.
    pub fn table(mut self, table: &str) -> Mapping {
        self.tables.push('\n');
        self.tables.push_str(table);
        self.tables.push('\n');
        self
    }

    /// The file, with `@SIP@` and `@METRICS@` left for [`Gateway::start`].
    pub fn text(&self) -> String {
        let fuzhou = self
            .fuzhou
            .iter()
            .map(|b| format!("\"{b}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let Mapping {
            xiamen,
            announcement,
            when_retired,
            fuzhou_queue,
            gateway,
            trunks,
            probe,
            tables,
            ..
        } = self;
        let provincial = legacy("0591-85666661", "provincial hotline", when_retired);
        let fuzhou_line = legacy("0591-85666221", "Fuzhou hotline", ROUTE);
        format!(
            r#"
[gateway]
sip_udp = "@SIP@"
sip_tcp = "@SIP@"
metrics = "@METRICS@"
advertised = "@SIP@"
record_route = true
mark_legacy = ["history-info", "diversion"]
replica = "test"
{gateway}
[new_number]
number = "12356"
default_queue = "fuzhou"

[[queue]]
name = "fuzhou"
target = "12356"
{fuzhou_queue}backends = [{fuzhou}]

[[queue]]
name = "xiamen"
backends = ["{xiamen}"]

[[queue]]
name = "announcement"
target = "number-changed"
backends = ["{announcement}"]

[[area]]
code = "0591"
name = "Fuzhou"
queue = "fuzhou"

[[area]]
code = "0592"
name = "Xiamen"
queue = "xiamen"

{trunks}
{provincial}
{fuzhou_line}
{probe}{tables}"#
        )
    }

    /// Starts a gateway on this file with `args` (see [`Gateway::start`]).
    pub async fn start(&self, args: &[&str]) -> Gateway {
        Gateway::start(&self.text(), args).await
    }
}

/// A legacy number of the Fuzhou queue in Fujian's calendar: parallel from 2025-04-07, retired
/// from 2025-05-07.
fn legacy(number: &str, name: &str, when_retired: &str) -> String {
    format!(
        "[[legacy]]\nnumber = \"{number}\"\nname = \"{name}\"\nqueue = \"fuzhou\"\n\
         parallel_from = 2025-04-07T00:00:00+08:00\nretired_from = 2025-05-07T00:00:00+08:00\n\
         when_retired = {when_retired}\n"
    )
}

/// The base mapping's peers on loopback: a UDP backend for the `fuzhou`, `xiamen` and
/// `announcement` queues (127.0.0.1) and a carrier on the Fuzhou trunk (127.0.0.2), in that
/// order; [`Mapping::on`] takes the first three.
pub async fn peers() -> (Peer, Peer, Peer, Peer) {
    (
        Peer::bind("127.0.0.1").await,
        Peer::bind("127.0.0.1").await,
        Peer::bind("127.0.0.1").await,
        Peer::bind("127.0.0.2").await,
    )
}
