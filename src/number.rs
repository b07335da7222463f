//! Dialled-number normalization: whatever a carrier puts in a Request-URI becomes one canonical
//! national number, following China's numbering plan. Pure: no I/O, no clock, no allocation
//! beyond the result.
//!
//! Accepted spellings: `sip:`/`sips:` URIs (the number is the user part, percent-escapes decoded,
//! its own `;phone-context=` honoured), `tel:` URIs (RFC 3966), and bare numbers (which may carry
//! `;phone-context=` like a `tel:` body). Visual separators `-` `.` `(` `)` and spaces are dropped.
//!
//! The canonical form is the national number: `0` + area + local for geographic and area-scoped
//! short numbers (`059185666661`, `01012345678`, `059112356`), the bare digits for mobile
//! (`13800000000`), non-geographic (`4001234567`) and short numbers dialled with no known area
//! (`12356`). A bare local number (7-8 digits starting 2-9) takes its area from `phone-context`,
//! else from the trunk's origin; after an explicit area the subscriber part may also start with 1
//! (`01012345678`). Area codes follow the plan: `010`, `02x`, else `0` + three digits starting
//! 3-9, so `01x` other than `010` and `00` are never areas. Two lenient readings beyond the plan are accepted because carriers send them:
//! `0` + mobile (`013800000000`, the old long-distance prefix for mobiles) and a trunk `0` kept
//! after `+86` (`+86059185666661`).

use crate::sip::scan::trim;
use crate::sip::{Scheme, Uri};
use std::fmt;

use thiserror::Error;

/// The longest digit string that can be valid: `0086` + `0` + 3-digit area + 8-digit local.
const MAX_DIGITS: usize = 16;

/// A validated area code with its trunk prefix: `010`, `021`, `0591`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AreaCode {
    code: String,
    /// The same digits inline, as normalizing reads a trunk's origin area on every call.
    digits: Area,
}

impl AreaCode {
    /// Validates an area code written with its trunk prefix 0.
    ///
    /// # Errors
    /// [`NumberError::BadArea`] unless it is `010`, `02x` or `0` + three digits not starting 0/1/2;
    /// the leading 0 is required (`591` is rejected).
    pub fn new(s: &str) -> Result<AreaCode, NumberError> {
        let b = s.as_bytes();
        match Area::from_digits(b) {
            Some(digits) if b.iter().all(u8::is_ascii_digit) => Ok(AreaCode {
                code: s.to_owned(),
                digits,
            }),
            _ => Err(NumberError::BadArea { code: s.to_owned() }),
        }
    }

    /// The code as written, e.g. `0591`.
    pub fn as_str(&self) -> &str {
        &self.code
    }
}

impl fmt::Debug for AreaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AreaCode").field(&self.code).finish()
    }
}

impl fmt::Display for AreaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code)
    }
}

/// What the caller's side tells us about how a number was dialled (borrowed from the trunk's
/// configuration: routing a call copies nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dialling<'a> {
    /// Area assumed for numbers dialled without one (the trunk's origin area).
    pub origin_area: Option<&'a AreaCode>,
}

/// The longest canonical number, in digits: a 4-digit area code and an 8-digit local number,
/// or a national significant number of up to 16 digits (room for 4 more).
pub const MAX_NATIONAL: usize = MAX_DIGITS + 4;

/// A canonical national number, held inline (normalizing allocates nothing).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dialled {
    digits: [u8; MAX_NATIONAL],
    len: u8,
    area_len: u8,
}

impl Dialled {
    /// The canonical digits: `059185666661`, `059112356`, `13800000000`, `12356`.
    pub fn as_str(&self) -> &str {
        // ASCII digits only, written by `joined`.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
    /// The canonical digits as bytes (what [`Dialled::as_str`] checks and returns as text).
    pub fn as_bytes(&self) -> &[u8] {
        self.digits.get(..usize::from(self.len)).unwrap_or_default()
    }
    /// The canonical digits in a fixed array, zero after the last, and how many there are:
    /// what a hash index reads as whole words.
    pub fn padded(&self) -> (&[u8; MAX_NATIONAL], usize) {
        (&self.digits, usize::from(self.len))
    }
    /// The area code with trunk prefix, when the number is geographic or area-scoped.
    pub fn area(&self) -> Option<&str> {
        match self.area_len {
            0 => None,
            n => self.as_str().get(..usize::from(n)),
        }
    }
    /// The part after the area code (the whole number when there is no area).
    pub fn local(&self) -> &str {
        self.as_str()
            .get(usize::from(self.area_len)..)
            .unwrap_or("")
    }
}

impl fmt::Debug for Dialled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialled")
            .field("national", &self.as_str())
            .field("area", &self.area())
            .finish()
    }
}

