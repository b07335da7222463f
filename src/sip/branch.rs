//! Deterministic branch parameters (RFC 3261 §16.11): derived from the request, so a
//! retransmission, its CANCEL and a non-2xx ACK get the same branch. No randomness here.
//!
//! Hashing is FNV-1a 64 with a splitmix64 finalizer, written out here rather than taken from
//! `std` (whose `DefaultHasher` may change between Rust releases), so a branch is the same on
//! every build and machine: two gateway instances behind one address agree on it.
//!
//! A gateway branch reads `z9hG4bKdg` + 16 lower-case hex digits of [`Branch::txn`] + `.` +
//! 16 lower-case hex digits of [`Branch::loop_key`] + `.` + 16 lower-case hex digits of
//! [`Branch::mac`], 59 characters in all.
//!
//! The MAC authenticates the branch: SipHash-2-4 keyed with the deployment's 128-bit [`Key`]
//! over `txn`, `loop_key` and what the caller adds (the return hop the gateway recorded, the
//! `dgn`/`dgq` marks). SipHash is a PRF built to authenticate short messages with a secret key
//! (Linux uses it for SYN cookies, the same problem: state handed to the peer and checked when
//! it comes back); it is deterministic, so a retransmission still gets the same branch, and
//! costs about as much as the FNV hashes beside it. A responder that does not know the key
//! cannot make a branch the gateway accepts, nor move a real one to another return hop.

use super::message::Message;
use siphasher::sip::SipHasher24;
use std::fmt;
use std::hash::Hasher;

/// The RFC 3261 magic cookie plus the gateway's marker.
pub const BRANCH_PREFIX: &str = "z9hG4bK";

/// How every branch the gateway writes begins: the magic cookie and the gateway's marker.
pub const GATEWAY_PREFIX: &str = "z9hG4bKdg";

/// `;branch=` and [`GATEWAY_PREFIX`]: what the gateway's Via carries before the branch fields.
const PARAM_HEAD: &[u8; 17] = b";branch=z9hG4bKdg";

/// The secret that keys the MAC in the gateway's branches: 128 bits, the same on every replica
/// that may see another's responses.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Key([u8; 16]);

impl Key {
    /// A key from its 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Key {
        Key(bytes)
    }

    /// A key written as exactly 32 hex digits (`openssl rand -hex 16`); `None` otherwise.
    pub fn from_hex(s: &str) -> Option<Key> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut k = [0u8; 16];
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Key(k))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never in logs or `check` output.
        f.write_str("Key(..)")
    }
}

/// The three parts of a gateway branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Branch {
    /// Identifies the transaction: same for INVITE, its CANCEL and its non-2xx ACK.
    pub txn: u64,
    /// Identifies the request's routing state, for loop detection (RFC 3261 §16.3 step 4).
    pub loop_key: u64,
    /// Keyed MAC over `txn`, `loop_key` and the fields given to [`Branch::sealed`]; 0 until
    /// sealed.
    pub mac: u64,
}

impl Branch {
    /// The branch for forwarding `req`.
    ///
    /// `txn`: with an RFC 3261 top Via (branch starting `z9hG4bK`), a hash of that branch and
    /// the sent-by, which INVITE, its CANCEL and its non-2xx ACK share (§9.1, §17.1.1.3);
    /// otherwise (RFC 2543 peers) a hash of Call-ID, From tag, CSeq number, the top Via and the
    /// Request-URI. `loop_key`: a hash of Request-URI, From tag, Call-ID, CSeq number and every
    /// Route entry (§16.6 step 8 without the To tag: the ACK for a non-2xx response carries the
    /// response's To tag, yet must get the INVITE's whole branch, §16.11).
    pub fn of(req: &Message<'_>) -> Branch {
        Branch::of_top_keyed(req, req.top_via().as_ref()).0
    }

