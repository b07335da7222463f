//! Scanning helpers the header parsers share: `;name=value` parameters, comma lists and
//! separator search outside quotes, `<...>` and `[...]` (RFC 3261 §7.3.1, §25.1), token and
//! whitespace rules, decimals. Borrowing, never panics. No I/O here.

/// Looks up `name` (case-insensitive) in a `;name[=value]` list: `Some(None)` for a bare flag,
/// `Some(Some(value))` with the value trimmed (quotes kept), `None` when absent.
pub fn param<'p>(params: &'p str, name: &str) -> Option<Option<&'p str>> {
    let mut found = None;
    each_param(params, |n, v| {
        let hit = n.eq_ignore_ascii_case(name);
        if hit {
            found = Some(v);
        }
        hit
    });
    found
}

/// Calls `f` with each `name[=value]` of a `;`-separated parameter list in order, name and
/// value trimmed of SIP's (ASCII) whitespace, quotes kept, until `f` returns `true`. A `;`
/// inside quotes, `<...>` or `[...]` does not separate. The one place parameter lists are
/// split: the Via reader, the gateway's Via marks and [`param`] all come here.
pub(crate) fn each_param<'p>(params: &'p str, f: impl FnMut(&'p str, Option<&'p str>) -> bool) {
    each_param_of(params, is_nested(params), f);
}

/// Whether `s` holds a quote or bracket, inside which a separator does not separate.
pub(crate) fn is_nested(s: &str) -> bool {
    memchr::memchr3(b'"', b'<', b'[', s.as_bytes()).is_some()
}

/// [`each_param`] for a caller that has asked [`is_nested`] already.
#[inline(always)]
pub(crate) fn each_param_of<'p>(
    params: &'p str,
    nested: bool,
    mut f: impl FnMut(&'p str, Option<&'p str>) -> bool,
) {
    // A parameter's name is short: a plain scan finds its `=` sooner than memchr starts.
    let named = |p: &'p str| match p.bytes().position(|b| b == b'=') {
        Some(i) => (
            p.get(..i).unwrap_or_default().trim_ascii(),
            Some(p.get(i + 1..).unwrap_or_default().trim_ascii()),
        ),
        None => (p.trim_ascii(), None),
    };
    if nested {
        for p in split_outside(params, b';') {
            let (n, v) = named(p);
            if f(n, v) {
                return;
            }
        }
        return;
    }
    // Nothing quoted or bracketed (the usual case): every `;` separates.
    let mut rest = params;
    loop {
        let (p, next) = match find_byte(rest.as_bytes(), b';') {
            Some(i) => (rest.get(..i).unwrap_or_default(), rest.get(i + 1..)),
            None => (rest, None),
        };
        let (n, v) = named(p);
        if f(n, v) {
            return;
        }
        match next {
            Some(r) => rest = r,
            None => return,
        }
    }
}

/// Offset of the first `needle` in `hay`, eight bytes at a time. memchr's dispatch costs more
/// than the whole search on the short strings of a header (a parameter, a `host:port`).
pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    let pattern = ONES * u64::from(needle);
    let mut words = hay.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        // A zero byte of `x` is a match; the lowest flagged byte is always a true one.
        let x = u64::from_le_bytes(word) ^ pattern;
        let hits = x.wrapping_sub(ONES) & !x & HIGH;
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    if at == hay.len() {
        return None;
    }
    // The last few bytes: the last eight as one word, the bytes already searched again
    // (they hold no match), rather than a byte at a time.
    match hay
        .len()
        .checked_sub(8)
        .and_then(|from| Some((from, hay.get(from..)?)))
    {
        Some((from, last)) => {
            let x = u64::from_le_bytes(*last.first_chunk::<8>()?) ^ pattern;
            let hits = x.wrapping_sub(ONES) & !x & HIGH;
            (hits != 0).then(|| from + (hits.trailing_zeros() / 8) as usize)
        }
        None => hay.iter().position(|&b| b == needle),
    }
}

