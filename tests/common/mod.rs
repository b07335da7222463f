//! Test harness: runs the real `dualgate` binary on loopback ports with a generated mapping
//! file, and talks to it over real UDP/TCP sockets and its real /metrics endpoint.
// Each test file includes this module and uses a part of it.
#![allow(clippy::unwrap_used, dead_code, unused_imports)]

pub mod fixture;
pub mod http;
pub mod sipp;

pub use fixture::{
    peers, udp_uri, Mapping, ANNOUNCE, FAST_PROBE, FUZHOU_TRUNK, LOOPBACK_TRUNK, PROBE_OFF, ROUTE,
    TWO_TRUNKS,
};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::timeout;

/// How long any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(3);

/// An instant inside Fujian's parallel period.
pub const PARALLEL: &str = "2025-04-20T10:00:00+08:00";
/// The first instant after it.
pub const RETIRED: &str = "2025-05-07T00:00:00+08:00";

/// A port free for both UDP and TCP on 127.0.0.1 when asked, distinct from every other port
/// this test process was given. Ports come from 20000-31999, below the kernel's ephemeral range
/// (32768-60999), so no client socket, scrape or sipp call leg takes one between the pick and
/// the bind; if another process does, [`Gateway::start`] notices (the child exits or never
/// answers) and starts again on fresh ports.
pub fn free_port() -> u16 {
    free_port_on("127.0.0.1")
}