    /// [`Branch::of`], with the request's top Via already parsed (`top_via`, so a caller that
    /// has it does not parse it again), and the request's rendezvous key, `hash64(&[call_id])` (what
    /// [`rendezvous_hashed`] computes from the Call-ID), hashed side by side: FNV-1a is a chain
    /// of multiplications, each waiting for the one before, so independent chains run in
    /// lock-step take the time of the longest, not of all.
    pub fn of_top_keyed(req: &Message<'_>, top_via: Option<&super::Via<'_>>) -> (Branch, u64) {
        let uri = req.request_uri().unwrap_or_default().as_bytes();
        let call_id = req.call_id().unwrap_or_default().as_bytes();
        let from_tag = req.from_tag().unwrap_or_default().as_bytes();
        let cseq = req.cseq().map_or(0, |(n, _)| n).to_be_bytes();
        let cseq = &cseq[..];
        let (txn, mut loop_key, call) = match top_via {
            Some(v) if v.branch.is_some_and(|b| b.starts_with(BRANCH_PREFIX)) => {
                let port = v.port.map_or([0; 3], |p| {
                    let [hi, lo] = p.to_be_bytes();
                    [1, hi, lo]
                });
                // The transaction's chain over "3261", branch, host and port; the loop key's
                // over Request-URI, From tag, Call-ID and CSeq number; the rendezvous key's
                // over the Call-ID, beside the first two parts.
                let branch = v.branch.unwrap_or_default().as_bytes();
                let host = v.host.as_bytes();
                let [txn, loop_key, call] = Fnv::parts3(
                    [Fnv::new(), Fnv::new(), Fnv::new()],
                    [b"3261", uri, call_id],
                );
                let (mut txn, mut loop_key) = (txn, loop_key);
                for (t, l) in [(branch, from_tag), (host, call_id), (&port[..], cseq)] {
                    (txn, loop_key) = Fnv::parts2(txn, t, loop_key, l);
                }
                (txn.finish(), loop_key, call.finish())
            }
            _ => {
                let top = top_via.map_or("", |v| v.raw).as_bytes();
                let mut loop_key = Fnv::new();
                for part in [uri, from_tag, call_id, cseq] {
                    loop_key.part(part);
                }
                let txn = hash64(&[b"2543", call_id, from_tag, cseq, top, uri]);
                (txn, loop_key, hash64(&[call_id]))
            }
        };
        for route in req.routes() {
            loop_key.part(route.as_bytes());
        }
        let branch = Branch {
            txn,
            loop_key: loop_key.finish(),
            mac: 0,
        };
        (branch, call)
    }

    /// This branch with its MAC computed under `key` over `txn`, `loop_key` and `bound` (each
    /// part length-prefixed): what a response must bring back unchanged to be accepted.
    pub fn sealed(self, key: &Key, bound: &[&[u8]]) -> Branch {
        Branch {
            mac: self.mac_of(key, bound),
            ..self
        }
    }

    /// Whether the MAC is the one [`Branch::sealed`] computes for `key` and `bound`.
    pub fn verifies(&self, key: &Key, bound: &[&[u8]]) -> bool {
        // A timing difference in comparing two u64 is not observable across a network hop
        // against the noise of handling a message, and a forger gets no answer either way.
        self.mac == self.mac_of(key, bound)
    }

    fn mac_of(&self, key: &Key, bound: &[&[u8]]) -> u64 {
        let h = SipHasher24::new_with_key(&key.0);
        // The MAC's input: `txn`, `loop_key`, then each bound part length-prefixed. SipHash
        // reads a byte stream, so the pieces gathered on the stack and hashed at once give the
        // same MAC as one write per piece, in far fewer steps; a longer input is streamed.
        let mut buf = [0u8; 256];
        if let Some(len) = gather(&mut buf, self.txn, self.loop_key, bound) {
            return h.hash(buf.get(..len).unwrap_or_default());
        }
        let mut h = h;
        h.write(&self.txn.to_be_bytes());
        h.write(&self.loop_key.to_be_bytes());
        for part in bound {
            h.write(&(part.len() as u64).to_le_bytes());
            h.write(part);
        }
        h.finish()
    }

    /// The `branch` parameter value: `z9hG4bKdg{txn:016x}.{loop_key:016x}.{mac:016x}`.
    pub fn to_param(&self) -> String {
        let text = self.text();
        // The prefix, hex digits and dots: ASCII.
        let param = text.get(PARAM_HEAD.len() - GATEWAY_PREFIX.len()..);
        std::str::from_utf8(param.unwrap_or_default())
            .unwrap_or_default()
            .to_string()
    }

    /// Appends `;branch=` and [`Branch::to_param`]'s text to `out` as one piece, digit by
    /// digit (no formatting machinery: this runs for every forwarded request, into the
    /// forwarded bytes).
    pub fn write_param(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.text());
    }

    /// `;branch=`, the gateway prefix, the three 16-digit fields and the two dots between
    /// them.
    fn text(&self) -> [u8; PARAM_HEAD.len() + 50] {
        let mut text = [b'.'; PARAM_HEAD.len() + 50];
        let (head, fields) = text.split_at_mut(PARAM_HEAD.len());
        head.copy_from_slice(PARAM_HEAD);
        for (field, n) in fields
            .chunks_mut(17)
            .zip([self.txn, self.loop_key, self.mac])
        {
            if let Some(digits) = field.get_mut(..16) {
                digits.copy_from_slice(&hex_digits(n));
            }
        }
        text
    }

    /// Reads back a branch written by [`Branch::to_param`]; `None` for anything else.
    pub fn parse(param: &str) -> Option<Branch> {
        let rest = param.strip_prefix(GATEWAY_PREFIX)?.as_bytes();
        // Three fields of exactly 16 hex digits, so the dots sit at fixed places.
        if rest.len() != 50 || rest.get(16) != Some(&b'.') || rest.get(33) != Some(&b'.') {
            return None;
        }
        let (txn, loop_key, mac) = (rest.get(..16)?, rest.get(17..33)?, rest.get(34..)?);
        Some(Branch {
            txn: hex16(txn)?,
            loop_key: hex16(loop_key)?,
            mac: hex16(mac)?,
        })
    }

    /// The loop half of a branch the gateway wrote; `None` for foreign branches.
    pub fn loop_key_of(param: &str) -> Option<u64> {
        Branch::parse(param).map(|b| b.loop_key)
    }
}

