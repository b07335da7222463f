//! End to end with sipp: sipp plays the carrier trunk (UAC) and the call-centre queues (UAS),
//! the real `dualgate` binary sits between them on loopback ports, and `/metrics` is scraped
//! over HTTP. Calls are whole dialogs (INVITE/100/180/200/ACK/BYE) that follow the gateway's
//! Record-Route, so every message of a call crosses the gateway.
//!
//! Needs `sipp` on PATH (Debian package `sip-tester`, 3.6.1): without it every test FAILS.
//! Every sipp is bounded by `-m` and `-timeout`, and killed when its handle drops.
#![allow(clippy::unwrap_used)]

mod common;

use common::sipp::{total, Invite, Scratch, Sipp};
use common::{free_port, metric, Gateway, Mapping, ANNOUNCE, PARALLEL, RETIRED, ROUTE};

/// The test mapping with one loopback trunk (origin area 0591) and one sipp backend per queue.
fn mappings(fuzhou: u16, xiamen: u16, announcement: u16, when_retired: &str) -> String {
    Mapping::sipp(fuzhou, xiamen, announcement)
        .when_retired(when_retired)
        .text()
}

const REJECT_410: &str = r#"{ treatment = "reject", status = 410, reason = "Gone" }"#;

/// Ports for the three queues' backends.
struct Backends {
    fuzhou: u16,
    xiamen: u16,
    announcement: u16,
}

impl Backends {
    fn new() -> Backends {
        Backends {
            fuzhou: free_port(),
            xiamen: free_port(),
            announcement: free_port(),
        }
    }

    async fn gateway(&self, when_retired: &str, now: &str) -> Gateway {
        Gateway::start(
            &mappings(self.fuzhou, self.xiamen, self.announcement, when_retired),
            &["--now", now],
        )
        .await
    }
}

