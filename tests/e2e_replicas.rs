#![allow(clippy::unwrap_used)]
//! Statelessness across hosts: three gateway processes, each in its own network namespace made
//! by this test (veth pairs on a bridge in a namespace of its own, addresses in 198.18.13.0/24,
//! the benchmarking range), with the same mappings and the same branch secret, each advertising
//! its own address. The carrier and the call centre are raw UDP sockets in namespaces of their
//! own (made there with setns(2) and used from here), and a real Prometheus in another scrapes
//! all three replicas.
//!
//! A call's INVITE goes through one replica and its ACK and BYE through the next (the Route
//! rewritten as a carrier-side load balancer or DNS failover would); another call's CANCEL
//! through a third replica reaches the same backend with the same branch. Then replica 1 is
//! killed: new calls and the BYE of a call it had set up go through the others and complete.
//!
//! Only addresses this test created are targets; every wait is bounded; the namespaces (and the
//! veths with them) and every process are removed on drop, also when the test fails. Without
//! `ip netns` (no iproute2, no CAP_SYS_ADMIN) the test says so and runs the same exchange on
//! three loopback addresses (127.0.0.11/12/13).

mod common;

use common::{free_port, header, headers, request, respond, start_line, temp_dir, Mapping};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const WAIT: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Host {
    Gw(usize),
    Carrier,
    Backend,
    Mon,
}

impl Host {
    fn name(self) -> String {
        match self {
            Host::Gw(i) => format!("gw{}", i + 1),
            Host::Carrier => "carrier".into(),
            Host::Backend => "backend".into(),
            Host::Mon => "mon".into(),
        }
    }
    fn octet(self) -> u8 {
        match self {
            Host::Gw(i) => 1 + i as u8,
            Host::Carrier => 10,
            Host::Backend => 20,
            Host::Mon => 30,
        }
    }
}

const HOSTS: [Host; 6] = [
    Host::Gw(0),
    Host::Gw(1),
    Host::Gw(2),
    Host::Carrier,
    Host::Backend,
    Host::Mon,
];