/// Writes the MAC's input (`txn` and `loop_key` big-endian, then each part after its length
/// as 8 little-endian bytes) into `buf`; its length, or `None` when it does not fit.
fn gather(buf: &mut [u8; 256], txn: u64, loop_key: u64, bound: &[&[u8]]) -> Option<usize> {
    let (head, mut rest) = buf.split_at_mut(16);
    let (t, l) = head.split_at_mut(8);
    t.copy_from_slice(&txn.to_be_bytes());
    l.copy_from_slice(&loop_key.to_be_bytes());
    for part in bound {
        let (len, tail) = rest.split_at_mut_checked(8)?;
        len.copy_from_slice(&(part.len() as u64).to_le_bytes());
        let (bytes, tail) = tail.split_at_mut_checked(part.len())?;
        bytes.copy_from_slice(part);
        rest = tail;
    }
    Some(256 - rest.len())
}

/// Exactly 16 hex digits (either case).
fn hex16(s: &[u8]) -> Option<u64> {
    let digits: &[u8; 16] = s.try_into().ok()?;
    let (hi, lo) = digits.split_at(8);
    Some(u64::from(hex8(hi.try_into().ok()?)?) << 32 | u64::from(hex8(lo.try_into().ok()?)?))
}

/// Eight hex digits (either case) read at once: every byte classified with carry-free byte
/// sums (no byte reaches 0x80 before them, so no carry crosses into the next byte), then the
/// nibbles gathered into one word. `None` when any byte is not a hex digit.
fn hex8(digits: &[u8; 8]) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let x = u64::from_be_bytes(*digits);
    if x & HIGH != 0 {
        return None;
    }
    // The high bit of each byte: set where the byte is at least `lo` / at most `hi`.
    let at_least = |v: u64, lo: u8| (v + u64::from(0x80 - lo) * ONES) & HIGH;
    let at_most = |v: u64, hi: u8| !(v + u64::from(0x7f - hi) * ONES) & HIGH;
    let digit = at_least(x, b'0') & at_most(x, b'9');
    let lower = x | (0x20 * ONES);
    let letter = at_least(lower, b'a') & at_most(lower, b'f');
    if digit | letter != HIGH {
        return None;
    }
    // '0'..'9' and 'a'..'f' / 'A'..'F' end in their value, the letters less 9.
    let n = (x & (0x0f * ONES)) + (letter >> 7) * 9;
    let n = (n | n >> 4) & 0x00ff_00ff_00ff_00ff;
    let n = (n | n >> 8) & 0x0000_ffff_0000_ffff;
    u32::try_from((n | n >> 16) & 0xffff_ffff).ok()
}

/// `n` as 16 lower-case hex digits, most significant first: each half's nibbles spread to
/// one byte each, then every nibble turned into its digit at once (`'0'` plus the nibble, plus
/// 39 more from `a` up).
fn hex_digits(n: u64) -> [u8; 16] {
    fn spread(half: u32) -> u64 {
        let x = u64::from(half);
        let x = (x | x << 16) & 0x0000_ffff_0000_ffff;
        let x = (x | x << 8) & 0x00ff_00ff_00ff_00ff;
        (x | x << 4) & 0x0f0f_0f0f_0f0f_0f0f
    }
    fn digits(nibbles: u64) -> u64 {
        const ONES: u64 = 0x0101_0101_0101_0101;
        // 1 in each byte whose nibble is 10 or more.
        let letter = ((nibbles + 6 * ONES) >> 4) & ONES;
        nibbles + u64::from(b'0') * ONES + letter * 39
    }
    let mut out = [0u8; 16];
    let (hi, lo) = out.split_at_mut(8);
    hi.copy_from_slice(&digits(spread((n >> 32) as u32)).to_be_bytes());
    lo.copy_from_slice(&digits(spread(n as u32)).to_be_bytes());
    out
}

/// A stable 64-bit hash of a sequence of byte strings; each part is length-prefixed, so
/// `["ab", "c"]` and `["a", "bc"]` differ.
pub fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h = Fnv::new();
    for p in parts {
        h.part(p);
    }
    h.finish()
}

/// Highest-random-weight (rendezvous) choice: the index of the candidate with the highest
/// score for `key`, ties to the lower index; `None` when there are no candidates. Removing a
/// candidate only moves the keys that were on it.
pub fn rendezvous<'k>(key: &[u8], candidates: impl IntoIterator<Item = &'k [u8]>) -> Option<usize> {
    rendezvous_hashed(key, candidates.into_iter().map(|c| hash64(&[c])))
}

/// [`rendezvous`] over the candidates' [`hash64`]s, which a caller can compute once per
/// candidate rather than once per call.
pub fn rendezvous_hashed(key: &[u8], candidates: impl IntoIterator<Item = u64>) -> Option<usize> {
    rendezvous_keyed(hash64(&[key]), candidates)
}