impl fmt::Display for Dialled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a dialable number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NumberError {
    /// Nothing to normalize.
    #[error("empty number")]
    Empty,
    /// A `sip:`/`sips:` URI without a user part, so it names no number.
    #[error("SIP URI has no user part")]
    NoUser,
    /// A character that is neither a digit, a visual separator nor a leading `+`.
    #[error("unexpected {ch:?} at byte {at}")]
    BadChar {
        /// The offending character (after percent-decoding).
        ch: char,
        /// Its byte offset in the input.
        at: usize,
    },
    /// A `%` not followed by two hex digits, or escaping a non-ASCII byte.
    #[error("bad percent-escape at byte {at}")]
    BadEscape {
        /// Byte offset of the `%` in the input.
        at: usize,
    },
    /// The digits fit no number in the plan (local part not 7-8 digits, short code not 3-5...).
    #[error("{digits} digits fit no number in China's numbering plan")]
    BadLength {
        /// How many digits were dialled, prefixes included.
        digits: usize,
    },
    /// Not an area code of China's plan.
    #[error(
        "{code:?} is not an area code: expected 010, 02x or 0 + three digits starting 3-9, \
         written with the trunk prefix 0"
    )]
    BadArea {
        /// The rejected code, with trunk prefix 0.
        code: String,
    },
    /// A local number with no area from phone-context nor from the trunk's origin.
    #[error("local number dialled with no known area")]
    NeedsArea,
    /// A number (or phone-context) in another country.
    #[error("foreign number, country code +{country}")]
    Foreign {
        /// The E.164 country code, e.g. 1 or 852.
        country: u16,
    },
    /// `+` or `00` not followed by a country code (`+0...`, `000...`).
    #[error("international prefix without a country code")]
    NoCountry,
}

/// Turns a Request-URI (`sip:`, `sips:`, `tel:`) or a bare number into its canonical form.
///
/// An explicit area (trunk-prefixed national number, `+86` number) wins over a `phone-context`
/// area, which wins over `dialling.origin_area`.
///
/// # Errors
/// A [`NumberError`] naming what is wrong; never panics.
pub fn normalize(input: &str, dialling: &Dialling) -> Result<Dialled, NumberError> {
    let (digits, params) = match plain_digits(input) {
        // Its parameters are the URI's, not the number's: none of them is a phone-context.
        Some(digits) => (digits, (0, 0)),
        None => read(input)?,
    };
    canonical(input, &digits, params, dialling)
}

/// The canonical form of the digits read from `input` with the number's parameters `params`.
fn canonical(
    input: &str,
    digits: &Digits,
    params: Span,
    dialling: &Dialling,
) -> Result<Dialled, NumberError> {
    if digits.total == 0 {
        return Err(NumberError::Empty);
    }
    let mut plan = Plan {
        total: digits.total,
        origin: dialling.origin_area.map(|a| a.digits),
        context: Context::Unknown,
    };
    if digits.total > MAX_DIGITS {
        return Err(plan.bad_length());
    }
    let d = digits.as_slice();
    if digits.plus {
        return plan.international(d);
    }
    match d {
        [b'0', b'0', rest @ ..] => plan.international(rest),
        [b'0', ..] => plan.national(d),
        _ => {
            plan.context = context(input, params)?;
            plan.unprefixed(d)
        }
    }
}

/// Byte range `start..end` of `input`.
type Span = (usize, usize);

/// The digits of a number and the span of its own parameters, read by the general path.
fn read(input: &str) -> Result<(Digits, Span), NumberError> {
    let (number, params) = locate(input)?;
    Ok((scan(input, number)?, params))
}

/// The digits of the usual Request-URI, `sip:DIGITS@host[:port][;params]` with at most
/// [`MAX_DIGITS`] plain digits, copied while the user part is read (the URI's host is checked
/// by [`Uri::plain_tail`], not built); `None` for any other text. Where it gives digits,
/// [`read`] gives the same and no phone-context.
fn plain_digits(input: &str) -> Option<Digits> {
    let (_, user_at) = Uri::plain_scheme(input)?;
    let b = input.as_bytes();
    let mut d = Digits {
        buf: [0; MAX_DIGITS],
        total: 0,
        plus: false,
    };
    for slot in &mut d.buf {
        match b.get(user_at + d.total) {
            Some(&c) if c.is_ascii_digit() => *slot = c,
            _ => break,
        }
        d.total += 1;
    }
    // A 17th digit, or any other byte than the `@` ending the user, is for the general path.
    let at = user_at + d.total;
    if d.total == 0 || b.get(at) != Some(&b'@') {
        return None;
    }
    Uri::plain_tail(input.get(at + 1..)?)?;
    Some(d)
}

