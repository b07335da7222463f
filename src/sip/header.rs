//! The header values the gateway writes itself: its Via and Record-Route, the Request-URI for
//! a backend, History-Info and Diversion marks, Reason and Contact. Routing decides *what*
//! (plain data); the text is written here and nowhere else. No I/O here.

use super::branch::Branch;
use super::message::Message;
use super::name::HeaderName;
use super::scan::{is_name, param};
use super::uri::{push_decimal, HostPort};
use crate::peer::Transport;
use std::borrow::Cow;
use std::net::SocketAddr;

/// A Q.850 cause the gateway gives (RFC 3326 `Reason: Q.850;cause=N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Q850 {
    /// Cause 1, "Unallocated (unassigned) number": a number that is not configured.
    Unallocated,
    /// Cause 22, "Number changed": a decommissioned legacy number (RFC 3398 maps it to 410).
    NumberChanged,
}

/// Why the gateway answered a request as it did: the value of its Reason header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause<'s> {
    /// A Q.850 cause with its standard text.
    Q850(Q850),
    /// A SIP status with an explanation: `SIP;cause=STATUS;text="TEXT"`.
    Sip {
        /// The status the cause names.
        status: u16,
        /// The explanation (quotes and backslashes are escaped when written).
        text: Cow<'s, str>,
    },
}

/// The Reason header value (RFC 3326) for `cause`.
pub fn reason(cause: &Cause<'_>) -> String {
    match cause {
        Cause::Q850(Q850::Unallocated) => {
            "Q.850;cause=1;text=\"Unallocated (unassigned) number\"".to_string()
        }
        Cause::Q850(Q850::NumberChanged) => "Q.850;cause=22;text=\"Number changed\"".to_string(),
        Cause::Sip { status, text } => {
            let text = text.replace('\\', "\\\\").replace('"', "\\\"");
            format!("SIP;cause={status};text=\"{text}\"")
        }
    }
}

/// The Contact of a redirect to `number` through the gateway at `at`.
pub fn contact(number: &str, at: &str) -> String {
    format!("<sip:{number}@{at};user=phone>")
}

/// The Request-URI a backend at `addr` receives for `user`.
pub fn request_uri(user: &str, addr: SocketAddr, transport: Transport) -> String {
    // Written once per backend when the mappings load (`Backend::request_uri`).
    let at = HostPort::from(addr);
    let tcp = if transport == Transport::Tcp {
        ";transport=tcp"
    } else {
        ""
    };
    format!("sip:{user}@{at}{tcp}")
}

/// The Record-Route for a dialog from an `inbound` caller to an `outbound` backend through the
/// gateway at `at`: one entry, or two when the transports differ (RFC 5658 double
/// record-routing), the top one facing the backend, so that each side reaches the gateway over
/// the transport it already uses.
pub fn record_route(at: &str, inbound: Transport, outbound: Transport) -> String {
    if inbound == outbound {
        return record_route_entry(at, inbound);
    }
    let mut rr = record_route_entry(at, outbound);
    rr.push_str(", ");
    rr.push_str(&record_route_entry(at, inbound));
    rr
}

/// One Record-Route entry naming the gateway at `at`, reached over `transport`:
/// `<sip:host:port;lr>`, with `;transport=tcp` before `;lr` for TCP.
pub fn record_route_entry(at: &str, transport: Transport) -> String {
    let mut rr = String::with_capacity(at.len() + 24);
    rr.push_str("<sip:");
    rr.push_str(at);
    if transport == Transport::Tcp {
        rr.push_str(";transport=tcp");
    }
    rr.push_str(";lr>");
    rr
}

/// What the gateway's Via carries besides its address and branch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViaMarks<'a> {
    /// The dialled number (`dgn`), so responses are counted without state.
    pub number: Option<&'a str>,
    /// The queue (`dgq`).
    pub queue: Option<&'a str>,
    /// The source port of the TCP connection the request came in on (`dgc`), so responses go
    /// back on it (RFC 3261 §18.2.2).
    pub connection: Option<u16>,
}

/// Collects the gateway's marks from a Via's parameters as the Via reader's one pass over them
/// turns them up (`Via::marks`); the first occurrence of a name wins, as with [`param`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct MarkReader<'a> {
    number: Option<Option<&'a str>>,
    queue: Option<Option<&'a str>>,
    connection: Option<Option<&'a str>>,
}

