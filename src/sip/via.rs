//! One Via entry (RFC 3261 §20.42): `SIP/2.0/transport sent-by *(;param)`, its parameters
//! collected in one pass. Borrowing, never panics. No I/O here.

use super::header::{MarkReader, ViaMarks};
use super::message::ParseError;
use super::scan::{each_param_of, find_byte, is_name, is_nested, is_token};
use super::uri::{is_host_byte, split_host_port, Host, HostPort};

/// One Via entry (a combined `Via: a, b` line yields two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via<'a> {
    /// `UDP`, `TCP`, ... as written.
    pub transport: &'a str,
    /// sent-by host (IPv6 keeps its brackets).
    pub host: &'a str,
    /// sent-by port, if written.
    pub port: Option<u16>,
    /// `branch` parameter.
    pub branch: Option<&'a str>,
    /// `received` parameter.
    pub received: Option<&'a str>,
    /// `rport` parameter: `Some(None)` when present without a value.
    pub rport: Option<Option<u16>>,
    /// The gateway's marks (`dgn`, `dgq`, `dgc`), read in the same pass; all absent in a
    /// Via some other element wrote.
    pub marks: ViaMarks<'a>,
    /// Whether its parameters hold a quote or bracket, inside which `;` does not separate
    /// (so a plain split of [`Via::raw`] on `;` would not find the parameters the parser did).
    pub nested: bool,
    /// The whole entry as written, e.g. `SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1`.
    pub raw: &'a str,
}

impl Via<'_> {
    /// The sent-by as a [`HostPort`]; `None` when its host is not one.
    pub fn sent_by(&self) -> Option<HostPort> {
        Some(HostPort {
            host: Host::parse(self.host)?,
            port: self.port,
        })
    }
}

impl<'a> Via<'a> {
    /// Parses one Via entry: `SIP/2.0/transport host[:port] *(;param)`, whitespace allowed
    /// around `/` and `:` (RFC 3261 §20.42, §25.1), IPv6 in brackets.
    ///
    /// # Errors
    /// [`ParseError::BadVia`] when the entry does not have that shape.
    pub fn parse(entry: &'a str) -> Result<Via<'a>, ParseError> {
        let Head {
            raw,
            transport,
            host,
            port,
            params,
        } = match Head::plain(entry) {
            Some(head) => head,
            None => Head::general(entry)?,
        };
        // An unterminated quoted-string swallows the rest of the line (and any later entries):
        // such a Via cannot be edited safely, so it is malformed. A quote can only be in the
        // parameters: before them it fails the transport or sent-by checks.
        let nested = is_nested(params);
        if nested && !quotes_balanced(params) {
            return Err(ParseError::BadVia);
        }
        // One pass over the parameters (this runs for every Via of every message); the first
        // occurrence of a name wins, as with `param`.
        let found = if nested {
            Found::general(params, true)?
        } else {
            Found::plain(params)?
        };
        Ok(Via {
            transport,
            host,
            port,
            branch: found.branch.flatten(),
            received: found.received.flatten(),
            rport: found.rport,
            marks: found.marks.finish(),
            nested,
            raw,
        })
    }
}

/// A Via entry up to its parameters: the entry trimmed, its transport and sent-by, and the
/// parameters (from the first `;`, or empty).
#[derive(Debug, PartialEq, Eq)]
struct Head<'a> {
    raw: &'a str,
    transport: &'a str,
    host: &'a str,
    port: Option<u16>,
    params: &'a str,
}

