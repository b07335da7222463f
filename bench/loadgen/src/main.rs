//! dualgate-loadgen: replays whole calls over UDP through a SIP proxy as fast as it forwards
//! them, playing both ends (the carrier's UAC and the call centre's UAS) in one thread, with
//! `recvmmsg`/`sendmmsg` batches so that the generator costs less than the proxy it measures.
//! Also the bare relay (`relay`): the gateway's own UDP loop with no SIP, the baseline.
//!
//! One call = INVITE → 100, 180, 200 → ACK → BYE → 200: 7 messages through the proxy (ACK and
//! BYE follow the Record-Route the UAS echoes). The UAC uses `--flows` sockets (ports
//! `--uac-base`..) and the UAS as many (`--uas-base`..), so the kernel's SO_REUSEPORT hash
//! spreads the flows over the proxy's workers. Only loopback targets; every run is bounded by
//! `--calls` and `--max-secs`.
//!
//! ```text
//! loadgen gen   [--target 127.0.0.1:5060] [--calls 200000] [--window 256] [--rate 0]
//!               [--flows 16] [--uac-base 5200] [--uas-base 5090] [--number 12356]
//!               [--max-secs 60] [--call-timeout-ms 2000] [--pid PID]
//! loadgen relay [--listen 127.0.0.1:5060] [--workers 2] [--batch 16] [--flows 16]
//!               [--uac-base 5200] [--uas-base 5090] [--max-secs 120]
//! ```
//! `--rate 0` is a closed loop: `--window` calls in flight, a new one as each ends. With `--pid`
//! the proxy's CPU (all threads, per thread too) and memory are reported.

// A load generator times itself; the gateway's clock discipline (clippy.toml) is for the gateway.
#![allow(clippy::disallowed_methods)]

use dualgate::transport::udp::{Inbox, Outbox};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

struct Opts(HashMap<String, String>);

