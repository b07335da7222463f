//! Counters on the real /metrics endpoint after real calls over sockets: exact values per
//! number, queue and outcome; configured series exist at 0 from start-up.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[tokio::test]
async fn every_configured_number_has_zero_series_from_start_up() {
    let f = Peer::bind("127.0.0.1").await;
    let gw = Mapping::one_backend(&f.uri())
        .start(&["--now", PARALLEL])
        .await;
    let m = gw.scrape();
    for number in [
        "059185666661",
        "059185666221",
        "059112356",
        "059212356",
        "12356",
        "other",
    ] {
        assert_eq!(
            metric(&m, "dualgate_call_attempts_total", &[("number", number)]),
            Some(0.0),
            "{number}\n{m}"
        );
        assert_eq!(
            metric(
                &m,
                "dualgate_call_outcomes_total",
                &[("number", number), ("outcome", "answered")]
            ),
            Some(0.0),
            "{number}"
        );
        assert_eq!(
            metric(
                &m,
                "dualgate_last_call_timestamp_seconds",
                &[("number", number)]
            ),
            Some(0.0),
            "{number}"
        );
    }
    assert_eq!(
        metric(
            &m,
            "dualgate_call_attempts_total",
            &[
                ("number", "059185666661"),
                ("queue", "fuzhou"),
                ("replica", "test")
            ]
        ),
        Some(0.0)
    );
    for (phase, want) in [
        ("before", 0.0),
        ("parallel", 1.0),
        ("retired", 0.0),
        ("decommissioned", 0.0),
    ] {
        assert_eq!(
            metric(
                &m,
                "dualgate_legacy_phase",
                &[("number", "059185666661"), ("phase", phase)]
            ),
            Some(want),
            "{phase}"
        );
    }
    assert_eq!(
        metric(
            &m,
            "dualgate_legacy_retired_from_timestamp_seconds",
            &[("number", "059185666661")]
        ),
        Some(1_746_547_200.0)
    );
    assert_eq!(
        metric(
            &m,
            "dualgate_config_reloads_total",
            &[("result", "success")]
        ),
        Some(1.0)
    );
    // The kernel's drop count on the UDP socket, read from /proc/net/udp once a second.
    let mut drops = metric(&m, "dualgate_udp_receive_drops_total", &[]);
    for _ in 0..40 {
        if drops.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        drops = metric(&gw.scrape(), "dualgate_udp_receive_drops_total", &[]);
    }
    assert_eq!(drops, Some(0.0));
    assert_eq!(
        metric(
            &m,
            "dualgate_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn calls_are_counted_per_number_queue_and_outcome() {
    let fuzhou = Peer::bind("127.0.0.1").await;
    let xiamen = Peer::bind("127.0.0.1").await;
    let carrier = Peer::bind("127.0.0.2").await;
    let gw = Mapping::on(&fuzhou, &xiamen, &xiamen)
        .start(&["--now", PARALLEL])
        .await;

    // Legacy number: answered. New number: busy, then cancelled. Xiamen: answered.
    let plan = [
        ("sip:059185666661@gw", "m1", &fuzhou, "200 OK"),
        ("sip:12356@gw", "m2", &fuzhou, "486 Busy Here"),
        ("sip:059112356@gw", "m3", &fuzhou, "487 Request Terminated"),
        ("sip:059212356@gw", "m4", &xiamen, "200 OK"),
        ("sip:85666661@gw", "m5", &fuzhou, "503 Service Unavailable"),
    ];
    for (uri, call, backend, status) in plan {
        carrier
            .send(
                gw.sip,
                &invite(uri, &carrier.addr, call, &format!("z9hG4bK{call}"), "UDP"),
            )
            .await;
        let (inv, _) = backend.recv().await;
        // One at a time: UDP, and a multi-worker stateless proxy, may reorder back-to-back
        // datagrams (RFC 3261 endpoints cope; an exact-order assertion would be flaky).
        backend
            .send(gw.sip, &respond(&inv, "180 Ringing", "t"))
            .await;
        assert_eq!(start_line(&carrier.recv().await.0), "SIP/2.0 180 Ringing");
        backend.send(gw.sip, &respond(&inv, status, "t")).await;
        // A backend's 503 reaches the carrier as 480 ([failover] backend_503); it still counts
        // as the call centre's 5xx.
        let seen = match status {
            "503 Service Unavailable" => "480 Temporarily Unavailable",
            s => s,
        };
        assert_eq!(
            start_line(&carrier.recv().await.0),
            format!("SIP/2.0 {seen}")
        );
    }
    // An unconfigured number: answered 404 by the gateway itself.
    carrier
        .send(
            gw.sip,
            &invite(
                "sip:059100000000@gw",
                &carrier.addr,
                "m6",
                "z9hG4bKm6",
                "UDP",
            ),
        )
        .await;
    assert!(start_line(&carrier.recv().await.0).starts_with("SIP/2.0 404"));

    let m = gw.scrape();
    let attempts = |n: &str, q: &str| {
        metric(
            &m,
            "dualgate_call_attempts_total",
            &[("number", n), ("queue", q)],
        )
    };
    assert_eq!(attempts("059185666661", "fuzhou"), Some(2.0), "{m}");
    assert_eq!(attempts("059112356", "fuzhou"), Some(2.0));
    assert_eq!(attempts("059212356", "xiamen"), Some(1.0));
    assert_eq!(attempts("059185666221", "fuzhou"), Some(0.0));
    assert_eq!(attempts("other", "none"), Some(1.0));
    let outcome = |n: &str, o: &str| {
        metric(
            &m,
            "dualgate_call_outcomes_total",
            &[("number", n), ("outcome", o)],
        )
    };
    assert_eq!(outcome("059185666661", "answered"), Some(1.0));
    assert_eq!(outcome("059185666661", "failed_5xx"), Some(1.0));
    assert_eq!(outcome("059112356", "failed_4xx"), Some(1.0));
    assert_eq!(outcome("059112356", "cancelled"), Some(1.0));
    assert_eq!(outcome("059112356", "answered"), Some(0.0));
    assert_eq!(outcome("059212356", "answered"), Some(1.0));
    assert_eq!(outcome("other", "failed_4xx"), Some(1.0));
    let req = |n: &str, phase: &str| {
        metric(
            &m,
            "dualgate_requests_total",
            &[
                ("method", "INVITE"),
                ("number", n),
                ("trunk", "fuzhou"),
                ("phase", phase),
                ("decision", "forwarded"),
            ],
        )
    };
    assert_eq!(req("059185666661", "parallel"), Some(2.0));
    assert_eq!(req("059112356", "new"), Some(2.0));
    assert_eq!(
        metric(
            &m,
            "dualgate_rejected_total",
            &[("reason", "unknown_number")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "dualgate_responses_total",
            &[("class", "1xx"), ("decision", "forwarded")]
        ),
        Some(5.0)
    );
    // The last-call gauge follows the gateway's clock (here the rehearsed date).
    let last = metric(
        &m,
        "dualgate_last_call_timestamp_seconds",
        &[("number", "059185666661")],
    )
    .unwrap();
    let start = 1_745_114_400.0; // 2025-04-20T10:00:00+08:00
    assert!((start..start + 120.0).contains(&last), "{last}");
    let count = metric(&m, "dualgate_request_duration_seconds_count", &[]).unwrap();
    assert!(count >= 17.0, "{count}");
}

/// Every series a call to a legacy number can increment, in any phase and under any treatment,
/// exists at 0 before the first call: Prometheus' `increase()` cannot see the increment that
/// creates a series, so a retired number's first calls would otherwise be invisible.
#[tokio::test]
async fn every_series_any_phase_can_produce_exists_at_zero_from_start_up() {
    let f = Peer::bind("127.0.0.1").await;
    for (treatment, queue) in [
        (
            r#"{ treatment = "announce", queue = "announcement" }"#,
            "announcement",
        ),
        (r#"{ treatment = "redirect", status = 301 }"#, "fuzhou"),
        (
            r#"{ treatment = "reject", status = 410, reason = "Number Changed" }"#,
            "fuzhou",
        ),
    ] {
        // Started inside the parallel period: the retired treatment's series must exist anyway.
        let gw = Mapping::one_backend(&f.uri())
            .when_retired(treatment)
            .start(&["--now", PARALLEL])
            .await;
        let m = gw.scrape();
        for trunk in ["fuzhou", "xiamen"] {
            for q in ["fuzhou", queue] {
                let labels = [("number", "059185666661"), ("queue", q), ("trunk", trunk)];
                assert_eq!(
                    series(&m, "dualgate_call_attempts_total", &labels).len(),
                    1,
                    "{treatment} {labels:?}\n{m}"
                );
                assert_eq!(
                    metric(&m, "dualgate_call_attempts_total", &labels),
                    Some(0.0)
                );
            }
        }
        for o in [
            "answered",
            "redirected",
            "cancelled",
            "failed_4xx",
            "failed_5xx",
            "failed_6xx",
        ] {
            let labels = [("number", "059185666661"), ("queue", queue), ("outcome", o)];
            assert_eq!(
                series(&m, "dualgate_call_outcomes_total", &labels).len(),
                1,
                "{treatment} {labels:?}"
            );
        }
        // Forwarded to the announcement (or answered here when no backend is up), or
        // answered with the redirect / rejection.
        let decisions: &[&str] = if queue == "announcement" {
            &["forwarded", "replied"]
        } else {
            &["replied"]
        };
        for decision in decisions {
            let retired = [
                ("method", "INVITE"),
                ("number", "059185666661"),
                ("queue", queue),
                ("phase", "retired"),
                ("decision", decision),
            ];
            assert_eq!(
                series(&m, "dualgate_requests_total", &retired).len(),
                2,
                "{treatment} {decision}: one per trunk\n{m}"
            );
        }
        // Strangers' INVITEs are counted as `other` under their own trunk label.
        assert_eq!(
            metric(
                &m,
                "dualgate_call_attempts_total",
                &[("number", "other"), ("trunk", "unknown")]
            ),
            Some(0.0)
        );
    }
}

/// A UDP caller retransmits its INVITE while nobody answers (RFC 3261 Timer A): one call, one
/// attempt; the call centre retransmits its final response until the ACK: one outcome. Each
/// message is still counted in `dualgate_requests_total`.
#[tokio::test]
async fn retransmissions_count_as_one_call_and_one_outcome() {
    let fuzhou = Peer::bind("127.0.0.1").await;
    let carrier = Peer::bind("127.0.0.2").await;
    let gw = Mapping::one_backend(&fuzhou.uri())
        .start(&["--now", PARALLEL])
        .await;
    let inv = invite(
        "sip:85666661@gw",
        &carrier.addr,
        "rtx-1",
        "z9hG4bKrtx1",
        "UDP",
    );
    let mut forwarded = None;
    for _ in 0..4 {
        carrier.send(gw.sip, &inv).await;
        forwarded = Some(fuzhou.recv().await.0);
    }
    let forwarded = forwarded.unwrap();
    for _ in 0..3 {
        fuzhou
            .send(gw.sip, &respond(&forwarded, "486 Busy Here", "t"))
            .await;
        assert_eq!(start_line(&carrier.recv().await.0), "SIP/2.0 486 Busy Here");
    }
    // A second call (new Call-ID) is a second attempt.
    carrier
        .send(
            gw.sip,
            &invite(
                "sip:85666661@gw",
                &carrier.addr,
                "rtx-2",
                "z9hG4bKrtx2",
                "UDP",
            ),
        )
        .await;
    fuzhou.recv().await;
    let m = gw.scrape();
    assert_eq!(
        metric(
            &m,
            "dualgate_call_attempts_total",
            &[("number", "059185666661"), ("trunk", "fuzhou")]
        ),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "dualgate_call_outcomes_total",
            &[("number", "059185666661"), ("outcome", "failed_4xx")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "dualgate_requests_total",
            &[("method", "INVITE"), ("number", "059185666661")]
        ),
        Some(5.0)
    );
}

/// `--metrics off` starts no HTTP listener at all (the exporter's default would listen on
/// 0.0.0.0:9000, so a second gateway started the same way failed with "address in use").
#[tokio::test]
async fn two_gateways_with_metrics_off_both_serve() {
    let f = Peer::bind("127.0.0.1").await;
    let text = Mapping::one_backend(&f.uri()).text();
    let mut children = Vec::new();
    let caller = Peer::bind("127.0.0.2").await;
    for i in 0..2 {
        let sip = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = temp_dir().join("mappings.toml");
        std::fs::write(
            &config,
            text.replace("@SIP@", &sip.to_string())
                .replace("@METRICS@", "127.0.0.1:1"),
        )
        .unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_dualgate"))
            .args(["run", "--metrics", "off", "--config"])
            .arg(&config)
            .env("RUST_LOG", "error")
            .spawn()
            .unwrap();
        children.push(child);
        let mut answered = false;
        for attempt in 0..50 {
            caller
                .send(sip, &options(&caller.addr, &format!("off-{i}-{attempt}")))
                .await;
            let mut buf = vec![0u8; 4096];
            if let Ok(Ok((n, _))) = tokio::time::timeout(
                std::time::Duration::from_millis(100),
                caller.sock.recv_from(&mut buf),
            )
            .await
            {
                answered = String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200");
                break;
            }
        }
        assert!(answered, "gateway {i} with --metrics off did not answer");
    }
    for mut c in children {
        assert!(c.try_wait().unwrap().is_none(), "a gateway exited");
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// The handling-time histogram on the real endpoint: every bucket exists from start-up, buckets
/// are cumulative, `+Inf` equals the count, each message handled is one
/// observation; and the whole scrape passes `promtool check metrics` (help text on every
/// family, well-formed histograms).
#[tokio::test]
async fn the_duration_histogram_adds_up_and_the_scrape_passes_promtool() {
    let f = Peer::bind("127.0.0.1").await;
    let carrier = Peer::bind("127.0.0.2").await;
    let gw = Mapping::one_backend(&f.uri())
        .start(&["--now", PARALLEL])
        .await;
    let name = "dualgate_request_duration_seconds";
    let buckets = |m: &str| -> Vec<(String, f64)> { series(m, &format!("{name}_bucket"), &[]) };
    // Start-up's readiness check may already have been counted: compare against it.
    let before = gw.scrape();
    assert_eq!(buckets(&before).len(), 14, "{before}");
    let counted = metric(&before, &format!("{name}_count"), &[]).unwrap();
    assert!(counted <= 1.0, "{before}");
    for i in 0..3 {
        carrier
            .send(gw.sip, &options(&carrier.addr, &format!("d{i}")))
            .await;
        assert_eq!(start_line(&carrier.recv().await.0), "SIP/2.0 200 OK");
    }
    // A message's handling time is recorded just after its answer is sent: wait for the third.
    let count = |m: &str| metric(m, &format!("{name}_count"), &[]).unwrap_or(0.0);
    let mut m = gw.scrape();
    for _ in 0..100 {
        if count(&m) >= counted + 3.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        m = gw.scrape();
    }
    let b = buckets(&m);
    assert!(b.windows(2).all(|w| w[0].1 <= w[1].1), "{m}");
    let inf = b.iter().find(|(l, _)| l.contains("le=\"+Inf\"")).unwrap().1;
    assert_eq!(Some(inf), metric(&m, &format!("{name}_count"), &[]));
    assert_eq!(inf, counted + 3.0, "{m}");
    let sum = metric(&m, &format!("{name}_sum"), &[]).unwrap();
    assert!(sum > 0.0 && sum < 3.0, "{sum}");

    let mut lint = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (.ci/run installs Debian's prometheus)");
    {
        use std::io::Write;
        // The scrape is the whole HTTP response: promtool reads the body.
        let body = m.split_once("\r\n\r\n").map_or(m.as_str(), |(_, b)| b);
        lint.stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
    }
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