#[tokio::test]
async fn every_spelling_of_fuzhou_12356_and_its_legacy_numbers_lands_on_the_fuzhou_queue_in_the_parallel_period(
) {
    let dir = Scratch::new();
    let b = Backends::new();
    let gw = b.gateway(ROUTE, PARALLEL).await;
    let dir = dir.holding(&gw);
    let fuzhou = Sipp::uas(&dir.0, "fuzhou", "uas.xml", b.fuzhou, 4);
    let xiamen = Sipp::uas(&dir.0, "xiamen", "uas.xml", b.xiamen, 1);
    let dialled = [
        "12356",
        "059112356",
        "059185666661",
        "85666221",
        "059212356",
    ];
    let callers: Vec<Sipp> = dialled
        .iter()
        .map(|n| Sipp::uac(&dir.0, &format!("uac-{n}"), gw.sip, "uac.xml", n, &[]))
        .collect();
    for c in callers {
        c.finish().assert_calls_succeeded(1);
    }
    let fuzhou = fuzhou.finish();
    let xiamen = xiamen.finish();
    fuzhou.assert_calls_succeeded(4);
    xiamen.assert_calls_succeeded(1);

    // Every Fuzhou call reached the queue as 12356, whatever was dialled.
    let invites = fuzhou.invites();
    let ruri = format!("sip:12356@127.0.0.1:{}", b.fuzhou);
    assert_eq!(invites.len(), 4, "{}", fuzhou.log);
    assert!(invites.iter().all(|i| i.ruri == ruri), "{invites:#?}");
    // Legacy calls are marked with the canonical legacy number; 12356 calls are not marked.
    let mut marks: Vec<(&str, &str)> = invites
        .iter()
        .map(|i| (i.history_info.as_str(), i.diversion.as_str()))
        .collect();
    marks.sort_unstable();
    let hi = |n: &str| format!("<sip:{n}@{};user=phone>;index=1", gw.sip);
    let div = |n: &str| {
        format!(
            "<sip:{n}@{};user=phone>;reason=unconditional;counter=1",
            gw.sip
        )
    };
    let (hi61, hi21) = (hi("059185666661"), hi("059185666221"));
    let (div61, div21) = (div("059185666661"), div("059185666221"));
    assert_eq!(
        marks,
        vec![
            ("", ""),
            ("", ""),
            (hi21.as_str(), div21.as_str()),
            (hi61.as_str(), div61.as_str()),
        ],
        "{invites:#?}"
    );
    assert_eq!(
        xiamen.invites(),
        vec![Invite {
            ruri: format!("sip:12356@127.0.0.1:{}", b.xiamen),
            history_info: String::new(),
            diversion: String::new(),
        }]
    );

    let m = gw.scrape();
    let retransmissions: Vec<u64> = [&fuzhou, &xiamen]
        .iter()
        .map(|d| d.count("Retransmissions(C)"))
        .collect();
    let calls = [
        ("059112356", "fuzhou", 2.0),
        ("059185666661", "fuzhou", 1.0),
        ("059185666221", "fuzhou", 1.0),
        ("059212356", "xiamen", 1.0),
        ("other", "none", 0.0),
    ];
    for (number, queue, want) in calls {
        let labels = [("number", number), ("queue", queue)];
        assert_eq!(
            metric(&m, "dualgate_call_attempts_total", &labels),
            Some(want),
            "attempts on {number} (UAS retransmissions {retransmissions:?})\n{m}"
        );
        let answered = [
            ("number", number),
            ("queue", queue),
            ("outcome", "answered"),
        ];
        assert_eq!(
            metric(&m, "dualgate_call_outcomes_total", &answered),
            Some(want),
            "answered calls on {number} (UAS retransmissions {retransmissions:?})\n{m}"
        );
    }
    assert_eq!(
        total(
            &m,
            "dualgate_call_outcomes_total",
            &[("outcome", "failed_4xx")]
        ),
        0.0,
        "{m}"
    );
    // ACK and BYE came back through the gateway as loose-routed in-dialog requests.
    for method in ["ACK", "BYE"] {
        let labels = [
            ("method", method),
            ("trunk", "loopback"),
            ("decision", "forwarded"),
        ];
        assert_eq!(
            total(&m, "dualgate_requests_total", &labels),
            5.0,
            "{method}s forwarded\n{m}"
        );
    }
    let legacy_invites = [
        ("method", "INVITE"),
        ("number", "059185666661"),
        ("phase", "parallel"),
        ("decision", "forwarded"),
    ];
    assert_eq!(
        total(&m, "dualgate_requests_total", &legacy_invites),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "dualgate_legacy_phase",
            &[("number", "059185666221"), ("phase", "parallel")]
        ),
        Some(1.0),
        "{m}"
    );
}

const REDIRECT_301: &str = r#"{ treatment = "redirect", status = 301 }"#;

#[tokio::test]
async fn a_retired_legacy_number_with_redirect_sends_the_caller_to_its_area_s_12356() {
    let dir = Scratch::new();
    let b = Backends::new();
    let gw = b.gateway(REDIRECT_301, RETIRED).await;
    let dir = dir.holding(&gw);
    let moved = Sipp::uac(
        &dir.0,
        "uac-059185666661",
        gw.sip,
        "uac_expect_redirect.xml",
        "059185666661",
        &["-key", "expected", "301", "-key", "contact", "059112356"],
    )
    .finish();
    moved.assert_calls_succeeded(1);
    assert!(
        moved
            .log
            .contains("final status 301 expected 301 contact 059112356 expected 059112356"),
        "{}",
        moved.log
    );
    // The scenario fails on another Contact: the same call expecting Xiamen's 12356 fails.
    let wrong = Sipp::uac(
        &dir.0,
        "uac-wrong-contact",
        gw.sip,
        "uac_expect_redirect.xml",
        "059185666661",
        &["-key", "expected", "301", "-key", "contact", "059212356"],
    )
    .finish();
    assert!(
        !wrong.status.success(),
        "a wrong Contact must fail the call"
    );
    let m = gw.scrape();
    let redirected = [("number", "059185666661"), ("outcome", "redirected")];
    assert_eq!(
        metric(&m, "dualgate_call_outcomes_total", &redirected),
        Some(2.0),
        "{m}"
    );
}