impl Opts {
    fn parse(args: &[String]) -> Result<Opts, String> {
        let mut m = HashMap::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            let k = k.strip_prefix("--").ok_or(format!("unexpected {k}"))?;
            let v = it.next().ok_or(format!("--{k} needs a value"))?;
            m.insert(k.to_string(), v.clone());
        }
        Ok(Opts(m))
    }
    fn get<T: std::str::FromStr>(&self, k: &str, default: T) -> Result<T, String> {
        match self.0.get(k) {
            Some(v) => v.parse().map_err(|_| format!("bad --{k} {v}")),
            None => Ok(default),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("gen") => Opts::parse(&args[1..]).and_then(|o| generate(&o)),
        Some("relay") => Opts::parse(&args[1..]).and_then(|o| relay(&o)),
        Some("national") => Opts::parse(&args[1..]).and_then(|o| national_file(&o)),
        _ => Err("usage: loadgen gen|relay [--option value ...] (see the source's header)".into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

fn loopback_only(a: SocketAddr) -> Result<SocketAddr, String> {
    if a.ip().is_loopback() {
        Ok(a)
    } else {
        Err(format!("{a}: only loopback targets"))
    }
}

// ---- the bare relay ---------------------------------------------------------------------------

fn relay(o: &Opts) -> Result<(), String> {
    let listen = loopback_only(o.get("listen", SocketAddr::new(LOOPBACK, 5060))?)?;
    let workers: usize = o.get("workers", 2)?;
    let batch: usize = o.get("batch", dualgate::transport::udp::BATCH)?;
    let flows: u16 = o.get("flows", 16)?;
    let uac: u16 = o.get("uac-base", 5200)?;
    let uas: u16 = o.get("uas-base", 5090)?;
    let max = Duration::from_secs(o.get("max-secs", 120)?);
    let mut socks = Vec::new();
    for _ in 0..workers.max(1) {
        socks.push(dualgate::transport::udp::bind(listen).map_err(|e| e.to_string())?);
    }
    let out = Arc::new(socks[0].try_clone().map_err(|e| e.to_string())?);
    let stop = Arc::new(AtomicBool::new(false));
    // UAC flow i <-> UAS flow i, by port: no parsing at all.
    let route = move |from: SocketAddr| {
        let p = from.port();
        let to = if (uac..uac + flows).contains(&p) {
            uas + (p - uac)
        } else if (uas..uas + flows).contains(&p) {
            uac + (p - uas)
        } else {
            return None;
        };
        Some(SocketAddr::new(LOOPBACK, to))
    };
    let threads: Vec<_> = socks
        .into_iter()
        .map(|s| {
            let (out, stop) = (out.clone(), stop.clone());
            std::thread::spawn(move || {
                dualgate::transport::udp::relay(&s, &out, &stop, batch, route)
            })
        })
        .collect();
    eprintln!("relay on {listen}: {workers} workers, batch {batch}, for at most {max:?}");
    std::thread::sleep(max);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

// ---- the generator -----------------------------------------------------------------------------

struct Call {
    started: Instant,
    acked: bool,
}

struct Gen {
    target: SocketAddr,
    number: String,
    run: u32,
    uac: Vec<UdpSocket>,
    uas: Vec<UdpSocket>,
    uac_out: Vec<Outbox>,
    uas_out: Vec<Outbox>,
    calls: HashMap<u64, Call>,
    completed: u64,
    failed: u64,
    sent: u64,
    received: u64,
    msg: String,
}

fn generate(o: &Opts) -> Result<(), String> {
    let target = loopback_only(o.get("target", SocketAddr::new(LOOPBACK, 5060))?)?;
    let total: u64 = o.get("calls", 200_000)?;
    let window: usize = o.get("window", 256)?;
    let rate: f64 = o.get("rate", 0.0)?;
    let flows: u16 = o.get("flows", 16)?;
    let uac_base: u16 = o.get("uac-base", 5200)?;
    let uas_base: u16 = o.get("uas-base", 5090)?;
    let max = Duration::from_secs(o.get("max-secs", 60)?);
    let call_timeout = Duration::from_millis(o.get("call-timeout-ms", 2000)?);
    let pid: u32 = o.get("pid", 0)?;
    let bind = |port: u16| -> Result<UdpSocket, String> {
        let s = dualgate::transport::udp::bind(SocketAddr::new(LOOPBACK, port))
            .map_err(|e| format!("bind 127.0.0.1:{port}: {e}"))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(s)
    };
    let mut g = Gen {
        target,
        number: o.get("number", "12356".to_string())?,
        run: std::process::id(),
        uac: (0..flows)
            .map(|i| bind(uac_base + i))
            .collect::<Result<_, _>>()?,
        uas: (0..flows)
            .map(|i| bind(uas_base + i))
            .collect::<Result<_, _>>()?,
        uac_out: (0..flows).map(|_| Outbox::new(64)).collect(),
        uas_out: (0..flows).map(|_| Outbox::new(64)).collect(),
        calls: HashMap::with_capacity(window * 2),
        completed: 0,
        failed: 0,
        sent: 0,
        received: 0,
        msg: String::with_capacity(2048),
    };
    let mut inbox = Inbox::new(32);
    let mut fds: Vec<libc::pollfd> = g
        .uac
        .iter()
        .chain(g.uas.iter())
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let cpu0 = Usage::read(pid);
    let own0 = own_cpu();
    let t0 = Instant::now();
    let mut started: u64 = 0;
    let mut last_sweep = t0;
    let n_uac = g.uac.len();
    loop {
        let now = Instant::now();
        let elapsed = now - t0;
        if elapsed > max || (started >= total && g.calls.is_empty()) {
            break;
        }
        // Start calls: as many as the window (and the rate) allow.
        let due = if rate > 0.0 {
            ((elapsed.as_secs_f64() * rate) as u64).min(total)
        } else {
            total
        };
        while started < due && g.calls.len() < window {
            g.invite(started, (started % n_uac as u64) as usize, now);
            started += 1;
        }
        g.flush();
        // Calls lost (a datagram dropped somewhere): count and forget them.
        if now - last_sweep > Duration::from_millis(50) {
            last_sweep = now;
            let before = g.calls.len();
            g.calls.retain(|_, c| now - c.started < call_timeout);
            g.failed += (before - g.calls.len()) as u64;
        }
        let wait = if rate > 0.0 { 1 } else { 10 };
        // SAFETY: fds is a live array of pollfd of the length passed.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait) };
        if r <= 0 {
            continue;
        }
        for (i, f) in fds.iter_mut().enumerate() {
            if f.revents == 0 {
                continue;
            }
            f.revents = 0;
            let (uas_side, k) = if i < n_uac {
                (false, i)
            } else {
                (true, i - n_uac)
            };
            loop {
                let sock = if uas_side { &g.uas[k] } else { &g.uac[k] };
                let n = match inbox.recv(sock) {
                    Ok(n) => n,
                    Err(_) => break,
                };
                for j in 0..n {
                    if let Some((bytes, from)) = inbox.get(j) {
                        g.received += 1;
                        if uas_side {
                            g.uas_answer(k, bytes, from);
                        } else {
                            g.uac_answer(k, bytes, Instant::now());
                        }
                    }
                }
                if n < 32 {
                    break;
                }
            }
        }
        g.flush();
    }
    let secs = t0.elapsed().as_secs_f64();
    g.failed += g.calls.len() as u64;
    let cpu1 = Usage::read(pid);
    let own = own_cpu() - own0;
    let cps = g.completed as f64 / secs;
    let mut line = format!(
        "LOADGEN target={} calls={} completed={} failed={} secs={:.2} cps={:.0} msgs_per_s={:.0} sent={} received={} gen_cpu_s={:.2}",
        target,
        started,
        g.completed,
        g.failed,
        secs,
        cps,
        cps * 7.0,
        g.sent,
        g.received,
        own
    );
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        let cpu = b.total - a.total;
        let _ = write!(
            line,
            " proxy_cpu_s={:.2} proxy_us_per_call={:.1} proxy_threads_busy_s={} proxy_rss_kb={} proxy_hwm_kb={}",
            cpu,
            if g.completed > 0 { cpu * 1e6 / g.completed as f64 } else { f64::NAN },
            b.busiest(&a),
            b.rss_kb,
            b.hwm_kb
        );
    }
    println!("{line}");
    Ok(())
}

impl Gen {
    fn push(out: &mut Outbox, sock: &UdpSocket, msg: &str, to: SocketAddr, sent: &mut u64) {
        *sent += 1;
        let _ = out.send(sock, msg.as_bytes(), to, "loadgen");
    }

    fn flush(&mut self) {
        for (o, s) in self.uac_out.iter_mut().zip(&self.uac) {
            o.flush(s);
        }
        for (o, s) in self.uas_out.iter_mut().zip(&self.uas) {
            o.flush(s);
        }
    }

    fn invite(&mut self, id: u64, flow: usize, now: Instant) {
        let port = self.uac[flow].local_addr().map_or(0, |a| a.port());
        let sdp = "v=0\r\no=trunk 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
        let m = &mut self.msg;
        m.clear();
        let _ = write!(
            m,
            "INVITE sip:{num}@{t} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-lg{id}-i\r\n\
             From: \"trunk\" <sip:13800000000@127.0.0.1:{port}>;tag=lg{id}\r\n\
             To: <sip:{num}@{t}>\r\n\
             Call-ID: lg{run}-{id}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:13800000000@127.0.0.1:{port}>\r\n\
             Max-Forwards: 70\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{sdp}",
            num = self.number,
            t = self.target,
            run = self.run,
            len = sdp.len()
        );
        self.calls.insert(
            id,
            Call {
                started: now,
                acked: false,
            },
        );
        Self::push(
            &mut self.uac_out[flow],
            &self.uac[flow],
            &self.msg,
            self.target,
            &mut self.sent,
        );
    }

    /// The call centre's side: 100, 180, 200 to an INVITE; 200 to a BYE; nothing to an ACK.
    fn uas_answer(&mut self, k: usize, bytes: &[u8], from: SocketAddr) {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return;
        };
        let Some((head, _)) = text.split_once("\r\n\r\n") else {
            return;
        };
        let mut lines = head.split("\r\n");
        let Some(start) = lines.next() else { return };
        let method = start.split(' ').next().unwrap_or("");
        let (mut via, mut rr) = (Vec::new(), Vec::new());
        let (mut fr, mut to, mut cid, mut cseq) = ("", "", "", "");
        for l in lines {
            let Some((name, _)) = l.split_once(':') else {
                continue;
            };
            match name.trim().to_ascii_lowercase().as_str() {
                "via" | "v" => via.push(l),
                "record-route" => rr.push(l),
                "from" | "f" => fr = l,
                "to" | "t" => to = l,
                "call-id" | "i" => cid = l,
                "cseq" => cseq = l,
                _ => {}
            }
        }
        let port = self.uas[k].local_addr().map_or(0, |a| a.port());
        let answers: &[(u16, &str)] = match method {
            "INVITE" => &[(100, "Trying"), (180, "Ringing"), (200, "OK")],
            "BYE" => &[(200, "OK")],
            _ => &[],
        };
        for &(code, reason) in answers {
            let m = &mut self.msg;
            m.clear();
            let _ = write!(m, "SIP/2.0 {code} {reason}\r\n");
            for v in &via {
                m.push_str(v);
                m.push_str("\r\n");
            }
            let dialog = method == "INVITE" && code > 100;
            if dialog {
                for r in &rr {
                    m.push_str(r);
                    m.push_str("\r\n");
                }
            }
            let _ = write!(m, "{fr}\r\n{to}");
            if dialog && !to.contains("tag=") {
                m.push_str(";tag=uas");
            }
            let _ = write!(m, "\r\n{cid}\r\n{cseq}\r\n");
            if dialog {
                let _ = write!(m, "Contact: <sip:queue@127.0.0.1:{port};transport=udp>\r\n");
            }
            if method == "INVITE" && code == 200 {
                let sdp = "v=0\r\no=cc 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
                let _ = write!(
                    m,
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                    sdp.len()
                );
            } else {
                m.push_str("Content-Length: 0\r\n\r\n");
            }
            Self::push(
                &mut self.uas_out[k],
                &self.uas[k],
                &self.msg,
                from,
                &mut self.sent,
            );
        }
    }

    /// The carrier's side: ACK and BYE on the INVITE's 200, the call done on the BYE's 200.
    fn uac_answer(&mut self, k: usize, bytes: &[u8], _now: Instant) {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return;
        };
        let Some((head, _)) = text.split_once("\r\n\r\n") else {
            return;
        };
        let mut lines = head.split("\r\n");
        let Some(start) = lines.next() else { return };
        if !start.starts_with("SIP/2.0 200") {
            return;
        }
        let (mut rr, mut to, mut cid, mut cseq, mut contact) = (Vec::new(), "", "", "", "");
        for l in lines {
            let Some((name, value)) = l.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "record-route" => rr.push(value),
                "to" | "t" => to = value,
                "call-id" | "i" => cid = value,
                "cseq" => cseq = value,
                "contact" | "m" => contact = value,
                _ => {}
            }
        }
        let Some(id) = cid
            .rsplit_once('-')
            .and_then(|(_, id)| id.parse::<u64>().ok())
        else {
            return;
        };
        if cseq.ends_with("BYE") {
            if self.calls.remove(&id).is_some() {
                self.completed += 1;
            }
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.acked || !cseq.ends_with("INVITE") {
            return;
        }
        call.acked = true;
        let uri = contact
            .split_once('<')
            .and_then(|(_, r)| r.split_once('>'))
            .map_or(contact, |(u, _)| u);
        let port = self.uac[k].local_addr().map_or(0, |a| a.port());
        for (method, n) in [("ACK", 1), ("BYE", 2)] {
            let m = &mut self.msg;
            m.clear();
            let _ = write!(
                m,
                "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-lg{id}-{n}\r\n"
            );
            // The UAC's route set is the Record-Route in reverse (RFC 3261 §12.1.2).
            for r in rr.iter().rev() {
                let _ = write!(m, "Route: {r}\r\n");
            }
            let _ = write!(
                m,
                "From: \"trunk\" <sip:13800000000@127.0.0.1:{port}>;tag=lg{id}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {n} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            );
            Self::push(
                &mut self.uac_out[k],
                &self.uac[k],
                &self.msg,
                self.target,
                &mut self.sent,
            );
        }
    }
}

/// The proxy's CPU (all threads and direct child processes; per thread of the main process)
/// and memory (of the main process), from /proc.
struct Usage {
    total: f64,
    threads: HashMap<String, f64>,
    rss_kb: u64,
    hwm_kb: u64,
}

fn ticks(stat: &str) -> Option<f64> {
    let rest = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split(' ').collect();
    let t: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(t / hz)
}

impl Usage {
    fn read(pid: u32) -> Option<Usage> {
        if pid == 0 {
            return None;
        }
        let mut total = ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
        // A multi-process proxy (Kamailio's children): add its direct children.
        let kids =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for kid in kids.split_whitespace() {
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{kid}/stat")) {
                total += ticks(&stat).unwrap_or(0.0);
            }
        }
        let mut threads = HashMap::new();
        for t in std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
        {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            let name = stat
                .split_once('(')
                .and_then(|(_, r)| r.rsplit_once(')'))
                .map_or("?", |(n, _)| n);
            let key = format!("{}:{}", name, t.file_name().to_string_lossy());
            threads.insert(key, ticks(&stat).unwrap_or(0.0));
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kb = |k: &str| {
            status
                .lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Some(Usage {
            total,
            threads,
            rss_kb: kb("VmRSS:"),
            hwm_kb: kb("VmHWM:"),
        })
    }

    /// Threads that used CPU over the run, busiest first: `name:tid=seconds,...`.
    fn busiest(&self, before: &Usage) -> String {
        let mut v: Vec<(&String, f64)> = self
            .threads
            .iter()
            .map(|(k, t)| (k, t - before.threads.get(k).copied().unwrap_or(0.0)))
            .filter(|(_, d)| *d > 0.0)
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v.iter()
            .take(4)
            .map(|(k, d)| format!("{}={:.2}", k.replace(' ', "_"), d))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn own_cpu() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| ticks(&s))
        .unwrap_or(0.0)
}

#[path = "../../national.rs"]
mod national;

/// `loadgen national [--areas 340] [--legacy 10000] [--port 5060] [--metrics 9190]
/// [--backend 5090]`: prints the national mapping file.
fn national_file(o: &Opts) -> Result<(), String> {
    print!(
        "{}",
        national::mapping(
            o.get("areas", 340)?,
            o.get("legacy", 10_000)?,
            o.get("port", 5060)?,
            o.get("metrics", 9190)?,
            o.get("backend", 5090)?
        )
    );
    Ok(())
}
