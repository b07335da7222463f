//! SIP and tel URIs and `host[:port]`, parsed once, here, for every caller: routing (Route and
//! Request-URI targets), number normalization (the user part), config validation (backend
//! URIs, the advertised address) and the CLI. IPv6 brackets are added and removed in this module
//! only. No I/O here.

use crate::peer::Transport;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use super::scan::{find_byte, is_token, param, parse_decimal, rfind_byte, trim};

/// The default SIP port (RFC 3261 §19.1.2).
pub const DEFAULT_PORT: u16 = 5060;

/// A host: an IP literal or a name (never resolved here).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
    /// A host name, as written.
    Name(String),
}

impl Host {
    /// Parses `1.2.3.4`, `[::1]` (or bare `::1`) or a name; `None` for an empty host or one
    /// with characters no host has.
    pub fn parse(s: &str) -> Option<Host> {
        if let Some(inner) = s.strip_prefix('[') {
            return inner
                .strip_suffix(']')
                .and_then(|v6| v6.parse().ok())
                .map(Host::Ip);
        }
        if let Some(v4) = ipv4(s.as_bytes()) {
            return Some(Host::Ip(IpAddr::V4(v4)));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Some(Host::Ip(ip));
        }
        let ok = !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        ok.then(|| Host::Name(s.to_string()))
    }

    /// The IP literal, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Name(_) => None,
        }
    }

    /// Whether two hosts are the same: IPs by value (an IPv4-mapped IPv6 equals its IPv4),
    /// names without regard to case.
    pub fn same(&self, other: &Host) -> bool {
        match (self, other) {
            (Host::Ip(a), Host::Ip(b)) => a.to_canonical() == b.to_canonical(),
            (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// `host[:port]` as in a Via sent-by, a URI or the advertised address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The host.
    pub host: Host,
    /// The port, when written.
    pub port: Option<u16>,
}

/// Why a `host[:port]` or URI is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not host[:port] (IPv6 in brackets: [2001:db8::1]:5060)")]
pub struct HostPortError {
    /// What was given.
    pub input: String,
}

impl HostPort {
    /// Parses `host`, `host:port`, `[v6]`, `[v6]:port`; a port must be 1..=65535 and no
    /// whitespace is allowed (a Via's sent-by, which allows some, is split by the same
    /// `split_host_port`).
    pub fn parse(s: &str) -> Option<HostPort> {
        // An IPv4 address and a short port (a Request-URI's `127.0.0.1:5060`) in one pass,
        // rather than checking the host's bytes and then reading them again as an address.
        if let Some((ip, len)) = ipv4_prefix(s.as_bytes()) {
            let port = match s.as_bytes().get(len..) {
                Some([]) => Some(None),
                Some([b':', digits @ ..]) => port_digits(digits).map(Some),
                // Another shape: the general reader decides.
                _ => None,
            };
            if let Some(port) = port {
                let port = match port {
                    Some(p) => Some(u16::try_from(p).ok().filter(|&p| p != 0)?),
                    None => None,
                };
                return Some(HostPort {
                    host: Host::Ip(IpAddr::V4(ip)),
                    port,
                });
            }
        }
        let (host, port) = match split_plain(s) {
            // Host bytes and digits only: no whitespace to refuse.
            Some(split) => split?,
            None if s.bytes().any(|b| b.is_ascii_whitespace()) => return None,
            None => split_general(s)?,
        };
        Some(HostPort {
            host: Host::parse(host)?,
            port: match port {
                Some(0) => return None,
                p => p,
            },
        })
    }

    /// The address of an IP host (port 5060 when none is written); `None` for a name.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        Some(SocketAddr::new(
            self.host.ip()?,
            self.port.unwrap_or(DEFAULT_PORT),
        ))
    }

    /// The port, 5060 when none is written.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }

    /// Whether `self` and `other` name the same place (default ports filled in).
    pub fn same(&self, other: &HostPort) -> bool {
        self.host.same(&other.host) && self.port_or_default() == other.port_or_default()
    }
}

impl From<SocketAddr> for HostPort {
    fn from(a: SocketAddr) -> HostPort {
        HostPort {
            host: Host::Ip(a.ip()),
            port: Some(a.port()),
        }
    }
}

impl FromStr for HostPort {
    type Err = HostPortError;

