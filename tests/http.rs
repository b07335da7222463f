#![allow(clippy::unwrap_used)]
//! The HTTP listener over real sockets: `/metrics`, `/healthz`, `/readyz` as a kubelet, a
//! Prometheus or the test harness ask (HTTP/1.0 without `Connection`), and the status page in a
//! real headless browser (Debian's `chromium`: the DOM it rendered, and a phone-sized
//! screenshot). A missing chromium fails the browser test with a message saying how to get it.

mod common;

use common::http::{chromium, get, png_size, raw, text_of};
use common::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::sleep;

/// A backend on 127.0.0.1 that answers OPTIONS 200 while `alive` and ignores everything else.
struct Backend {
    addr: SocketAddr,
    alive: Arc<AtomicBool>,
}

impl Backend {
    async fn start(alive: bool) -> Backend {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let alive = Arc::new(AtomicBool::new(alive));
        let a = alive.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.starts_with("OPTIONS ") && a.load(Ordering::SeqCst) {
                    let reply = respond(&msg, "200 OK", "probe");
                    let _ = sock.send_to(reply.as_bytes(), from).await;
                }
            }
        });
        Backend { addr, alive }
    }

    fn uri(&self) -> String {
        format!("sip:{};transport=udp", self.addr)
    }
}

/// GET over HTTP/1.0 off the test's runtime thread.
async fn fetch(addr: SocketAddr, path: &'static str) -> common::http::Response {
    tokio::task::spawn_blocking(move || get(addr, path))
        .await
        .unwrap()
}

/// Polls `path` until `pred` holds (at most 5 s); the last response.
async fn wait_for(
    addr: SocketAddr,
    path: &'static str,
    pred: impl Fn(&common::http::Response) -> bool,
) -> common::http::Response {
    for _ in 0..100 {
        let r = fetch(addr, path).await;
        if pred(&r) {
            return r;
        }
        sleep(Duration::from_millis(50)).await;
    }
    let r = fetch(addr, path).await;
    panic!("{path} never reached the expected state: {r:?}");
}

