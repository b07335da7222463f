//! The gateway against an attacker on loopback, over real sockets: no open relay (forged
//! responses are neither relayed nor followed by a connect), no amplification, and TCP that
//! strangers cannot exhaust (refused at accept, slowloris deadline, output budget in bytes, the
//! descriptor limit raised). The trunk is 127.0.0.2 only; 127.0.0.3 and 127.0.0.9 are strangers,
//! 127.0.0.7 the victim. Every loop is bounded in count and time; the figures are printed
//! (`cargo test --release --test security -- --nocapture`) and reported in README.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{timeout, Instant};

const SECRET: &str = "00112233445566778899aabbccddeeff";

/// The test mapping on `backend` alone, with the one Fuzhou trunk (127.0.0.2).
fn mappings_for(backend: &Peer) -> Mapping {
    Mapping::one_backend(&backend.uri()).trunks(FUZHOU_TRUNK)
}

fn rejected(gw: &Gateway, reason: &str) -> f64 {
    let m = gw.scrape();
    metric(&m, "dualgate_rejected_total", &[("reason", reason)]).unwrap_or(-1.0)
}

fn tcp_metric(gw: &Gateway, name: &str, reason: &str) -> f64 {
    let m = gw.scrape();
    metric(&m, name, &[("reason", reason)]).unwrap_or(-1.0)
}

/// A TCP connection from `ip`.
async fn connect_from(ip: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(format!("{ip}:0").parse().unwrap())?;
    s.connect(to).await
}