/// Offset of the last `needle` in `hay`, eight bytes at a time (see [`find_byte`]).
pub(crate) fn rfind_byte(hay: &[u8], needle: u8) -> Option<usize> {
    let pattern = ONES * u64::from(needle);
    // Exact per byte (no borrow between bytes): the high bit is set where `x` is zero.
    let hits = |word: &[u8; 8]| {
        let x = u64::from_le_bytes(*word) ^ pattern;
        !(((x & LOW7) + LOW7) | x | LOW7)
    };
    let mut words = hay.rchunks_exact(8);
    let mut end = hay.len();
    for word in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let h = hits(&word);
        if h != 0 {
            return Some(end - 8 + (7 - h.leading_zeros() / 8) as usize);
        }
        end -= 8;
    }
    if end == 0 {
        return None;
    }
    // The first few bytes: the first eight as one word (the rest of it holds no match).
    match hay.first_chunk::<8>() {
        Some(first) => {
            let h = hits(first);
            (h != 0).then(|| (7 - h.leading_zeros() / 8) as usize)
        }
        None => hay.iter().rposition(|&b| b == needle),
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Splits a header value into its comma-separated entries (RFC 3261 §7.3.1), ignoring commas
/// inside quotes, `<...>` and `[...]`; entries are trimmed and empty ones skipped.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    split_outside(value, b',')
        .map(trim)
        .filter(|e| !e.is_empty())
}

/// `str::trim`, answered from the two end bytes when both are ASCII and not whitespace (an
/// entry as usually written), where the general trim decodes a char at each end.
pub(crate) fn trim(s: &str) -> &str {
    // The ASCII chars `char::is_whitespace` accepts (it also takes U+000B).
    let blank = |b: &u8| !b.is_ascii() || matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ');
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) if !blank(first) && !blank(last) => s,
        _ => s.trim(),
    }
}

/// The first entry of a comma list and the rest after its comma (`None` when it is the only one).
pub fn split_first(value: &str) -> (&str, Option<&str>) {
    // Skip empty leading entries, as split_list does, so both agree on which entry is first.
    let value = match value.as_bytes().first() {
        Some(b',' | b' ' | b'\t') => value.trim_start_matches([',', ' ', '\t']),
        _ => value,
    };
    match find_outside(value, b',') {
        Some(i) => {
            let first = trim(value.get(..i).unwrap_or_default());
            let rest = trim(value.get(i + 1..).unwrap_or_default());
            (first, (!rest.is_empty()).then_some(rest))
        }
        None => (trim(value), None),
    }
}

/// The header parameters of a name-addr / addr-spec value (From, To, Route ...): what follows
/// the `>` of `<uri>`, or the URI's first `;` when there are no brackets (RFC 3261 §20.10).
pub fn header_params(value: &str) -> &str {
    // The first `;` outside quotes and `<...>` starts the header parameters either way. A
    // name-addr has a bracket or quote before its first `;` (inside the URI or after it), so
    // the walk starts at once, without the searches `find_outside` begins with; a value with
    // no `;` at all (a To without tag) has none. Looked for from the end, where a From's tag
    // sits.
    let bytes = value.as_bytes();
    if rfind_byte(bytes, b';').is_none() {
        return "";
    }
    if let Some(params) = name_addr_params(value) {
        return params;
    }
    walk_outside(bytes, 0, b';')
        .and_then(|i| value.get(i..))
        .unwrap_or_default()
}