#[tokio::test]
async fn a_retired_legacy_number_is_refused_with_410_while_12356_still_completes() {
    let dir = Scratch::new();
    let b = Backends::new();
    let gw = b.gateway(REJECT_410, RETIRED).await;
    let dir = dir.holding(&gw);
    let fuzhou = Sipp::uas(&dir.0, "fuzhou", "uas.xml", b.fuzhou, 1);
    let refused = Sipp::uac(
        &dir.0,
        "uac-059185666661",
        gw.sip,
        "uac_expect_status.xml",
        "059185666661",
        &["-key", "expected", "410"],
    );
    let new = Sipp::uac(&dir.0, "uac-12356", gw.sip, "uac.xml", "12356", &[]);
    let refused = refused.finish();
    refused.assert_calls_succeeded(1);
    assert!(
        refused.log.contains("final status 410 expected 410"),
        "{}",
        refused.log
    );
    new.finish().assert_calls_succeeded(1);
    let fuzhou = fuzhou.finish();
    fuzhou.assert_calls_succeeded(1);
    let ruri = format!("sip:12356@127.0.0.1:{}", b.fuzhou);
    let rur: Vec<String> = fuzhou.invites().into_iter().map(|i| i.ruri).collect();
    assert_eq!(rur, vec![ruri], "only the 12356 call reaches the queue");

    let m = gw.scrape();
    let legacy = [("number", "059185666661"), ("queue", "fuzhou")];
    assert_eq!(
        metric(&m, "dualgate_call_attempts_total", &legacy),
        Some(1.0),
        "{m}"
    );
    let failed = [("number", "059185666661"), ("outcome", "failed_4xx")];
    assert_eq!(
        metric(&m, "dualgate_call_outcomes_total", &failed),
        Some(1.0),
        "{m}"
    );
    let answered = [("number", "059112356"), ("outcome", "answered")];
    assert_eq!(
        metric(&m, "dualgate_call_outcomes_total", &answered),
        Some(1.0),
        "{m}"
    );
    // The refused INVITE; the ACK of the 410 is absorbed, not a second refusal.
    assert_eq!(
        metric(&m, "dualgate_rejected_total", &[("reason", "retired")]),
        Some(1.0),
        "{m}"
    );
    let absorbed = [
        ("method", "ACK"),
        ("number", "059185666661"),
        ("decision", "dropped"),
    ];
    assert_eq!(total(&m, "dualgate_requests_total", &absorbed), 1.0, "{m}");
    let replied = [
        ("method", "INVITE"),
        ("number", "059185666661"),
        ("phase", "retired"),
        ("decision", "replied"),
    ];
    assert_eq!(total(&m, "dualgate_requests_total", &replied), 1.0, "{m}");
}

#[tokio::test]
async fn a_retired_legacy_number_dialled_locally_reaches_the_announcement_as_number_changed() {
    let dir = Scratch::new();
    let b = Backends::new();
    let gw = b.gateway(ANNOUNCE, RETIRED).await;
    let dir = dir.holding(&gw);
    let announcement = Sipp::uas(&dir.0, "announcement", "uas.xml", b.announcement, 1);
    Sipp::uac(&dir.0, "uac-85666661", gw.sip, "uac.xml", "85666661", &[])
        .finish()
        .assert_calls_succeeded(1);
    let announcement = announcement.finish();
    announcement.assert_calls_succeeded(1);
    let invites = announcement.invites();
    assert_eq!(invites.len(), 1, "{}", announcement.log);
    assert_eq!(
        invites[0].ruri,
        format!("sip:number-changed@127.0.0.1:{}", b.announcement)
    );

    let m = gw.scrape();
    let retired = [
        ("method", "INVITE"),
        ("number", "059185666661"),
        ("queue", "announcement"),
        ("phase", "retired"),
        ("decision", "forwarded"),
    ];
    assert_eq!(total(&m, "dualgate_requests_total", &retired), 1.0, "{m}");
    let answered = [("number", "059185666661"), ("outcome", "answered")];
    assert_eq!(
        total(&m, "dualgate_call_outcomes_total", &answered),
        1.0,
        "{m}"
    );
}