/// Finds the number and its parameters (`;...`, may be empty) in a URI or bare number. URIs
/// are read by [`Uri::parse`]; the spans are byte ranges of `input`, for error offsets.
fn locate(input: &str) -> Result<(Span, Span), NumberError> {
    let span_of = |part: &str| {
        let at = (part.as_ptr() as usize).saturating_sub(input.as_ptr() as usize);
        (at, at + part.len())
    };
    let trimmed = trim(input);
    let (start, end) = span_of(trimmed);
    let has = |scheme: &str| {
        trimmed
            .get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
    };
    match Uri::parse(trimmed) {
        Some(Uri {
            scheme: Scheme::Tel,
            user: Some(number),
            params,
            ..
        }) => {
            let (n, p) = (span_of(number), span_of(params));
            // No parameters: an empty span at the end of the number.
            Ok((n, if params.is_empty() { (n.1, n.1) } else { p }))
        }
        // RFC 3261 §19.1.1: the user may carry ";params".
        Some(Uri {
            user: Some(user), ..
        }) if !user.is_empty() => Ok(split_params(input, span_of(user))),
        Some(_) => Err(NumberError::NoUser),
        // A sip/sips URI the URI reader refuses names no number.
        None if has("sip:") || has("sips:") => Err(NumberError::NoUser),
        None => Ok(split_params(input, (start, end))),
    }
}

/// Splits `number;params` at the first `;`.
fn split_params(input: &str, (start, end): Span) -> (Span, Span) {
    match input
        .get(start..end)
        .and_then(|s| memchr::memchr(b';', s.as_bytes()))
    {
        Some(i) => ((start, start + i), (start + i + 1, end)),
        None => ((start, end), (end, end)),
    }
}

/// The value range of the first `phone-context` parameter in `params`.
fn phone_context(input: &str, (mut pos, end): Span) -> Option<Span> {
    while pos < end {
        let segment = input.get(pos..end)?;
        let seg_end = segment.find(';').map_or(end, |i| pos + i);
        let segment = input.get(pos..seg_end)?;
        if let Some(eq) = segment.find('=') {
            if segment
                .get(..eq)
                .is_some_and(|name| name.eq_ignore_ascii_case("phone-context"))
            {
                return Some((pos + eq + 1, seg_end));
            }
        }
        pos = seg_end + 1;
    }
    None
}

/// Characters of a span with `%XX` escapes decoded, each with its byte offset in the input.
struct Decoded<'a> {
    chars: std::str::CharIndices<'a>,
    base: usize,
}

impl Iterator for Decoded<'_> {
    type Item = Result<(char, usize), NumberError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (i, c) = self.chars.next()?;
        let at = self.base + i;
        if c != '%' {
            return Some(Ok((c, at)));
        }
        let mut hex = || self.chars.next().and_then(|(_, c)| c.to_digit(16));
        let decoded = match (hex(), hex()) {
            (Some(hi), Some(lo)) => char::from_u32(hi * 16 + lo).filter(char::is_ascii),
            _ => None,
        };
        Some(
            decoded
                .map(|c| (c, at))
                .ok_or(NumberError::BadEscape { at }),
        )
    }
}

/// The digits of a number, visual separators dropped.
#[derive(Debug, PartialEq, Eq)]
struct Digits {
    buf: [u8; MAX_DIGITS],
    /// All digits seen; only the first `MAX_DIGITS` are kept.
    total: usize,
    plus: bool,
}

impl Digits {
    fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.total.min(MAX_DIGITS)).unwrap_or(&[])
    }
}

/// Collects the digits of `input[span]`; `+` is allowed only before the first digit.
fn scan(input: &str, (start, end): Span) -> Result<Digits, NumberError> {
    let mut d = Digits {
        buf: [0; MAX_DIGITS],
        total: 0,
        plus: false,
    };
    let text = input.get(start..end).unwrap_or("");
    // The usual number is plain digits: no escapes, separators or sign to read one by one.
    if let Some(slot) = d.buf.get_mut(..text.len()) {
        if text.bytes().all(|b| b.is_ascii_digit()) {
            slot.copy_from_slice(text.as_bytes());
            d.total = text.len();
            return Ok(d);
        }
    }
    let chars = text.char_indices();
    for item in (Decoded { chars, base: start }) {
        let (ch, at) = item?;
        match ch {
            '0'..='9' => {
                if let Some(slot) = d.buf.get_mut(d.total) {
                    *slot = u8::try_from(ch).map_err(|_| NumberError::BadChar { ch, at })?;
                }
                d.total += 1;
            }
            // RFC 3966 visual-separator, plus the spaces people type.
            '-' | '.' | '(' | ')' | ' ' => {}
            '+' if d.total == 0 && !d.plus => d.plus = true,
            _ => return Err(NumberError::BadChar { ch, at }),
        }
    }
    Ok(d)
}

/// An area code's digits, trunk prefix included (`010`, `0591`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Area {
    buf: [u8; 4],
    len: usize,
}

