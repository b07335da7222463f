//! Backend failure and overload over real UDP sockets on 127.0.0.1: OPTIONS probing, failover
//! to the backends up, overflow queues and service hours, the answer when nowhere is left, a
//! backend's 503 turned into 480, per-trunk rate limits, and message order kept per flow.
//! Every wait is bounded; every load loop is bounded in count.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout};

/// A call-centre backend on 127.0.0.1: answers OPTIONS 200 while `alive`, and hands every
/// other message it receives to the test.
struct Backend {
    addr: SocketAddr,
    alive: Arc<AtomicBool>,
    options: Arc<AtomicUsize>,
    rx: mpsc::UnboundedReceiver<String>,
}

impl Backend {
    async fn start(alive: bool) -> Backend {
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = sock.local_addr().unwrap();
        let alive = Arc::new(AtomicBool::new(alive));
        let options = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::unbounded_channel();
        let (a, o) = (alive.clone(), options.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.starts_with("OPTIONS ") {
                    o.fetch_add(1, Ordering::SeqCst);
                    if a.load(Ordering::SeqCst) {
                        let _ = sock
                            .send_to(respond(&msg, "200 OK", "probe").as_bytes(), from)
                            .await;
                    }
                    // Probes are not the test's business beyond this.
                    if !msg.contains("branch=z9hG4bK-dgprobe-") {
                        let _ = tx.send(msg);
                    }
                } else if tx.send(msg).is_err() {
                    return;
                }
            }
        });
        Backend {
            addr,
            alive,
            options,
            rx,
        }
    }

    fn uri(&self) -> String {
        format!("sip:{};transport=udp", self.addr)
    }

    async fn recv(&mut self) -> String {
        timeout(WAIT, self.rx.recv())
            .await
            .expect("a message within the wait")
            .unwrap()
    }
}

/// Polls /metrics until `name{labels}` equals `want`; how long it took.
async fn wait_metric(gw: &Gateway, name: &str, labels: &[(&str, &str)], want: f64) -> Duration {
    let step = Duration::from_millis(20);
    let mut waited = Duration::ZERO;
    while waited < Duration::from_secs(5) {
        if metric(&gw.scrape(), name, labels) == Some(want) {
            return waited;
        }
        sleep(step).await;
        waited += step;
    }
    panic!("{name}{labels:?} never reached {want}:\n{}", gw.scrape());
}

#[tokio::test]
async fn a_backend_that_stops_answering_probes_is_marked_down_and_its_calls_go_to_the_other() {
    let mut alive = Backend::start(true).await;
    let mut dead = Backend::start(true).await;
    let xiamen = Peer::bind("127.0.0.1").await;
    let ann = Peer::bind("127.0.0.1").await;
    let carrier = Peer::bind("127.0.0.2").await;
    let m = Mapping::new(&[alive.uri(), dead.uri()], &xiamen.uri(), &ann.uri())
        .probe(FAST_PROBE)
        .text();
    let gw = Gateway::start(&m, &["--now", PARALLEL]).await;
    let (alive_uri, dead_uri) = (alive.uri(), dead.uri());
    fn up(uri: &str) -> [(&str, &str); 2] {
        [("queue", "fuzhou"), ("backend", uri)]
    }

    // Both answer: both up, and the probes carry the gateway's own Via with the probe branch.
    wait_metric(
        &gw,
        "dualgate_backend_probes_total",
        &[("backend", &dead.uri()), ("result", "answered")],
        2.0,
    )
    .await;
    assert_eq!(
        metric(&gw.scrape(), "dualgate_backend_up", &up(&dead_uri)),
        Some(1.0)
    );

    dead.alive.store(false, Ordering::SeqCst);
    let took = wait_metric(&gw, "dualgate_backend_up", &up(&dead_uri), 0.0).await;
    eprintln!("silent backend marked down after {took:?} (interval 100 ms, down_after 3)");
    assert!(took <= Duration::from_millis(800), "{took:?}");
    assert_eq!(
        metric(&gw.scrape(), "dualgate_backend_up", &up(&alive_uri)),
        Some(1.0)
    );

    // Every new call reaches the live backend; none reaches the dead one.
    for i in 0..40 {
        let id = format!("f{i}");
        carrier
            .send(
                gw.sip,
                &invite(
                    "sip:12356@gw",
                    &carrier.addr,
                    &id,
                    &format!("z9hG4bK{id}"),
                    "UDP",
                ),
            )
            .await;
        let got = alive.recv().await;
        assert_eq!(header(&got, "Call-ID"), Some(id.as_str()), "{got}");
    }
    assert!(dead.rx.try_recv().is_err(), "the dead backend got a call");
    // The probes' responses were consumed by the gateway: nothing reached the carrier.
    carrier.silent_for(Duration::from_millis(200)).await;

    // It answers again: up after two answers.
    let probes = dead.options.load(Ordering::SeqCst);
    dead.alive.store(true, Ordering::SeqCst);
    let back = wait_metric(&gw, "dualgate_backend_up", &up(&dead_uri), 1.0).await;
    assert!(back <= Duration::from_millis(600), "{back:?}");
    assert!(dead.options.load(Ordering::SeqCst) > probes);
    let m = gw.scrape();
    assert!(
        metric(
            &m,
            "dualgate_backend_probes_total",
            &[("backend", &dead.uri()), ("result", "missed")]
        )
        .unwrap()
            >= 3.0,
        "{m}"
    );
}