impl<'a> MarkReader<'a> {
    /// Takes one parameter (trimmed name and value); the first occurrence of a mark wins.
    pub(crate) fn take(&mut self, n: &str, v: Option<&'a str>) {
        if n.len() != 3 {
            return;
        }
        let slot = if is_name(n, b"dgn") {
            &mut self.number
        } else if is_name(n, b"dgq") {
            &mut self.queue
        } else if is_name(n, b"dgc") {
            &mut self.connection
        } else {
            return;
        };
        if slot.is_none() {
            *slot = Some(v);
        }
    }

    /// The marks found. A `dgc` that is not a port counts as absent.
    #[inline]
    pub(crate) fn finish(self) -> ViaMarks<'a> {
        ViaMarks {
            number: self.number.flatten(),
            queue: self.queue.flatten(),
            connection: self
                .connection
                .flatten()
                .and_then(|p| p.parse::<u16>().ok()),
        }
    }
}

/// The gateway's own Via at `at` over `transport`, with `branch` as its branch parameter, as
/// text: what tests compare against (the proxy writes [`GatewayVia`] into the forwarded bytes).
#[cfg(test)]
pub fn via(transport: Transport, at: &str, branch: &Branch, marks: &ViaMarks<'_>) -> String {
    let mut v = Vec::with_capacity(160);
    GatewayVia {
        transport,
        at,
        branch: *branch,
        marks: *marks,
    }
    .write(&mut v);
    // Written from `&str`s, hex digits and ASCII: valid UTF-8.
    String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The gateway's own Via as its parts, which [`crate::sip::forward_request`] writes straight
/// into the forwarded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayVia<'a> {
    /// The transport the copy is sent over.
    pub transport: Transport,
    /// The gateway's advertised `host:port`.
    pub at: &'a str,
    /// The branch, sealed.
    pub branch: Branch,
    /// The marks the Via carries.
    pub marks: ViaMarks<'a>,
}

impl GatewayVia<'_> {
    /// Appends the Via value to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        // `SIP/2.0/` + the transport's token + ` `, written at once.
        let sent_protocol: &[u8; 12] = match self.transport {
            Transport::Udp => b"SIP/2.0/UDP ",
            Transport::Tcp => b"SIP/2.0/TCP ",
        };
        out.extend_from_slice(sent_protocol);
        out.extend_from_slice(self.at.as_bytes());
        self.branch.write_param(out);
        for (name, mark) in [(";dgn=", self.marks.number), (";dgq=", self.marks.queue)] {
            if let Some(m) = mark {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(m.as_bytes());
            }
        }
        if let Some(port) = self.marks.connection {
            let mut mark = String::with_capacity(10);
            mark.push_str(";dgc=");
            push_decimal(&mut mark, port);
            out.extend_from_slice(mark.as_bytes());
        }
    }
}