impl Area {
    /// `d` must be exactly an area code.
    fn from_digits(d: &[u8]) -> Option<Area> {
        if area_len(d) != Some(d.len()) {
            return None;
        }
        let mut buf = [0; 4];
        buf.get_mut(..d.len())?.copy_from_slice(d);
        Some(Area { buf, len: d.len() })
    }

    fn digits(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

/// Length of the area code that `d` (trunk prefix 0 first) starts with.
fn area_len(d: &[u8]) -> Option<usize> {
    match d {
        [b'0', b'1', b'0', ..] | [b'0', b'2', b'0'..=b'9', ..] => Some(3),
        [b'0', b'3'..=b'9', b'0'..=b'9', b'0'..=b'9', ..] => Some(4),
        _ => None,
    }
}

/// What a digit string without trunk or international prefix is.
#[derive(PartialEq, Eq)]
enum Shape {
    /// `1[3-9]` + 9 digits.
    Mobile,
    /// `400`/`800` + 7 digits.
    NonGeographic,
    /// 3-5 digits starting 1, or `95xxx`/`96xxx`: scoped to an area.
    Short,
    /// 7-8 digits starting 2-9: a subscriber in some area.
    Local,
    Other,
}

fn shape(d: &[u8]) -> Shape {
    match d {
        [b'1', b'3'..=b'9', ..] if d.len() == 11 => Shape::Mobile,
        [b'4' | b'8', b'0', b'0', ..] if d.len() == 10 => Shape::NonGeographic,
        [b'1', ..] if (3..=5).contains(&d.len()) => Shape::Short,
        [b'9', b'5' | b'6', ..] if d.len() == 5 => Shape::Short,
        [b'2'..=b'9', ..] if (7..=8).contains(&d.len()) => Shape::Local,
        _ => Shape::Other,
    }
}

/// A subscriber number after an explicit area (prefix or phone-context): 7-8 digits, which may
/// start with 1 (`010 12345678`); a bare local number read against the origin area may not.
fn subscriber(local: &[u8]) -> bool {
    matches!(local, [b'1'..=b'9', ..]) && (7..=8).contains(&local.len())
}

/// What a `phone-context` parameter says.
enum Context {
    /// Absent, or a domain name.
    Unknown,
    /// `+86`: dialled within China, no area.
    National,
    /// `+86-591`: dialled within an area.
    Area(Area),
}

/// Reads the `phone-context` of a number (RFC 3966 §5.1.5); domain names are ignored.
fn context(input: &str, params: Span) -> Result<Context, NumberError> {
    let Some((start, end)) = phone_context(input, params) else {
        return Ok(Context::Unknown);
    };
    let value = input.get(start..end).unwrap_or("");
    let global = value.starts_with('+')
        || value
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case("%2B"));
    if !global {
        return Ok(Context::Unknown);
    }
    let digits = scan(input, (start, end))?;
    match digits.as_slice() {
        [b'8', b'6'] => Ok(Context::National),
        [b'8', b'6', area @ ..] => {
            // Tolerate a trunk 0 written into the context (`+86-0591`).
            let area = area.strip_prefix(b"0").unwrap_or(area);
            let mut buf = [b'0'; 4];
            let code = buf.get_mut(..=area.len()).and_then(|code| {
                code.get_mut(1..)?.copy_from_slice(area);
                Area::from_digits(code)
            });
            code.map(Context::Area).ok_or_else(|| NumberError::BadArea {
                code: format!("0{}", text(area)),
            })
        }
        [] | [b'0', ..] => Err(NumberError::NoCountry),
        cc => Err(NumberError::Foreign {
            country: country(cc),
        }),
    }
}

/// Length of the E.164 country code that `d` starts with (ITU-T E.164 assignments).
fn country_len(d: &[u8]) -> usize {
    match d {
        [b'1' | b'7', ..] => 1,
        [b'2', b'0' | b'7', ..]
        | [b'3', b'0'..=b'4' | b'6' | b'9', ..]
        | [b'4', b'0' | b'1' | b'3'..=b'9', ..]
        | [b'5', b'1'..=b'8', ..]
        | [b'6', b'0'..=b'6', ..]
        | [b'8', b'1' | b'2' | b'4' | b'6', ..]
        | [b'9', b'0'..=b'5' | b'8', ..] => 2,
        _ => 3,
    }
}

/// The country code `d` starts with, as a number.
fn country(d: &[u8]) -> u16 {
    d.iter()
        .take(country_len(d))
        .fold(0, |n, b| n * 10 + u16::from(b - b'0'))
}

/// ASCII digits as a `String`, for error values.
fn text(d: &[u8]) -> String {
    d.iter().copied().map(char::from).collect()
}

/// `area` + `local` as a canonical number (callers pass at most [`MAX_NATIONAL`] digits in
/// all; anything past that is cut, never a panic).
fn joined(area: &[u8], local: &[u8]) -> Dialled {
    let mut digits = [0u8; MAX_NATIONAL];
    let area = area.get(..MAX_NATIONAL).unwrap_or(area);
    let local = local.get(..MAX_NATIONAL - area.len()).unwrap_or(local);
    let len = area.len() + local.len();
    // Two copies: an iterator over the chained parts unrolls into a hundred instructions.
    if let Some(slot) = digits.get_mut(..area.len()) {
        slot.copy_from_slice(area);
    }
    if let Some(slot) = digits.get_mut(area.len()..len) {
        slot.copy_from_slice(local);
    }
    Dialled {
        digits,
        len: u8::try_from(len).unwrap_or(0),
        area_len: u8::try_from(area.len().min(len)).unwrap_or(0),
    }
}

/// A number whose area is `area` when one is known (short numbers), none otherwise.
fn scoped(area: Option<Area>, d: &[u8]) -> Dialled {
    joined(area.as_ref().map_or(&[], Area::digits), d)
}

/// How a number is read once its digits are known.
struct Plan {
    /// Digits dialled, for [`NumberError::BadLength`].
    total: usize,
    origin: Option<Area>,
    context: Context,
}

impl Plan {
    fn bad_length(&self) -> NumberError {
        NumberError::BadLength { digits: self.total }
    }