    fn from_str(s: &str) -> Result<HostPort, HostPortError> {
        HostPort::parse(s).ok_or_else(|| HostPortError {
            input: s.to_string(),
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => write!(f, "{}", self.host),
        }
    }
}

/// A port's decimal digits, built on the stack.
#[derive(Default)]
struct Digits {
    buf: [u8; 5],
    len: usize,
}

impl Digits {
    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn decimal(&mut self, n: u16) {
        let mut started = false;
        for div in [10_000, 1_000, 100, 10, 1] {
            // n / div % 10 < 10: the cast cannot truncate.
            let d = (n / div % 10) as u8;
            if started || d != 0 || div == 1 {
                started = true;
                self.byte(b'0' + d);
            }
        }
    }

    fn as_str(&self) -> &str {
        // ASCII only.
        std::str::from_utf8(self.buf.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

/// Appends `n` in decimal to `out`.
pub(crate) fn push_decimal(out: &mut String, n: u16) {
    let mut text = Digits::default();
    text.decimal(n);
    out.push_str(text.as_str());
}

/// Splits `host[:port]` (IPv6 in brackets; whitespace around the `:` as a Via's sent-by allows,
/// RFC 3261 §20.42) into the host as written and the port, without judging the host beyond its
/// characters: the borrowed form a parsed Via keeps. `None` when malformed.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    split_plain(s).unwrap_or_else(|| split_general(s))
}

/// [`split_host_port`] for every shape.
fn split_general(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let close = find_byte(s.as_bytes(), b']')?;
        let (host, after) = s.split_at(close + 1);
        let after = after.trim_ascii_start();
        if after.is_empty() {
            (host, None)
        } else {
            (host, Some(after.strip_prefix(':')?))
        }
    } else {
        match find_byte(s.as_bytes(), b':') {
            Some(i) => (
                s.get(..i)?.trim_ascii_end(),
                Some(s.get(i + 1..).unwrap_or_default()),
            ),
            None => (s, None),
        }
    };
    if host.is_empty() || !host.bytes().all(|b| HOST[usize::from(b)]) {
        return None;
    }
    let port = match port {
        Some(p) => Some(u16::try_from(parse_decimal(p)?).ok()?),
        None => None,
    };
    Some((host, port))
}

/// [`split_host_port`] for the usual shape, `host` or `host:port` with host bytes up to the
/// `:` and one to five digits after it, read in one pass; `None` when `s` has another shape
/// (brackets, whitespace, a long port), which the general reader then sees.
fn split_plain(s: &str) -> Option<Option<(&str, Option<u16>)>> {
    let bytes = s.as_bytes();
    if bytes.first() == Some(&b'[') {
        return None;
    }
    let mut colon = bytes.len();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b':' {
            colon = i;
            break;
        }
        if !HOST[usize::from(b)] {
            return None;
        }
    }
    let host = s.get(..colon)?;
    if host.is_empty() {
        return Some(None);
    }
    let Some(digits) = bytes.get(colon + 1..) else {
        return Some(Some((host, None)));
    };
    let port = port_digits(digits)?;
    Some(u16::try_from(port).ok().map(|p| (host, Some(p))))
}

/// The value of one to five ASCII digits; `None` for anything else.
fn port_digits(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 5 {
        return None;
    }
    digits.iter().try_fold(0u32, |port, &d| {
        d.is_ascii_digit().then(|| port * 10 + u32::from(d - b'0'))
    })
}

/// `s` split around the byte at `at` (an ASCII separator a byte search found), or all of `s`
/// and nothing.
fn cut(s: &str, at: Option<usize>) -> (&str, &str) {
    match at {
        Some(i) => (
            s.get(..i).unwrap_or_default(),
            s.get(i + 1..).unwrap_or_default(),
        ),
        None => (s, ""),
    }
}

/// A URI's first four bytes as one number, the 0x20 bit set in the first three to fold the
/// case of their letters (only `S` and `s` fold to `s`). The fourth is left as it is (`:` has
/// the bit already, and 0x1a would fold to it): a caller folds it for the `s` of `sips`.
fn head4(text: &str) -> Option<u32> {
    Some(u32::from_le_bytes(*text.as_bytes().first_chunk::<4>()?) | 0x0020_2020)
}

/// Whether a plain URI's parameters are ones the general reader reads alike: it would cut at
/// a `?` or `@` there, or read inside `<...>`, or trim.
fn plain_params(params: &str) -> bool {
    let odd = |c: u8| matches!(c, b'@' | b'?' | b'<' | b'>');
    params.is_empty()
        || !(params.bytes().any(odd)
            || params.bytes().last().is_some_and(|c| !c.is_ascii_graphic()))
}

/// The length of the usual `host[:port]` at the start of `b`, when the end or a `;` follows
/// it: a host of letters, digits and `-._` (a name, or an IPv4 address: [`Host::parse`] takes
/// it either way) and a port of one to five digits from 1 to 65535, which [`HostPort::parse`]
/// takes. `None` for any other shape, which `HostPort::parse` then judges.
fn usual_host_port(b: &[u8]) -> Option<usize> {
    let host = b.iter().take_while(|&&c| NAME[usize::from(c)]).count();
    if host == 0 {
        return None;
    }
    let after = b.get(host + 1..).unwrap_or_default();
    match b.get(host) {
        None | Some(b';') => return Some(host),
        Some(b':') => {}
        Some(_) => return None,
    }
    let (mut n, mut port) = (0, 0u32);
    while let Some(d) = after.get(n).filter(|d| d.is_ascii_digit()) {
        if n == 5 {
            return None;
        }
        port = port * 10 + u32::from(d - b'0');
        n += 1;
    }
    let ends = matches!(after.get(n), None | Some(b';'));
    (ends && n > 0 && (1..=65535).contains(&port)).then_some(host + 1 + n)
}

/// The bytes of a host name as [`Host::parse`] takes it: letters, digits and `-._`.
static NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_');
        b += 1;
    }
    t
};