/// [`rendezvous_hashed`] with the key's [`hash64`] already computed (`key_hash`), as
/// [`Branch::of_top_keyed`] gives it for a Call-ID.
pub fn rendezvous_keyed(key_hash: u64, candidates: impl IntoIterator<Item = u64>) -> Option<usize> {
    let mut best: Option<(u64, usize)> = None;
    for (i, c) in candidates.into_iter().enumerate() {
        let score = mix(key_hash ^ c);
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, i));
        }
    }
    best.map(|(_, i)| i)
}

/// Incremental FNV-1a 64 over length-prefixed parts.
struct Fnv(u64);

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    /// `PRIME`⁷ (mod 2⁶⁴): FNV-1a over seven zero bytes.
    const PRIME_POW7: u64 = Fnv::prime_pow(7);
    /// `PRIME`⁸ (mod 2⁶⁴).
    const PRIME_POW8: u64 = Fnv::prime_pow(8);

    const fn prime_pow(n: u32) -> u64 {
        let mut p = 1u64;
        let mut i = 0;
        while i < n {
            p = p.wrapping_mul(Fnv::PRIME);
            i += 1;
        }
        p
    }

    fn new() -> Fnv {
        Fnv(Fnv::OFFSET)
    }

    fn byte(&mut self, b: u8) {
        self.0 = (self.0 ^ u64::from(b)).wrapping_mul(Fnv::PRIME);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.byte(b);
        }
    }

    /// A part's length prefix: the length as 8 little-endian bytes. FNV-1a over a zero byte
    /// is one multiplication by the prime, so the zero bytes above the length's lowest one or
    /// two are one multiplication by a power of the prime: the same value in fewer steps.
    fn len(&mut self, len: usize) {
        if let Ok(len) = u8::try_from(len) {
            self.0 = (self.0 ^ u64::from(len)).wrapping_mul(Fnv::PRIME_POW8);
        } else if let Ok(len) = u16::try_from(len) {
            let [lo, hi] = len.to_le_bytes();
            self.byte(lo);
            self.0 = (self.0 ^ u64::from(hi)).wrapping_mul(Fnv::PRIME_POW7);
        } else {
            self.bytes(&(len as u64).to_le_bytes());
        }
    }

    fn part(&mut self, part: &[u8]) {
        self.len(part.len());
        self.bytes(part);
    }

    /// `a.part(pa)` and `b.part(pb)` in lock-step. FNV-1a is a chain of multiplications, each
    /// waiting for the one before: two independent chains side by side take the time of the
    /// longer one, not of both. By value, so the chains stay in registers between parts.
    fn parts2(a: Fnv, pa: &[u8], b: Fnv, pb: &[u8]) -> (Fnv, Fnv) {
        let (mut a, mut b) = (a, b);
        a.len(pa.len());
        b.len(pb.len());
        Fnv::rest2(a, pa, b, pb)
    }

    /// [`Fnv::parts2`] for three chains.
    fn parts3(h: [Fnv; 3], p: [&[u8]; 3]) -> [Fnv; 3] {
        let [mut a, mut b, mut c] = h;
        let [pa, pb, pc] = p;
        a.len(pa.len());
        b.len(pb.len());
        c.len(pc.len());
        let n = pa.len().min(pb.len()).min(pc.len());
        let (ha, ta) = pa.split_at(n);
        let (hb, tb) = pb.split_at(n);
        let (hc, tc) = pc.split_at(n);
        for ((&x, &y), &z) in ha.iter().zip(hb).zip(hc) {
            a.byte(x);
            b.byte(y);
            c.byte(z);
        }
        (b, c) = Fnv::rest2(b, tb, c, tc);
        a.bytes(ta);
        [a, b, c]
    }

    /// The bytes `pa` and `pb` into `a` and `b`, in lock-step as far as both go.
    fn rest2(a: Fnv, pa: &[u8], b: Fnv, pb: &[u8]) -> (Fnv, Fnv) {
        let (mut a, mut b) = (a, b);
        let n = pa.len().min(pb.len());
        let (ha, ta) = pa.split_at(n);
        let (hb, tb) = pb.split_at(n);
        for (&x, &y) in ha.iter().zip(hb) {
            a.byte(x);
            b.byte(y);
        }
        a.bytes(ta);
        b.bytes(tb);
        (a, b)
    }

    fn finish(&self) -> u64 {
        mix(self.0)
    }
}