static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// [`free_port`] on `ip` (e.g. `::1`).
pub fn free_port_on(ip: &str) -> u16 {
    let ip: std::net::IpAddr = ip.parse().unwrap();
    // Test processes run one after another; the offset keeps a rerun off the last one's ports.
    let offset = std::process::id() % 12_000;
    for _ in 0..12_000 {
        let n = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        let port = u16::try_from(20_000 + (offset + n) % 12_000).unwrap();
        let tcp = TcpListener::bind((ip, port));
        let udp = std::net::UdpSocket::bind((ip, port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// Waits (at most 5 s) until something has bound UDP `port` on 127.0.0.1: a peer started in
/// the background (a sipp UAS) is listening before the first call is placed.
pub fn wait_udp_bound(port: u16) {
    for _ in 0..100 {
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on udp 127.0.0.1:{port} after 5 s");
}

/// A fresh directory for one test's files (removed by its owner, or kept on failure for a
/// look).
pub fn temp_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("dualgate-test-")
        .tempdir()
        .unwrap()
        .keep()
}

/// [`Mapping::new`]`(fuzhou, xiamen, announcement)` with `when_retired`, as text: the older
/// spelling, kept so that tests written against it still build; new tests use [`Mapping`].
pub fn mappings(fuzhou: &[String], xiamen: &str, announcement: &str, when_retired: &str) -> String {
    mappings_with(fuzhou, xiamen, announcement, when_retired, TWO_TRUNKS)
}

/// [`mappings`] with other `[[trunk]]` tables.
pub fn mappings_with(
    fuzhou: &[String],
    xiamen: &str,
    announcement: &str,
    when_retired: &str,
    trunks: &str,
) -> String {
    Mapping::new(fuzhou, xiamen, announcement)
        .when_retired(when_retired)
        .trunks(trunks)
        .text()
}

/// A running gateway process.
pub struct Gateway {
    child: Child,
    /// Its SIP address (UDP and TCP).
    pub sip: SocketAddr,
    /// Its /metrics address.
    pub metrics: SocketAddr,
    /// Its mapping file.
    pub config: PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = self.config.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Gateway {
    /// Starts `dualgate run` on fresh ports with `mappings` and waits until it answers OPTIONS.
    pub async fn start(mappings: &str, args: &[&str]) -> Gateway {
        Gateway::start_on(mappings, args, "127.0.0.1", "127.0.0.2").await
    }

    /// [`Gateway::start`] with SIP on `sip_ip`; the readiness OPTIONS comes from `caller_ip`
    /// (which must be in a trunk).
    pub async fn start_on(mappings: &str, args: &[&str], sip_ip: &str, caller_ip: &str) -> Gateway {
        Gateway::start_limited(mappings, args, sip_ip, caller_ip, None).await
    }

    /// [`Gateway::start_on`], the process started with its file-descriptor soft limit lowered
    /// to `soft_nofile` (as a shell's `ulimit -Sn` would leave it).
    pub async fn start_limited(
        mappings: &str,
        args: &[&str],
        sip_ip: &str,
        caller_ip: &str,
        soft_nofile: Option<u64>,
    ) -> Gateway {
        // A port picked free can be taken before the child binds it: then the child exits
        // (or never answers) and the gateway starts again on fresh ports.
        for _attempt in 0..5 {
            let sip = SocketAddr::new(sip_ip.parse().unwrap(), free_port_on(sip_ip));
            let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let config = temp_dir().join("mappings.toml");
            let text = mappings
                .replace("@SIP@", &sip.to_string())
                .replace("@METRICS@", &metrics.to_string());
            std::fs::write(&config, text).unwrap();
            let mut cmd = match soft_nofile {
                None => Command::new(env!("CARGO_BIN_EXE_dualgate")),
                Some(n) => {
                    let mut c = Command::new("sh");
                    c.arg("-c")
                        .arg(format!("ulimit -Sn {n} && exec \"$0\" \"$@\""))
                        .arg(env!("CARGO_BIN_EXE_dualgate"));
                    c
                }
            };
            let child = cmd
                .arg("run")
                .arg("--config")
                .arg(&config)
                .args(args)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
            let mut gw = Gateway {
                child,
                sip,
                metrics,
                config,
            };
            if gw.wait_ready(caller_ip).await {
                return gw;
            }
            eprintln!("gateway on {sip} did not come up (a port taken meanwhile?): starting again");
        }
        panic!("gateway did not start in 5 attempts");
    }

    /// Whether the child answers OPTIONS and serves /metrics; `false` when it exited first.
    async fn wait_ready(&mut self, caller_ip: &str) -> bool {
        let sock = UdpSocket::bind(SocketAddr::new(caller_ip.parse().unwrap(), 0))
            .await
            .unwrap();
        for i in 0..100 {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            let msg = options(&sock.local_addr().unwrap(), &format!("ready-{i}"));
            sock.send_to(msg.as_bytes(), self.sip).await.unwrap();
            let mut buf = vec![0u8; 4096];
            if let Ok(Ok((n, _))) =
                timeout(Duration::from_millis(100), sock.recv_from(&mut buf)).await
            {
                if String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200")
                    && scrape_once(self.metrics).is_some()
                {
                    return true;
                }
            }
        }
        false
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGHUP (reload).
    pub fn reload(&self) {
        let ok = Command::new("kill")
            .arg("-HUP")
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP");
    }

    /// The /metrics text.
    pub fn scrape(&self) -> String {
        scrape_once(self.metrics).expect("scrape /metrics")
    }
}

/// Runs the `dualgate` binary with `args`: (exit status, stdout, stderr).
pub fn dualgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dualgate"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One `GET /metrics` over HTTP/1.0; `None` unless it answers 200.
pub fn scrape_once(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(WAIT)).ok()?;
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let ok = body
        .lines()
        .next()
        .is_some_and(|l| l.starts_with("HTTP/1.") && l.contains(" 200 "));
    ok.then_some(body)
}

/// The sum of the metric series whose labels include all of `labels` (as PromQL's `sum`);
/// `None` when no series matches.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found = series(text, name, labels);
    (!found.is_empty()).then(|| found.iter().map(|(_, v)| v).sum())
}

/// Every series of `name` whose labels include all of `labels`: (the text between the braces,
/// value).
pub fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            if n != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            let value: f64 = value.parse().ok()?;
            all.then(|| (rest.trim_end_matches('}').to_string(), value))
        })
        .collect()
}

/// An INVITE from `local` to `ruri`, with an SDP body and `rport`.
pub fn invite(
    ruri: &str,
    local: &SocketAddr,
    call_id: &str,
    branch: &str,
    transport: &str,
) -> String {
    request(
        "INVITE", ruri, local, call_id, branch, transport, 1, "", "70",
    )
}

/// An OPTIONS keep-alive.
pub fn options(local: &SocketAddr, call_id: &str) -> String {
    request(
        "OPTIONS",
        "sip:ping@gw",
        local,
        call_id,
        &format!("z9hG4bK-{call_id}"),
        "UDP",
        1,
        "",
        "70",
    )
}

/// A request with the usual headers; `to_tag` may be empty.
#[allow(clippy::too_many_arguments)]
pub fn request(
    method: &str,
    ruri: &str,
    local: &SocketAddr,
    call_id: &str,
    branch: &str,
    transport: &str,
    cseq: u32,
    to_tag: &str,
    max_forwards: &str,
) -> String {
    let body = if method == "INVITE" {
        "v=0\r\no=carrier 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
    } else {
        ""
    };
    let to_tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch={branch};rport\r\n\
         Max-Forwards: {max_forwards}\r\n\
         From: \"carrier\" <sip:13800000000@{local}>;tag=from-{call_id}\r\n\
         To: <{ruri}>{to_tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:13800000000@{local}>\r\n\
         {ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// An in-dialog BYE to `target` along the route set `route` (a Record-Route value).
#[allow(clippy::too_many_arguments)]
pub fn bye(
    target: &str,
    local: &SocketAddr,
    call_id: &str,
    branch: &str,
    transport: &str,
    cseq: u32,
    to_tag: &str,
    route: &str,
) -> String {
    request(
        "BYE", target, local, call_id, branch, transport, cseq, to_tag, "70",
    )
    .replacen(
        "Max-Forwards",
        &format!("Route: {route}\r\nMax-Forwards"),
        1,
    )
}

/// A UDP peer on a chosen loopback address.
pub struct Peer {
    /// The socket.
    pub sock: UdpSocket,
    /// Its address.
    pub addr: SocketAddr,
}

impl Peer {
    /// Binds on `ip` (e.g. 127.0.0.2 for the Fuzhou trunk), any port.
    pub async fn bind(ip: &str) -> Peer {
        let sock = UdpSocket::bind(format!("{ip}:0")).await.unwrap();
        let addr = sock.local_addr().unwrap();
        Peer { sock, addr }
    }

    /// `sip:127.0.0.1:PORT;transport=udp`, for a backend list.
    pub fn uri(&self) -> String {
        format!("sip:{};transport=udp", self.addr)
    }

    /// Sends text to `to`.
    pub async fn send(&self, to: SocketAddr, msg: &str) {
        self.sock.send_to(msg.as_bytes(), to).await.unwrap();
    }

    /// The next datagram within [`WAIT`], as text, and who sent it.
    pub async fn recv(&self) -> (String, SocketAddr) {
        let mut buf = vec![0u8; 65_535];
        let (n, from) = timeout(WAIT, self.sock.recv_from(&mut buf))
            .await
            .expect("a datagram within the wait")
            .unwrap();
        (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
    }

    /// Asserts nothing arrives within `d`.
    pub async fn silent_for(&self, d: Duration) {
        let mut buf = vec![0u8; 65_535];
        if let Ok(Ok((n, _))) = timeout(d, self.sock.recv_from(&mut buf)).await {
            panic!(
                "unexpected datagram: {}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
    }
}

/// The value of the first header named `name` (case-insensitive), if any.
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    headers(msg, name).into_iter().next()
}

/// The values of every header named `name`, in order.
pub fn headers<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    let head = msg.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

/// The first line.
pub fn start_line(msg: &str) -> &str {
    msg.lines().next().unwrap_or("")
}

/// A response to `req` with `status`, as a UAS would send it (all Vias, To tag added).
pub fn respond(req: &str, status: &str, to_tag: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for v in headers(req, "Via") {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    for rr in headers(req, "Record-Route") {
        out.push_str(&format!("Record-Route: {rr}\r\n"));
    }
    for h in ["From", "Call-ID", "CSeq"] {
        out.push_str(&format!("{h}: {}\r\n", header(req, h).unwrap()));
    }
    out.push_str(&format!(
        "To: {};tag={to_tag}\r\n",
        header(req, "To").unwrap()
    ));
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}