/// [`header_params`] for a name-addr as usually written, `["display"] [name] <uri>;params`,
/// found by searches for the first of a few bytes: a quoted display name without escapes,
/// nothing that opens, closes, separates or escapes before the `<`, nothing that nests inside `<...>`
/// (a quote, `<`, brackets, a backslash), and a `;` right after the `>`. There the walk of
/// [`walk_outside`] finds the same `;`: the quote closes at its next `"`, the `<` opens the
/// only level and the first `>` closes it. `None` for any other value.
fn name_addr_params(value: &str) -> Option<&str> {
    let b = value.as_bytes();
    let mut at = 0;
    if b.first() == Some(&b'"') {
        // The closing quote, no backslash before it.
        let close = 1 + find_flagged(b.get(1..)?, |w| {
            (zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\')))) & HIGH
        })?;
        if b.get(close) != Some(&b'"') {
            return None;
        }
        at = close + 1;
    }
    // The `<`, no quote, `;`, bracket, backslash or `>` before it.
    let open = at
        + find_flagged(b.get(at..)?, |w| {
            (angles(w) | quote(w) | semicolon(w) | brackets(w)) & HIGH
        })?;
    if b.get(open) != Some(&b'<') {
        return None;
    }
    // The `>`, nothing that nests before it.
    let close = open
        + 1
        + find_flagged(b.get(open + 1..)?, |w| {
            (angles(w) | quote(w) | brackets(w) | zero(w ^ (ONES * u64::from(b'\\')))) & HIGH
        })?;
    if b.get(close) != Some(&b'>') || b.get(close + 1) != Some(&b';') {
        return None;
    }
    value.get(close + 1..)
}

/// Offset of the first `;`, `"`, `<` or `[` in `value`: where a leading tag's value ends, or
/// where a quote or bracket makes it a case for the general parameter reader.
pub(crate) fn find_tag_end(value: &[u8]) -> Option<usize> {
    find_flagged(value, |w| {
        (semicolon(w)
            | quote(w)
            | zero(w ^ (ONES * u64::from(b'<')))
            | zero(w ^ (ONES * u64::from(b'['))))
            & HIGH
    })
}

/// The high bit set at the lowest byte of `x` that is zero, and maybe above it (never below).
#[inline(always)]
fn zero(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x
}

/// [`zero`] of the bytes of `w` that are `<` or `>`.
#[inline(always)]
fn angles(w: u64) -> u64 {
    zero(w ^ (ONES * u64::from(b'<'))) | zero(w ^ (ONES * u64::from(b'>')))
}

/// [`zero`] of the bytes of `w` that are `"`.
#[inline(always)]
fn quote(w: u64) -> u64 {
    zero(w ^ (ONES * u64::from(b'"')))
}

/// [`zero`] of the bytes of `w` that are `;`.
#[inline(always)]
fn semicolon(w: u64) -> u64 {
    zero(w ^ (ONES * u64::from(b';')))
}

/// The high bit of each byte of `w` that is `[`, `\` or `]` (0x5b..=0x5d), exactly: the sums
/// stay within their bytes.
#[inline(always)]
fn brackets(w: u64) -> u64 {
    let low = w & LOW7;
    (low + ONES * 0x25) & !(low + ONES * 0x22) & !w & HIGH
}

/// Offset of the first byte of `hay` that `hits` flags, eight bytes at a time. `hits` sets the
/// high bit of each byte of a word (read little-endian) that is one of the bytes looked for,
/// and maybe of some above the lowest such byte, never below it, and never of a zero byte
/// above the others (see [`find_byte`]). The last few bytes are read as the last eight,
/// or, in a string shorter than eight, as a word padded with zeros.
#[inline(always)]
fn find_flagged(hay: &[u8], hits: impl Fn(u64) -> u64) -> Option<usize> {
    let mut words = hay.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let h = hits(u64::from_le_bytes(word));
        if h != 0 {
            return Some(at + (h.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    if at == hay.len() {
        return None;
    }
    let (from, word) = match hay.len().checked_sub(8) {
        Some(from) => (
            from,
            u64::from_le_bytes(*hay.get(from..)?.first_chunk::<8>()?),
        ),
        None => (0, hay.iter().rev().fold(0, |w, &c| w << 8 | u64::from(c))),
    };
    let h = hits(word);
    let hit = from + (h.trailing_zeros() / 8) as usize;
    (h != 0 && hit < hay.len()).then_some(hit)
}

/// Byte offset of the first `sep` outside quotes, `<>` and `[]`.
pub(crate) fn find_outside(s: &str, sep: u8) -> Option<usize> {
    let bytes = s.as_bytes();
    // Fast paths (memchr): with no `sep` at all there is none outside either (a lone Via,
    // Route or To value); and before the first quote or bracket nothing is nested, so a first
    // `sep` ahead of every opener is the answer. Otherwise the walk starts at
    // that first opener, where its state is still the initial one.
    let first = memchr::memchr(sep, bytes)?;
    let Some(opener) = memchr::memchr3(b'"', b'<', b'[', bytes.get(..first).unwrap_or_default())
    else {
        return Some(first);
    };
    walk_outside(bytes, opener, sep)
}

/// [`find_outside`] from `from` on, where nothing is open yet: a state machine over the bytes
/// that may change its state (quotes, brackets, escapes, `sep`), which [`next_special`] finds
/// eight at a time; the bytes of a URI in between cost nothing each.
fn walk_outside(bytes: &[u8], from: usize, sep: u8) -> Option<usize> {
    let mut in_quote = false;
    let mut depth = 0usize;
    let mut i = from;
    while let Some(at) = next_special(bytes, i, sep) {
        let b = *bytes.get(at)?;
        i = at + 1;
        if in_quote {
            match b {
                b'\\' => i += 1,
                b'"' => in_quote = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_quote = true,
            b'<' | b'[' => depth += 1,
            b'>' | b']' => depth = depth.saturating_sub(1),
            // A backslash outside quotes is an ordinary byte.
            _ if b == sep && depth == 0 => return Some(at),
            _ => {}
        }
    }
    None
}

/// Offset of the first byte at or after `from` that may matter to [`walk_outside`]: every
/// `"`, `\`, `<`, `>`, `[`, `]`, `;` and `sep`, and `=` (its code sits between theirs),
/// which the walk passes over. Eight bytes at a time; the last few are
/// read as a word padded with NULs, which are never flagged.
fn next_special(bytes: &[u8], from: usize, sep: u8) -> Option<usize> {
    let mut at = from;
    while let Some(word) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let hits = specials(u64::from_le_bytes(*word), sep);
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = bytes.get(at..)?;
    let mut word = [0u8; 8];
    word.get_mut(..tail.len())?.copy_from_slice(tail);
    let hits = specials(u64::from_le_bytes(word), sep);
    let hit = at + (hits.trailing_zeros() / 8) as usize;
    (hits != 0 && hit < bytes.len()).then_some(hit)
}

/// A high bit in each byte of `w` that is `"`, in `;<=>` (0x3b..=0x3e), in `[\]`
/// (0x5b..=0x5d) or equal to `sep`, and maybe in some others: the lowest one is always one
/// of those (see [`find_byte`]; the range sums stay within their bytes).
#[inline(always)]
fn specials(w: u64, sep: u8) -> u64 {
    let low = w & LOW7;
    // The high bit set where a (7-bit) byte is at least `lo`, or above `hi`.
    let at_least = |lo: u8| low + ONES * u64::from(0x80 - lo);
    let above = |hi: u8| low + ONES * u64::from(0x7f - hi);
    // The high bit set at the lowest byte of `x` that is zero (and maybe above it).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    let ranges = (at_least(0x3b) & !above(0x3e)) | (at_least(0x5b) & !above(0x5d));
    let quote = zero(w ^ (ONES * u64::from(b'"')));
    let sep = if (0x3b..=0x3e).contains(&sep) {
        0
    } else {
        zero(w ^ (ONES * u64::from(sep)))
    };
    (ranges | quote | sep) & HIGH
}

/// Pieces of `s` between `sep`s found by [`find_outside`] (untrimmed, empty ones included).
pub(crate) fn split_outside(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let cur = rest?;
        match find_outside(cur, sep) {
            Some(i) => {
                rest = cur.get(i + 1..);
                cur.get(..i)
            }
            None => {
                rest = None;
                Some(cur)
            }
        }
    })
}

/// Whether `name` is `lower` (ASCII lower-case letters) in any case: setting a byte's 0x20 bit
/// folds exactly the two cases of a letter onto the lower one, and the fixed length lets the
/// compare run without a loop. The parameter-name form of [`super::name::same_letters`] (header
/// names, whose length is only known at run time): for these short literals it costs about 190
/// instructions less per INVITE.
pub(crate) fn is_name<const N: usize>(name: &str, lower: &[u8; N]) -> bool {
    match name.as_bytes().first_chunk::<N>() {
        Some(got) if name.len() == N => {
            got.iter()
                .zip(lower)
                .fold(0, |diff, (g, l)| diff | ((g | 0x20) ^ l))
                == 0
        }
        _ => false,
    }
}

/// RFC 3261 §25.1 `token` characters.
pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// [`is_token`] as a table: one load per byte instead of a search of the punctuation list.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        b += 1;
    }
    t
};

/// `s` without leading and trailing SP and HT.
pub(crate) fn trim_wsp(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b
        .iter()
        .position(|&c| c != b' ' && c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(start, |i| i + 1);
    // Both ends sit next to an ASCII byte, so they are char boundaries.
    s.get(start..end).unwrap_or_default()
}

pub(crate) fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// A non-empty run of ASCII digits (surrounding whitespace allowed) that fits a `u64`.
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    // A value starting and ending with a digit (as written nearly always) has nothing to trim.
    let b = s.as_bytes();
    let digits = match (b.first(), b.last()) {
        (Some(first), Some(last)) if first.is_ascii_digit() && last.is_ascii_digit() => b,
        _ => trim_wsp(s).as_bytes(),
    };
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// [`find_outside`] as a plain byte-by-byte scan (before the memchr and word-at-a-time fast
/// paths), kept as the reference for tests here and in the header readers.
#[cfg(test)]
pub(crate) fn find_outside_by_bytes(s: &str, sep: u8) -> Option<usize> {
    let (mut in_quote, mut escaped, mut depth) = (false, false, 0usize);
    for (i, b) in s.bytes().enumerate() {
        if in_quote {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_quote = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_quote = true,
            b'<' | b'[' => depth += 1,
            b'>' | b']' => depth = depth.saturating_sub(1),
            _ if b == sep && depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    #[test]
    fn the_fast_separator_search_agrees_with_the_byte_scan() {
        let pieces = [
            "a", ",", ";", "\"", "\\", "<", ">", "[", "]", "x=1", " ", "电话",
        ];
        let mut checked = 0;
        // Every string of up to 4 pieces.
        let mut stack: Vec<String> = vec![String::new()];
        while let Some(s) = stack.pop() {
            for sep in [b',', b';'] {
                assert_eq!(
                    find_outside(&s, sep),
                    find_outside_by_bytes(&s, sep),
                    "{s:?} {}",
                    sep as char
                );
                checked += 1;
            }
            if s.chars().count() < 4 {
                stack.extend(pieces.iter().map(|p| format!("{s}{p}")));
            }
        }
        assert!(checked > 20_000, "{checked}");
    }

    proptest::proptest! {
        #[test]
        fn the_word_at_a_time_walk_agrees_with_the_byte_scan(
            s in "[a;,=\"\\\\<>\\[\\] :@.\u{80}电\u{7f}\u{1}]{0,40}",
            sep in proptest::sample::select(vec![b',', b';']),
        ) {
            proptest::prop_assert_eq!(find_outside(&s, sep), find_outside_by_bytes(&s, sep));
            proptest::prop_assert_eq!(walk_outside(s.as_bytes(), 0, sep), find_outside_by_bytes(&s, sep));
        }

        #[test]
        fn name_addr_values_split_as_by_the_byte_scan(
            display in "(\"[a-z ;,<>\\\\\"]{0,8}\"|[a-z ]{0,6})",
            uri in "(<[a-z0-9:@.;=,\\[\\]<>\"]{0,30}>|[a-z0-9:@.;=]{0,20})",
            params in "[a-z0-9;=,\"<>\\[\\] ]{0,20}",
            sep in proptest::sample::select(vec![b',', b';']),
        ) {
            let s = format!("{display}{uri}{params}");
            proptest::prop_assert_eq!(find_outside(&s, sep), find_outside_by_bytes(&s, sep));
            proptest::prop_assert_eq!(walk_outside(s.as_bytes(), 0, sep), find_outside_by_bytes(&s, sep));
        }
    }

    #[test]
    fn no_special_byte_lies_before_the_lowest_flag() {
        // Every pair of byte values side by side, at every position of a word, for both
        // separators: the lowest flag is at or before the first special byte, and there is a
        // flag whenever there is a special byte.
        let special = |b: u8, sep: u8| {
            b == b'"' || (0x3b..=0x3e).contains(&b) || (0x5b..=0x5d).contains(&b) || b == sep
        };
        for sep in [b',', b';'] {
            for x in 0..=255u8 {
                for y in 0..=255u8 {
                    for (at, fill) in [(0, 0), (3, b'a'), (6, 0xff), (2, 0x3a), (4, 0x22)] {
                        let mut word = [fill; 8];
                        word[at] = x;
                        word[at + 1] = y;
                        let first = word.iter().position(|&b| special(b, sep));
                        let flags = specials(u64::from_le_bytes(word), sep);
                        let lowest = (flags != 0).then_some(flags.trailing_zeros() as usize / 8);
                        match (first, lowest) {
                            (None, _) => {}
                            (Some(f), Some(l)) => assert!(l <= f, "{word:?}"),
                            (Some(_), None) => panic!("missed in {word:?}"),
                        }
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn the_word_searches_agree_with_position_on_any_bytes(
            hay in proptest::collection::vec(
                proptest::sample::select(vec![b';', b':', b'@', 0x3a ^ 0x80, 0xff, 0, 1, b'a']),
                0..40,
            ),
            needle in proptest::sample::select(vec![b';', b':', b'@', 0, 0xff]),
        ) {
            proptest::prop_assert_eq!(find_byte(&hay, needle), hay.iter().position(|&b| b == needle));
            proptest::prop_assert_eq!(rfind_byte(&hay, needle), hay.iter().rposition(|&b| b == needle));
        }
    }

    /// The decimal reader before the no-trim shortcut, kept as the reference.
    fn parse_decimal_trimmed(s: &str) -> Option<u64> {
        let s = trim_wsp(s);
        if s.is_empty() {
            return None;
        }
        s.bytes().try_fold(0u64, |n, b| {
            let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
            n.checked_mul(10)?.checked_add(digit)
        })
    }

    proptest::proptest! {
        #[test]
        fn decimals_read_as_with_the_trim(s in "[ \t0-9a/:电]{0,6}[0-9]{0,21}[ \t0-9]{0,3}") {
            proptest::prop_assert_eq!(parse_decimal(&s), parse_decimal_trimmed(&s));
        }
    }

    #[test]
    fn flagged_bytes_are_found_first_whatever_their_neighbours() {
        // The searches of `name_addr_params`, each with the bytes it looks for.
        type Search = (&'static [u8], fn(u64) -> u64);
        let searches: [Search; 3] = [
            (b"\"\\", |w| {
                (quote(w) | zero(w ^ (ONES * u64::from(b'\\')))) & HIGH
            }),
            (b"<>\";[\\]", |w| {
                (angles(w) | quote(w) | semicolon(w) | brackets(w)) & HIGH
            }),
            (b"<>\"[\\]", |w| {
                (angles(w) | quote(w) | brackets(w) | zero(w ^ (ONES * u64::from(b'\\')))) & HIGH
            }),
        ];
        for (set, hits) in searches {
            for x in 0..=255u8 {
                for y in 0..=255u8 {
                    for (len, at) in [
                        (2, 0),
                        (5, 3),
                        (7, 5),
                        (8, 3),
                        (8, 6),
                        (11, 9),
                        (11, 2),
                        (16, 7),
                    ] {
                        let mut s = vec![b'a'; len];
                        s[at] = x;
                        s[at + 1] = y;
                        let want = s.iter().position(|c| set.contains(c));
                        assert_eq!(find_flagged(&s, hits), want, "{set:?} {s:?}");
                    }
                }
            }
        }
        assert_eq!(find_flagged(b"", |w| quote(w) & HIGH), None);
        for x in 0..=255u8 {
            for y in 0..=255u8 {
                for (len, at) in [(2, 0), (5, 3), (7, 5), (8, 3), (8, 6), (11, 9), (16, 7)] {
                    let mut s = vec![b'a'; len];
                    s[at] = x;
                    s[at + 1] = y;
                    let want = s
                        .iter()
                        .position(|c| matches!(c, b';' | b'"' | b'<' | b'['));
                    assert_eq!(find_tag_end(&s), want, "{s:?}");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn name_addr_header_params_are_what_the_byte_scan_finds(
            display in "(\"[a-z ;<>\\\\\"]{0,8}\" ?|[a-z ;\\]>]{0,6})",
            uri in "<[a-z0-9:@.;=\\[\\]<>\"\\\\]{0,30}>",
            params in "( ?;[a-z]{1,3}(=[a-z0-9\"<>]{0,4})?|;|>){0,3}",
        ) {
            let value = format!("{display}{uri}{params}");
            let want = find_outside_by_bytes(&value, b';').map_or("", |i| &value[i..]);
            proptest::prop_assert_eq!(header_params(&value), want);
        }
    }

    /// The plain parameter split before offsets (a `str` split per piece), kept as the reference.
    fn plain_params_by_pieces(params: &str) -> Vec<(&str, Option<&str>)> {
        let mut out = Vec::new();
        for p in params.split(';') {
            out.push(match p.split_once('=') {
                Some((n, v)) => (n.trim_ascii(), Some(v.trim_ascii())),
                None => (p.trim_ascii(), None),
            });
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn plain_parameters_split_as_piece_by_piece(
            params in "[;= \t\ra-z0-9电\x0b]{0,24}",
            stop in 0usize..6,
        ) {
            let mut got = Vec::new();
            each_param_of(&params, false, |n, v| {
                got.push((n, v));
                got.len() > stop
            });
            let mut want = plain_params_by_pieces(&params);
            want.truncate(stop + 1);
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn the_word_searches_find_what_byte_searches_find() {
        // Every length up to three words, the needle (or a byte one off it) at every offset,
        // and bytes with the high bit set, where a borrow could flag a false match.
        for len in 0..25 {
            for at in 0..=len {
                for (fill, hit) in [(b'a', b';'), (0xff, b';'), (b':', b';'), (0x80, 0x7f)] {
                    let mut hay = vec![fill; len];
                    if let Some(b) = hay.get_mut(at) {
                        *b = hit;
                    }
                    if let Some(b) = hay.get_mut(len.saturating_sub(at + 1)) {
                        *b = hit;
                    }
                    for needle in [hit, hit.wrapping_add(1), fill] {
                        let want = hay.iter().position(|&b| b == needle);
                        assert_eq!(find_byte(&hay, needle), want, "{hay:?} {needle}");
                        let want = hay.iter().rposition(|&b| b == needle);
                        assert_eq!(rfind_byte(&hay, needle), want, "{hay:?} {needle}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_entry_trim_agrees_with_str_trim() {
        let pieces = [
            "a", " ", "\t", "\n", "\u{b}", "\u{85}", "\u{3000}", "电", ",",
        ];
        let mut stack: Vec<String> = vec![String::new()];
        while let Some(s) = stack.pop() {
            assert_eq!(trim(&s), s.trim(), "{s:?}");
            if s.chars().count() < 4 {
                stack.extend(pieces.iter().map(|p| format!("{s}{p}")));
            }
        }
    }

    #[test]
    fn the_folded_name_compare_agrees_with_eq_ignore_ascii_case() {
        // Every byte value at every position of a name, and every length around it.
        for at in 0..6 {
            for b in 0..=255u8 {
                let mut name = *b"branch";
                name[at] = b;
                let Ok(name) = std::str::from_utf8(&name) else {
                    continue;
                };
                let want = name.eq_ignore_ascii_case("branch");
                assert_eq!(is_name(name, b"branch"), want, "{name:?}");
            }
        }
        for name in ["", "b", "branc", "BRANCH", "branchx", "Branch ", "电anch"] {
            let want = name.eq_ignore_ascii_case("branch");
            assert_eq!(is_name(name, b"branch"), want, "{name:?}");
        }
    }

    #[test]
    fn params_are_looked_up_case_insensitively() {
        let cases = [
            (";branch=z9hG4bK1;rport", "branch", Some(Some("z9hG4bK1"))),
            (";branch=z9hG4bK1;rport", "RPORT", Some(None)),
            (";branch=z9hG4bK1;rport", "received", None),
            ("lr;x=\"a;b\";tag=t", "tag", Some(Some("t"))),
            ("lr;x=\"a;tag=b\"", "tag", None),
            (" ; tag = v ", "tag", Some(Some("v"))),
            ("", "tag", None),
        ];
        for (params, name, want) in cases {
            assert_eq!(param(params, name), want, "{params} {name}");
        }
    }

    #[test]
    fn list_helpers_agree_on_the_first_entry() {
        let cases: &[(&str, &str, Option<&str>, usize)] = &[
            ("a, b ,c", "a", Some("b ,c"), 3),
            ("a", "a", None, 1),
            (" , a,", "a", None, 1),
            (
                "<sip:x;p=\"1,2\">, <sip:y>",
                "<sip:x;p=\"1,2\">",
                Some("<sip:y>"),
                2,
            ),
            (
                "\"Doe, J\" <sip:j@d>;tag=1",
                "\"Doe, J\" <sip:j@d>;tag=1",
                None,
                1,
            ),
            ("[2001:db8::1]:5060, b", "[2001:db8::1]:5060", Some("b"), 2),
            ("", "", None, 0),
        ];
        for (value, first, rest, n) in cases {
            assert_eq!(split_first(value), (*first, *rest), "{value}");
            assert_eq!(split_list(value).count(), *n, "{value}");
            assert_eq!(split_list(value).next().unwrap_or(""), *first, "{value}");
        }
        assert_eq!(header_params("<sip:a;lr>;tag=x"), ";tag=x");
        assert_eq!(header_params("sip:a;lr"), ";lr");
        assert_eq!(header_params("<sip:a;lr"), "");
    }
}
