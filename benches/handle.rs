//! Micro-benchmark of the per-message path (issue #12): `proxy::handle_with` from bytes in to
//! bytes out plus the metric recording `transport::process` does (the Prometheus recorder
//! installed), for a typical INVITE and its 200 OK, and for an INVITE to a
//! legacy number with 10 and with 10 000 legacy numbers configured (lookup scaling).
//! `cargo bench --bench handle`; not part of CI. `bench/instr.sh` runs the same cases a fixed
//! number of times under callgrind for instruction counts.

use criterion::{criterion_group, BatchSize, Criterion};
use dualgate::clock::Stopwatch;
use dualgate::config::Snapshot;
use dualgate::health::Down;
use dualgate::metrics::Recorder;
use dualgate::peer::{Peer, Transport};
use dualgate::proxy::{self, Conditions};
use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[path = "../bench/national.rs"]
mod national;

/// Distinct calls cycled through, each at a later instant: with [`STEP`] per message a call
/// comes back after more than the 32 s a call is remembered, so every INVITE is counted as a
/// new call, like under real traffic.
const CALLS: usize = 4096;
const STEP: Duration = Duration::from_millis(10);

fn snapshot(areas: usize, legacy: usize) -> Snapshot {
    let text = national::mapping(areas, legacy, 5060, 9190, 5090);
    let mut s = dualgate::config::validate(Path::new("national.toml"), &text)
        .unwrap_or_else(|e| panic!("the generated mapping is valid: {e}"));
    // A fixed branch key, as a replica set would configure.
    s.gateway.secret = Some(dualgate::sip::branch::Key::from_bytes([7u8; 16]));
    s
}

fn start() -> SystemTime {
    dualgate::config::parse_instant("2025-04-20T10:00:00+08:00").unwrap_or(SystemTime::UNIX_EPOCH)
}

fn carrier() -> Peer {
    Peer {
        addr: SocketAddr::from(([127, 0, 0, 1], 5061)),
        transport: Transport::Udp,
    }
}

fn backend() -> Peer {
    Peer {
        addr: SocketAddr::from(([127, 0, 0, 1], 5090)),
        transport: Transport::Udp,
    }
}

/// sipp's INVITE (bench/scenarios/uac.xml) for call `i` to `number`.
fn invite(number: &str, i: usize) -> Vec<u8> {
    let sdp = "v=0\r\no=trunk 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    format!(
        "INVITE sip:{number}@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{i}-1-0\r\n\
         From: \"trunk\" <sip:13800000000@127.0.0.1:5061>;tag={i}SIPpTag001\r\n\
         To: <sip:{number}@127.0.0.1:5060>\r\n\
         Call-ID: {i}-4242@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:13800000000@127.0.0.1:5061>\r\n\
         Max-Forwards: 70\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

/// The carrier's ACK or BYE of call `i` inside the dialog the INVITE set up: to the call
/// centre's Contact, through the gateway's Record-Route (as sipp's uac.xml sends them).
fn in_dialog(method: &str, i: usize) -> Vec<u8> {
    let cseq = if method == "ACK" { 1 } else { 2 };
    format!(
        "{method} sip:queue@127.0.0.1:5090;transport=udp SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{i}-{cseq}-7\r\n\
         Route: <sip:127.0.0.1:5060;lr>\r\n\
         From: \"trunk\" <sip:13800000000@127.0.0.1:5061>;tag={i}SIPpTag001\r\n\
         To: <sip:12356@127.0.0.1:5060>;tag=uas1\r\n\
         Call-ID: {i}-4242@127.0.0.1\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:13800000000@127.0.0.1:5061>\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The backend's 200 OK (bench/scenarios/uas.xml) to the forwarded INVITE `fwd`.
fn ok_200(fwd: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(fwd);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut m = String::from("SIP/2.0 200 OK\r\n");
    for l in head.split("\r\n").skip(1) {
        let name = l.split(':').next().unwrap_or("").to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "via" | "record-route" | "from" | "call-id" | "cseq"
        ) {
            m.push_str(l);
            m.push_str("\r\n");
        } else if name == "to" {
            m.push_str(l);
            m.push_str(";tag=uas1\r\n");
        }
    }
    let sdp = "v=0\r\no=cc 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    m.push_str(
        "Contact: <sip:queue@127.0.0.1:5090;transport=udp>\r\nContent-Type: application/sdp\r\n",
    );
    m.push_str(&format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()));
    m.into_bytes()
}

/// One message the way `transport::process` handles it, minus the socket: the stopwatch, the
/// core, the recorder.
struct Path1<'a> {
    snap: &'a Arc<Snapshot>,
    down: Down,
    recorder: Recorder,
    out: Vec<u8>,
}