    /// The area a number dialled without one belongs to: phone-context, else origin.
    fn area(&self) -> Option<Area> {
        match self.context {
            Context::Area(a) => Some(a),
            _ => self.origin,
        }
    }

    /// After `+` or `00`.
    fn international(&self, d: &[u8]) -> Result<Dialled, NumberError> {
        match d {
            [b'8', b'6', nsn @ ..] => self.significant(nsn),
            [] | [b'0', ..] => Err(NumberError::NoCountry),
            _ if d.len() > country_len(d) => Err(NumberError::Foreign {
                country: country(d),
            }),
            _ => Err(self.bad_length()),
        }
    }

    /// A national significant number (after `+86`): the national number without trunk 0.
    fn significant(&self, d: &[u8]) -> Result<Dialled, NumberError> {
        match d {
            // Not E.164, but carriers send `+86 0591...`.
            [b'0', b'1'..=b'9', ..] => self.national(d),
            [b'1', b'0', ..] => self.trunk_added(d),
            [b'1', ..] => match shape(d) {
                Shape::Mobile => Ok(joined(&[], d)),
                Shape::Short => Ok(scoped(self.area(), d)),
                _ => Err(self.bad_length()),
            },
            [b'2'..=b'9', ..] if shape(d) == Shape::NonGeographic => Ok(joined(&[], d)),
            [b'2'..=b'9', ..] => self.trunk_added(d),
            _ => Err(self.bad_length()),
        }
    }

    /// `0` + `d` read as a national number.
    fn trunk_added(&self, d: &[u8]) -> Result<Dialled, NumberError> {
        let mut buf = [b'0'; MAX_DIGITS + 1];
        let n = buf.get_mut(1..=d.len()).ok_or_else(|| self.bad_length())?;
        n.copy_from_slice(d);
        self.national(buf.get(..=d.len()).unwrap_or(&[]))
    }

    /// A national number: trunk 0, area, local part.
    fn national(&self, d: &[u8]) -> Result<Dialled, NumberError> {
        if let [b'0', after @ ..] = d {
            if let [b'1', b'1'..=b'9', ..] = after {
                return match shape(after) {
                    // `0` + mobile: the old long-distance way to reach a mobile.
                    Shape::Mobile => Ok(joined(&[], after)),
                    _ => Err(NumberError::BadArea {
                        code: text(d.get(..3).unwrap_or(d)),
                    }),
                };
            }
        }
        let n = area_len(d).ok_or_else(|| self.bad_length())?;
        let (area, local) = d.split_at(n);
        if subscriber(local) || shape(local) == Shape::Short {
            Ok(joined(area, local))
        } else {
            Err(self.bad_length())
        }
    }