/// The test's network: namespaces on a bridge, or loopback addresses.
struct Net {
    /// Namespace name prefix when namespaces are used.
    netns: Option<String>,
    children: Vec<Child>,
    dirs: Vec<PathBuf>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Net {
    fn new() -> Net {
        let prefix = format!("dg{}", std::process::id());
        let mut net = Net {
            netns: Some(prefix.clone()),
            children: Vec::new(),
            dirs: Vec::new(),
        };
        // DUALGATE_TEST_NO_NETNS=1 runs the loopback fallback where namespaces would work.
        let built = match std::env::var("DUALGATE_TEST_NO_NETNS") {
            Ok(v) if v == "1" => Err("DUALGATE_TEST_NO_NETNS=1".to_string()),
            _ => net.build(&prefix),
        };
        match built {
            Ok(()) => net,
            Err(e) => {
                net.teardown();
                eprintln!(
                    "e2e_replicas: network namespaces unavailable ({e}); falling back to three \
                     loopback addresses 127.0.0.11/12/13 on one host"
                );
                net.netns = None;
                net
            }
        }
    }

    fn build(&self, p: &str) -> Result<(), String> {
        let br = format!("{p}-br");
        ip(&["netns", "add", &br])?;
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        for (i, h) in HOSTS.iter().enumerate() {
            let ns = format!("{p}-{}", h.name());
            let (a, b) = (format!("{p}{i}a"), format!("{p}{i}b"));
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])?;
            ip(&["link", "set", &a, "netns", &ns])?;
            ip(&["link", "set", &b, "netns", &br])?;
            ip(&["-n", &ns, "link", "set", &a, "name", "eth0"])?;
            let addr = format!("198.18.13.{}/24", h.octet());
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &br, "link", "set", &b, "master", "br0"])?;
            ip(&["-n", &br, "link", "set", &b, "up"])?;
        }
        Ok(())
    }

    fn teardown(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
        if let Some(p) = &self.netns {
            // Deleting a namespace deletes the veth ends in it, and so their peers.
            for h in HOSTS {
                let _ = ip(&["netns", "del", &format!("{p}-{}", h.name())]);
            }
            let _ = ip(&["netns", "del", &format!("{p}-br")]);
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    fn addr(&self, h: Host) -> IpAddr {
        match (&self.netns, h) {
            (Some(_), h) => format!("198.18.13.{}", h.octet()).parse().unwrap(),
            (None, Host::Gw(i)) => format!("127.0.0.{}", 11 + i).parse().unwrap(),
            (None, Host::Carrier) => "127.0.0.21".parse().unwrap(),
            (None, Host::Backend) => "127.0.0.31".parse().unwrap(),
            (None, Host::Mon) => "127.0.0.1".parse().unwrap(),
        }
    }

    /// A port for a listener on `h`: the usual one in a namespace of its own, a free one on
    /// the shared loopback.
    fn port(&self, usual: u16) -> u16 {
        if self.netns.is_some() {
            usual
        } else {
            free_port()
        }
    }

    /// Runs `f` in `h`'s network namespace (on a thread of its own that enters it).
    fn within<T: Send + 'static>(&self, h: Host, f: impl FnOnce() -> T + Send + 'static) -> T {
        let Some(p) = &self.netns else {
            return f();
        };
        let path = format!("/var/run/netns/{p}-{}", h.name());
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap();
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            f()
        })
        .join()
        .unwrap()
    }

    fn udp(&self, h: Host, port: u16) -> UdpSocket {
        let a = SocketAddr::new(self.addr(h), port);
        let s = self.within(h, move || UdpSocket::bind(a).unwrap());
        s.set_read_timeout(Some(WAIT)).unwrap();
        s
    }

    fn spawn(&mut self, h: Host, program: &str, args: &[String]) -> usize {
        let mut cmd = match &self.netns {
            Some(p) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &format!("{p}-{}", h.name()), program]);
                c
            }
            None => Command::new(program),
        };
        let child = cmd
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        self.children.push(child);
        self.children.len() - 1
    }

    fn kill(&mut self, i: usize) {
        let _ = self.children[i].kill();
        let _ = self.children[i].wait();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// One replica: its SIP and HTTP addresses and its process.
struct Replica {
    sip: SocketAddr,
    http: SocketAddr,
    child: usize,
}

/// `recv` from `sock` within [`WAIT`], as text, and the sender.
fn recv(sock: &UdpSocket, what: &str) -> (String, SocketAddr) {
    let mut buf = vec![0u8; 65_535];
    let (n, from) = sock
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("{what}: nothing within {WAIT:?} ({e})"));
    (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
}

/// The next message on either backend socket: (which, text, sender).
fn recv_backend(socks: &[UdpSocket; 2], what: &str) -> (usize, String, SocketAddr) {
    let mut buf = vec![0u8; 65_535];
    // Two sockets polled 20 ms each: WAIT / 40 ms rounds.
    for _ in 0..WAIT.as_millis() / 40 {
        for (i, s) in socks.iter().enumerate() {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                return (i, String::from_utf8_lossy(&buf[..n]).into_owned(), from);
            }
        }
    }
    panic!("{what}: the backend received nothing within {WAIT:?}");
}

fn top_branch(msg: &str) -> String {
    let via = header(msg, "Via").unwrap();
    via.split(";branch=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// A request inside a dialog, along `route`.
#[allow(clippy::too_many_arguments)]
fn in_dialog(
    method: &str,
    target: &str,
    local: &SocketAddr,
    call: &str,
    branch: &str,
    cseq: u32,
    to_tag: &str,
    route: &str,
) -> String {
    request(
        method, target, local, call, branch, "UDP", cseq, to_tag, "70",
    )
    .replacen(
        "Max-Forwards",
        &format!("Route: {route}\r\nMax-Forwards"),
        1,
    )
}

fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.split(' ').nth(1)?.parse().ok()?, body.to_string()))
}

struct Parties {
    carrier: UdpSocket,
    backends: [UdpSocket; 2],
    replicas: Vec<Replica>,
}

