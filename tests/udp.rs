//! The gateway over real UDP sockets on 127.0.0.1: carriers, call centres and the gateway are
//! separate processes/sockets; every wait is bounded.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::time::Duration;

async fn setup(when_retired: &str, now: &str) -> (Gateway, Peer, Peer, Peer, Peer) {
    let (fuzhou, xiamen, announce, carrier) = peers().await;
    let gw = Mapping::on(&fuzhou, &xiamen, &announce)
        .when_retired(when_retired)
        .start(&["--now", now])
        .await;
    (gw, fuzhou, xiamen, announce, carrier)
}

#[tokio::test]
async fn legacy_number_reaches_its_queue_marked_during_the_parallel_period() {
    let (gw, fuzhou, _x, _a, carrier) = setup(ROUTE, PARALLEL).await;
    carrier
        .send(
            gw.sip,
            &invite(
                "sip:059185666661@gw;user=phone",
                &carrier.addr,
                "c1",
                "z9hG4bKc1",
                "UDP",
            ),
        )
        .await;
    let (got, _) = fuzhou.recv().await;
    assert_eq!(
        start_line(&got),
        format!("INVITE sip:12356@{} SIP/2.0", fuzhou.addr)
    );
    assert_eq!(header(&got, "Max-Forwards"), Some("69"));
    let vias = headers(&got, "Via");
    assert_eq!(vias.len(), 2, "{got}");
    assert!(
        vias[0].starts_with(&format!("SIP/2.0/UDP {};branch=z9hG4bK", gw.sip)),
        "{got}"
    );
    assert!(vias[0].contains(";dgn=059185666661;dgq=fuzhou"), "{got}");
    // RFC 3581: rport filled in, and received added because rport was asked for.
    let want = format!(
        "SIP/2.0/UDP {};branch=z9hG4bKc1;rport={};received=127.0.0.2",
        carrier.addr,
        carrier.addr.port()
    );
    assert_eq!(vias[1], want, "{got}");
    let hi = headers(&got, "History-Info");
    assert_eq!(hi.len(), 2, "{got}");
    assert!(
        hi[0].starts_with("<sip:059185666661@") && hi[0].ends_with(";index=1"),
        "{got}"
    );
    assert!(
        hi[1].contains(&format!("sip:12356@{}", fuzhou.addr)) && hi[1].contains("index=1.1"),
        "{got}"
    );
    // RFC 8119: the translated target is marked as a service number translation.
    assert_eq!(
        hi[1],
        format!("<sip:12356@{};cause=380>;index=1.1;mp=1", fuzhou.addr),
        "{got}"
    );
    assert!(
        header(&got, "Diversion")
            .unwrap()
            .starts_with("<sip:059185666661@"),
        "{got}"
    );
    assert_eq!(
        header(&got, "Record-Route"),
        Some(format!("<sip:{};lr>", gw.sip).as_str())
    );
    // The body and untouched headers pass byte-for-byte.
    assert!(got.ends_with("m=audio 40000 RTP/AVP 0\r\n"), "{got}");
    assert_eq!(header(&got, "Call-ID"), Some("c1"));
}

#[tokio::test]
async fn the_new_number_is_not_marked_and_reaches_the_callers_area() {
    let (gw, fuzhou, xiamen, _a, carrier) = setup(ROUTE, PARALLEL).await;
    carrier
        .send(
            gw.sip,
            &invite("sip:12356@gw", &carrier.addr, "c2", "z9hG4bKc2", "UDP"),
        )
        .await;
    let (got, _) = fuzhou.recv().await;
    assert!(
        header(&got, "History-Info").is_none() && header(&got, "Diversion").is_none(),
        "{got}"
    );
    // The same number from a Xiamen trunk reaches Xiamen.
    let xcarrier = Peer::bind("127.0.0.3").await;
    xcarrier
        .send(
            gw.sip,
            &invite("sip:12356@gw", &xcarrier.addr, "c3", "z9hG4bKc3", "UDP"),
        )
        .await;
    let (got, _) = xiamen.recv().await;
    assert_eq!(
        start_line(&got),
        format!("INVITE sip:12356@{} SIP/2.0", xiamen.addr)
    );
}