#[tokio::test]
async fn a_call_from_a_tcp_trunk_to_12356_completes_through_a_udp_backend() {
    let dir = Scratch::new();
    let b = Backends::new();
    let gw = b.gateway(ROUTE, PARALLEL).await;
    let dir = dir.holding(&gw);
    let fuzhou = Sipp::uas(&dir.0, "fuzhou", "uas.xml", b.fuzhou, 1);
    Sipp::uac(
        &dir.0,
        "uac-tcp-12356",
        gw.sip,
        "uac.xml",
        "12356",
        &["-t", "t1"],
    )
    .finish()
    .assert_calls_succeeded(1);
    let fuzhou = fuzhou.finish();
    fuzhou.assert_calls_succeeded(1);
    let rur: Vec<String> = fuzhou.invites().into_iter().map(|i| i.ruri).collect();
    assert_eq!(rur, vec![format!("sip:12356@127.0.0.1:{}", b.fuzhou)]);

    let m = gw.scrape();
    let answered = [
        ("number", "059112356"),
        ("queue", "fuzhou"),
        ("outcome", "answered"),
    ];
    assert_eq!(
        metric(&m, "dualgate_call_outcomes_total", &answered),
        Some(1.0),
        "{m}"
    );
    for method in ["INVITE", "ACK", "BYE"] {
        let labels = [("method", method), ("decision", "forwarded")];
        assert_eq!(
            total(&m, "dualgate_requests_total", &labels),
            1.0,
            "{method}\n{m}"
        );
    }
}

#[tokio::test]
async fn a_busy_queue_refusal_reaches_the_caller_and_counts_as_failed_4xx() {
    let dir = Scratch::new();
    let b = Backends::new();
    let gw = b.gateway(ROUTE, PARALLEL).await;
    let dir = dir.holding(&gw);
    let fuzhou = Sipp::uas(&dir.0, "fuzhou-busy", "uas_reject_486.xml", b.fuzhou, 1);
    let caller = Sipp::uac(
        &dir.0,
        "uac-059185666661",
        gw.sip,
        "uac_expect_status.xml",
        "059185666661",
        &["-key", "expected", "486"],
    )
    .finish();
    caller.assert_calls_succeeded(1);
    assert!(
        caller.log.contains("final status 486 expected 486"),
        "{}",
        caller.log
    );
    // The UAS only completes once the ACK of its 486 came through the gateway.
    fuzhou.finish().assert_calls_succeeded(1);

    let m = gw.scrape();
    let failed = [
        ("number", "059185666661"),
        ("queue", "fuzhou"),
        ("outcome", "failed_4xx"),
    ];
    assert_eq!(
        metric(&m, "dualgate_call_outcomes_total", &failed),
        Some(1.0),
        "{m}"
    );
    let answered = [("number", "059185666661"), ("outcome", "answered")];
    assert_eq!(
        metric(&m, "dualgate_call_outcomes_total", &answered),
        Some(0.0),
        "{m}"
    );
    let acks = [("method", "ACK"), ("decision", "forwarded")];
    assert_eq!(total(&m, "dualgate_requests_total", &acks), 1.0, "{m}");
}

#[tokio::test]
async fn an_options_keepalive_from_the_trunk_is_answered_200() {
    let dir = Scratch::new();
    let b = Backends::new();
    let gw = b.gateway(ROUTE, PARALLEL).await;
    let dir = dir.holding(&gw);
    let options = [("method", "OPTIONS"), ("decision", "replied")];
    let before = total(&gw.scrape(), "dualgate_requests_total", &options);
    let keepalive = Sipp::uac(
        &dir.0,
        "uac-options",
        gw.sip,
        "uac_options.xml",
        "ping",
        &[],
    )
    .finish();
    keepalive.assert_calls_succeeded(1);
    let after = total(&gw.scrape(), "dualgate_requests_total", &options);
    assert_eq!(after - before, 1.0, "one OPTIONS answered by the gateway");
}