    /// A number with neither trunk nor international prefix.
    fn unprefixed(&self, d: &[u8]) -> Result<Dialled, NumberError> {
        match shape(d) {
            Shape::Mobile | Shape::NonGeographic => Ok(joined(&[], d)),
            Shape::Short => Ok(scoped(self.area(), d)),
            Shape::Local => self
                .area()
                .map(|a| joined(a.digits(), d))
                .ok_or(NumberError::NeedsArea),
            Shape::Other => match self.context {
                Context::Area(a) if subscriber(d) => Ok(joined(a.digits(), d)),
                // `phone-context=+86`: the digits may be a national significant number.
                Context::National => self.significant(d),
                _ => Err(self.bad_length()),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sip::fixture::usual_or;

    fn from(area: &str) -> Dialling<'static> {
        Dialling {
            origin_area: Some(Box::leak(Box::new(AreaCode::new(area).unwrap()))),
        }
    }

    fn nowhere() -> Dialling<'static> {
        Dialling::default()
    }

    /// Normalizes and returns (canonical, area, local).
    fn parts(input: &str, d: &Dialling) -> Result<(String, Option<String>, String), NumberError> {
        normalize(input, d).map(|n| {
            (
                n.as_str().to_owned(),
                n.area().map(str::to_owned),
                n.local().to_owned(),
            )
        })
    }

    fn check(cases: &[(&str, &str, Option<&str>, &str)], d: &Dialling) {
        for &(input, want, area, local) in cases {
            let got = parts(input, d);
            let want = Ok((want.to_owned(), area.map(str::to_owned), local.to_owned()));
            assert_eq!(got, want, "{input} with {d:?}");
        }
    }

    const FUZHOU_LINE: &[(&str, &str, Option<&str>, &str)] = &[
        (
            "sip:059185666661@gw;user=phone",
            "059185666661",
            Some("0591"),
            "85666661",
        ),
        (
            "tel:+86-591-8566-6661",
            "059185666661",
            Some("0591"),
            "85666661",
        ),
        (
            "sip:+8659185666661@gw",
            "059185666661",
            Some("0591"),
            "85666661",
        ),
        (
            "sip:008659185666661@gw",
            "059185666661",
            Some("0591"),
            "85666661",
        ),
        (
            "tel:85666661;phone-context=+86-591",
            "059185666661",
            Some("0591"),
            "85666661",
        ),
        ("0591-8566 6661", "059185666661", Some("0591"), "85666661"),
        ("(0591) 85666661", "059185666661", Some("0591"), "85666661"),
        (
            "sips:+86.591.85666661@gw",
            "059185666661",
            Some("0591"),
            "85666661",
        ),
        (
            "SIP:%2B8659185666661@gw",
            "059185666661",
            Some("0591"),
            "85666661",
        ),
        (
            "Sips:%2b86%2D591%2d85666661@gw",
            "059185666661",
            Some("0591"),
            "85666661",
        ),
        (
            "TEL:+86-591-85666661;isub=1",
            "059185666661",
            Some("0591"),
            "85666661",
        ),
        (
            "sip:85666661;phone-context=+86-591@gw;user=phone",
            "059185666661",
            Some("0591"),
            "85666661",
        ),
        (
            "sip:85666661;phone-context=%2B86-591@gw",
            "059185666661",
            Some("0591"),
            "85666661",
        ),
        (
            "sip:85666661;phone-context=+86591@gw",
            "059185666661",
            Some("0591"),
            "85666661",
        ),
        (
            "sip:85666661;phone-context=+86-0591@gw",
            "059185666661",
            Some("0591"),
            "85666661",
        ),
        (
            "sip:059185666661:secret@gw",
            "059185666661",
            Some("0591"),
            "85666661",
        ),
        ("  059185666661  ", "059185666661", Some("0591"), "85666661"),
        (
            "+86 (591) 8566-6661",
            "059185666661",
            Some("0591"),
            "85666661",
        ),
        ("+86059185666661", "059185666661", Some("0591"), "85666661"),
        (
            "59185666661;phone-context=+86",
            "059185666661",
            Some("0591"),
            "85666661",
        ),
    ];

    #[test]
    fn every_spelling_of_a_fuzhou_line_is_the_same_national_number() {
        check(FUZHOU_LINE, &from("0591"));
        check(FUZHOU_LINE, &from("0755"));
        check(FUZHOU_LINE, &nowhere());
    }

    #[test]
    fn local_numbers_take_the_trunk_origin_area() {
        check(
            &[
                ("sip:85666661@gw", "059185666661", Some("0591"), "85666661"),
                ("85666221", "059185666221", Some("0591"), "85666221"),
                ("8566622", "05918566622", Some("0591"), "8566622"),
                (
                    "tel:85666221;phone-context=+86",
                    "059185666221",
                    Some("0591"),
                    "85666221",
                ),
                (
                    "tel:85666221;phone-context=gw.example.cn",
                    "059185666221",
                    Some("0591"),
                    "85666221",
                ),
            ],
            &from("0591"),
        );
        check(
            &[("85666221", "059285666221", Some("0592"), "85666221")],
            &from("0592"),
        );
    }

    #[test]
    fn phone_context_area_overrides_the_origin_area() {
        check(
            &[
                (
                    "tel:85666661;phone-context=+86-595",
                    "059585666661",
                    Some("0595"),
                    "85666661",
                ),
                (
                    "tel:12356;phone-context=+86-595",
                    "059512356",
                    Some("0595"),
                    "12356",
                ),
                (
                    "tel:12345678;phone-context=+86-10",
                    "01012345678",
                    Some("010"),
                    "12345678",
                ),
            ],
            &from("0591"),
        );
    }

    #[test]
    fn short_numbers_are_scoped_to_the_known_area() {
        check(
            &[
                ("sip:12356@gw", "059212356", Some("0592"), "12356"),
                ("110", "0592110", Some("0592"), "110"),
                ("12345", "059212345", Some("0592"), "12345"),
                ("95555", "059295555", Some("0592"), "95555"),
                ("96123", "059296123", Some("0592"), "96123"),
                ("sip:059112356@gw", "059112356", Some("0591"), "12356"),
                ("+8659112356", "059112356", Some("0591"), "12356"),
                ("+861012356", "01012356", Some("010"), "12356"),
                (
                    "tel:12356;phone-context=+86",
                    "059212356",
                    Some("0592"),
                    "12356",
                ),
            ],
            &from("0592"),
        );
        check(
            &[
                ("sip:12356@gw", "12356", None, "12356"),
                ("120", "120", None, "120"),
                ("95555", "95555", None, "95555"),
                ("sip:059112356@gw", "059112356", Some("0591"), "12356"),
                ("02112356", "02112356", Some("021"), "12356"),
            ],
            &nowhere(),
        );
    }

    #[test]
    fn two_digit_areas_of_beijing_shanghai_guangzhou_split_after_three_digits() {
        let cases = &[
            ("01012345678", "01012345678", Some("010"), "12345678"),
            ("+861012345678", "01012345678", Some("010"), "12345678"),
            ("008610-1234-5678", "01012345678", Some("010"), "12345678"),
            ("02112345678", "02112345678", Some("021"), "12345678"),
            (
                "tel:+86-21-6123-4567",
                "02161234567",
                Some("021"),
                "61234567",
            ),
            ("02087654321", "02087654321", Some("020"), "87654321"),
            ("0298765432", "0298765432", Some("029"), "8765432"),
            ("075512345678", "075512345678", Some("0755"), "12345678"),
            ("05911234567", "05911234567", Some("0591"), "1234567"),
        ];
        check(cases, &from("0591"));
        check(cases, &nowhere());
    }

    #[test]
    fn mobile_and_non_geographic_numbers_carry_no_area() {
        let cases = &[
            ("13800000000", "13800000000", None, "13800000000"),
            ("sip:+8613800000000@gw", "13800000000", None, "13800000000"),
            ("008613800000000", "13800000000", None, "13800000000"),
            ("tel:+86-138-0000-0000", "13800000000", None, "13800000000"),
            ("013800000000", "13800000000", None, "13800000000"),
            ("19912345678", "19912345678", None, "19912345678"),
            ("4001234567", "4001234567", None, "4001234567"),
            ("400-123-4567", "4001234567", None, "4001234567"),
            ("+864001234567", "4001234567", None, "4001234567"),
            ("8001234567", "8001234567", None, "8001234567"),
        ];
        check(cases, &from("0591"));
        check(cases, &nowhere());
    }

    #[test]
    fn malformed_numbers_are_rejected_with_a_reason() {
        use NumberError::*;
        let cases: &[(&str, NumberError)] = &[
            ("", Empty),
            ("   ", Empty),
            ("tel:", Empty),
            ("sip:-@gw", Empty),
            ("+", Empty),
            ("sip:gw", NoUser),
            ("sip:@gw", NoUser),
            ("sips::pw@gw", NoUser),
            ("0591x85666661", BadChar { ch: 'x', at: 4 }),
            ("sip:0591*1@gw", BadChar { ch: '*', at: 8 }),
            ("tel:8566+6661", BadChar { ch: '+', at: 8 }),
            ("++8613800000000", BadChar { ch: '+', at: 1 }),
            ("中12356", BadChar { ch: '中', at: 0 }),
            ("12356中", BadChar { ch: '中', at: 5 }),
            ("sip:%3B12356@gw", BadChar { ch: ';', at: 4 }),
            ("sip:12%G1@gw", BadEscape { at: 6 }),
            ("sip:12%2@gw", BadEscape { at: 6 }),
            ("sip:12%E4%B8%AD@gw", BadEscape { at: 6 }),
            ("1", BadLength { digits: 1 }),
            ("123456", BadLength { digits: 6 }),
            ("123456789", BadLength { digits: 9 }),
            ("856666612", BadLength { digits: 9 }),
            ("0591", BadLength { digits: 4 }),
            ("0591856666612", BadLength { digits: 13 }),
            ("059185666", BadLength { digits: 9 }),
            ("05910123456", BadLength { digits: 11 }),
            ("59185666661", BadLength { digits: 11 }),
            ("+8612", BadLength { digits: 4 }),
            ("+86", BadLength { digits: 2 }),
            ("+8610086", BadLength { digits: 7 }),
            ("+861380000000", BadLength { digits: 12 }),
            ("12345678901234567890", BadLength { digits: 20 }),
            (
                "01112345678",
                BadArea {
                    code: "011".to_owned(),
                },
            ),
            (
                "tel:85666661;phone-context=+86-111",
                BadArea {
                    code: "0111".to_owned(),
                },
            ),
            (
                "tel:85666661;phone-context=+86-59123",
                BadArea {
                    code: "059123".to_owned(),
                },
            ),
            ("85666661", NeedsArea),
            ("sip:85666661@gw;user=phone", NeedsArea),
            ("tel:85666661;phone-context=+86", NeedsArea),
            ("tel:85666661;phone-context=example.com", NeedsArea),
            ("+12125551234", Foreign { country: 1 }),
            ("sip:+85221234567@gw", Foreign { country: 852 }),
            ("0085221234567", Foreign { country: 852 }),
            ("+886212345678", Foreign { country: 886 }),
            ("+447911123456", Foreign { country: 44 }),
            ("tel:85666661;phone-context=+1-212", Foreign { country: 1 }),
            ("+0591", NoCountry),
            ("000123", NoCountry),
            ("00", NoCountry),
            ("tel:85666661;phone-context=+", NoCountry),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input, &nowhere()), Err(want.clone()), "{input}");
        }
    }