/// The marks a call to a legacy number carries to the call centre (RFC 7044 History-Info,
/// RFC 5806 Diversion), written into one `String`: at most three header values, each a range
/// of `text`, in the order they are added to the forwarded request.
#[derive(Debug, Clone, Default)]
pub struct LegacyMarks {
    text: String,
    lines: [(&'static str, usize, usize); 3],
    len: usize,
}

impl LegacyMarks {
    /// The marks for a call to legacy `number`, dialled at the gateway at `at` and translated
    /// to `target`: History-Info when `history_info` (the dialled entry and the target with the
    /// RFC 4458 `cause=380` URI parameter, service number translation, RFC 8119; or only the
    /// target under the request's last entry when it already has History-Info), and Diversion
    /// when `diversion`. The dialled URI is `<sip:NUMBER@AT;user=phone>`.
    pub fn new(
        msg: &Message<'_>,
        number: &str,
        at: &str,
        target: &str,
        history_info: bool,
        diversion: bool,
    ) -> LegacyMarks {
        let mut m = LegacyMarks {
            text: String::with_capacity(2 * (number.len() + at.len()) + target.len() + 128),
            ..LegacyMarks::default()
        };
        let dialled = |t: &mut String| {
            for part in ["<sip:", number, "@", at, ";user=phone>"] {
                t.push_str(part);
            }
        };
        let target_entry = |t: &mut String| {
            for part in ["<", target, ";cause=380>"] {
                t.push_str(part);
            }
        };
        if history_info {
            match last_history_index(msg) {
                None => {
                    m.line("History-Info", |t| {
                        dialled(t);
                        t.push_str(";index=1");
                    });
                    m.line("History-Info", |t| {
                        target_entry(t);
                        t.push_str(";index=1.1;mp=1");
                    });
                }
                Some(idx) => m.line("History-Info", |t| {
                    target_entry(t);
                    for part in [";index=", idx, ".1;mp=", idx] {
                        t.push_str(part);
                    }
                }),
            }
        }
        if diversion {
            m.line("Diversion", |t| {
                dialled(t);
                t.push_str(";reason=unconditional;counter=1");
            });
        }
        m
    }

    /// Appends one header value, written by `write`.
    fn line(&mut self, name: &'static str, write: impl FnOnce(&mut String)) {
        let start = self.text.len();
        write(&mut self.text);
        if let Some(slot) = self.lines.get_mut(self.len) {
            *slot = (name, start, self.text.len());
            self.len += 1;
        }
    }

    /// The `(name, value)` pairs, for [`super::RequestEdit::extra`].
    pub fn headers(&self) -> [(&'static str, &str); 3] {
        self.lines
            .map(|(name, from, to)| (name, self.text.get(from..to).unwrap_or_default()))
    }

    /// How many of [`LegacyMarks::headers`] are marks.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no mark at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The `index` of the request's last History-Info entry, when it has History-Info.
fn last_history_index<'m>(msg: &'m Message<'_>) -> Option<&'m str> {
    msg.first(HeaderName::HistoryInfo)?;
    msg.headers
        .iter()
        .rfind(|h| h.name == HeaderName::HistoryInfo)
        .and_then(|h| h.value.rsplit(',').next())
        .and_then(|entry| param(entry, "index").flatten())
}

/// The URI of legacy `number` as dialled at the gateway at `at`: the straightforward
/// [`LegacyMarks`], kept as its test oracle.
#[cfg(test)]
fn dialled(number: &str, at: &str) -> String {
    format!("<sip:{number}@{at};user=phone>")
}

/// History-Info entries as [`LegacyMarks`] writes them, by `format!`: its test oracle.
#[cfg(test)]
fn history_info(msg: &Message<'_>, dialled: &str, target: &str) -> Vec<String> {
    let last = msg
        .headers
        .iter()
        .filter(|h| h.name == HeaderName::HistoryInfo)
        .flat_map(|h| h.value.rsplit(',').next().map(str::to_string))
        .last()
        .and_then(|entry| param(&entry, "index").flatten().map(str::to_string));
    match last {
        None => vec![
            format!("{dialled};index=1"),
            format!("<{target};cause=380>;index=1.1;mp=1"),
        ],
        Some(idx) => vec![format!("<{target};cause=380>;index={idx}.1;mp={idx}")],
    }
}

/// A Diversion entry as [`LegacyMarks`] writes it, by `format!`: its test oracle.
#[cfg(test)]
fn diversion(dialled: &str) -> String {
    format!("{dialled};reason=unconditional;counter=1")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// What [`LegacyMarks`] gives, as owned pairs.
    fn marks_of(m: &LegacyMarks) -> Vec<(String, String)> {
        m.headers()
            .iter()
            .take(m.len())
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    proptest::proptest! {
        /// The marks written in one buffer are the ones `format!` writes, in the same order,
        /// with and without History-Info already in the request.
        #[test]
        fn legacy_marks_are_what_format_writes(
            number in "[0-9+]{0,16}",
            at in "[a-z0-9.:\\[\\]]{1,24}",
            target in "sip:[a-z0-9@.:;=]{0,30}",
            earlier in proptest::collection::vec("(<sip:a@b>;index=[0-9.]{1,6}|<sip:c>|x, y;index=2|;index=)", 0..3),
            with_history in proptest::bool::ANY,
            with_diversion in proptest::bool::ANY,
        ) {
            let mut raw = String::from("INVITE sip:a@b SIP/2.0\r\nCall-ID: 1\r\n");
            for e in &earlier {
                raw.push_str(&format!("History-Info: {e}\r\n"));
            }
            raw.push_str("\r\n");
            let msg = crate::sip::parse(raw.as_bytes()).unwrap();
            let d = dialled(&number, &at);
            let mut want: Vec<(String, String)> = Vec::new();
            if with_history {
                want.extend(history_info(&msg, &d, &target).into_iter().map(|v| ("History-Info".to_string(), v)));
            }
            if with_diversion {
                want.push(("Diversion".to_string(), diversion(&d)));
            }
            let got = LegacyMarks::new(&msg, &number, &at, &target, with_history, with_diversion);
            proptest::prop_assert_eq!(marks_of(&got), want);
            proptest::prop_assert_eq!(got.is_empty(), !with_history && !with_diversion);
        }
    }

    #[test]
    fn reasons_are_written_per_rfc_3326() {
        assert_eq!(
            reason(&Cause::Q850(Q850::Unallocated)),
            "Q.850;cause=1;text=\"Unallocated (unassigned) number\""
        );
        assert_eq!(
            reason(&Cause::Q850(Q850::NumberChanged)),
            "Q.850;cause=22;text=\"Number changed\""
        );
        assert_eq!(
            reason(&Cause::Sip {
                status: 410,
                text: "say \"12356\"".into()
            }),
            "SIP;cause=410;text=\"say \\\"12356\\\"\""
        );
    }

    #[test]
    fn addresses_are_written_with_ipv6_brackets() {
        let v6: SocketAddr = "[2001:db8::5]:5091".parse().unwrap();
        assert_eq!(
            request_uri("12356", v6, Transport::Tcp),
            "sip:12356@[2001:db8::5]:5091;transport=tcp"
        );
        let at = HostPort::parse("192.0.2.10:5060").unwrap();
        assert_eq!(
            record_route(&at.to_string(), Transport::Udp, Transport::Tcp),
            "<sip:192.0.2.10:5060;transport=tcp;lr>, <sip:192.0.2.10:5060;lr>"
        );
        assert_eq!(
            contact("059112356", &at.to_string()),
            "<sip:059112356@192.0.2.10:5060;user=phone>"
        );
        assert_eq!(
            via(
                Transport::Tcp,
                &at.to_string(),
                &Branch {
                    txn: 0xa,
                    loop_key: 0xb,
                    mac: 0xc
                },
                &ViaMarks {
                    number: Some("059185666661"),
                    queue: Some("fuzhou"),
                    connection: Some(40000)
                }
            ),
            "SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKdg000000000000000a.000000000000000b.\
             000000000000000c;dgn=059185666661;dgq=fuzhou;dgc=40000"
        );
    }

    #[test]
    fn the_via_names_its_transport_as_the_transport_does() {
        let branch = Branch {
            txn: 1,
            loop_key: 2,
            mac: 3,
        };
        for t in [Transport::Udp, Transport::Tcp] {
            let v = via(t, "gw", &branch, &ViaMarks::default());
            let want = format!("SIP/2.0/{} gw;branch={}", t.as_via(), branch.to_param());
            assert_eq!(v, want);
        }
    }

    #[test]
    fn via_marks_read_back_what_via_wrote_and_agree_with_param() {
        let at: HostPort = "192.0.2.10:5060".parse().unwrap();
        let marks = ViaMarks {
            number: Some("12356"),
            queue: Some("fuzhou"),
            connection: Some(40000),
        };
        let branch = Branch {
            txn: 1,
            loop_key: 2,
            mac: 3,
        };
        let v = via(Transport::Tcp, &at.to_string(), &branch, &marks);
        assert_eq!(
            v,
            format!(
                "SIP/2.0/TCP 192.0.2.10:5060;branch={};dgn=12356;dgq=fuzhou;dgc=40000",
                branch.to_param()
            )
        );
        assert_eq!(crate::sip::Via::parse(&v).unwrap().marks, marks);
        for params in [
            ";branch=b;dgn=1;dgq=q;dgc=5",
            ";DGN = 1 ;dgn=2;dgq;dgq=late;dgc=99999",
            ";dgc=x;x=\"a;dgn=no\";dgn=yes",
            "",
        ] {
            let want = ViaMarks {
                number: param(params, "dgn").flatten(),
                queue: param(params, "dgq").flatten(),
                connection: param(params, "dgc")
                    .flatten()
                    .and_then(|p| p.parse::<u16>().ok()),
            };
            let entry = format!("SIP/2.0/UDP 192.0.2.7:5060{params}");
            let read = crate::sip::Via::parse(&entry).unwrap().marks;
            assert_eq!(read, want, "{params}");
        }
    }
}