#[tokio::test]
async fn with_every_backend_down_the_caller_gets_503_with_retry_after_never_silence() {
    let dead = Backend::start(false).await;
    let xiamen = Peer::bind("127.0.0.1").await;
    let ann = Peer::bind("127.0.0.1").await;
    let carrier = Peer::bind("127.0.0.2").await;
    let m = Mapping::new(&[dead.uri()], &xiamen.uri(), &ann.uri())
        .probe(FAST_PROBE)
        .text();
    let gw = Gateway::start(&m, &["--now", PARALLEL]).await;
    let backend = dead.uri();
    wait_metric(&gw, "dualgate_backend_up", &[("backend", &backend)], 0.0).await;

    carrier
        .send(
            gw.sip,
            &invite("sip:12356@gw", &carrier.addr, "n1", "z9hG4bKn1", "UDP"),
        )
        .await;
    let (got, _) = carrier.recv().await;
    assert_eq!(start_line(&got), "SIP/2.0 503 Service Unavailable", "{got}");
    assert_eq!(header(&got, "Retry-After"), Some("30"), "{got}");
    // Its ACK (with the To tag the gateway wrote) is absorbed, not forwarded.
    let tag = header(&got, "To")
        .unwrap()
        .split("tag=")
        .nth(1)
        .unwrap()
        .to_string();
    let ack = request(
        "ACK",
        "sip:12356@gw",
        &carrier.addr,
        "n1",
        "z9hG4bKn1",
        "UDP",
        1,
        &tag,
        "70",
    );
    carrier.send(gw.sip, &ack).await;
    carrier.silent_for(Duration::from_millis(200)).await;
    let m = gw.scrape();
    assert_eq!(
        metric(
            &m,
            "dualgate_unavailable_total",
            &[("queue", "fuzhou"), ("reason", "all_down")]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "dualgate_rejected_total", &[("reason", "no_backend")]),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "dualgate_call_outcomes_total",
            &[("number", "059112356"), ("outcome", "failed_5xx")]
        ),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test]
async fn a_queue_with_every_backend_down_overflows_to_its_overflow_queue() {
    let dead = Backend::start(false).await;
    let mut provincial = Backend::start(true).await;
    let ann = Peer::bind("127.0.0.1").await;
    let carrier = Peer::bind("127.0.0.2").await;
    let m = Mapping::new(&[dead.uri()], &provincial.uri(), &ann.uri())
        .probe(FAST_PROBE)
        .fuzhou_queue("overflow = \"xiamen\"")
        .text();
    let gw = Gateway::start(&m, &["--now", PARALLEL]).await;
    wait_metric(&gw, "dualgate_backend_up", &[("backend", &dead.uri())], 0.0).await;
    carrier
        .send(
            gw.sip,
            &invite("sip:85666661@gw", &carrier.addr, "o1", "z9hG4bKo1", "UDP"),
        )
        .await;
    let got = provincial.recv().await;
    assert_eq!(
        start_line(&got),
        format!("INVITE sip:12356@{} SIP/2.0", provincial.addr)
    );
    // Counted under the queue it was routed to, and as an overflow.
    assert!(headers(&got, "Via")[0].contains(";dgq=fuzhou"), "{got}");
    let m = gw.scrape();
    let labels = [
        ("queue", "fuzhou"),
        ("to", "xiamen"),
        ("reason", "all_down"),
    ];
    assert_eq!(
        metric(&m, "dualgate_overflow_total", &labels),
        Some(1.0),
        "{m}"
    );
    let closed = [("queue", "fuzhou"), ("to", "xiamen"), ("reason", "closed")];
    assert_eq!(
        metric(&m, "dualgate_overflow_total", &closed),
        Some(0.0),
        "{m}"
    );
}