/// A call through `via_invite`, answered, then ACK and BYE through `via_dialog`.
fn completed_call(p: &Parties, call: &str, via_invite: usize, via_dialog: usize) {
    let me = p.carrier.local_addr().unwrap();
    let (inv, dlg) = (&p.replicas[via_invite], &p.replicas[via_dialog]);
    let ruri = format!("sip:12356@{}", inv.sip);
    let msg = common::invite(&ruri, &me, call, &format!("z9hG4bK-{call}"), "UDP");
    p.carrier.send_to(msg.as_bytes(), inv.sip).unwrap();
    let (b, invite, from) = recv_backend(&p.backends, call);
    assert!(start_line(&invite).starts_with("INVITE "), "{invite}");
    assert_eq!(
        from, inv.sip,
        "{call}: the INVITE came from the replica it was sent to"
    );
    let contact = format!("sip:agent@{}", p.backends[b].local_addr().unwrap());
    for status in ["180 Ringing", "200 OK"] {
        let mut r = respond(&invite, status, &format!("uas-{call}"));
        r = r.replacen(
            "Content-Length",
            &format!("Contact: <{contact}>\r\nContent-Length"),
            1,
        );
        p.backends[b].send_to(r.as_bytes(), from).unwrap();
        let (got, _) = recv(&p.carrier, &format!("{call} {status}"));
        assert!(got.starts_with(&format!("SIP/2.0 {status}")), "{got}");
        assert_eq!(header(&got, "Call-ID"), Some(call));
    }
    // The carrier's load balancer sends the rest of the dialog to another replica.
    let rr = headers(&invite, "Record-Route")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{call}: no Record-Route: {invite}"));
    assert!(rr.contains(&inv.sip.to_string()), "{rr}");
    let route = rr.replace(&inv.sip.to_string(), &dlg.sip.to_string());
    let to_tag = format!("uas-{call}");
    let ack = in_dialog(
        "ACK",
        &contact,
        &me,
        call,
        &format!("z9hG4bK-{call}-ack"),
        1,
        &to_tag,
        &route,
    );
    p.carrier.send_to(ack.as_bytes(), dlg.sip).unwrap();
    let (b2, got, from) = recv_backend(&p.backends, &format!("{call} ACK"));
    assert!(got.starts_with("ACK "), "{got}");
    assert_eq!(
        (b2, from),
        (b, dlg.sip),
        "{call}: ACK via the second replica to the same agent"
    );
    let bye = in_dialog(
        "BYE",
        &contact,
        &me,
        call,
        &format!("z9hG4bK-{call}-bye"),
        2,
        &to_tag,
        &route,
    );
    p.carrier.send_to(bye.as_bytes(), dlg.sip).unwrap();
    let (b3, got, from) = recv_backend(&p.backends, &format!("{call} BYE"));
    assert!(got.starts_with("BYE "), "{got}");
    assert_eq!((b3, from), (b, dlg.sip));
    p.backends[b]
        .send_to(respond(&got, "200 OK", &to_tag).as_bytes(), from)
        .unwrap();
    let (got, _) = recv(&p.carrier, &format!("{call} 200 to BYE"));
    assert!(got.starts_with("SIP/2.0 200"), "{got}");
    assert_eq!(header(&got, "CSeq"), Some("2 BYE"));
}

/// A call through `via_invite`, ringing, then CANCELled through `via_cancel`.
fn cancelled_call(p: &Parties, call: &str, via_invite: usize, via_cancel: usize) {
    let me = p.carrier.local_addr().unwrap();
    let (inv, can) = (&p.replicas[via_invite], &p.replicas[via_cancel]);
    let ruri = format!("sip:12356@{}", inv.sip);
    let branch = format!("z9hG4bK-{call}");
    let msg = common::invite(&ruri, &me, call, &branch, "UDP");
    p.carrier.send_to(msg.as_bytes(), inv.sip).unwrap();
    let (b, invite, from) = recv_backend(&p.backends, call);
    let ringing = respond(&invite, "180 Ringing", &format!("uas-{call}"));
    p.backends[b].send_to(ringing.as_bytes(), from).unwrap();
    let (got, _) = recv(&p.carrier, &format!("{call} 180"));
    assert!(got.starts_with("SIP/2.0 180"), "{got}");
    let cancel = request("CANCEL", &ruri, &me, call, &branch, "UDP", 1, "", "70");
    p.carrier.send_to(cancel.as_bytes(), can.sip).unwrap();
    let (b2, got, from2) = recv_backend(&p.backends, &format!("{call} CANCEL"));
    assert!(got.starts_with("CANCEL "), "{got}");
    // RFC 3261 §16.11: the CANCEL must match the INVITE's transaction at the backend.
    assert_eq!(b2, b, "{call}: the CANCEL reached another backend");
    assert_eq!(
        top_branch(&got),
        top_branch(&invite),
        "{call}: branches differ"
    );
    assert_eq!(from2, can.sip);
    p.backends[b]
        .send_to(
            respond(&got, "200 OK", &format!("uas-{call}")).as_bytes(),
            from2,
        )
        .unwrap();
    p.backends[b]
        .send_to(
            respond(&invite, "487 Request Terminated", &format!("uas-{call}")).as_bytes(),
            from,
        )
        .unwrap();
    let mut seen: Vec<String> = (0..2)
        .map(|_| {
            let (m, _) = recv(&p.carrier, &format!("{call} answers to CANCEL"));
            format!("{} / {}", start_line(&m), header(&m, "CSeq").unwrap())
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            "SIP/2.0 200 OK / 1 CANCEL".to_string(),
            "SIP/2.0 487 Request Terminated / 1 INVITE".to_string()
        ]
    );
}