/// Whether the peer closed (EOF or reset) within `d`.
async fn closed_within(conn: &mut TcpStream, d: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + d;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// A call forwarded from the UDP carrier to the backend: the INVITE as the backend got it.
async fn forwarded_invite(gw: &Gateway, carrier: &Peer, backend: &Peer, call: &str) -> String {
    carrier
        .send(
            gw.sip,
            &invite(
                "sip:12356@gw",
                &carrier.addr,
                call,
                &format!("z9hG4bK{call}"),
                "UDP",
            ),
        )
        .await;
    backend.recv().await.0
}

/// `resp` with its second Via (the caller's) replaced by `via`.
fn redirected(resp: &str, via: &str) -> String {
    let vias = headers(resp, "Via");
    resp.replacen(vias[1], via, 1)
}

fn rss_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test]
async fn forged_responses_are_neither_relayed_nor_connected_over_udp_or_tcp() {
    let backend = Peer::bind("127.0.0.1").await;
    let gw = Gateway::start(
        &mappings_for(&backend)
            .gateway(&format!("secret = \"{SECRET}\""))
            .text(),
        &["--now", PARALLEL],
    )
    .await;
    let carrier = Peer::bind("127.0.0.2").await;
    let victim = Peer::bind("127.0.0.7").await;
    let victim_tcp = TcpListener::bind("127.0.0.7:0").await.unwrap();
    let udp_victim = format!("SIP/2.0/UDP {};branch=z9hG4bKv", victim.addr);
    let tcp_victim = format!(
        "SIP/2.0/TCP {};branch=z9hG4bKv",
        victim_tcp.local_addr().unwrap()
    );
    let inv = forwarded_invite(&gw, &carrier, &backend, "f1").await;
    let genuine = respond(&inv, "200 OK", "cc");

    // 1. From an address in no trunk, with the gateway's genuine Via on top: dropped unread.
    let stranger = Peer::bind("127.0.0.9").await;
    for via in [&udp_victim, &tcp_victim] {
        stranger.send(gw.sip, &redirected(&genuine, via)).await;
    }
    // 2. From the backend (trusted), the genuine branch moved to another return hop, and a
    //    gateway-shaped branch the gateway never made.
    let made_up = genuine.replacen(
        headers(&genuine, "Via")[0],
        &format!(
            "SIP/2.0/UDP {};branch=z9hG4bKdg0123456789abcdef.fedcba9876543210.0011223344556677;dgn=059112356;dgq=fuzhou",
            gw.sip
        ),
        1,
    );
    for forged in [
        redirected(&genuine, &udp_victim),
        redirected(&genuine, &tcp_victim),
        made_up,
    ] {
        backend.send(gw.sip, &forged).await;
    }
    // 3. Over TCP: a stranger's connection is refused at accept; a trunk's carries a forgery.
    // The reset may even beat the end of connect().
    match connect_from("127.0.0.9", gw.sip).await {
        Ok(mut s) => {
            let _ = s
                .write_all(redirected(&genuine, &tcp_victim).as_bytes())
                .await;
            assert!(closed_within(&mut s, WAIT).await, "stranger's TCP closed");
        }
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    let mut t = connect_from("127.0.0.2", gw.sip).await.unwrap();
    t.write_all(redirected(&genuine, &tcp_victim).as_bytes())
        .await
        .unwrap();

    victim.silent_for(Duration::from_millis(500)).await;
    let accepted = timeout(Duration::from_millis(300), victim_tcp.accept()).await;
    assert!(accepted.is_err(), "the gateway connected to the victim");
    carrier.silent_for(Duration::from_millis(100)).await;
    assert_eq!(rejected(&gw, "untrusted_response_source"), 2.0);
    assert_eq!(rejected(&gw, "forged_response"), 4.0);
    assert_eq!(
        tcp_metric(&gw, "dualgate_tcp_refused_total", "unknown_source"),
        1.0
    );

    // The genuine answer still reaches the caller.
    backend.send(gw.sip, &genuine).await;
    let (got, _) = carrier.recv().await;
    assert_eq!(start_line(&got), "SIP/2.0 200 OK");
    assert_eq!(header(&got, "Call-ID"), Some("f1"));
}

#[tokio::test]
async fn replicas_with_one_secret_accept_each_others_branches_and_others_do_not() {
    let backend = Peer::bind("127.0.0.1").await;
    // Both replicas behind one advertised address, as behind a load balancer.
    let advertised = format!("127.0.0.1:{}", free_port());
    let shared = |secret: &str| {
        mappings_for(&backend)
            .gateway(&format!("secret = \"{secret}\""))
            .text()
            .replace(
                "advertised = \"@SIP@\"",
                &format!("advertised = \"{advertised}\""),
            )
    };
    let a = Gateway::start(&shared(SECRET), &["--now", PARALLEL]).await;
    let b = Gateway::start(&shared(SECRET), &["--now", PARALLEL]).await;
    let c = Gateway::start(
        &shared("ffeeddccbbaa99887766554433221100"),
        &["--now", PARALLEL],
    )
    .await;
    let carrier = Peer::bind("127.0.0.2").await;
    let inv = forwarded_invite(&a, &carrier, &backend, "r1").await;
    backend
        .send(c.sip, &respond(&inv, "180 Ringing", "cc"))
        .await;
    carrier.silent_for(Duration::from_millis(300)).await;
    assert_eq!(rejected(&c, "forged_response"), 1.0);
    backend.send(b.sip, &respond(&inv, "200 OK", "cc")).await;
    let (got, from) = carrier.recv().await;
    assert_eq!(from, b.sip);
    assert_eq!(start_line(&got), "SIP/2.0 200 OK");
}

/// Requests a stranger can craft to draw the largest answer: a combined Via of tiny entries,
/// compact header names, missing headers (400), Max-Forwards 0 (483), an OPTIONS (200 with
/// Allow/Accept from a trunk, 403 from a stranger).
fn crafted(from: SocketAddr) -> Vec<String> {
    let tiny: Vec<String> = (0..2000).map(|i| format!("SIP/2.0/UDP a{i}")).collect();
    let top = format!("SIP/2.0/UDP {from};branch=z9hG4bKa;rport");
    vec![
        format!(
            "INVITE sip:12356@gw SIP/2.0\r\nv: {top}\r\nv: {}\r\nf: <sip:a@b>;tag=1\r\nt: <sip:b>\r\ni: x\r\nCSeq: 1 INVITE\r\n\r\n",
            tiny.join(",")
        ),
        format!("OPTIONS sip:a SIP/2.0\r\nv: {top}\r\nf: a\r\nt: b\r\ni: c\r\nCSeq: 1 OPTIONS\r\n\r\n"),
        format!("A sip:a SIP/2.0\r\nv: {top}\r\ni: c\r\n\r\n"),
        format!("A sip:a SIP/2.0\r\nv: {top}\r\nf: a\r\nt: b\r\ni: c\r\nCSeq: 1 A\r\nMax-Forwards: 0\r\n\r\n"),
        format!("BYE sip:a SIP/2.0\r\nv: {top}\r\nf: a\r\nt: b;tag=x\r\ni: c\r\nCSeq: 1 BYE\r\nRoute: <sip:{from};lr>\r\n\r\n"),
        // An ordinary INVITE, which is answered 403 when strangers are answered.
        invite("sip:12356@gw", &from, "amp", "z9hG4bKamp", "UDP"),
    ]
}

/// Sends each crafted request from `stranger` and returns (request bytes, answer bytes) pairs.
async fn answers(gw: &Gateway, stranger: &Peer) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for req in crafted(stranger.addr) {
        stranger.send(gw.sip, &req).await;
        let mut buf = vec![0u8; 65_535];
        let n = match timeout(
            Duration::from_millis(300),
            stranger.sock.recv_from(&mut buf),
        )
        .await
        {
            Ok(Ok((n, _))) => n,
            _ => 0,
        };
        out.push((req.len(), n));
    }
    out
}