#[tokio::test]
async fn outside_its_service_hours_a_queue_overflows_and_at_the_boundary_it_is_open() {
    let (fuzhou, xiamen, ann, carrier) = peers().await;
    let m = Mapping::new(&[fuzhou.uri()], &xiamen.uri(), &ann.uri())
        .fuzhou_queue("overflow = \"xiamen\"\nhours = [\"10:00-22:00\"]")
        .text();
    // 09:59:50 CST: closed, the call goes to Xiamen.
    let gw = Gateway::start(&m, &["--now", "2025-04-20T09:59:50+08:00"]).await;
    carrier
        .send(
            gw.sip,
            &invite("sip:12356@gw", &carrier.addr, "h1", "z9hG4bKh1", "UDP"),
        )
        .await;
    let (got, _) = xiamen.recv().await;
    assert!(start_line(&got).starts_with("INVITE sip:12356@"), "{got}");
    let m2 = gw.scrape();
    assert_eq!(
        metric(
            &m2,
            "dualgate_overflow_total",
            &[("queue", "fuzhou"), ("reason", "closed")]
        ),
        Some(1.0)
    );
    drop(gw);
    // 10:00:00 exactly: the boundary belongs to the later period, open.
    let gw = Gateway::start(&m, &["--now", "2025-04-20T10:00:00+08:00"]).await;
    carrier
        .send(
            gw.sip,
            &invite("sip:12356@gw", &carrier.addr, "h2", "z9hG4bKh2", "UDP"),
        )
        .await;
    let (got, _) = fuzhou.recv().await;
    assert_eq!(header(&got, "Call-ID"), Some("h2"));
}