#[tokio::test]
async fn responses_return_to_the_caller_without_the_gateways_via() {
    let (gw, fuzhou, _x, _a, carrier) = setup(ROUTE, PARALLEL).await;
    carrier
        .send(
            gw.sip,
            &invite("sip:85666221@gw", &carrier.addr, "c4", "z9hG4bKc4", "UDP"),
        )
        .await;
    let (inv, _) = fuzhou.recv().await;
    for status in ["180 Ringing", "200 OK"] {
        fuzhou.send(gw.sip, &respond(&inv, status, "cc1")).await;
        let (got, from) = carrier.recv().await;
        assert_eq!(from, gw.sip);
        assert_eq!(start_line(&got), format!("SIP/2.0 {status}"));
        let vias = headers(&got, "Via");
        assert_eq!(vias.len(), 1, "{got}");
        assert!(vias[0].contains("branch=z9hG4bKc4"), "{got}");
    }
}

#[tokio::test]
async fn cancel_and_non_2xx_ack_take_the_invites_branch_and_backend() {
    let backends = [
        Peer::bind("127.0.0.1").await,
        Peer::bind("127.0.0.1").await,
        Peer::bind("127.0.0.1").await,
    ];
    let x = Peer::bind("127.0.0.1").await;
    let a = Peer::bind("127.0.0.1").await;
    let carrier = Peer::bind("127.0.0.2").await;
    let uris: Vec<String> = backends.iter().map(Peer::uri).collect();
    let gw = Mapping::new(&uris, &x.uri(), &a.uri())
        .start(&["--now", PARALLEL])
        .await;
    let call = |i: usize| format!("call-{i}");
    for i in 0..6 {
        let inv = invite(
            "sip:12356@gw",
            &carrier.addr,
            &call(i),
            &format!("z9hG4bKb{i}"),
            "UDP",
        );
        carrier.send(gw.sip, &inv).await;
        let mut first = None;
        for b in &backends {
            if let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_millis(300), async {
                let mut buf = vec![0u8; 65535];
                b.sock
                    .recv_from(&mut buf)
                    .await
                    .map(|(n, f)| (String::from_utf8_lossy(&buf[..n]).into_owned(), f))
            })
            .await
            .map(|r| r.map(|(s, f)| ((s, f), ())))
            {
                first = Some((b, n.0));
                break;
            }
        }
        let (backend, forwarded) = first.expect("the INVITE reached a backend");
        let branch = headers(&forwarded, "Via")[0]
            .split(";branch=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        // A retransmission, the CANCEL and the ACK for a 487 all reach the same backend, same branch.
        let cancel = request(
            "CANCEL",
            "sip:12356@gw",
            &carrier.addr,
            &call(i),
            &format!("z9hG4bKb{i}"),
            "UDP",
            1,
            "",
            "70",
        );
        let ack = request(
            "ACK",
            "sip:12356@gw",
            &carrier.addr,
            &call(i),
            &format!("z9hG4bKb{i}"),
            "UDP",
            1,
            "cc",
            "70",
        );
        for (msg, method) in [(inv.clone(), "INVITE"), (cancel, "CANCEL"), (ack, "ACK")] {
            carrier.send(gw.sip, &msg).await;
            let (got, _) = backend.recv().await;
            assert!(start_line(&got).starts_with(method), "{got}");
            assert!(
                headers(&got, "Via")[0].contains(&format!("branch={branch};")),
                "{method}: {got}"
            );
        }
    }
}

