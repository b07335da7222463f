//! `cargo fuzz run handle`: any bytes through `proxy::handle` and `sip::frame` never panic, and
//! what the gateway sends re-parses. The first input byte picks the mapping file, the source
//! address, the transport and the instant (before, in and after the parallel period); the rest is
//! the message. Crashers go to `tests/corpus/`, where `tests/parse_no_panic.rs` replays them.
#![no_main]

use dualgate::config::{parse_instant, validate, Snapshot};
use dualgate::peer::{Peer, Transport};
use dualgate::proxy::handle;
use dualgate::sip::{frame, parse, Frame};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;
use std::time::SystemTime;

/// The largest message a TCP connection buffers.
const LIMIT: usize = 64 * 1024;

/// Trunk, second trunk, backend, IPv6 loopback (a trunk in the shipped file), a stranger.
const SOURCES: [&str; 5] = [
    "127.0.0.2:5060",
    "127.0.0.3:40123",
    "127.0.0.1:5091",
    "[::1]:5070",
    "198.51.100.7:5060",
];

/// Before, at the start of, inside, at the end of and after the parallel period.
const INSTANTS: [&str; 4] = [
    "2025-03-01T12:00:00+08:00",
    "2025-04-07T00:00:00+08:00",
    "2025-04-20T10:00:00+08:00",
    "2025-05-07T00:00:00+08:00",
];

struct World {
    snaps: [Snapshot; 2],
    now: [SystemTime; 4],
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let fujian = validate(
            Path::new("mappings/fujian.toml"),
            include_str!("../../mappings/fujian.toml"),
        )
        .expect("invariant: the shipped mapping file is valid");
        // The shipped file with the gateway on a public address, a second trunk, an IPv6 TCP
        // backend and Diversion marks, so that loops and both mark styles are reachable.
        let other = include_str!("../../mappings/fujian.toml")
            .replace("127.0.0.1:5060", "192.0.2.10:5060")
            .replace(
                r#"mark_legacy = ["history-info"]"#,
                r#"mark_legacy = ["history-info", "diversion"]"#,
            )
            .replace(
                r#""sip:127.0.0.1:5091;transport=udp""#,
                r#""sip:127.0.0.1:5091;transport=udp", "sip:[::1]:5092;transport=tcp""#,
            )
            .replace(
                r#"sources = ["127.0.0.0/8", "::1/128"]"#,
                r#"sources = ["127.0.0.2/32"]"#,
            )
            + "\n[[trunk]]\nname = \"xiamen\"\nsources = [\"127.0.0.3/32\"]\norigin_area = \"0592\"\n";
        let other = validate(Path::new("fuzz/other.toml"), &other)
            .expect("invariant: the edited mapping file is valid");
        World {
            snaps: [fujian, other],
            now: INSTANTS.map(|s| parse_instant(s).expect("invariant: a valid instant")),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let w = world();
    let snap = &w.snaps[usize::from(pick & 1)];
    let transport = if pick & 2 == 0 {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    let from = Peer {
        addr: SOURCES[usize::from(pick >> 2) % SOURCES.len()]
            .parse()
            .expect("invariant: a valid address"),
        transport,
    };
    let now = w.now[usize::from(pick >> 5) % INSTANTS.len()];

    let mut out = Vec::new();
    let o = handle(bytes, from, snap, now, &mut out);
    assert_eq!(
        o.send.is_some(),
        !out.is_empty(),
        "output iff a destination"
    );
    if o.send.is_some() {
        let sent = parse(&out);
        assert!(sent.is_ok(), "output does not re-parse: {sent:?}");
    }

    // The same bytes as a TCP stream: frames stay inside the buffer and the limit.
    let mut rest = bytes;
    while let Ok(Some(f)) = frame(rest, LIMIT) {
        let n = match f {
            Frame::Message(n) | Frame::Keepalive(n) => n,
        };
        assert!(
            n > 0 && n <= rest.len() && n <= LIMIT,
            "frame {f:?} of {}",
            rest.len()
        );
        if let (Frame::Message(n), Ok(m)) = (f, parse(&rest[..n])) {
            assert_eq!(m.raw.len(), n, "frame and parse disagree on the length");
        }
        rest = &rest[n..];
    }
});