#[tokio::test]
async fn a_backends_503_reaches_the_carrier_as_480_keeping_retry_after() {
    let (fuzhou, xiamen, ann, carrier) = peers().await;
    let gw = Mapping::new(&[fuzhou.uri()], &xiamen.uri(), &ann.uri())
        .start(&["--now", PARALLEL])
        .await;
    carrier
        .send(
            gw.sip,
            &invite("sip:12356@gw", &carrier.addr, "b1", "z9hG4bKb1", "UDP"),
        )
        .await;
    let (inv, _) = fuzhou.recv().await;
    let busy = respond(&inv, "503 Service Unavailable", "cc")
        .replace("Content-Length: 0", "Retry-After: 120\r\nContent-Length: 0");
    fuzhou.send(gw.sip, &busy).await;
    let (got, _) = carrier.recv().await;
    assert_eq!(
        start_line(&got),
        "SIP/2.0 480 Temporarily Unavailable",
        "{got}"
    );
    assert_eq!(header(&got, "Retry-After"), Some("120"), "{got}");
    let m = gw.scrape();
    assert_eq!(
        metric(&m, "dualgate_backend_503_total", &[("queue", "fuzhou")]),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test]
async fn a_flooding_trunk_gets_503_beyond_its_limit_while_another_trunks_calls_all_pass() {
    let mut fuzhou = Backend::start(true).await;
    let mut xiamen = Backend::start(true).await;
    let ann = Peer::bind("127.0.0.1").await;
    let flooder = Peer::bind("127.0.0.2").await; // trunk `fuzhou`
    let other = Peer::bind("127.0.0.3").await; // trunk `xiamen`
    let m = Mapping::new(&[fuzhou.uri()], &xiamen.uri(), &ann.uri())
        .text()
        .replacen(
            "origin_area = \"0591\"\n",
            "origin_area = \"0591\"\nrate = 20\nburst = 20\n",
            1,
        );
    let gw = Gateway::start(&m, &["--now", PARALLEL]).await;
    const FLOOD: usize = 300;
    const CALLS: usize = 30;
    let _ = socket2::SockRef::from(&flooder.sock).set_recv_buffer_size(1 << 20);
    let mut refused = 0;
    let mut buf = vec![0u8; 65_535];
    let mut count = |n: usize, buf: &[u8]| {
        let r = String::from_utf8_lossy(&buf[..n]);
        assert_eq!(start_line(&r), "SIP/2.0 503 Service Unavailable", "{r}");
        assert_eq!(header(&r, "Retry-After"), Some("5"), "{r}");
        refused += 1;
    };
    for i in 0..FLOOD {
        let id = format!("fl{i}");
        flooder
            .send(
                gw.sip,
                &invite(
                    "sip:12356@gw",
                    &flooder.addr,
                    &id,
                    &format!("z9hG4bK{id}"),
                    "UDP",
                ),
            )
            .await;
        if i % 10 == 0 {
            let id = format!("ok{}", i / 10);
            other
                .send(
                    gw.sip,
                    &invite(
                        "sip:12356@gw",
                        &other.addr,
                        &id,
                        &format!("z9hG4bK{id}"),
                        "UDP",
                    ),
                )
                .await;
        }
        // Read the 503s as they come, so the flooder's own socket buffer does not overflow, and
        // let the gateway breathe on a busy 2-core CI box (still ~50x the limit).
        while let Ok((n, _)) = flooder.sock.try_recv_from(&mut buf) {
            count(n, &buf);
        }
        if i % 10 == 9 {
            sleep(Duration::from_millis(1)).await;
        }
    }
    while let Ok(Ok((n, _))) =
        timeout(Duration::from_millis(300), flooder.sock.recv_from(&mut buf)).await
    {
        count(n, &buf);
    }
    // The other trunk's calls all reach Xiamen's queue.
    let mut passed = 0;
    while passed < CALLS {
        let got = xiamen.recv().await;
        assert!(header(&got, "Call-ID").unwrap().starts_with("ok"), "{got}");
        passed += 1;
    }
    let mut forwarded = 0;
    while fuzhou.rx.try_recv().is_ok() {
        forwarded += 1;
    }
    eprintln!("flood: {FLOOD} INVITEs at a 20/s limit (burst 20): {forwarded} forwarded, {refused} refused 503; other trunk {passed}/{CALLS}");
    assert_eq!(forwarded + refused, FLOOD);
    assert!((20..=30).contains(&forwarded), "{forwarded}");
    let m = gw.scrape();
    let limited = common::sipp::total(&m, "dualgate_limited_total", &[("trunk", "fuzhou")]);
    assert_eq!(limited as usize, refused, "{m}");
    assert_eq!(
        common::sipp::total(&m, "dualgate_limited_total", &[("trunk", "xiamen")]),
        0.0
    );

    // In-dialog requests from the flooding trunk still pass.
    let route = format!("<sip:{};lr>", gw.sip);
    let bye = bye(
        &fuzhou.uri(),
        &flooder.addr,
        "fl0",
        "z9hG4bKbye0",
        "UDP",
        2,
        "cc",
        &route,
    );
    flooder.send(gw.sip, &bye).await;
    let got = fuzhou.recv().await;
    assert!(start_line(&got).starts_with("BYE "), "{got}");
}

#[tokio::test]
async fn back_to_back_ack_and_bye_of_each_call_reach_the_backend_in_order() {
    let mut cc = Backend::start(true).await;
    let xiamen = Peer::bind("127.0.0.1").await;
    let ann = Peer::bind("127.0.0.1").await;
    let carrier = Peer::bind("127.0.0.2").await;
    let gw = Mapping::new(&[cc.uri()], &xiamen.uri(), &ann.uri())
        .start(&["--now", PARALLEL, "--udp-workers", "4"])
        .await;
    const CALLS: usize = 1000;
    let route = format!("<sip:{};lr>", gw.sip);
    let target = format!("sip:queue@{}", cc.addr);
    let reader = tokio::spawn(async move {
        let mut seen: HashMap<String, Vec<String>> = HashMap::new();
        for _ in 0..2 * CALLS {
            let Ok(Some(m)) = timeout(WAIT, cc.rx.recv()).await else {
                break;
            };
            let id = header(&m, "Call-ID").unwrap().to_string();
            let method = start_line(&m).split(' ').next().unwrap().to_string();
            seen.entry(id).or_default().push(method);
        }
        seen
    });
    for i in 0..CALLS {
        let id = format!("ord{i}");
        let ack = request(
            "ACK",
            &target,
            &carrier.addr,
            &id,
            &format!("z9hG4bKa{i}"),
            "UDP",
            1,
            "cc",
            "70",
        )
        .replacen(
            "Max-Forwards",
            &format!("Route: {route}\r\nMax-Forwards"),
            1,
        );
        let bye = bye(
            &target,
            &carrier.addr,
            &id,
            &format!("z9hG4bKb{i}"),
            "UDP",
            2,
            "cc",
            &route,
        );
        carrier.send(gw.sip, &ack).await;
        carrier.send(gw.sip, &bye).await;
        if i % 20 == 19 {
            sleep(Duration::from_millis(2)).await; // let the backend's reader drain its socket
        }
    }
    let seen = reader.await.unwrap();
    let out_of_order: Vec<_> = seen
        .iter()
        .filter(|(_, m)| m.first().map(String::as_str) != Some("ACK"))
        .collect();
    assert!(
        out_of_order.is_empty(),
        "BYE overtook ACK: {out_of_order:?}"
    );
    let complete = seen.values().filter(|m| m.len() == 2).count();
    eprintln!("order: {complete}/{CALLS} calls' ACK+BYE received, all in order, 4 UDP workers");
    assert_eq!(complete, CALLS);
}