/// splitmix64's finalizer: spreads FNV's weak low-entropy high bits over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hex_digits_write_what_format_writes() {
        let mut n = 0x0123_4567_89ab_cdefu64;
        for _ in 0..10_000 {
            assert_eq!(hex_digits(n), *format!("{n:016x}").as_bytes(), "{n:x}");
            n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        }
        for n in [0, u64::MAX, 0xa, 0x9 << 60, 0xf0f0_0f0f_a5a5_5a5a] {
            assert_eq!(hex_digits(n), *format!("{n:016x}").as_bytes(), "{n:x}");
        }
    }

    #[test]
    fn hex16_reads_exactly_what_from_str_radix_reads() {
        let mut checked = 0;
        for at in 0..16 {
            for b in 0..=255u8 {
                let mut s = *b"0123456789abcDEF";
                s[at] = b;
                let want = s
                    .iter()
                    .all(u8::is_ascii_hexdigit)
                    .then(|| u64::from_str_radix(std::str::from_utf8(&s).unwrap(), 16).unwrap());
                assert_eq!(hex16(&s), want, "{s:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, 4096);
        assert_eq!(hex16(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(hex16(b"0123456789abcde"), None);
        assert_eq!(hex16(b"0123456789abcdef0"), None);
    }
    use crate::sip::fixture::{invite, with_body};
    use crate::sip::message::parse;

    fn branch(raw: &[u8]) -> Branch {
        Branch::of(&parse(raw).unwrap())
    }

    fn request(method: &str, uri: &str, via: &str, cseq: u32, to: &str, routes: &str) -> Vec<u8> {
        format!(
            "{method} {uri} SIP/2.0\r\nVia: {via}\r\n{routes}From: <sip:c@carrier>;tag=ft\r\n\
To: <sip:12356@gw>{to}\r\nCall-ID: call-1\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n\r\n"
        )
        .into_bytes()
    }

    // Cross-checked against an independent Python FNV-1a + splitmix64 implementation: these
    // must never change, or two gateway versions disagree on branches.
    const PINNED_EMPTY: u64 = 0xf52a_15e9_a9b5_e89b;
    const PINNED_PAIR: u64 = 0x1637_d8c7_7404_3736;

    const VIA: &str = "SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK776asdhds";

    #[test]
    fn hash_is_pinned_and_separates_parts() {
        assert_eq!(hash64(&[]), PINNED_EMPTY);
        assert_eq!(hash64(&[b"z9hG4bK776asdhds", b"203.0.113.7"]), PINNED_PAIR);
        assert_ne!(hash64(&[b"ab", b"c"]), hash64(&[b"a", b"bc"]));
        assert_ne!(hash64(&[b"abc"]), hash64(&[b"abc", b""]));
        assert_ne!(hash64(&[b""]), hash64(&[]));
    }

    #[test]
    fn invite_cancel_and_non2xx_ack_share_the_transaction() {
        let inv = branch(&request("INVITE", "sip:12356@gw", VIA, 1, "", ""));
        let cancel = branch(&request("CANCEL", "sip:12356@gw", VIA, 1, "", ""));
        let ack = branch(&request("ACK", "sip:12356@gw", VIA, 1, ";tag=dg1", ""));
        assert_eq!(inv.txn, cancel.txn);
        assert_eq!(inv.txn, ack.txn);
        assert_eq!(
            inv,
            branch(&request("INVITE", "sip:12356@gw", VIA, 1, "", ""))
        );
        let other_branch = VIA.replace("asdhds", "asdhdt");
        let other_port = VIA.replace(":5060", "");
        for via in [other_branch.as_str(), other_port.as_str()] {
            assert_ne!(
                inv.txn,
                branch(&request("INVITE", "sip:12356@gw", via, 1, "", "")).txn,
                "{via}"
            );
        }
    }

    #[test]
    fn rfc2543_requests_hash_dialog_fields_without_the_method() {
        for via in [
            "SIP/2.0/UDP 203.0.113.7:5060;branch=1234",
            "SIP/2.0/UDP 203.0.113.7:5060",
        ] {
            let inv = branch(&request("INVITE", "sip:12356@gw", via, 5, "", ""));
            let cancel = branch(&request("CANCEL", "sip:12356@gw", via, 5, "", ""));
            assert_eq!(inv.txn, cancel.txn, "{via}");
            for other in [
                request("INVITE", "sip:12356@gw", via, 6, "", ""),
                request("INVITE", "sip:12357@gw", via, 5, "", ""),
                request(
                    "INVITE",
                    "sip:12356@gw",
                    &via.replace(".7:", ".8:"),
                    5,
                    "",
                    "",
                ),
            ] {
                assert_ne!(inv.txn, branch(&other).txn, "{via}");
            }
        }
    }

    #[test]
    fn loop_key_follows_routing_state_not_the_via() {
        let base = branch(&request("INVITE", "sip:12356@gw", VIA, 1, "", ""));
        let other_via = VIA.replace("asdhds", "zzz");
        assert_eq!(
            base.loop_key,
            branch(&request("INVITE", "sip:12356@gw", &other_via, 1, "", "")).loop_key
        );
        // The non-2xx ACK carries the response's To tag but must get the INVITE's branch.
        assert_eq!(
            base.loop_key,
            branch(&request("INVITE", "sip:12356@gw", VIA, 1, ";tag=x", "")).loop_key
        );
        let changed = [
            request("INVITE", "sip:059185666661@gw", VIA, 1, "", ""),
            request("INVITE", "sip:12356@gw", VIA, 2, "", ""),
            request(
                "INVITE",
                "sip:12356@gw",
                VIA,
                1,
                "",
                "Route: <sip:next;lr>\r\n",
            ),
        ];
        for raw in &changed {
            assert_ne!(
                base.loop_key,
                branch(raw).loop_key,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let split = branch(&request(
            "INVITE",
            "sip:12356@gw",
            VIA,
            1,
            "",
            "Route: <sip:a;lr>\r\nRoute: <sip:b;lr>\r\n",
        ));
        let combined = branch(&request(
            "INVITE",
            "sip:12356@gw",
            VIA,
            1,
            "",
            "Route: <sip:a;lr>, <sip:b;lr>\r\n",
        ));
        assert_eq!(split.loop_key, combined.loop_key);
    }

    #[test]
    fn param_has_the_documented_format_and_reads_back() {
        let b = Branch {
            txn: 0x0123_4567_89ab_cdef,
            loop_key: 0xfedc_ba98_7654_3210,
            mac: 0x0011_2233_4455_6677,
        };
        let p = b.to_param();
        assert_eq!(
            p,
            "z9hG4bKdg0123456789abcdef.fedcba9876543210.0011223344556677"
        );
        assert_eq!(Branch::parse(&p), Some(b));
        assert_eq!(Branch::loop_key_of(&p), Some(0xfedc_ba98_7654_3210));
        let real = branch(&invite());
        assert_eq!(real.to_param().len(), 59);
        assert!(real.to_param().starts_with(GATEWAY_PREFIX));
        assert_eq!(PARAM_HEAD, format!(";branch={GATEWAY_PREFIX}").as_bytes());
        let mut written = Vec::new();
        real.write_param(&mut written);
        assert_eq!(written, format!(";branch={}", real.to_param()).into_bytes());
        assert_eq!(Branch::parse(&real.to_param()), Some(real));
        let foreign = [
            "z9hG4bK776asdhds",
            "z9hG4bKdg0123456789abcdef",
            // The 42-character form of earlier versions carries no MAC.
            "z9hG4bKdg0123456789abcdef.fedcba9876543210",
            "z9hG4bKdg0123456789abcde.fedcba9876543210.0011223344556677",
            "z9hG4bKdg0123456789abcdef.fedcba9876543210.00112233445566778",
            "z9hG4bKdg+123456789abcdef.fedcba9876543210.0011223344556677",
            "z9hG4bKdg0123456789abcdeg.fedcba9876543210.0011223344556677",
            "Z9HG4BKdg0123456789abcdef.fedcba9876543210.0011223344556677",
            "z9hG4bKdg0123456789abcdef.fedcba9876543210.",
            "",
        ];
        for f in foreign {
            assert_eq!(Branch::loop_key_of(f), None, "{f}");
        }
    }

    #[test]
    fn the_mac_is_siphash_of_the_pieces_in_order_however_long() {
        let key = Key::from_bytes([3u8; 16]);
        let b = Branch {
            txn: 0x0123_4567_89ab_cdef,
            loop_key: 42,
            mac: 0,
        };
        let long = vec![b'x'; 300];
        for bound in [
            &[&b"hop"[..], b"12356", b"q"][..],
            &[b"hop", &long[..], b"q"][..],
        ] {
            let mut h = SipHasher24::new_with_key(&key.0);
            h.write(&b.txn.to_be_bytes());
            h.write(&b.loop_key.to_be_bytes());
            for part in bound {
                h.write(&(part.len() as u64).to_le_bytes());
                h.write(part);
            }
            assert_eq!(b.mac_of(&key, bound), h.finish(), "{}", bound[1].len());
        }
    }

    #[test]
    fn the_mac_binds_key_branch_and_every_bound_field() {
        let key = Key::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
        let other = Key::from_hex("000102030405060708090a0b0c0d0e0e").unwrap();
        let b = branch(&invite());
        let sealed = b.sealed(&key, &[b"udp 203.0.113.7:5060", b"dgn"]);
        assert_ne!(sealed.mac, 0);
        // Deterministic: a retransmission gets the same branch, on any replica with the key.
        assert_eq!(sealed, b.sealed(&key, &[b"udp 203.0.113.7:5060", b"dgn"]));
        assert!(sealed.verifies(&key, &[b"udp 203.0.113.7:5060", b"dgn"]));
        let parsed = Branch::parse(&sealed.to_param()).unwrap();
        assert!(parsed.verifies(&key, &[b"udp 203.0.113.7:5060", b"dgn"]));
        for (k, bound) in [
            (&other, &[&b"udp 203.0.113.7:5060"[..], b"dgn"][..]),
            (&key, &[b"udp 198.51.100.1:5060", b"dgn"]),
            (&key, &[b"udp 203.0.113.7:5060", b"dgq"]),
            (&key, &[b"udp 203.0.113.7:5060dgn"]),
            (&key, &[b"udp 203.0.113.7:5060", b"dgn", b""]),
        ] {
            assert!(!sealed.verifies(k, bound), "{bound:?}");
        }
        let moved = Branch {
            loop_key: sealed.loop_key ^ 1,
            ..sealed
        };
        assert!(!moved.verifies(&key, &[b"udp 203.0.113.7:5060", b"dgn"]));
    }

    #[test]
    fn keys_are_32_hex_digits_and_never_printed() {
        assert_eq!(
            Key::from_hex("000102030405060708090A0B0C0D0E0F"),
            Some(Key::from_bytes([
                0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
            ]))
        );
        for bad in [
            "",
            "0001",
            "000102030405060708090a0b0c0d0e0f00",
            "g00102030405060708090a0b0c0d0e0f",
            "+0102030405060708090a0b0c0d0e0f",
        ] {
            assert_eq!(Key::from_hex(bad), None, "{bad}");
        }
        let k = Key::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
        assert_eq!(format!("{k:?}"), "Key(..)");
    }

    #[test]
    fn branch_of_a_message_without_headers_is_still_defined() {
        let a = branch(b"FOO tel:1 SIP/2.0\r\n\r\n");
        let b = branch(&with_body("FOO tel:1 SIP/2.0\r\n", b"body"));
        assert_eq!(a, b);
    }

    #[test]
    fn rendezvous_is_stable_minimal_and_even() {
        let four: [&[u8]; 4] = [b"queue-a", b"queue-b", b"queue-c", b"queue-d"];
        let three: [&[u8]; 3] = [b"queue-a", b"queue-b", b"queue-d"];
        assert_eq!(rendezvous(b"k", std::iter::empty()), None);
        assert_eq!(rendezvous(b"k", [&b"only"[..]]), Some(0));
        let mut counts = [0usize; 4];
        for i in 0..10_000u32 {
            let key = format!("call-{i}@carrier.example");
            let on4 = rendezvous(key.as_bytes(), four).unwrap();
            assert_eq!(rendezvous(key.as_bytes(), four), Some(on4));
            counts[on4] += 1;
            let on3 = three[rendezvous(key.as_bytes(), three).unwrap()];
            if on4 != 2 {
                assert_eq!(on3, four[on4], "{key} moved off a surviving backend");
            }
        }
        for c in counts {
            assert!((2_000..=3_000).contains(&c), "{counts:?}");
        }
    }

    /// FNV-1a 64 as first written: every part after its length as 8 little-endian bytes, one
    /// byte at a time, then the finalizer. What every faster path must equal.
    fn hash64_reference(parts: &[&[u8]]) -> u64 {
        let mut h = Fnv::OFFSET;
        for p in parts {
            for &b in (p.len() as u64).to_le_bytes().iter().chain(p.iter()) {
                h = (h ^ u64::from(b)).wrapping_mul(Fnv::PRIME);
            }
        }
        mix(h)
    }

    /// [`Branch::of`] as first written, over [`hash64_reference`].
    fn branch_reference(req: &Message<'_>) -> Branch {
        let top_via = req.top_via();
        let uri = req.request_uri().unwrap_or_default().as_bytes();
        let call_id = req.call_id().unwrap_or_default().as_bytes();
        let from_tag = req.from_tag().unwrap_or_default().as_bytes();
        let cseq = req.cseq().map_or(0, |(n, _)| n).to_be_bytes();
        let top = top_via.as_ref().map_or("", |v| v.raw);
        let txn = match &top_via {
            Some(v) if v.branch.is_some_and(|b| b.starts_with(BRANCH_PREFIX)) => {
                let port = v.port.map_or([0; 3], |p| {
                    let [hi, lo] = p.to_be_bytes();
                    [1, hi, lo]
                });
                hash64_reference(&[
                    b"3261",
                    v.branch.unwrap_or_default().as_bytes(),
                    v.host.as_bytes(),
                    &port,
                ])
            }
            _ => hash64_reference(&[b"2543", call_id, from_tag, &cseq, top.as_bytes(), uri]),
        };
        let mut parts: Vec<&[u8]> = vec![uri, from_tag, call_id, &cseq[..]];
        parts.extend(req.routes().map(str::as_bytes));
        Branch {
            txn,
            loop_key: hash64_reference(&parts),
            mac: 0,
        }
    }

    #[test]
    fn hash64_equals_the_reference_across_the_length_prefix_shortcuts() {
        for len in [0, 1, 255, 256, 257, 65_535, 65_536, 70_000] {
            let part: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            for parts in [&[&part[..]][..], &[b"ab", &part[..], b""]] {
                assert_eq!(hash64(parts), hash64_reference(parts), "{len}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn hash64_equals_the_reference(
            parts in proptest::collection::vec(
                proptest::collection::vec(proptest::num::u8::ANY, 0..600),
                0..6,
            )
        ) {
            let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            proptest::prop_assert_eq!(hash64(&parts), hash64_reference(&parts));
        }

        #[test]
        fn rendezvous_by_key_is_rendezvous_by_the_keys_hash(
            key in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
            candidates in proptest::collection::vec(proptest::num::u64::ANY, 0..6),
        ) {
            proptest::prop_assert_eq!(
                rendezvous_keyed(hash64_reference(&[&key]), candidates.iter().copied()),
                rendezvous_hashed(&key, candidates.iter().copied())
            );
        }

        #[test]
        fn three_chains_in_lock_step_equal_one_after_the_other(
            p in proptest::array::uniform3(
                proptest::collection::vec(proptest::num::u8::ANY, 0..300)
            ),
            seed in proptest::num::u64::ANY,
        ) {
            let h = [Fnv(seed), Fnv(!seed), Fnv(seed ^ 1)];
            let [x, y, z] = Fnv::parts3(h, [&p[0][..], &p[1], &p[2]]);
            let [mut x1, mut y1, mut z1] = [Fnv(seed), Fnv(!seed), Fnv(seed ^ 1)];
            x1.part(&p[0]);
            y1.part(&p[1]);
            z1.part(&p[2]);
            proptest::prop_assert_eq!([x.0, y.0, z.0], [x1.0, y1.0, z1.0]);
        }

        #[test]
        fn lock_step_parts_equal_one_chain_after_the_other(
            a in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            b in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            seed in proptest::num::u64::ANY,
        ) {
            let (x, y) = Fnv::parts2(Fnv(seed), &a, Fnv(!seed), &b);
            let (mut x1, mut y1) = (Fnv(seed), Fnv(!seed));
            x1.part(&a);
            y1.part(&b);
            proptest::prop_assert_eq!((x.0, y.0), (x1.0, y1.0));
        }

        #[test]
        fn branch_equals_the_reference(
            uri in "(sip|tel):[a-z0-9@.;=:+-]{0,300}",
            tag in proptest::option::of("[A-Za-z0-9.-]{0,40}"),
            call_id in proptest::option::of("[A-Za-z0-9@.-]{1,80}"),
            cseq in proptest::option::of(proptest::num::u32::ANY),
            branch in proptest::option::of("(z9hG4bK)?[A-Za-z0-9.-]{0,40}"),
            host in "[a-z0-9.]{1,30}",
            port in proptest::option::of(proptest::num::u16::ANY),
            routes in proptest::collection::vec("<sip:[a-z0-9.]{1,300};lr>", 0..3),
        ) {
            let mut raw = format!("INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {host}");
            if let Some(p) = port {
                raw.push_str(&format!(":{p}"));
            }
            if let Some(b) = &branch {
                raw.push_str(&format!(";branch={b}"));
            }
            raw.push_str("\r\n");
            for r in &routes {
                raw.push_str(&format!("Route: {r}\r\n"));
            }
            match &tag {
                Some(t) => raw.push_str(&format!("From: <sip:a@b>;tag={t}\r\n")),
                None => raw.push_str("From: <sip:a@b>\r\n"),
            }
            if let Some(c) = &call_id {
                raw.push_str(&format!("Call-ID: {c}\r\n"));
            }
            if let Some(n) = cseq {
                raw.push_str(&format!("CSeq: {n} INVITE\r\n"));
            }
            raw.push_str("\r\n");
            let m = parse(raw.as_bytes()).unwrap();
            proptest::prop_assert_eq!(Branch::of(&m), branch_reference(&m), "{}", raw);
            let call_key = hash64_reference(&[m.call_id().unwrap_or_default().as_bytes()]);
            proptest::prop_assert_eq!(
                Branch::of_top_keyed(&m, m.top_via().as_ref()),
                (branch_reference(&m), call_key),
                "{}",
                raw
            );
        }

        #[test]
        fn the_mac_equals_siphash_written_piece_by_piece(
            txn in proptest::num::u64::ANY,
            loop_key in proptest::num::u64::ANY,
            key in proptest::array::uniform16(proptest::num::u8::ANY),
            bound in proptest::collection::vec(
                proptest::collection::vec(proptest::num::u8::ANY, 0..120),
                0..4,
            ),
        ) {
            let key = Key::from_bytes(key);
            let b = Branch { txn, loop_key, mac: 0 };
            let bound: Vec<&[u8]> = bound.iter().map(Vec::as_slice).collect();
            let mut h = SipHasher24::new_with_key(&key.0);
            h.write(&txn.to_be_bytes());
            h.write(&loop_key.to_be_bytes());
            for part in &bound {
                h.write(&(part.len() as u64).to_le_bytes());
                h.write(part);
            }
            proptest::prop_assert_eq!(b.mac_of(&key, &bound), h.finish());
        }
    }

    #[test]
    fn the_pushed_param_is_the_formatted_one() {
        for (txn, loop_key, mac) in [(0, 0, 0), (1, u64::MAX, 0x0123_4567_89ab_cdef)] {
            let b = Branch { txn, loop_key, mac };
            assert_eq!(
                b.to_param(),
                format!("z9hG4bKdg{txn:016x}.{loop_key:016x}.{mac:016x}")
            );
        }
    }
}