/// Whether `b` may be part of a host as written (see [`HOST`]).
pub(crate) fn is_host_byte(b: u8) -> bool {
    HOST[usize::from(b)]
}

/// The bytes a host as written may hold: letters, digits, `-._` and, for IPv6, `:[]`.
static HOST: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b':' | b'[' | b']');
        b += 1;
    }
    t
};

/// A dotted-quad IPv4 address, read in one pass: exactly what `Ipv4Addr`'s `FromStr` accepts
/// (four decimal octets up to 255, no leading zeros); `None` for anything else, which the
/// general parser then sees.
fn ipv4(s: &[u8]) -> Option<std::net::Ipv4Addr> {
    ipv4_prefix(s).and_then(|(ip, len)| (len == s.len()).then_some(ip))
}

/// The dotted-quad IPv4 address at the start of `s` and its length in bytes.
// Inlined into both readers: the call would cost about what reading the octets does.
#[inline(always)]
fn ipv4_prefix(s: &[u8]) -> Option<(std::net::Ipv4Addr, usize)> {
    let digit = |at: usize| s.get(at).filter(|b| b.is_ascii_digit()).map(|b| b - b'0');
    let mut octets = [0u8; 4];
    let mut at = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            if s.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
        let first = digit(at)?;
        at += 1;
        let mut value = u16::from(first);
        // "01" is not an octet: after a leading 0 the next byte must be a dot (or the end).
        if first != 0 {
            for _ in 0..2 {
                let Some(d) = digit(at) else { break };
                value = value * 10 + u16::from(d);
                at += 1;
            }
        }
        *octet = u8::try_from(value).ok()?;
    }
    Some((std::net::Ipv4Addr::from(octets), at))
}

/// A URI scheme dualgate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
}

/// A `sip:`, `sips:` or `tel:` URI, borrowed from the text it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri<'a> {
    /// The scheme.
    pub scheme: Scheme,
    /// The user part without password (`sip:USER@host`), or a tel URI's number; it may carry
    /// `;user-params` (RFC 3261 §19.1.1).
    pub user: Option<&'a str>,
    /// Where a sip/sips URI points; `None` for tel.
    pub host_port: Option<HostPort>,
    /// The URI parameters after the host (sip) or the number (tel), without the leading `;`.
    pub params: &'a str,
}