#[tokio::test]
async fn max_forwards_zero_gets_483_and_is_not_forwarded() {
    let (gw, fuzhou, _x, _a, carrier) = setup(ROUTE, PARALLEL).await;
    let msg = request(
        "INVITE",
        "sip:12356@gw",
        &carrier.addr,
        "c5",
        "z9hG4bKc5",
        "UDP",
        1,
        "",
        "0",
    );
    carrier.send(gw.sip, &msg).await;
    let (got, _) = carrier.recv().await;
    assert_eq!(start_line(&got), "SIP/2.0 483 Too Many Hops");
    assert_eq!(header(&got, "Call-ID"), Some("c5"));
    fuzhou.silent_for(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn unknown_number_gets_404_with_a_reason() {
    let (gw, fuzhou, _x, _a, carrier) = setup(ROUTE, PARALLEL).await;
    carrier
        .send(
            gw.sip,
            &invite(
                "sip:059199999999@gw",
                &carrier.addr,
                "c6",
                "z9hG4bKc6",
                "UDP",
            ),
        )
        .await;
    let (got, _) = carrier.recv().await;
    assert_eq!(start_line(&got), "SIP/2.0 404 Not Found");
    assert!(
        header(&got, "Reason").unwrap().starts_with("Q.850;cause=1"),
        "{got}"
    );
    assert!(header(&got, "To").unwrap().contains(";tag="), "{got}");
    fuzhou.silent_for(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn unknown_source_gets_nothing_by_default_and_403_when_configured() {
    let (gw, fuzhou, _x, _a, _c) = setup(ROUTE, PARALLEL).await;
    let stranger = Peer::bind("127.0.0.9").await;
    let inv = invite("sip:12356@gw", &stranger.addr, "c7", "z9hG4bKc7", "UDP");
    stranger.send(gw.sip, &inv).await;
    stranger.silent_for(Duration::from_millis(300)).await;
    fuzhou.silent_for(Duration::from_millis(100)).await;
    let m = gw.scrape();
    assert_eq!(
        metric(
            &m,
            "dualgate_rejected_total",
            &[("reason", "unknown_source")]
        ),
        Some(1.0),
        "{m}"
    );
    drop(gw);

    // `answer_strangers = true`: the 403 of before, never larger than the request.
    let xiamen = Peer::bind("127.0.0.1").await;
    let gw = Mapping::on(&fuzhou, &xiamen, &xiamen)
        .gateway("answer_strangers = true")
        .start(&["--now", PARALLEL])
        .await;
    stranger.send(gw.sip, &inv).await;
    let (got, _) = stranger.recv().await;
    assert_eq!(start_line(&got), "SIP/2.0 403 Forbidden");
    assert!(got.len() <= inv.len(), "{} > {}", got.len(), inv.len());
    fuzhou.silent_for(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn options_keepalive_gets_200_locally() {
    let (gw, fuzhou, _x, _a, carrier) = setup(ROUTE, PARALLEL).await;
    carrier.send(gw.sip, &options(&carrier.addr, "ka1")).await;
    let (got, _) = carrier.recv().await;
    assert_eq!(start_line(&got), "SIP/2.0 200 OK");
    assert!(header(&got, "Allow").unwrap().contains("INVITE"), "{got}");
    fuzhou.silent_for(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn malformed_datagrams_are_dropped_counted_and_harmless() {
    let (gw, _f, _x, _a, carrier) = setup(ROUTE, PARALLEL).await;
    for junk in [
        &b"\x00\x01garbage"[..],
        b"INVITE\r\n\r\n",
        b"SIP/2.0 abc\r\n\r\n",
        &[0xff; 1500][..],
    ] {
        carrier.sock.send_to(junk, gw.sip).await.unwrap();
    }
    // Missing mandatory headers: 400.
    let bad = "INVITE sip:12356@gw SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKbad;rport\r\nCall-ID: bad\r\nContent-Length: 0\r\n\r\n";
    carrier.send(gw.sip, bad).await;
    let (got, _) = carrier.recv().await;
    assert!(start_line(&got).starts_with("SIP/2.0 400"), "{got}");
    carrier
        .send(gw.sip, &options(&carrier.addr, "still-alive"))
        .await;
    let (got, _) = carrier.recv().await;
    assert_eq!(start_line(&got), "SIP/2.0 200 OK");
    let m = gw.scrape();
    assert_eq!(
        metric(&m, "dualgate_rejected_total", &[("reason", "malformed")]),
        Some(4.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "dualgate_rejected_total", &[("reason", "bad_request")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn after_the_parallel_period_the_retired_treatment_applies() {
    let reject = r#"{ treatment = "reject", status = 410, reason = "Number Changed, Dial 12356" }"#;
    let (gw, fuzhou, _x, _a, carrier) = setup(reject, RETIRED).await;
    carrier
        .send(
            gw.sip,
            &invite(
                "sip:059185666661@gw",
                &carrier.addr,
                "r1",
                "z9hG4bKr1",
                "UDP",
            ),
        )
        .await;
    let (got, _) = carrier.recv().await;
    assert_eq!(start_line(&got), "SIP/2.0 410 Number Changed, Dial 12356");
    assert_eq!(
        header(&got, "Reason"),
        Some("SIP;cause=410;text=\"Number Changed, Dial 12356\"")
    );
    fuzhou.silent_for(Duration::from_millis(200)).await;
    // 12356 still routes, unmarked.
    carrier
        .send(
            gw.sip,
            &invite("sip:12356@gw", &carrier.addr, "r2", "z9hG4bKr2", "UDP"),
        )
        .await;
    let (got, _) = fuzhou.recv().await;
    assert!(start_line(&got).starts_with("INVITE sip:12356@"), "{got}");
}

#[tokio::test]
async fn a_retired_number_can_be_announced_or_redirected() {
    let announce = r#"{ treatment = "announce", queue = "announcement" }"#;
    let (gw, _f, _x, ann, carrier) = setup(announce, RETIRED).await;
    carrier
        .send(
            gw.sip,
            &invite("sip:85666661@gw", &carrier.addr, "a1", "z9hG4bKa1", "UDP"),
        )
        .await;
    let (got, _) = ann.recv().await;
    assert_eq!(
        start_line(&got),
        format!("INVITE sip:number-changed@{} SIP/2.0", ann.addr)
    );
    assert!(
        headers(&got, "History-Info")[0].starts_with("<sip:059185666661@"),
        "{got}"
    );
    drop(gw);

    let redirect = r#"{ treatment = "redirect", status = 301 }"#;
    let (gw, _f, _x, _a, carrier) = setup(redirect, RETIRED).await;
    carrier
        .send(
            gw.sip,
            &invite("sip:85666661@gw", &carrier.addr, "a2", "z9hG4bKa2", "UDP"),
        )
        .await;
    let (got, _) = carrier.recv().await;
    assert_eq!(start_line(&got), "SIP/2.0 301 Moved Permanently");
    assert_eq!(
        header(&got, "Contact"),
        Some(format!("<sip:059112356@{};user=phone>", gw.sip).as_str())
    );
}

#[tokio::test]
async fn in_dialog_requests_follow_the_record_route() {
    let (gw, fuzhou, _x, _a, carrier) = setup(ROUTE, PARALLEL).await;
    carrier
        .send(
            gw.sip,
            &invite("sip:12356@gw", &carrier.addr, "d1", "z9hG4bKd1", "UDP"),
        )
        .await;
    let (inv, _) = fuzhou.recv().await;
    let rr = header(&inv, "Record-Route").unwrap().to_string();
    // BYE from the carrier to the call centre's Contact, routed via the gateway.
    let msg = bye(
        &format!("sip:queue@{}", fuzhou.addr),
        &carrier.addr,
        "d1",
        "z9hG4bKd1bye",
        "UDP",
        2,
        "cc",
        &rr,
    );
    carrier.send(gw.sip, &msg).await;
    let (got, _) = fuzhou.recv().await;
    assert_eq!(
        start_line(&got),
        format!("BYE sip:queue@{} SIP/2.0", fuzhou.addr)
    );
    assert!(
        header(&got, "Route").is_none(),
        "our Route entry is consumed: {got}"
    );
    // And a BYE from the call centre back to the carrier.
    let msg = bye(
        &format!("sip:13800000000@{}", carrier.addr),
        &fuzhou.addr,
        "d1",
        "z9hG4bKd1bye2",
        "UDP",
        1,
        "from-d1",
        &rr,
    );
    fuzhou.send(gw.sip, &msg).await;
    let (got, _) = carrier.recv().await;
    assert!(
        start_line(&got).starts_with("BYE sip:13800000000@"),
        "{got}"
    );
}

#[tokio::test]
async fn in_dialog_requests_without_our_route_reach_a_served_peer_and_nothing_else() {
    // A carrier SBC that sends every request of the trunk to the gateway, ignoring Route.
    let (gw, fuzhou, _x, _a, carrier) = setup(ROUTE, PARALLEL).await;
    let bye = request(
        "BYE",
        &format!("sip:queue@{}", fuzhou.addr),
        &carrier.addr,
        "s1",
        "z9hG4bKs1",
        "UDP",
        2,
        "cc",
        "70",
    );
    carrier.send(gw.sip, &bye).await;
    let (got, _) = fuzhou.recv().await;
    assert_eq!(
        start_line(&got),
        format!("BYE sip:queue@{} SIP/2.0", fuzhou.addr)
    );
    // A target that is neither a backend nor ours is not relayed.
    let stranger = Peer::bind("127.0.0.9").await;
    let bye = request(
        "BYE",
        &format!("sip:x@{}", stranger.addr),
        &carrier.addr,
        "s2",
        "z9hG4bKs2",
        "UDP",
        2,
        "cc",
        "70",
    );
    carrier.send(gw.sip, &bye).await;
    let (got, _) = carrier.recv().await;
    assert!(start_line(&got).starts_with("SIP/2.0 404"), "{got}");
    stranger.silent_for(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn calls_work_over_ipv6() {
    let fuzhou = Peer::bind("::1").await;
    let trunk = "\n[[trunk]]\nname = \"v6\"\nsources = [\"::1/128\"]\norigin_area = \"0591\"\n";
    let uri = format!("sip:{};transport=udp", fuzhou.addr);
    let m = Mapping::new(std::slice::from_ref(&uri), &uri, &uri)
        .trunks(trunk)
        .text();
    let gw = Gateway::start_on(&m, &["--now", PARALLEL], "::1", "::1").await;
    let carrier = Peer::bind("::1").await;
    carrier
        .send(
            gw.sip,
            &invite(
                "sip:059185666661@[::1]",
                &carrier.addr,
                "v6",
                "z9hG4bKv6",
                "UDP",
            ),
        )
        .await;
    let (got, _) = fuzhou.recv().await;
    assert_eq!(
        start_line(&got),
        format!("INVITE sip:12356@{} SIP/2.0", fuzhou.addr)
    );
    let vias = headers(&got, "Via");
    assert!(
        vias[0].starts_with(&format!("SIP/2.0/UDP {};branch=", gw.sip)),
        "{got}"
    );
    // RFC 3261 received carries a bare IPv6 address; rport the source port.
    let want = format!(
        "SIP/2.0/UDP {};branch=z9hG4bKv6;rport={};received=::1",
        carrier.addr,
        carrier.addr.port()
    );
    assert_eq!(vias[1], want, "{got}");
    assert_eq!(
        header(&got, "Record-Route"),
        Some(format!("<sip:{};lr>", gw.sip).as_str())
    );
    fuzhou.send(gw.sip, &respond(&got, "200 OK", "v6")).await;
    let (answer, from) = carrier.recv().await;
    assert_eq!(from, gw.sip);
    assert_eq!(start_line(&answer), "SIP/2.0 200 OK");
}