#[tokio::test]
async fn metrics_health_and_readiness_answer_http_1_0_requests_and_close() {
    let f = Peer::bind("127.0.0.1").await;
    let gw = Mapping::one_backend(&f.uri())
        .when_retired(ANNOUNCE)
        .start(&[])
        .await;
    let m = gw.metrics;
    let health = fetch(m, "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = fetch(m, "/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    let metrics = fetch(m, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    // A full body, delimited by its length, then the close the harness reads to.
    assert_eq!(
        metrics.header("content-length"),
        Some(metrics.body.len().to_string().as_str())
    );
    assert!(metrics
        .body
        .contains("dualgate_build_info{replica=\"test\",version=\""));
    assert!(metrics
        .body
        .contains("# TYPE dualgate_call_attempts_total counter"));
    assert_eq!(fetch(m, "/nope").await.status, 404);
    let head = tokio::task::spawn_blocking(move || {
        raw(m, "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    })
    .await
    .unwrap();
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    let page = fetch(m, "/").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.body.contains("id=\"n-059185666661\""), "{}", page.body);
}

#[tokio::test]
async fn readyz_is_503_naming_a_queue_with_no_backend_up_and_200_once_one_answers() {
    let fuzhou = Backend::start(true).await;
    let xiamen = Backend::start(false).await;
    let announcement = Backend::start(true).await;
    let gw = Mapping::new(&[fuzhou.uri()], &xiamen.uri(), &announcement.uri())
        .when_retired(ANNOUNCE)
        .probe(FAST_PROBE)
        .start(&[])
        .await;
    let r = wait_for(gw.metrics, "/readyz", |r| r.status == 503).await;
    assert_eq!(
        r.body,
        "not ready: queue xiamen: no backend up (all marked down by probing)\n"
    );
    // Liveness is not readiness: the process is alive and must not be restarted for this.
    assert_eq!(fetch(gw.metrics, "/healthz").await.status, 200);
    xiamen.alive.store(true, Ordering::SeqCst);
    let r = wait_for(gw.metrics, "/readyz", |r| r.status == 200).await;
    assert_eq!(r.body, "ready\n");
}

#[test]
fn no_listener_at_all_with_metrics_off() {
    let port = free_port();
    let dir = temp_dir();
    let config = dir.join("m.toml");
    let sip = format!("127.0.0.1:{}", free_port());
    let text = Mapping::new(
        &["sip:127.0.0.1:9;transport=udp".into()],
        "sip:127.0.0.1:9",
        "sip:127.0.0.1:9",
    )
    .when_retired(ANNOUNCE)
    .text()
    .replace("@SIP@", &sip)
    .replace("@METRICS@", &format!("127.0.0.1:{port}"));
    std::fs::write(&config, text).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dualgate"))
        .args(["run", "--metrics", "off", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    // Wait until SIP answers, then the metrics port must refuse connections.
    let sock = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut answered = false;
    for i in 0..50 {
        let msg = options(&sock.local_addr().unwrap(), &format!("off-{i}"));
        sock.send_to(msg.as_bytes(), &sip).unwrap();
        let mut buf = [0u8; 4096];
        if sock.recv_from(&mut buf).is_ok() {
            answered = true;
            break;
        }
    }
    let refused = std::net::TcpStream::connect(("127.0.0.1", port)).is_err();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(answered, "the gateway never answered OPTIONS");
    assert!(
        refused,
        "something listens on the metrics port with --metrics off"
    );
}

/// The status page as a phone shows it: loaded by headless Chromium from the live gateway at a
/// rehearsed instant four hours before the parallel period ends, with calls placed, one backend
/// down, and the mapping file's hash as `sha256sum` prints it.
#[tokio::test]
async fn the_status_page_renders_numbers_countdowns_calls_and_backend_states_in_chromium() {
    common::http::require_chromium();
    let alive = Backend::start(true).await;
    let dead = Backend::start(false).await;
    let xiamen = Backend::start(true).await;
    let announcement = Backend::start(true).await;
    let text = Mapping::new(
        &[alive.uri(), dead.uri()],
        &xiamen.uri(),
        &announcement.uri(),
    )
    .when_retired(ANNOUNCE)
    .probe(FAST_PROBE)
    .text();
    let gw = Gateway::start(&text, &["--now", "2025-05-06T20:00:00+08:00"]).await;
    // The dead backend is marked down (3 misses at 100 ms).
    wait_for(gw.metrics, "/metrics", |r| {
        metric(&r.body, "dualgate_backend_up", &[("backend", &dead.uri())]) == Some(0.0)
    })
    .await;
    let caller = Peer::bind("127.0.0.2").await;
    for (i, number) in ["059185666661", "85666661", "12356", "12356", "059112356"]
        .iter()
        .enumerate()
    {
        let ruri = format!("sip:{number}@{}", gw.sip);
        let call = format!("page-{i}");
        let msg = invite(
            &ruri,
            &caller.addr,
            &call,
            &format!("z9hG4bK-{call}"),
            "UDP",
        );
        caller.send(gw.sip, &msg).await;
    }
    wait_for(gw.metrics, "/metrics", |r| {
        metric(
            &r.body,
            "dualgate_call_attempts_total",
            &[("number", "059112356")],
        ) == Some(3.0)
            && metric(
                &r.body,
                "dualgate_call_attempts_total",
                &[("number", "059185666661")],
            ) == Some(2.0)
    })
    .await;

    let dir = temp_dir();
    let url = format!("http://{}/", gw.metrics);
    let (d, u) = (dir.clone(), url.clone());
    let dom = tokio::task::spawn_blocking(move || chromium(&d, &["--dump-dom"], &u))
        .await
        .unwrap();
    let text = text_of(&dom);
    assert!(
        dom.contains("<div class=\"ready ok\" id=\"ready\">Ready</div>"),
        "{dom}"
    );
    assert!(text.contains("dualgate replica test"), "{text}");
    assert!(text.contains("As of 2025-05-06 20:0"), "{text}");
    // Each legacy number: phase, next boundary (exact instant, both zones), countdown,
    // treatment, and its calls against its area's 12356.
    let card = |number: &str| {
        let html = dom
            .split("<article")
            .find(|a| a.contains(&format!("id=\"n-{number}\"")))
            .unwrap_or_else(|| panic!("no card for {number}: {dom}"));
        let card = text_of(&format!("<article{html}"));
        assert!(card.starts_with(&format!("{number} parallel ")), "{card}");
        card
    };
    let hotline = card("059185666661");
    assert!(
        hotline
            .contains("Next retired from 2025-05-07 00:00:00 +08:00 2025-05-06 16:00:00 UTC In "),
        "{hotline}"
    );
    let countdown = hotline
        .split(" In ")
        .nth(1)
        .unwrap()
        .split(" Retired ")
        .next()
        .unwrap();
    assert!(
        countdown == "04h 00m 00s" || countdown.starts_with("03h 59m "),
        "countdown {countdown:?} in {hotline}"
    );
    assert!(
        hotline.contains("Retired announce via queue announcement"),
        "{hotline}"
    );
    assert!(
        hotline.contains("Calls 2 vs 3 on 059112356 (40.0 % legacy) this replica, since start"),
        "{hotline}"
    );
    assert!(
        hotline.contains("Now calls reach queue fuzhou"),
        "{hotline}"
    );
    let fuzhou_line = card("059185666221");
    assert!(
        fuzhou_line.contains("Calls 0 vs 3 on 059112356 (0.0 % legacy)"),
        "{fuzhou_line}"
    );
    assert!(
        fuzhou_line.contains("Retired route to its queue (grace period, marked as legacy)"),
        "{fuzhou_line}"
    );
    // Backends and their states.
    assert!(text.contains(&format!("UP {}", alive.uri())), "{text}");
    assert!(text.contains(&format!("DOWN {}", dead.uri())), "{text}");
    assert!(text.contains(&format!("UP {}", xiamen.uri())), "{text}");
    // The mapping file: its hash as sha256sum prints it, and its loads.
    let sum = std::process::Command::new("sha256sum")
        .arg(&gw.config)
        .output()
        .unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout);
    let sum = sum.split_whitespace().next().unwrap();
    assert!(text.contains(&format!("sha256 {sum}")), "{sum} in {text}");
    assert!(text.contains("Loads 1 ok, 0 rejected"), "{text}");

    // A phone-sized screenshot: a real PNG of that size with something on it.
    let shot = dir.join("status.png");
    let arg = format!("--screenshot={}", shot.display());
    let (d, a) = (dir.clone(), arg.clone());
    tokio::task::spawn_blocking(move || chromium(&d, &[&a, "--window-size=412,915"], &url))
        .await
        .unwrap();
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(png_size(&png), (412, 915));
    assert!(
        png.len() > 20_000,
        "a near-empty screenshot: {} bytes",
        png.len()
    );
    if let Ok(keep) = std::env::var("DUALGATE_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