impl<'a> Uri<'a> {
    /// Parses a URI, bare or as a name-addr (`"Name" <sip:...>`); headers (`?...`) are
    /// ignored. `None` when it is not a sip/sips/tel URI or a sip URI has no valid host.
    pub fn parse(text: &'a str) -> Option<Uri<'a>> {
        match Uri::plain(text) {
            Some(uri) => Some(uri),
            None => Uri::general(text),
        }
    }

    /// A Request-URI as carriers write it, `sip:USER@HOST[:PORT][;params]`, read in one pass:
    /// `sip:` or `sips:` (any case), a user of token bytes, one `@`, a `host[:port]` that
    /// [`HostPort::parse`] takes, and parameters without `@ ? < >` that do not end in
    /// whitespace. `None` for any other text (and for a host `HostPort::parse` refuses), which
    /// [`Uri::general`] then reads; for the texts it takes, it gives what that gives.
    fn plain(text: &'a str) -> Option<Uri<'a>> {
        let (scheme, user, rest) = Uri::plain_user_at(text)?;
        let (host_port, params) = cut(rest, find_byte(rest.as_bytes(), b';'));
        if !plain_params(params) {
            return None;
        }
        // A host `HostPort::parse` refuses holds none of those bytes: the general reader may
        // still find a URI (before a `?`, say), so it decides.
        let host_port = HostPort::parse(host_port)?;
        Some(Uri {
            scheme,
            user: Some(user),
            host_port: Some(host_port),
            params,
        })
    }

    /// The scheme, user and parameters of a text [`Uri::plain`] reads, which are what
    /// [`Uri::parse`] gives for it: [`Uri::plain_scheme`], the user's token bytes up to its
    /// `@`, then [`Uri::plain_tail`]. `None` exactly when [`Uri::plain`] gives `None`.
    #[cfg(test)]
    fn plain_user(text: &'a str) -> Option<(Scheme, &'a str, &'a str)> {
        let (scheme, user, rest) = Uri::plain_user_at(text)?;
        Some((scheme, user, Uri::plain_tail(rest)?))
    }

    /// What follows the user's `@` in a text [`Uri::plain`] reads: its parameters, found
    /// without building its host, for a reader of the dialled number. The usual host (a name
    /// or IPv4 address and a short port) is checked in the pass that finds the parameters; any
    /// other is judged by [`HostPort::parse`]. `None` when [`Uri::plain`] would refuse `rest`.
    pub(crate) fn plain_tail(rest: &'a str) -> Option<&'a str> {
        let params = match usual_host_port(rest.as_bytes()) {
            // The host ends at the end or at a `;`.
            Some(n) => rest.get(n + 1..).unwrap_or_default(),
            None => {
                let (host_port, params) = cut(rest, find_byte(rest.as_bytes(), b';'));
                HostPort::parse(host_port)?;
                params
            }
        };
        plain_params(params).then_some(params)
    }

    /// The scheme of a text [`Uri::plain`] may read (`sip:` or `sips:`, any case) and where
    /// its user starts.
    pub(crate) fn plain_scheme(text: &str) -> Option<(Scheme, usize)> {
        const SIP: u32 = u32::from_le_bytes(*b"sip:");
        const SIPS: u32 = u32::from_le_bytes(*b"sips");
        let head = head4(text)?;
        if head == SIP {
            Some((Scheme::Sip, 4))
        } else if head | 0x2000_0000 == SIPS && text.as_bytes().get(4) == Some(&b':') {
            Some((Scheme::Sips, 5))
        } else {
            None
        }
    }

    /// The scheme of a plain URI, its user (token bytes) and the text after the user's `@`.
    fn plain_user_at(text: &'a str) -> Option<(Scheme, &'a str, &'a str)> {
        let (scheme, user_at) = Uri::plain_scheme(text)?;
        let b = text.as_bytes();
        let mut at = user_at;
        while b.get(at).is_some_and(|&c| is_token(c)) {
            at += 1;
        }
        if at == user_at || b.get(at) != Some(&b'@') {
            return None;
        }
        Some((scheme, text.get(user_at..at)?, text.get(at + 1..)?))
    }

    /// [`Uri::parse`] for every shape.
    fn general(text: &'a str) -> Option<Uri<'a>> {
        // Byte searches for ASCII separators: char boundaries either side.
        let bytes = text.as_bytes();
        let uri = trim(match find_byte(bytes, b'<').zip(rfind_byte(bytes, b'>')) {
            Some((a, b)) if a < b => text.get(a + 1..b)?,
            _ => text,
        });
        // The scheme from the first four bytes (`head4`).
        const TEL: u32 = u32::from_le_bytes(*b"tel:");
        let (scheme, rest) = match Uri::plain_scheme(uri) {
            Some((scheme, at)) => (scheme, uri.get(at..)?),
            None if head4(uri) == Some(TEL) => (Scheme::Tel, uri.get(4..)?),
            None => return None,
        };
        let rest = cut(rest, find_byte(rest.as_bytes(), b'?')).0;
        if scheme == Scheme::Tel {
            let (number, params) = cut(rest, find_byte(rest.as_bytes(), b';'));
            return Some(Uri {
                scheme,
                user: Some(number),
                host_port: None,
                params,
            });
        }
        let (user, after_user) = match rfind_byte(rest.as_bytes(), b'@') {
            Some(i) => {
                let userinfo = rest.get(..i)?;
                // RFC 3261 §19.1.1: userinfo = user [":" password].
                (
                    Some(cut(userinfo, find_byte(userinfo.as_bytes(), b':')).0),
                    rest.get(i + 1..)?,
                )
            }
            None => (None, rest),
        };
        let (host_port, params) = cut(after_user, find_byte(after_user.as_bytes(), b';'));
        Some(Uri {
            scheme,
            user,
            host_port: Some(HostPort::parse(host_port)?),
            params,
        })
    }

    /// The value of URI parameter `name`: `Some(None)` when present without a value.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        param(self.params, name)
    }

    /// The `transport` parameter, when it names one dualgate speaks.
    pub fn transport(&self) -> Option<Transport> {
        self.param("transport")
            .flatten()
            .and_then(Transport::from_token)
    }

    /// Where a sip/sips URI with an IP host sends to: its address (port 5060 by default) and
    /// transport (UDP by default).
    pub fn ip_target(&self) -> Option<(SocketAddr, Transport)> {
        Some((
            self.host_port.as_ref()?.socket_addr()?,
            self.transport().unwrap_or(Transport::Udp),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sip::fixture::usual_or;

    /// 200 000 pseudo-random strings of 1 to `max_len` bytes over `alphabet` (at most 8
    /// characters: three bits of the state pick each), the same ones for the same `seed`.
    fn strings(alphabet: &[u8], max_len: u64, seed: u64) -> impl Iterator<Item = Vec<u8>> + '_ {
        let mut state = seed;
        (0..200_000).map(move |_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = 1 + (state % max_len) as usize;
            (0..len)
                .map(|i| alphabet[((state >> (i * 3)) % alphabet.len() as u64) as usize])
                .collect()
        })
    }

    #[test]
    fn the_ipv4_fast_path_accepts_exactly_what_the_standard_parser_accepts() {
        let cases = [
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.0",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.4 ",
            "a.b.c.d",
            "1000.1.1.1",
            "10.0.0.255",
            "192.168.001.1",
            "",
            "1.2.3.-4",
            "9.9.9.9",
        ];
        for c in cases {
            assert_eq!(ipv4(c.as_bytes()), c.parse().ok(), "{c:?}");
        }
        // 200 000 strings of 1–15 characters over the characters that matter.
        for s in strings(b"0129.5", 15, 0x2545_f491) {
            let text = std::str::from_utf8(&s).unwrap();
            assert_eq!(ipv4(&s), text.parse().ok(), "{text:?}");
        }
    }

    #[test]
    fn the_plain_host_port_reader_agrees_with_the_general_one() {
        let pieces = ["a", "1", "0", ":", "[", "]", " ", ".", "9", "电"];
        let mut checked = 0;
        // Every string of up to 7 pieces.
        let mut stack: Vec<String> = vec![String::new()];
        while let Some(s) = stack.pop() {
            if let Some(plain) = split_plain(&s) {
                assert_eq!(plain, split_general(&s), "{s:?}");
                checked += 1;
            }
            if s.chars().count() < 7 {
                stack.extend(pieces.iter().map(|p| format!("{s}{p}")));
            }
        }
        assert!(checked > 100_000, "{checked}");
        for s in ["h:65535", "h:65536", "h:00001", "h:99999", "1.2.3.4:5060"] {
            assert_eq!(split_plain(s), Some(split_general(s)), "{s}");
        }
    }

    #[test]
    fn the_ipv4_host_port_shortcut_agrees_with_the_general_reader() {
        let general = |s: &str| {
            if s.bytes().any(|b| b.is_ascii_whitespace()) {
                return None;
            }
            let (host, port) = split_general(s)?;
            let host = Host::parse(host)?;
            let port = match port {
                Some(0) => return None,
                p => p,
            };
            Some(HostPort { host, port })
        };
        for text in [
            "1.2.3.4:5060",
            "1.2.3.4",
            "1.2.3.4:0",
            "1.2.3.4:00000",
            "1.2.3.4:65536",
            "1.2.3.4:05060",
            "1.2.3.4:",
            "1.2.3.4x",
            "1.2.3.4.5",
            "1.2.3.256:5",
            "1.2.3.4:5:6",
            "1.2.3.4: 5",
        ] {
            assert_eq!(HostPort::parse(text), general(text), "{text:?}");
        }
        let mut shortcut = 0;
        for s in strings(b"0129.:5a", 18, 0x9e37_79b9) {
            let text = std::str::from_utf8(&s).unwrap();
            assert_eq!(HostPort::parse(text), general(text), "{text:?}");
        }
        // Every address of these octets with each of these endings.
        let octets = ["0", "1", "01", "255", "256", "1000"];
        let endings = [
            "", ":5060", ":0", ":65536", ":05060", ":", "x", ".5", ":5:6", ":9a",
        ];
        for a in octets {
            for b in octets {
                for c in octets {
                    for d in octets {
                        for end in endings {
                            let text = format!("{a}.{b}.{c}.{d}{end}");
                            assert_eq!(HostPort::parse(&text), general(&text), "{text:?}");
                            shortcut += usize::from(ipv4_prefix(text.as_bytes()).is_some());
                        }
                    }
                }
            }
        }
        assert!(shortcut > 1_000, "{shortcut}");
    }

    #[test]
    fn host_ports_parse_and_print_with_brackets_only_for_ipv6() {
        let cases: &[(&str, Option<&str>)] = &[
            ("127.0.0.1:5060", Some("127.0.0.1:5060")),
            ("127.0.0.1", Some("127.0.0.1")),
            ("[::1]:5091", Some("[::1]:5091")),
            ("[::1]", Some("[::1]")),
            ("gw.example:5061", Some("gw.example:5061")),
            ("GW.example", Some("GW.example")),
            ("", None),
            (":5060", None),
            ("h:0", None),
            ("h:65536", None),
            ("h:x", None),
            ("h:", None),
            ("h:+80", None),
            ("[::1", None),
            ("[::1]x", None),
            ("::1", None), // bare IPv6 with a port is ambiguous: brackets required
            ("a b", None),
            ("u@h", None),
        ];
        for (input, want) in cases {
            let got = HostPort::parse(input).map(|h| h.to_string());
            assert_eq!(got.as_deref(), *want, "{input}");
        }
        assert_eq!(
            HostPort::parse("[::1]:5091").unwrap().socket_addr(),
            Some("[::1]:5091".parse().unwrap())
        );
        assert_eq!(
            HostPort::parse("10.0.0.1").unwrap().socket_addr(),
            Some("10.0.0.1:5060".parse().unwrap())
        );
        assert_eq!(HostPort::parse("gw").unwrap().socket_addr(), None);
        assert!("bad host".parse::<HostPort>().is_err());
        // Moved from the config validator's own host:port splitter, which this replaces.
        let split = |s: &str| HostPort::parse(s).map(|h| (h.host.to_string(), h.port));
        assert_eq!(
            split("gw.example:5070"),
            Some(("gw.example".to_string(), Some(5070)))
        );
        assert_eq!(
            split("[2001:db8::1]:5060"),
            Some(("[2001:db8::1]".to_string(), Some(5060)))
        );
        assert_eq!(split("10.0.0.1"), Some(("10.0.0.1".to_string(), None)));
        assert_eq!(split("10.0.0.1:x"), None);
        assert_eq!(split(""), None);
    }

    #[test]
    fn same_host_port_ignores_case_default_ports_and_mapped_ipv4() {
        let hp = |s: &str| HostPort::parse(s).unwrap();
        assert!(hp("GW.example").same(&hp("gw.example:5060")));
        assert!(!hp("gw.example:5061").same(&hp("gw.example")));
        assert!(
            HostPort::from("[::ffff:10.0.0.1]:5060".parse::<SocketAddr>().unwrap())
                .same(&hp("10.0.0.1"))
        );
        assert!(!hp("10.0.0.1").same(&hp("gw.example")));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(8192))]
        #[test]
        fn plain_uris_read_as_the_general_reader_reads_them(
            lead in usual_or("", "( |<|\"x\" <|\t)"),
            scheme in usual_or("(sip:|SIP:|sIpS:|sips:)", "(sips|sip|tel:|sipx:|si:|TEL:)"),
            user in usual_or(
                "[0-9+%.a-zA-Z-]{1,12}",
                "[0-9a-z+%.;:!~*'()&=$,/ \"<>@?\\[\\]\u{4e2d}-]{0,8}",
            ),
            at in usual_or("@", "(@@||:@|:pw@)"),
            host in usual_or(
                "(127\\.0\\.0\\.1|10\\.1\\.2\\.3|\\[::1\\]|gw\\.example|GW|a_b)",
                "(1\\.2\\.3\\.256|\\[::1|h h|h\\?x|h>|h<|\u{4e2d}|h@x|)",
            ),
            port in usual_or("(|:5060|:5061|:65535)", "(:0|:65536|:|:x|: 1|:05060)"),
            params in proptest::collection::vec(
                usual_or(
                    ";(user=phone|transport=(udp|TCP)|lr|x)",
                    "(;(user|x)=[a-zA-Z0-9@?<>.+ \"-]{0,5}|;|\\?x=1|@|<|>)",
                ),
                0..4,
            ),
            tail in usual_or("", "( |\t|\r|>|\u{4e2d}|\u{3000}|\u{b})"),
        ) {
            let params = params.concat();
            let text = format!("{lead}{scheme}{user}{at}{host}{port}{params}{tail}");
            let parts = Uri::plain(&text).map(|u| (u.scheme, u.user.unwrap_or("?"), u.params));
            proptest::prop_assert_eq!(Uri::plain_user(&text), parts, "{:?}", text);
            if let Some(plain) = Uri::plain(&text) {
                proptest::prop_assert_eq!(Some(plain), Uri::general(&text), "{:?}", text);
            }
        }

        #[test]
        fn the_usual_host_port_is_one_the_plain_reader_takes(
            host in usual_or(
                "[a-z0-9.]{1,12}",
                "[a-zA-Z0-9._:;@\\[\\] \u{4e2d}-]{0,10}",
            ),
            port in usual_or(
                "(|:5060|:5061|:[0-9]{1,5})",
                "(:0|:00000|:65536|:|:x|: 1|:[0-9]{6}|:1;)",
            ),
            params in usual_or("(|;user=phone|;lr)", "(;|;;|;x@y|;x |\\?x|:5|@h)"),
        ) {
            let text = format!("sip:12356@{host}{port}{params}");
            let rest = text.get(10..).unwrap();
            let plain = Uri::plain(&text).map(|u| (u.scheme, u.user.unwrap_or("?"), u.params));
            proptest::prop_assert_eq!(Uri::plain_user(&text), plain, "{:?}", text);
            if let Some(n) = usual_host_port(rest.as_bytes()) {
                let (host_port, after) = rest.split_at(n);
                proptest::prop_assert!(HostPort::parse(host_port).is_some(), "{:?}", text);
                proptest::prop_assert!(after.is_empty() || after.starts_with(';'), "{:?}", text);
                proptest::prop_assert!(!host_port.contains(';'), "{:?}", text);
            }
        }
    }

    #[test]
    fn the_usual_host_port_agrees_with_the_host_port_reader() {
        // 200 000 strings of 1–12 characters over the characters that matter.
        let mut usual = 0;
        for s in strings(b"09.:;a5 ", 12, 0x5eed_1234) {
            let text = std::str::from_utf8(&s).unwrap();
            let cut = text.find(';').unwrap_or(text.len());
            if let Some(n) = usual_host_port(&s) {
                usual += 1;
                assert_eq!(n, cut, "{text:?}");
                assert!(HostPort::parse(&text[..cut]).is_some(), "{text:?}");
            }
            let uri = format!("sip:1@{text}");
            let plain = Uri::plain(&uri).map(|u| (u.scheme, u.user.unwrap_or("?"), u.params));
            assert_eq!(Uri::plain_user(&uri), plain, "{uri:?}");
        }
        assert!(usual > 10_000, "{usual}");
        for (text, want) in [
            ("127.0.0.1:5060", Some(14)),
            ("127.0.0.1", Some(9)),
            ("gw.example;lr", Some(10)),
            ("h:65535;x", Some(7)),
            ("h:65536", None),
            ("h:0", None),
            ("h:00000", None),
            ("h:123456", None),
            ("h:", None),
            ("[::1]:5060", None),
            ("h h", None),
            ("h:5060x", None),
            (":5060", None),
            ("", None),
        ] {
            assert_eq!(usual_host_port(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn the_plain_uri_reader_takes_the_usual_request_uris() {
        for text in [
            "sip:12356@127.0.0.1:5060",
            "sip:059185666661@gw.example.net;user=phone",
            "SIPS:+8659185666661@10.0.0.1",
            "sip:%2B8612356@[2001:db8::1]:5061;transport=tcp;lr",
            "sip:12356@gw;",
        ] {
            let plain = Uri::plain(text);
            assert!(plain.is_some(), "{text}");
            assert_eq!(plain, Uri::general(text), "{text}");
        }
        for text in [
            "sip:059185666661:secret@gw",
            "sip:85666661;phone-context=+86-591@gw",
            "<sip:12356@gw>",
            "sip:12356@gw?X=1",
            "sip:12356@gw ",
            "sip:12356@gw;x=a@b",
            "sip:127.0.0.1:5060;lr",
            "sip:@gw",
            "tel:+8612356",
            "sip:12356@gw:0",
        ] {
            assert_eq!(Uri::plain(text), None, "{text}");
        }
    }

    #[test]
    fn uris_give_user_host_port_params_and_transport() {
        let u = Uri::parse("\"x\" <sip:queue@[::1]:5091;transport=TCP;lr>").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some("queue"));
        assert_eq!(u.host_port.as_ref().unwrap().to_string(), "[::1]:5091");
        assert_eq!(u.transport(), Some(Transport::Tcp));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(
            u.ip_target(),
            Some(("[::1]:5091".parse().unwrap(), Transport::Tcp))
        );
        let u = Uri::parse("SIPS:+8659185666661:secret@gw.example;user=phone?X=1").unwrap();
        assert_eq!(
            (u.scheme, u.user, u.params),
            (Scheme::Sips, Some("+8659185666661"), "user=phone")
        );
        assert_eq!(u.ip_target(), None, "a name is not resolved");
        let u = Uri::parse("tel:85666661;phone-context=+86-591").unwrap();
        assert_eq!(
            (u.scheme, u.user, u.params, u.host_port),
            (Scheme::Tel, Some("85666661"), "phone-context=+86-591", None)
        );
        let u = Uri::parse("sip:127.0.0.1:5060;lr").unwrap();
        assert_eq!(u.user, None);
        // Moved from the proxy's own URI reader, which this replaces: (host, port, transport).
        let target = |s: &str| {
            Uri::parse(s).and_then(|u| {
                let t = u.transport();
                u.host_port.map(|hp| (hp.host.to_string(), hp.port, t))
            })
        };
        type Target<'a> = Option<(&'a str, Option<u16>, Option<Transport>)>;
        let cases: &[(&str, Target<'_>)] = &[
            (
                "<sip:127.0.0.1:5060;lr>",
                Some(("127.0.0.1", Some(5060), None)),
            ),
            (
                "<sip:gw.example;transport=tcp;lr>",
                Some(("gw.example", None, Some(Transport::Tcp))),
            ),
            (
                "\"x\" <sip:queue@[::1]:5091;transport=TCP>",
                Some(("[::1]", Some(5091), Some(Transport::Tcp))),
            ),
            (
                "sip:13800000000@10.0.0.1:5061",
                Some(("10.0.0.1", Some(5061), None)),
            ),
            ("tel:+8612356", None),
            ("电话", None),
            ("sip电话@x", None),
            ("sips:电话@[::1]", Some(("[::1]", None, None))),
            ("sip:@", None),
        ];
        for (uri, want) in cases {
            let want = want.map(|(h, p, t)| (h.to_string(), p, t));
            assert_eq!(target(uri), want, "{uri}");
        }
        let schemes = [
            ("SIP:h", Some(Scheme::Sip)),
            ("sIp:h", Some(Scheme::Sip)),
            ("sipS:h", Some(Scheme::Sips)),
            ("SIPS:h", Some(Scheme::Sips)),
            ("TeL:1", Some(Scheme::Tel)),
            ("sip\u{1a}h", None),
            ("sips\u{1a}h", None),
            ("sips", None),
            ("sip", None),
            ("tel\u{1a}1", None),
            ("si电:h", None),
        ];
        for (uri, want) in schemes {
            assert_eq!(Uri::parse(uri).map(|u| u.scheme), want, "{uri:?}");
        }
        for bad in [
            "",
            "http://x",
            "sip:",
            "sip:@",
            "sip:u@",
            "电话",
            "sip电话@x",
            "sip:a b",
        ] {
            assert_eq!(Uri::parse(bad), None, "{bad}");
        }
        assert_eq!(
            Uri::parse("sips:电话@[::1]")
                .unwrap()
                .host_port
                .unwrap()
                .to_string(),
            "[::1]"
        );
    }
}
