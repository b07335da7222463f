//! Header names: the ones the gateway reads or edits get a variant, compact forms (RFC 3261
//! §7.3.3) map to their long names, and everything else is kept as written. No I/O here.

/// How many names have a variant of their own (the size of the message's header index).
pub(crate) const KNOWN: usize = 13;

/// Header names the gateway reads or edits; everything else is `Other` and passes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderName<'a> {
    /// `Via` / `v`
    Via,
    /// `From` / `f`
    From,
    /// `To` / `t`
    To,
    /// `Call-ID` / `i`
    CallId,
    /// `CSeq`
    CSeq,
    /// `Max-Forwards`
    MaxForwards,
    /// `Content-Length` / `l`
    ContentLength,
    /// `Content-Type` / `c`
    ContentType,
    /// `Contact` / `m`
    Contact,
    /// `Route`
    Route,
    /// `Record-Route`
    RecordRoute,
    /// `History-Info` (RFC 7044)
    HistoryInfo,
    /// `Diversion` (RFC 5806)
    Diversion,
    /// Any other name as written, or the long form of another compact name (`k` -> `Supported`).
    Other(&'a str),
}

impl<'a> HeaderName<'a> {
    /// Maps a header name as written (any case, compact or long) to its canonical form.
    pub fn from_wire(name: &'a str) -> HeaderName<'a> {
        HeaderName::read(name)
    }

    /// [`HeaderName::from_wire`], inlined where the parser reads every header line.
    #[inline(always)]
    pub(crate) fn read(name: &'a str) -> HeaderName<'a> {
        HeaderName::known(name.as_bytes()).unwrap_or(HeaderName::Other(name))
    }

    /// The name a header name as written maps to when it is not kept as written: a variant, or
    /// the long form of a compact name; `None` for any other name (`Other` as written).
    #[inline(always)]
    pub(crate) fn known(b: &[u8]) -> Option<HeaderName<'static>> {
        if let [c] = b {
            // RFC 3261 §7.3.3 and the IANA compact-form registry.
            return Some(match c.to_ascii_lowercase() {
                b'v' => HeaderName::Via,
                b'f' => HeaderName::From,
                b't' => HeaderName::To,
                b'i' => HeaderName::CallId,
                b'm' => HeaderName::Contact,
                b'l' => HeaderName::ContentLength,
                b'c' => HeaderName::ContentType,
                b'e' => HeaderName::Other("Content-Encoding"),
                b'k' => HeaderName::Other("Supported"),
                b's' => HeaderName::Other("Subject"),
                b'o' => HeaderName::Other("Event"),
                b'r' => HeaderName::Other("Refer-To"),
                b'b' => HeaderName::Other("Referred-By"),
                b'u' => HeaderName::Other("Allow-Events"),
                b'x' => HeaderName::Other("Session-Expires"),
                _ => return None,
            });
        }
        // The length and the first letter pick one candidate (Call-ID and Contact: the
        // second letter), so a name costs one compare against a literal, not a walk over
        // every known name.
        let second = b.get(1).map_or(0, |c| c | 0x20);
        Some(match (b.len(), b.first().map_or(0, |c| c | 0x20)) {
            (2, b't') if same_letters(b, b"To") => HeaderName::To,
            (3, b'v') if same_letters(b, b"Via") => HeaderName::Via,
            (4, b'f') if same_letters(b, b"From") => HeaderName::From,
            (4, b'c') if same_letters(b, b"CSeq") => HeaderName::CSeq,
            (5, b'r') if same_letters(b, b"Route") => HeaderName::Route,
            (7, b'c') if second == b'a' && same_letters(b, b"Call-ID") => HeaderName::CallId,
            (7, b'c') if same_letters(b, b"Contact") => HeaderName::Contact,
            (9, b'd') if same_letters(b, b"Diversion") => HeaderName::Diversion,
            (12, b'm') if same_letters(b, b"Max-Forwards") => HeaderName::MaxForwards,
            (12, b'c') if same_letters(b, b"Content-Type") => HeaderName::ContentType,
            (12, b'r') if same_letters(b, b"Record-Route") => HeaderName::RecordRoute,
            (12, b'h') if same_letters(b, b"History-Info") => HeaderName::HistoryInfo,
            (14, b'c') if same_letters(b, b"Content-Length") => HeaderName::ContentLength,
            _ => return None,
        })
    }

    /// Position of a known name in [`KNOWN`]-sized tables (the message's header index);
    /// `None` for `Other`.
    #[inline]
    pub(crate) fn slot(&self) -> Option<usize> {
        Some(match self {
            HeaderName::Via => 0,
            HeaderName::From => 1,
            HeaderName::To => 2,
            HeaderName::CallId => 3,
            HeaderName::CSeq => 4,
            HeaderName::MaxForwards => 5,
            HeaderName::ContentLength => 6,
            HeaderName::ContentType => 7,
            HeaderName::Contact => 8,
            HeaderName::Route => 9,
            HeaderName::RecordRoute => 10,
            HeaderName::HistoryInfo => 11,
            HeaderName::Diversion => 12,
            HeaderName::Other(_) => return None,
        })
    }

    /// The canonical long name (`Call-ID`, `Record-Route`, or an `Other` name as held).
    pub fn as_str(&self) -> &'a str {
        match self {
            HeaderName::Via => "Via",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::CallId => "Call-ID",
            HeaderName::CSeq => "CSeq",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::Contact => "Contact",
            HeaderName::Route => "Route",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::HistoryInfo => "History-Info",
            HeaderName::Diversion => "Diversion",
            HeaderName::Other(s) => s,
        }
    }