#[tokio::test]
async fn strangers_get_nothing_by_default_and_never_more_than_they_sent() {
    let backend = Peer::bind("127.0.0.1").await;
    let stranger = Peer::bind("127.0.0.9").await;
    let gw = mappings_for(&backend).start(&["--now", PARALLEL]).await;
    let silent = answers(&gw, &stranger).await;
    let sent: usize = silent.iter().map(|(q, _)| q).sum();
    assert!(silent.iter().all(|(_, a)| *a == 0), "{silent:?}");
    assert_eq!(rejected(&gw, "unknown_source"), silent.len() as f64);
    backend.silent_for(Duration::from_millis(100)).await;
    eprintln!("amplification, default: {sent} bytes sent, 0 answered");
    drop(gw);

    let gw = Gateway::start(
        &mappings_for(&backend)
            .gateway("answer_strangers = true")
            .text(),
        &["--now", PARALLEL],
    )
    .await;
    let answered = answers(&gw, &stranger).await;
    let worst = answered
        .iter()
        .map(|(q, a)| *a as f64 / *q as f64)
        .fold(0.0, f64::max);
    eprintln!("amplification, answer_strangers: (request, answer) bytes {answered:?}, worst ratio {worst:.3}");
    assert!(worst <= 1.0, "{answered:?}");
    // An ordinary INVITE is answered 403; the crafted ones would draw more than they brought
    // (long header names, To tag, Reason) and get nothing.
    let (_, ordinary) = answered.last().copied().unwrap();
    assert!(ordinary > 0, "{answered:?}");
    backend.silent_for(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn thousands_of_stranger_connections_do_not_stop_a_trunks_tcp_call() {
    dualgate::transport::raise_open_files_limit().unwrap();
    let backend = Peer::bind("127.0.0.1").await;
    let gw = mappings_for(&backend).start(&["--now", PARALLEL]).await;
    const STRANGERS: usize = 4_200;
    let started = Instant::now();
    let mut held = Vec::with_capacity(STRANGERS);
    for _ in 0..STRANGERS {
        // A connect that fails met the gateway's reset first: as good as closed.
        if let Ok(Ok(s)) = timeout(WAIT, connect_from("127.0.0.9", gw.sip)).await {
            held.push(s);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "bounded");
    }
    let flood = started.elapsed();
    // The trunk's call over TCP completes while the strangers hold their sockets.
    let mut conn = connect_from("127.0.0.2", gw.sip).await.unwrap();
    let local = conn.local_addr().unwrap();
    conn.write_all(invite("sip:12356@gw", &local, "s1", "z9hG4bKs1", "TCP").as_bytes())
        .await
        .unwrap();
    let (inv, _) = backend.recv().await;
    backend.send(gw.sip, &respond(&inv, "200 OK", "cc")).await;
    let mut buf = vec![0u8; 8192];
    let n = timeout(WAIT, conn.read(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200 OK"));
    let fds = open_fds(gw.pid());
    let refused = tcp_metric(&gw, "dualgate_tcp_refused_total", "unknown_source");
    eprintln!(
        "stranger flood: {} connected in {flood:?} ({STRANGERS} tried), {refused} refused at accept, gateway holds {fds} descriptors",
        held.len()
    );
    assert!(refused >= 4_000.0, "{refused}");
    assert!(fds < 100, "{fds} descriptors open");
}

#[tokio::test]
async fn a_message_trickled_a_byte_a_second_is_cut_at_its_deadline() {
    let backend = Peer::bind("127.0.0.1").await;
    let gw = Gateway::start(
        &mappings_for(&backend)
            .table("[tcp]\nmessage_deadline_seconds = 2.0")
            .text(),
        &["--now", PARALLEL],
    )
    .await;
    // A trunk connection that completes a message a second stays up past the deadline.
    let mut steady = connect_from("127.0.0.2", gw.sip).await.unwrap();
    let local = steady.local_addr().unwrap();
    let mut slow = connect_from("127.0.0.2", gw.sip).await.unwrap();
    let start = Instant::now();
    slow.write_all(b"INVITE sip:12356@gw SIP/2.0\r\n")
        .await
        .unwrap();
    let trickle = b"Via: SIP/2.0/TCP 127.0.0.2:5060;branch=z9hG4bKslow\r\n";
    let mut cut_after = None;
    for (i, b) in trickle.iter().enumerate() {
        steady
            .write_all(options(&local, &format!("steady-{i}")).as_bytes())
            .await
            .unwrap();
        if slow.write_all(&[*b]).await.is_err()
            || closed_within(&mut slow, Duration::from_secs(1)).await
        {
            cut_after = Some(start.elapsed());
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "bounded");
    }
    let cut_after = cut_after.expect("the trickling connection is cut");
    eprintln!("slowloris: cut {cut_after:?} after its first byte (deadline 2 s)");
    assert!(cut_after >= Duration::from_millis(1_900), "{cut_after:?}");
    assert!(cut_after <= Duration::from_millis(3_500), "{cut_after:?}");
    assert!(!closed_within(&mut steady, Duration::from_millis(100)).await);
    assert_eq!(
        tcp_metric(&gw, "dualgate_tcp_cut_total", "message_deadline"),
        1.0
    );
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_cut_off_at_its_output_budget() {
    let backend = Peer::bind("127.0.0.1").await;
    let gw = Gateway::start(
        &mappings_for(&backend)
            .table("[tcp]\noutput_budget_bytes = 262144")
            .text(),
        &["--now", PARALLEL],
    )
    .await;
    let pid = gw.pid();
    let before = rss_kb(pid, "VmRSS:");
    let mut rounds = Vec::new();
    for round in 0..3 {
        let s = TcpSocket::new_v4().unwrap();
        s.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        // A small receive window, so the kernel holds little of what the gateway writes.
        s.set_recv_buffer_size(4096).unwrap();
        let mut conn = s.connect(gw.sip).await.unwrap();
        let local = conn.local_addr().unwrap();
        let batch: String = (0..100)
            .map(|i| options(&local, &format!("nr{round}-{i}")))
            .collect();
        let start = Instant::now();
        let mut sent = 0usize;
        while start.elapsed() < Duration::from_secs(30) && sent < 200_000_000 {
            match timeout(Duration::from_secs(2), conn.write_all(batch.as_bytes())).await {
                Ok(Ok(())) => sent += batch.len(),
                Ok(Err(_)) => break, // reset: cut off
                Err(_) => {
                    if closed_within(&mut conn, Duration::from_millis(10)).await {
                        break;
                    }
                }
            }
        }
        rounds.push((sent, start.elapsed(), rss_kb(pid, "VmRSS:")));
    }
    let after = rss_kb(pid, "VmRSS:");
    let peak = rss_kb(pid, "VmHWM:");
    let cuts = tcp_metric(&gw, "dualgate_tcp_cut_total", "output_budget");
    eprintln!(
        "non-reading peer: rounds (bytes sent, time, VmRSS kB) {rounds:?}; VmRSS {before} kB before, {after} kB after, peak {peak} kB; {cuts} cut"
    );
    assert_eq!(cuts, 3.0);
    assert!(after < before + 16 * 1024, "{before} kB -> {after} kB");
}

#[tokio::test]
async fn eleven_hundred_connections_hold_under_a_1024_soft_limit() {
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX);
    if hard < 2_048 {
        eprintln!("skipped: the hard descriptor limit ({hard}) is below 2048");
        return;
    }
    dualgate::transport::raise_open_files_limit().unwrap();
    let backend = Peer::bind("127.0.0.1").await;
    let gw = Gateway::start_limited(
        &mappings_for(&backend).text(),
        &["--now", PARALLEL],
        "127.0.0.1",
        "127.0.0.2",
        Some(1024),
    )
    .await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", gw.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let m = gw.scrape();
    let nofile = metric(&m, "dualgate_open_files_limit", &[]).unwrap();
    assert_eq!(nofile, hard as f64, "{line}");
    const N: usize = 1_100;
    let mut conns = Vec::with_capacity(N);
    let start = Instant::now();
    for _ in 0..N {
        conns.push(connect_from("127.0.0.2", gw.sip).await.unwrap());
    }
    // Every connection is served: an OPTIONS on each gets its 200.
    for (i, c) in conns.iter_mut().enumerate() {
        let local = c.local_addr().unwrap();
        c.write_all(options(&local, &format!("many-{i}")).as_bytes())
            .await
            .unwrap();
    }
    let mut buf = vec![0u8; 4096];
    for c in &mut conns {
        let n = timeout(WAIT, c.read(&mut buf)).await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200"));
    }
    let m = gw.scrape();
    let open = metric(&m, "dualgate_tcp_connections", &[("class", "trunk")]).unwrap();
    eprintln!(
        "descriptor limit: started with soft 1024, {line}; {N} connections served in {:?}, {open} open, /metrics answers",
        start.elapsed()
    );
    assert!(open >= N as f64);
}