/// Polls Prometheus for `sum(dualgate_call_attempts_total)` until it equals `want`.
fn wait_prometheus_sum(net: &Net, prom: SocketAddr, want: f64) {
    let mut last = String::new();
    // 30 s at most.
    for _ in 0..120 {
        let got = net.within(Host::Mon, move || {
            http_get(
                prom,
                "/api/v1/query?query=sum(dualgate_call_attempts_total)",
            )
        });
        if let Some((200, body)) = got {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let value = v["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok());
            if value == Some(want) {
                return;
            }
            last = body;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("Prometheus never summed {want} calls over the replicas: {last}");
}

#[test]
fn three_replicas_in_three_namespaces_share_nothing_and_any_one_can_be_lost() {
    Command::new("prometheus")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "prometheus is required ({e}): install Debian's `prometheus` (e.g. with .ci/run)"
            )
        });
    let mut net = Net::new();
    let dir = temp_dir();
    net.dirs.push(dir.clone());
    let backend_ports = [net.port(5091), net.port(5092)];
    let backends: [UdpSocket; 2] = backend_ports.map(|p| net.udp(Host::Backend, p));
    let carrier = net.udp(Host::Carrier, net.port(5060));
    let uris: Vec<String> = backends
        .iter()
        .map(|b| format!("sip:{};transport=udp", b.local_addr().unwrap()))
        .collect();
    let trunk = format!(
        "[[trunk]]\nname = \"carrier\"\nsources = [\"{}/32\"]\norigin_area = \"0591\"\n",
        net.addr(Host::Carrier)
    );
    let text = Mapping::new(&uris, &uris[0], &uris[0])
        .trunks(&trunk)
        .gateway(&format!("secret = \"{SECRET}\""))
        .text()
        .replace("@SIP@", "127.0.0.1:5060")
        .replace("@METRICS@", "127.0.0.1:9090");
    let config = dir.join("mappings.toml");
    std::fs::write(&config, text).unwrap();
    let mut replicas = Vec::new();
    for i in 0..3 {
        let h = Host::Gw(i);
        let sip = SocketAddr::new(net.addr(h), net.port(5060));
        let http = SocketAddr::new(net.addr(h), net.port(9090));
        let args: Vec<String> = vec![
            "run".into(),
            format!("--config={}", config.display()),
            format!("--sip-udp={sip}"),
            format!("--sip-tcp={sip}"),
            format!("--metrics={http}"),
            format!("--advertised={sip}"),
            "--udp-workers=1".into(),
        ];
        let child = net.spawn(h, env!("CARGO_BIN_EXE_dualgate"), &args);
        replicas.push(Replica { sip, http, child });
    }
    // Every replica answers the carrier before the calls start.
    let me = carrier.local_addr().unwrap();
    for r in &replicas {
        carrier
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut up = false;
        for k in 0..100 {
            let o = common::options(&me, &format!("ready-{}-{k}", r.sip));
            carrier.send_to(o.as_bytes(), r.sip).unwrap();
            let mut buf = [0u8; 4096];
            if let Ok((n, _)) = carrier.recv_from(&mut buf) {
                if buf[..n].starts_with(b"SIP/2.0 200") {
                    up = true;
                    break;
                }
            }
        }
        assert!(up, "replica {} never answered", r.sip);
    }
    carrier.set_read_timeout(Some(WAIT)).unwrap();
    let prom_port = net.port(9090);
    let prom = SocketAddr::new(
        if net.netns.is_some() {
            "127.0.0.1".parse().unwrap()
        } else {
            net.addr(Host::Mon)
        },
        prom_port,
    );
    let targets: Vec<String> = replicas.iter().map(|r| format!("'{}'", r.http)).collect();
    let prom_config = dir.join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: dualgate\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ),
    )
    .unwrap();
    net.spawn(
        Host::Mon,
        "prometheus",
        &[
            format!("--config.file={}", prom_config.display()),
            format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            format!("--web.listen-address={prom}"),
            "--log.level=warn".into(),
        ],
    );
    let p = Parties {
        carrier,
        backends,
        replicas,
    };

    // Each call's INVITE through replica k, its ACK and BYE through k+1; the CANCEL of another
    // call through k+2.
    for i in 0..6 {
        completed_call(&p, &format!("call-{i}"), i % 3, (i + 1) % 3);
    }
    for j in 0..3 {
        cancelled_call(&p, &format!("cancel-{j}"), j % 3, (j + 2) % 3);
    }
    // A dialog set up through replica 1, to be ended after replica 1 is gone.
    let me = p.carrier.local_addr().unwrap();
    let ruri = format!("sip:12356@{}", p.replicas[0].sip);
    let orphan = common::invite(&ruri, &me, "orphan", "z9hG4bK-orphan", "UDP");
    p.carrier
        .send_to(orphan.as_bytes(), p.replicas[0].sip)
        .unwrap();
    let (ob, oinvite, ofrom) = recv_backend(&p.backends, "orphan INVITE");
    let ocontact = format!("sip:agent@{}", p.backends[ob].local_addr().unwrap());
    let ok = respond(&oinvite, "200 OK", "uas-orphan").replacen(
        "Content-Length",
        &format!("Contact: <{ocontact}>\r\nContent-Length"),
        1,
    );
    p.backends[ob].send_to(ok.as_bytes(), ofrom).unwrap();
    let (got, _) = recv(&p.carrier, "orphan 200");
    assert!(got.starts_with("SIP/2.0 200"), "{got}");

    // 10 calls placed: Prometheus, scraping the three, counts exactly 10.
    wait_prometheus_sum(&net, prom, 10.0);
    for r in &p.replicas {
        let (status, body) = net
            .within(Host::Mon, {
                let a = r.http;
                move || http_get(a, "/metrics")
            })
            .unwrap();
        assert_eq!(status, 200);
        let n = common::metric(&body, "dualgate_call_attempts_total", &[]).unwrap();
        assert!(n >= 3.0, "replica {} took {n} calls", r.sip);
    }

    // Replica 1 dies mid-run.
    net.kill(p.replicas[0].child);
    // The orphaned dialog ends through replica 3; new calls go to the survivors.
    let rr = headers(&oinvite, "Record-Route")[0].replace(
        &p.replicas[0].sip.to_string(),
        &p.replicas[2].sip.to_string(),
    );
    let bye = in_dialog(
        "BYE",
        &ocontact,
        &me,
        "orphan",
        "z9hG4bK-orphan-bye",
        2,
        "uas-orphan",
        &rr,
    );
    p.carrier
        .send_to(bye.as_bytes(), p.replicas[2].sip)
        .unwrap();
    let (b, got, from) = recv_backend(&p.backends, "orphan BYE");
    assert_eq!((b, from), (ob, p.replicas[2].sip), "{got}");
    p.backends[b]
        .send_to(respond(&got, "200 OK", "uas-orphan").as_bytes(), from)
        .unwrap();
    let (got, _) = recv(&p.carrier, "orphan 200 to BYE");
    assert!(
        got.starts_with("SIP/2.0 200") && got.contains("CSeq: 2 BYE"),
        "{got}"
    );
    for i in 0..3 {
        completed_call(&p, &format!("after-{i}"), 1 + i % 2, 2 - i % 2);
    }
    // Prometheus marks the dead replica's series stale: the survivors' 6 + 3 new calls.
    wait_prometheus_sum(&net, prom, 9.0);
    drop(p);
    drop(net);
}