    /// Whether two names denote the same header (`Other` names compare case-insensitively,
    /// and an `Other` spelling of a known or compact name matches that name).
    pub fn same(&self, other: &HeaderName<'_>) -> bool {
        match (self.canonical(), other.canonical()) {
            (HeaderName::Other(x), HeaderName::Other(y)) => x.eq_ignore_ascii_case(y),
            (x, y) => std::mem::discriminant(&x) == std::mem::discriminant(&y),
        }
    }

    /// The same name with an `Other` spelling of a known or compact name mapped to its variant.
    pub fn canonical(self) -> HeaderName<'a> {
        match self {
            HeaderName::Other(s) => HeaderName::from_wire(s),
            known => known,
        }
    }
}

/// Case-insensitive equality of a name with a known one, eight bytes at a time. `known`
/// holds only letters and bytes below 0x40 (`-`, `/`, digits, SP): bit 5 is set in both words
/// where `known` has a letter (bit 6 set) and left alone elsewhere, so a letter matches
/// either case and any other byte only itself; this is `eq_ignore_ascii_case` for any bytes.
#[inline(always)]
pub(crate) fn same_letters(name: &[u8], known: &[u8]) -> bool {
    if name.len() != known.len() {
        return false;
    }
    // Two loads that may overlap, the first `N` bytes and the last `N`: a name of 2 to 16
    // bytes costs two compares of 2, 4 or 8 bytes (one word each), whatever its length.
    fn same_ends<const N: usize>(name: &[u8], known: &[u8], word: fn([u8; N]) -> u64) -> bool {
        let ends = |b: &[u8]| -> Option<(u64, u64)> {
            let first: [u8; N] = b.get(..N)?.try_into().ok()?;
            let last: [u8; N] = b.get(b.len().checked_sub(N)?..)?.try_into().ok()?;
            Some((word(first), word(last)))
        };
        let same = |n: u64, k: u64| {
            let case = (k & 0x4040_4040_4040_4040) >> 1;
            n | case == k | case
        };
        matches!((ends(name), ends(known)), (Some((n0, n1)), Some((k0, k1))) if same(n0, k0) && same(n1, k1))
    }
    match name.len() {
        8..=16 => same_ends::<8>(name, known, u64::from_le_bytes),
        4..=7 => same_ends::<4>(name, known, |w| u32::from_le_bytes(w).into()),
        2..=3 => same_ends::<2>(name, known, |w| u16::from_le_bytes(w).into()),
        _ => name.eq_ignore_ascii_case(known),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every name with a variant of its own.
    const KNOWN_NAMES: [HeaderName<'static>; KNOWN] = [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::MaxForwards,
        HeaderName::ContentLength,
        HeaderName::ContentType,
        HeaderName::Contact,
        HeaderName::Route,
        HeaderName::RecordRoute,
        HeaderName::HistoryInfo,
        HeaderName::Diversion,
    ];
    #[test]
    fn same_letters_is_eq_ignore_ascii_case_on_token_names() {
        let tokens: Vec<u8> = (0..=255u8)
            .filter(|&b| crate::sip::scan::is_token(b))
            .collect();
        let mut checked = 0;
        for known in KNOWN_NAMES.map(|n| n.as_str()) {
            let known = known.as_bytes();
            // Every token byte at every position of every known name, and the name cut short.
            for at in 0..known.len() {
                for &b in &tokens {
                    let mut name = known.to_vec();
                    name[at] = b;
                    assert_eq!(
                        same_letters(&name, known),
                        name.eq_ignore_ascii_case(known),
                        "{:?} vs {:?}",
                        String::from_utf8_lossy(&name),
                        String::from_utf8_lossy(known)
                    );
                    checked += 1;
                }
                assert!(!same_letters(&known[..at], known));
            }
        }
        assert!(checked > 5_000, "{checked}");
    }

    #[test]
    fn compact_and_long_names_map_case_insensitively() {
        let cases = [
            ("v", HeaderName::Via),
            ("V", HeaderName::Via),
            ("f", HeaderName::From),
            ("t", HeaderName::To),
            ("i", HeaderName::CallId),
            ("m", HeaderName::Contact),
            ("l", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("e", HeaderName::Other("Content-Encoding")),
            ("k", HeaderName::Other("Supported")),
            ("s", HeaderName::Other("Subject")),
            ("o", HeaderName::Other("Event")),
            ("r", HeaderName::Other("Refer-To")),
            ("b", HeaderName::Other("Referred-By")),
            ("u", HeaderName::Other("Allow-Events")),
            ("x", HeaderName::Other("Session-Expires")),
            ("y", HeaderName::Other("y")),
            ("call-id", HeaderName::CallId),
            ("CSEQ", HeaderName::CSeq),
            ("max-forwards", HeaderName::MaxForwards),
            ("RECORD-ROUTE", HeaderName::RecordRoute),
            ("route", HeaderName::Route),
            ("history-info", HeaderName::HistoryInfo),
            ("Diversion", HeaderName::Diversion),
            ("X-Carrier", HeaderName::Other("X-Carrier")),
        ];
        for (name, want) in cases {
            assert_eq!(HeaderName::from_wire(name), want, "{name}");
        }
        assert!(HeaderName::Other("v").same(&HeaderName::Via));
        assert!(HeaderName::Other("x-a").same(&HeaderName::Other("X-A")));
        assert!(!HeaderName::Other("x-a").same(&HeaderName::Other("X-B")));
    }

    #[test]
    fn every_known_name_maps_back_from_its_long_form_in_any_case_and_has_its_own_slot() {
        let known = KNOWN_NAMES;
        let mut slots = Vec::new();
        for name in known {
            let long = name.as_str();
            assert_eq!(HeaderName::from_wire(long), name, "{long}");
            assert_eq!(
                HeaderName::from_wire(&long.to_ascii_uppercase()),
                name,
                "{long}"
            );
            assert_eq!(
                HeaderName::from_wire(&long.to_ascii_lowercase()),
                name,
                "{long}"
            );
            slots.push(name.slot().unwrap());
        }
        slots.sort_unstable();
        assert_eq!(slots, (0..KNOWN).collect::<Vec<_>>());
        assert_eq!(HeaderName::Other("X-Call-ID").slot(), None);
        // Token characters that differ from a letter or `-` only in bit 5 do not match.
        assert_eq!(
            HeaderName::from_wire("Call_ID"),
            HeaderName::Other("Call_ID")
        );
        assert_eq!(HeaderName::from_wire("Vi`"), HeaderName::Other("Vi`"));
        assert_eq!(
            HeaderName::from_wire("cOnTeNt-LeNgTh"),
            HeaderName::ContentLength
        );
        // Same length as a known name, different spelling.
        assert_eq!(
            HeaderName::from_wire("Max-Forwardz"),
            HeaderName::Other("Max-Forwardz")
        );
    }
}