    #[test]
    fn area_codes_need_the_trunk_prefix_and_the_plan_shape() {
        for ok in ["010", "020", "021", "029", "0591", "0755", "0898", "0300"] {
            assert_eq!(AreaCode::new(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "", "0", "01", "011", "019", "0100", "02", "0211", "059", "05911", "591", "10", "21",
            "0059", "000", "0a91", "0591 ", "٠٥٩١",
        ] {
            assert_eq!(
                AreaCode::new(bad),
                Err(NumberError::BadArea {
                    code: bad.to_owned()
                }),
                "{bad}"
            );
        }
        let e = AreaCode::new("591").unwrap_err().to_string();
        assert!(e.contains("trunk prefix 0"), "{e}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(8192))]
        #[test]
        fn plain_digits_are_what_the_general_reader_reads(
            lead in usual_or("", "( |\t|<)"),
            scheme in usual_or("(sip:|SIPS:|sIp:)", "(tel:|sip|si:|sips;)"),
            user in usual_or("[0-9]{1,16}", "([0-9]{17,20}|[0-9+%;:a() .-]{0,8}|\u{4e2d})"),
            at in usual_or("@", "(@@||:pw@|;x@)"),
            host in usual_or(
                "(127\\.0\\.0\\.1|gw\\.example|[a-z0-9.]{1,8})",
                "(\\[::1\\]|h h|h\\?x|h>|\u{4e2d}|h@x|)",
            ),
            port in usual_or("(|:5060|:[0-9]{1,5})", "(:0|:65536|:|:x|:05060)"),
            params in usual_or(
                "(|;user=phone|;phone-context=\\+86-591|;lr)",
                "(;|;x@y|;x |\\?x|>|;phone-context=\\+1)",
            ),
            tail in usual_or("", "( |\t|\u{3000})"),
        ) {
            let text = format!("{lead}{scheme}{user}{at}{host}{port}{params}{tail}");
            if let Some(fast) = plain_digits(&text) {
                let (digits, params) = read(&text).unwrap();
                proptest::prop_assert_eq!(fast, digits, "{:?}", text);
                proptest::prop_assert_eq!(params.0, params.1, "{:?}", text);
            }
            // And the whole number, read by the general path, from each origin.
            for d in [nowhere(), from("0591"), from("010")] {
                let general = read(&text).and_then(|(digits, params)| {
                    canonical(&text, &digits, params, &d)
                });
                proptest::prop_assert_eq!(normalize(&text, &d), general, "{:?}", text);
            }
        }
    }

    #[test]
    fn plain_digits_read_only_the_usual_request_uri() {
        for text in [
            "sip:12356@127.0.0.1:5060",
            "SIPS:059185666661@gw.example;user=phone",
            "sip:1234567890123456@[::1]:5061",
        ] {
            let fast = plain_digits(text);
            assert!(fast.is_some(), "{text}");
            assert_eq!(fast, read(text).ok().map(|(d, _)| d), "{text}");
        }
        for text in [
            "sip:12345678901234567@gw",
            "sip:+8612356@gw",
            "sip:123-56@gw",
            "sip:12356;phone-context=+86-591@gw",
            "sip:12356:pw@gw",
            "sip:12356@gw:0",
            "sip:12356@gw ",
            " sip:12356@gw",
            "<sip:12356@gw>",
            "tel:12356",
            "12356",
        ] {
            assert_eq!(plain_digits(text), None, "{text}");
        }
    }

    #[test]
    fn canonical_numbers_normalize_to_themselves() {
        for n in [
            "059185666661",
            "059112356",
            "01012345678",
            "01012356",
            "13800000000",
            "4001234567",
            "12356",
        ] {
            assert_eq!(normalize(n, &nowhere()).unwrap().as_str(), n);
            assert_eq!(normalize(n, &nowhere()).unwrap().to_string(), n);
        }
    }
}