impl Path1<'_> {
    fn run(&mut self, bytes: &[u8], from: Peer, now: SystemTime, metrics: bool) -> usize {
        let watch = Stopwatch::start();
        let admit = |_: usize, _: &dualgate::config::Trunk, _| Ok(());
        let cond = Conditions {
            down: &self.down,
            shedding: false,
            admit: &admit,
        };
        let h = proxy::handle_with(bytes, from, self.snap, &cond, now, &mut self.out);
        if metrics {
            self.recorder.record(self.snap, &h.outcome.label, now);
            self.recorder.record_duration(watch.elapsed());
        }
        assert!(h.outcome.send.is_some(), "forwarded");
        self.out.len()
    }
}

fn bench(c: &mut Criterion) {
    let _ = dualgate::metrics::install("bench");
    let small = Arc::new(snapshot(1, 10));
    let national = Arc::new(snapshot(340, 10_000));
    for (name, snap) in [("10 numbers", &small), ("national 10k", &national)] {
        dualgate::metrics::register(snap, start());
        let codes = national::area_codes(if name == "10 numbers" { 1 } else { 340 });
        let legacy_n = if name == "10 numbers" { 10 } else { 10_000 };
        let invites: Vec<Vec<u8>> = (0..CALLS).map(|i| invite("12356", i)).collect();
        // Legacy numbers from all over the table.
        let legacy: Vec<Vec<u8>> = (0..CALLS)
            .map(|i| invite(&national::legacy_number(&codes, (i * 7919) % legacy_n), i))
            .collect();
        let mut p = Path1 {
            snap,
            down: Down::none(),
            recorder: Recorder::default(),
            out: Vec::with_capacity(4096),
        };
        let oks: Vec<Vec<u8>> = invites
            .iter()
            .map(|m| {
                p.run(m, carrier(), start(), false);
                ok_200(&p.out)
            })
            .collect();
        let acks: Vec<Vec<u8>> = (0..CALLS).map(|i| in_dialog("ACK", i)).collect();
        let byes: Vec<Vec<u8>> = (0..CALLS).map(|i| in_dialog("BYE", i)).collect();
        let mut g = c.benchmark_group(name);
        // The "received" cases copy each message into one receive buffer inside the timed
        // routine first, as `recvmmsg` leaves a datagram in the worker's buffer just before it
        // is handled: the parser then reads bytes the copy has just brought into the cache,
        // where the other cases read each of 4096 stored messages from wherever it was evicted
        // to. The copy is counted in the time.
        let mut rx: Vec<u8> = Vec::with_capacity(65_536);
        for (what, msgs, from, metrics, received) in [
            ("INVITE 12356, core only", &invites, carrier(), false, false),
            ("INVITE 12356 + metrics", &invites, carrier(), true, false),
            ("200 OK, core only", &oks, backend(), false, false),
            ("200 OK + metrics", &oks, backend(), true, false),
            ("INVITE legacy, core only", &legacy, carrier(), false, false),
            ("INVITE legacy + metrics", &legacy, carrier(), true, false),
            ("ACK in dialog + metrics", &acks, carrier(), true, false),
            ("BYE in dialog + metrics", &byes, carrier(), true, false),
            (
                "INVITE 12356 + metrics, received",
                &invites,
                carrier(),
                true,
                true,
            ),
            ("200 OK + metrics, received", &oks, backend(), true, true),
        ] {
            let mut i = 0usize;
            let mut now = start();
            g.bench_function(what, |b| {
                b.iter_batched_ref(
                    || {
                        i = i.wrapping_add(1);
                        now += STEP;
                        (&msgs[i % CALLS], now)
                    },
                    |(m, now)| {
                        let bytes: &[u8] = if received {
                            rx.clear();
                            rx.extend_from_slice(m);
                            &rx
                        } else {
                            m
                        };
                        black_box(p.run(bytes, from, *now, metrics))
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        g.finish();
    }
}

/// One case run exactly `n` times outside criterion, for instruction counts that do not depend
/// on how many iterations criterion chooses: `HANDLE_INSTR=<n> HANDLE_CASE=<case>` under
/// `valgrind --tool=callgrind --toggle-collect='*handle::measured*'` (bench/instr.sh).
fn instructions(n: usize, case: &str) {
    let _ = dualgate::metrics::install("bench");
    let national = case.starts_with("national");
    let (areas, legacy_n) = if national { (340, 10_000) } else { (1, 10) };
    let snap = Arc::new(snapshot(areas, legacy_n));
    dualgate::metrics::register(&snap, start());
    let codes = national::area_codes(areas);
    let mut p = Path1 {
        snap: &snap,
        down: Down::none(),
        recorder: Recorder::default(),
        out: Vec::with_capacity(4096),
    };
    let (msgs, from): (Vec<Vec<u8>>, Peer) = if case.ends_with("200 OK") {
        let oks = (0..CALLS)
            .map(|i| {
                p.run(&invite("12356", i), carrier(), start(), false);
                ok_200(&p.out)
            })
            .collect();
        (oks, backend())
    } else if let Some(method) = ["ACK", "BYE"].into_iter().find(|m| case.ends_with(m)) {
        (
            (0..CALLS).map(|i| in_dialog(method, i)).collect(),
            carrier(),
        )
    } else if case.ends_with("legacy") {
        let legacy = (0..CALLS)
            .map(|i| invite(&national::legacy_number(&codes, (i * 7919) % legacy_n), i))
            .collect();
        (legacy, carrier())
    } else {
        ((0..CALLS).map(|i| invite("12356", i)).collect(), carrier())
    };
    let mut now = start();
    // Warm the caches and the metric cells the way the criterion loop does.
    for m in msgs.iter().take(64) {
        now += STEP;
        p.run(m, from, now, true);
    }
    let sent = measured(&mut p, &msgs, from, now, n);
    println!("{case}: {n} messages, {sent} bytes out");
}

#[inline(never)]
fn measured(
    p: &mut Path1<'_>,
    msgs: &[Vec<u8>],
    from: Peer,
    mut now: SystemTime,
    n: usize,
) -> usize {
    let mut sent = 0;
    for i in 0..n {
        now += STEP;
        sent += black_box(p.run(&msgs[i % CALLS], from, now, true));
    }
    sent
}

/// `HANDLE_THREADS=<n>`: the per-message path on one thread and on two at once, each thread
/// with its own recorder and its own calls (an INVITE and its 200 OK each), `n` messages per
/// thread, 5 rounds alternating 1 and 2 threads. Shows whether the user-space path (metrics
/// included: the counters every worker shares) scales across cores, which the socket
/// generator cannot show on a 2-core machine (it needs a core of its own).
fn threads(n: usize) {
    let _ = dualgate::metrics::install("bench");
    let snap = Arc::new(snapshot(1, 10));
    dualgate::metrics::register(&snap, start());
    let new_path = || Path1 {
        snap: &snap,
        down: Down::none(),
        recorder: Recorder::default(),
        out: Vec::with_capacity(4096),
    };
    let sets: Vec<Vec<(Vec<u8>, Peer)>> = (0..2)
        .map(|t| {
            let mut p = new_path();
            (0..CALLS)
                .flat_map(|c| {
                    let inv = invite("12356", t * CALLS + c);
                    p.run(&inv, carrier(), start(), false);
                    let ok = ok_200(&p.out);
                    [(inv, carrier()), (ok, backend())]
                })
                .collect()
        })
        .collect();
    // HANDLE_THREADS_METRICS=0 leaves the recorder out, to tell the core's scaling from the
    // metrics'.
    let metrics = std::env::var("HANDLE_THREADS_METRICS").map_or(true, |v| v != "0");
    let run = |set: &[(Vec<u8>, Peer)]| {
        let mut p = new_path();
        let mut now = start();
        for k in 0..n {
            now += STEP;
            let (m, from) = &set[k % set.len()];
            black_box(p.run(m, *from, now, metrics));
        }
    };
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for _round in 0..5 {
        for threads in [1usize, 2] {
            let watch = Stopwatch::start();
            std::thread::scope(|s| {
                for set in sets.iter().take(threads) {
                    s.spawn(|| run(set));
                }
            });
            let secs = watch.elapsed().as_secs_f64();
            rates[threads - 1].push((threads * n) as f64 / secs);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (one, two) = (median(&mut rates[0]), median(&mut rates[1]));
    println!(
        "1 thread:  {one:>12.0} msgs/s (median of 5; runs {:?})",
        rates[0].iter().map(|r| r.round()).collect::<Vec<_>>()
    );
    println!(
        "2 threads: {two:>12.0} msgs/s (median of 5; runs {:?})",
        rates[1].iter().map(|r| r.round()).collect::<Vec<_>>()
    );
    println!("ratio:     {:>12.2}", two / one);
}

criterion_group!(benches, bench);

fn main() {
    if let Some(n) = std::env::var("HANDLE_INSTR")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        let case =
            std::env::var("HANDLE_CASE").unwrap_or_else(|_| "10 numbers/INVITE 12356".into());
        instructions(n, &case);
        return;
    }
    if let Some(n) = std::env::var("HANDLE_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        threads(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