impl<'a> Head<'a> {
    /// The head of an entry as nearly every element writes it, read in one pass: `SIP/2.0/`
    /// (any case), a transport, one space, a host of host bytes (no brackets), an optional
    /// port of one to five digits, then a `;` or the end, and no whitespace at the end. `None`
    /// for any other entry, which [`Head::general`] reads; for these it gives what that gives.
    fn plain(entry: &'a str) -> Option<Head<'a>> {
        const USUAL: u64 = u64::from_le_bytes(*b"sip/2.0/");
        let b = entry.as_bytes();
        if u64::from_le_bytes(*b.first_chunk::<8>()?) | 0x20_2020 != USUAL
            || b.last().is_some_and(u8::is_ascii_whitespace)
        {
            return None;
        }
        let mut at = 8;
        while b.get(at).is_some_and(|&c| is_token(c)) {
            at += 1;
        }
        if at == 8 || b.get(at) != Some(&b' ') {
            return None;
        }
        let transport = cut(entry, 8, at)?;
        at += 1;
        let host_at = at;
        if b.get(at) == Some(&b'[') {
            return None;
        }
        while b.get(at).is_some_and(|&c| c != b':' && is_host_byte(c)) {
            at += 1;
        }
        if at == host_at {
            return None;
        }
        let host = cut(entry, host_at, at)?;
        let mut port = None;
        if b.get(at) == Some(&b':') {
            at += 1;
            let digits = at;
            let mut value: u32 = 0;
            while let Some(d) = b.get(at).filter(|c| c.is_ascii_digit()) {
                value = value * 10 + u32::from(d - b'0');
                at += 1;
                if at - digits > 5 {
                    return None;
                }
            }
            if at == digits {
                return None;
            }
            port = Some(u16::try_from(value).ok()?);
        }
        if !matches!(b.get(at), None | Some(b';')) {
            return None;
        }
        Some(Head {
            raw: entry,
            transport,
            host,
            port,
            params: entry.split_at_checked(at)?.1,
        })
    }

    /// The head of any entry: `SIP/2.0/transport host[:port]`, whitespace allowed around `/`
    /// and `:` and at the ends.
    fn general(entry: &'a str) -> Result<Head<'a>, ParseError> {
        let raw = entry.trim_ascii();
        // The usual spelling, without whitespace around the slashes, as one compare: setting
        // the 0x20 bit of the first three bytes folds the case of `SIP` and nothing else.
        const USUAL: u64 = u64::from_le_bytes(*b"sip/2.0/");
        let rest = match raw.as_bytes().first_chunk::<8>() {
            Some(p) if u64::from_le_bytes(*p) | 0x20_2020 == USUAL => {
                raw.get(8..).unwrap_or_default()
            }
            _ => {
                let (name, rest) = raw.split_once('/').ok_or(ParseError::BadVia)?;
                let (version, rest) = rest.split_once('/').ok_or(ParseError::BadVia)?;
                if !name.trim().eq_ignore_ascii_case("SIP") || version.trim() != "2.0" {
                    return Err(ParseError::BadVia);
                }
                rest
            }
        };
        let rest = rest.trim_ascii_start();
        // The transport: a token, ending at whitespace, a `;` or the end.
        let t_end = rest
            .bytes()
            .position(|c| !is_token(c))
            .unwrap_or(rest.len());
        match rest.as_bytes().get(t_end) {
            Some(c) if *c != b';' && !c.is_ascii_whitespace() => return Err(ParseError::BadVia),
            _ => {}
        }
        let (transport, rest) = rest.split_at(t_end);
        if transport.is_empty() {
            return Err(ParseError::BadVia);
        }
        let sb_end = find_byte(rest.as_bytes(), b';').unwrap_or(rest.len());
        let (sent_by, params) = rest.split_at(sb_end);
        let (host, port) = split_host_port(sent_by.trim_ascii()).ok_or(ParseError::BadVia)?;
        Ok(Head {
            raw,
            transport,
            host,
            port,
            params,
        })
    }
}

/// `s.get(from..to)` as two splits, which inline (the range lookup did not, and was a call
/// for each piece of the head).
fn cut(s: &str, from: usize, to: usize) -> Option<&str> {
    Some(s.split_at_checked(to)?.0.split_at_checked(from)?.1)
}

/// The parameters a Via is read for, as they turn up.
#[derive(Debug, Default, PartialEq, Eq)]
struct Found<'a> {
    branch: Option<Option<&'a str>>,
    received: Option<Option<&'a str>>,
    rport: Option<Option<u16>>,
    marks: MarkReader<'a>,
}

impl<'a> Found<'a> {
    /// The parameters of a list with nothing quoted or bracketed, where every `;` separates,
    /// read in one pass: each name up to its `=` or `;`, each value up to the next `;`, as
    /// [`Found::general`] reads such a list (names and values trimmed, empty names ignored).
    fn plain(params: &'a str) -> Result<Found<'a>, ParseError> {
        let mut found = Found::default();
        // `rest` starts after a `;` (or is the text before the first one, empty for a
        // parameter list as the head reader gives it).
        let mut rest = match params.as_bytes().first() {
            Some(b';') => params.get(1..).unwrap_or_default(),
            _ => params,
        };
        loop {
            let b = rest.as_bytes();
            // A name is short: a plain scan finds its end sooner than a word search starts.
            let mut at = 0;
            while b.get(at).is_some_and(|&c| c != b'=' && c != b';') {
                at += 1;
            }
            let (name, tail) = rest.split_at_checked(at).unwrap_or_default();
            let name = name.trim_ascii();
            let next = match tail.as_bytes().first() {
                Some(b'=') => {
                    let value = tail.get(1..).unwrap_or_default();
                    let end = find_byte(value.as_bytes(), b';');
                    let (value, next) = match end {
                        Some(end) => (value.get(..end).unwrap_or_default(), value.get(end + 1..)),
                        None => (value, None),
                    };
                    found.take(name, Some(value.trim_ascii()))?;
                    next
                }
                Some(_) => {
                    found.take(name, None)?;
                    tail.get(1..)
                }
                None => {
                    found.take(name, None)?;
                    None
                }
            };
            match next {
                Some(next) => rest = next,
                None => return Ok(found),
            }
        }
    }

    /// The parameters of any list, through the general walk (`nested`: whether it holds a
    /// quote or bracket); the oracle of [`Found::plain`].
    fn general(params: &'a str, nested: bool) -> Result<Found<'a>, ParseError> {
        let mut found = Found::default();
        let mut bad_rport = false;
        each_param_of(params, nested, |n, v| {
            bad_rport = found.take(n, v).is_err();
            bad_rport
        });
        if bad_rport {
            return Err(ParseError::BadVia);
        }
        Ok(found)
    }

    /// Takes one `name[=value]` parameter.
    fn take(&mut self, n: &'a str, v: Option<&'a str>) -> Result<(), ParseError> {
        match n.len() {
            6 if is_name(n, b"branch") => {
                self.branch = self.branch.or(Some(v));
            }
            8 if is_name(n, b"received") => {
                self.received = self.received.or(Some(v));
            }
            5 if self.rport.is_none() && is_name(n, b"rport") => {
                self.rport = Some(match v {
                    None => None,
                    Some(p) => Some(p.parse::<u16>().map_err(|_| ParseError::BadVia)?),
                });
            }
            _ => self.marks.take(n, v),
        }
        Ok(())
    }
}

/// Whether every `"` opening a quoted-string is closed (a `\\` escapes the next character).
fn quotes_balanced(s: &str) -> bool {
    // Most Vias hold no quote at all: one memchr instead of a walk over every byte.
    let Some(first) = memchr::memchr(b'"', s.as_bytes()) else {
        return true;
    };
    let (mut open, mut escaped) = (false, false);
    for b in s.bytes().skip(first) {
        match b {
            _ if escaped => escaped = false,
            b'\\' if open => escaped = true,
            b'"' => open = !open,
            _ => {}
        }
    }
    !open
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    #[test]
    fn via_entries_parse_with_optional_whitespace() {
        type Fields<'v> = (
            &'v str,
            &'v str,
            Option<u16>,
            Option<&'v str>,
            Option<Option<u16>>,
        );
        let cases: &[(&str, Option<Fields<'_>>)] = &[
            (
                "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1",
                Some(("UDP", "10.0.0.1", Some(5060), Some("z9hG4bK1"), None)),
            ),
            (
                "SIP / 2.0 / TCP  host.example ; branch = z9hG4bK2 ; rport",
                Some(("TCP", "host.example", None, Some("z9hG4bK2"), Some(None))),
            ),
            (
                "sip/2.0/tls h : 5061;rport=1234",
                Some(("tls", "h", Some(5061), None, Some(Some(1234)))),
            ),
            (
                "SIP/2.0/UDP [2001:db8::9]:5060;BRANCH=z9hG4bK3",
                Some(("UDP", "[2001:db8::9]", Some(5060), Some("z9hG4bK3"), None)),
            ),
            (
                "SIP/2.0/UDP [::1];received=::2",
                Some(("UDP", "[::1]", None, None, None)),
            ),
            ("sIp/2.0/udp h", Some(("udp", "h", None, None, None))),
            ("SIP/2.1/UDP h", None),
            ("SIP/2,0/UDP h", None),
            ("SIS/2.0/UDP h", None),
            ("SIP/2.0/UDP", None),
            ("SIP/2.0/U\"P h", None),
            ("SIP/2.0/UDP;branch=x", None),
            ("SIP/2.0/UDP\th", Some(("UDP", "h", None, None, None))),
            ("SIP/2.0/UD电 h", None),
            ("SIP/2.0/UDP ;branch=x", None),
            ("SIP/3.0/UDP h", None),
            ("HTTP/2.0/UDP h", None),
            ("SIP/2.0/UDP h:99999", None),
            ("SIP/2.0/UDP h:abc", None),
            ("SIP/2.0/UDP [::1", None),
            ("SIP/2.0/UDP h;rport=x", None),
            ("SIP/2.0/UDP h h2", None),
            ("", None),
        ];
        for (entry, want) in cases {
            let got = Via::parse(entry)
                .ok()
                .map(|v| (v.transport, v.host, v.port, v.branch, v.rport));
            assert_eq!(got, *want, "{entry}");
        }
        assert_eq!(
            Via::parse("SIP/2.0/UDP [::1];received=::2")
                .unwrap()
                .received,
            Some("::2")
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        #[test]
        fn plain_heads_read_as_the_general_reader_reads_them(
            prefix in "(SIP/2\\.0/|sip/2\\.0/|SiP/2\\.0/|SIP / 2\\.0 /|SIP/2\\.1/|SIS/2\\.0/| SIP/2\\.0/)",
            transport in "(UDP|tcp|TLS|U\"P|SCTP|[a-z!~]{0,3})",
            gap in "( |  |\t| \t|;|)",
            host in "([a-z0-9.-]{0,12}|\\[::1\\]|1\\.2\\.3\\.4|a\\]b|h:|h@x|h h)",
            port in "(|:5060|:0|:65535|:65536|:00001|:123456|: 5|:x|:)",
            params in "(;(branch|BRANCH|received|rport|RPORT|dgn|dgq|dgc|x)(=[a-z0-9.\"<\\[ ]{0,6})?|;|=| |\t){0,5}",
            tail in "( |\t|\r|)",
        ) {
            let entry = format!("{prefix}{transport}{gap}{host}{port}{params}{tail}");
            if let Some(plain) = Head::plain(&entry) {
                proptest::prop_assert_eq!(Ok(plain), Head::general(&entry));
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        #[test]
        fn plain_params_read_as_the_general_walk_reads_them(
            lead in "(;|)",
            params in "((branch|BRANCH|received|rport|RPORT|dgn|dgq|DGC|dgc|x| rport|dgn\t|)(=[a-z0-9.:=; \t-]{0,8})?|;|=| |\t){0,6}",
        ) {
            let params = format!("{lead}{params}");
            proptest::prop_assume!(!is_nested(&params));
            proptest::prop_assert_eq!(Found::plain(&params), Found::general(&params, false));
        }
    }

    #[test]
    fn plain_params_take_the_usual_lists() {
        for params in [
            "",
            ";branch=z9hG4bK-1-1-0",
            ";branch=z9hG4bKx;rport",
            ";received=10.0.0.2;rport=5070;dgn=0;dgq=1;dgc=5090",
            ";;branch=;x;=y;rport=1;rport=x",
            "; branch = z9hG4bK2 ; rport ;",
            ";rport=x",
            ";dgc=99999;DGN=1;dgn=2",
        ] {
            assert_eq!(
                Found::plain(params),
                Found::general(params, false),
                "{params}"
            );
        }
        assert_eq!(
            Found::plain(";branch=b;rport=7").map(|f| (f.branch, f.rport)),
            Ok((Some(Some("b")), Some(Some(7))))
        );
    }

    #[test]
    fn the_plain_reader_takes_the_usual_entries() {
        let cases = [
            "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1-0",
            "SIP/2.0/TCP gw.example.net;branch=z9hG4bKx;rport",
            "sip/2.0/udp 10.0.0.1:5060;received=10.0.0.2;rport=5070;dgn=0;dgq=1;dgc=5090",
            "SIP/2.0/UDP h",
            "SIP/2.0/UDP h;;branch=;x",
        ];
        for entry in cases {
            let plain = Head::plain(entry);
            assert!(plain.is_some(), "{entry}");
            assert_eq!(plain, Head::general(entry).ok(), "{entry}");
        }
        for entry in [
            "SIP/2.0/UDP [::1]:5060",
            "SIP/2.0/UDP  h",
            "SIP/2.0/UDP h ",
            "SIP/2.0/UDP h:123456",
        ] {
            assert_eq!(Head::plain(entry), None, "{entry}");
        }
    }

    #[test]
    fn nested_says_whether_the_parameters_hold_a_quote_or_bracket() {
        for (entry, nested) in [
            ("SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK1;rport", false),
            ("SIP/2.0/UDP 203.0.113.7", false),
            // The brackets of an IPv6 sent-by are not in the parameters.
            ("SIP/2.0/UDP [2001:db8::7]:5062;branch=z9hG4bK1", false),
            ("SIP/2.0/UDP 203.0.113.7;x=\"a;b\";branch=z9hG4bK1", true),
            ("SIP/2.0/UDP 203.0.113.7;maddr=[2001:db8::1]", true),
            ("SIP/2.0/UDP 203.0.113.7;x=<y>", true),
            ("SIP/2.0/TLS 203.0.113.7 ; rport ; branch = z9hG4bK1", false),
        ] {
            assert_eq!(Via::parse(entry).unwrap().nested, nested, "{entry}");
        }
    }

    #[test]
    fn a_via_with_an_unterminated_quote_is_malformed() {
        let cases = [
            ("SIP/2.0/UDP h:5060;branch=z9hG4bK1;x=\"a", false),
            (
                "SIP/2.0/UDP h:5060;branch=z9hG4bK1;x=\"a, SIP/2.0/UDP b",
                false,
            ),
            ("SIP/2.0/UDP h:5060;branch=z9hG4bK1;x=\"a,b\"", true),
            ("SIP/2.0/UDP h:5060;branch=z9hG4bK1;x=\"a\\\"b\"", true),
        ];
        for (entry, ok) in cases {
            assert_eq!(Via::parse(entry).is_ok(), ok, "{entry}");
        }
    }
}
