//! The per-number families rendered by the gateway itself (src/metrics/table.rs), checked on the
//! real /metrics endpoint of a real process: no count is lost when SIGHUP reloads swap the
//! mappings under traffic (even when the reload renumbers the legacy numbers), counters never
//! go back, every family has its `# HELP` and `# TYPE` once, and label values a mapping file
//! can hold (quotes, backslashes) come back intact through the text format.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use dualgate::http::reading::parse_line;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::timeout;

const PARALLEL: &str = "2025-04-20T12:00:00+08:00";
const A: &str = "059185666661";
const B: &str = "059185666221";

fn successful_reloads(m: &str) -> f64 {
    metric(m, "dualgate_config_reloads_total", &[("result", "success")]).unwrap()
}

/// Waits until the gateway has applied `n` successful loads (start-up included).
async fn wait_reloads(gw: &Gateway, n: f64) {
    for _ in 0..200 {
        if successful_reloads(&gw.scrape()) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{n} reloads not applied within 5 s");
}

#[tokio::test]
async fn reloads_under_traffic_lose_no_count_even_when_they_renumber_the_legacy_numbers() {
    let backend = Peer::bind("127.0.0.1").await;
    let text = mappings(
        &[backend.uri()],
        &backend.uri(),
        &backend.uri(),
        r#"{ treatment = "route" }"#,
    );
    let gw = Gateway::start(&text, &["--now", PARALLEL]).await;
    let original = std::fs::read_to_string(&gw.config).unwrap();
    // The same file with the two legacy numbers' places swapped: after that reload, legacy
    // number 0 of the new snapshot is legacy number 1 of the old one.
    let swapped = original
        .replace("0591-85666661", "@A@")
        .replace("0591-85666221", "0591-85666661")
        .replace("@A@", "0591-85666221");
    assert_ne!(original, swapped);
    let caller = Peer::bind("127.0.0.2").await;
    let local = caller.addr;
    let mut sent: HashMap<&str, f64> = HashMap::new();
    let mut last: HashMap<&str, f64> = HashMap::new();
    let mut loads = 1.0;
    for round in 0..8 {
        for i in 0..40 {
            if i == 20 {
                // Reload in the middle of a burst: some of it is counted into the old
                // snapshot's table, some into the new one's.
                let next = if round % 2 == 0 { &swapped } else { &original };
                std::fs::write(&gw.config, next).unwrap();
                gw.reload();
                loads += 1.0;
            }
            let number = if i % 2 == 0 { A } else { B };
            let call_id = format!("reload-{round}-{i}");
            let msg = invite(
                &format!("sip:{number}@{}", gw.sip),
                &local,
                &call_id,
                &format!("z9hG4bK{round}x{i}"),
                "UDP",
            );
            caller.send(gw.sip, &msg).await;
            *sent.entry(number).or_default() += 1.0;
        }
        // Every INVITE reached the backend: each was handled (and counted before it was sent).
        for _ in 0..40 {
            let got = timeout(Duration::from_secs(5), backend.recv()).await;
            assert!(got.is_ok(), "round {round}: an INVITE was not forwarded");
        }
        wait_reloads(&gw, loads).await;
        let m = gw.scrape();
        for number in [A, B] {
            let attempts =
                metric(&m, "dualgate_call_attempts_total", &[("number", number)]).unwrap();
            let forwarded = metric(
                &m,
                "dualgate_requests_total",
                &[
                    ("method", "INVITE"),
                    ("number", number),
                    ("decision", "forwarded"),
                ],
            )
            .unwrap();
            assert_eq!(attempts, sent[number], "round {round} {number}");
            assert_eq!(forwarded, sent[number], "round {round} {number}");
            let before = last.insert(number, attempts).unwrap_or(0.0);
            assert!(attempts >= before, "round {round} {number} went back");
        }
    }
    assert_eq!(successful_reloads(&gw.scrape()), 9.0);
}

#[tokio::test]
async fn every_family_has_help_and_type_once_and_the_replica_label_first() {
    let backend = Peer::bind("127.0.0.1").await;
    let gw = Gateway::start(
        &mappings(
            &[backend.uri()],
            &backend.uri(),
            &backend.uri(),
            r#"{ treatment = "route" }"#,
        ),
        &["--now", PARALLEL],
    )
    .await;
    gw.reload();
    wait_reloads(&gw, 2.0).await;
    let m = gw.scrape();
    let body = m.split("\r\n\r\n").nth(1).unwrap();
    let mut help: HashMap<&str, usize> = HashMap::new();
    let mut kind: HashMap<&str, usize> = HashMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            *help.entry(rest.split(' ').next().unwrap()).or_default() += 1;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            *kind.entry(rest.split(' ').next().unwrap()).or_default() += 1;
        }
    }
    for family in [
        "dualgate_requests_total",
        "dualgate_call_attempts_total",
        "dualgate_call_outcomes_total",
        "dualgate_last_call_timestamp_seconds",
        "dualgate_legacy_phase",
        "dualgate_legacy_retired_from_timestamp_seconds",
        "dualgate_legacy_next_boundary_timestamp_seconds",
        "dualgate_rejected_total",
        "dualgate_config_reloads_total",
    ] {
        assert_eq!(help.get(family), Some(&1), "HELP {family}");
        assert_eq!(kind.get(family), Some(&1), "TYPE {family}");
    }
    for (family, n) in &kind {
        assert_eq!(*n, 1, "TYPE {family}");
    }
    for (family, n) in &help {
        assert_eq!(*n, 1, "HELP {family}");
    }
    // Every sample's family was declared, and the replica label comes first.
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let s = parse_line(line).unwrap_or_else(|| panic!("unparsable: {line}"));
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| s.name.strip_suffix(suffix).filter(|f| kind.contains_key(f)))
            .unwrap_or(&s.name);
        assert!(kind.contains_key(family), "{line}");
        assert_eq!(
            s.labels.first().map(|(k, v)| (k.as_str(), v.as_str())),
            Some(("replica", "test")),
            "{line}"
        );
    }
    // Counters as integers, gauges as floats: the retirement instant is a whole second.
    assert_eq!(
        series(
            &m,
            "dualgate_legacy_retired_from_timestamp_seconds",
            &[("number", A)]
        )
        .len(),
        1
    );
    assert!(m.contains(&format!(
        "dualgate_legacy_retired_from_timestamp_seconds{{replica=\"test\",number=\"{A}\"}} 1746547200\n"
    )));
    assert!(m.contains(&format!(
        "dualgate_legacy_phase{{replica=\"test\",number=\"{A}\",phase=\"parallel\"}} 1\n"
    )));
}

#[tokio::test]
async fn a_replica_name_with_quotes_and_backslashes_comes_back_intact() {
    // Trunk and queue names are restricted to [A-Za-z0-9._-]; the replica label is free text.
    let backend = Peer::bind("127.0.0.1").await;
    let odd = r#"east"1\a"#;
    let text = mappings(
        &[backend.uri()],
        &backend.uri(),
        &backend.uri(),
        r#"{ treatment = "route" }"#,
    )
    .replace(r#"replica = "test""#, &format!("replica = '{odd}'"));
    let gw = Gateway::start(&text, &["--now", PARALLEL]).await;
    let caller = Peer::bind("127.0.0.2").await;
    let msg = invite(
        &format!("sip:{A}@{}", gw.sip),
        &caller.addr,
        "odd-1",
        "z9hG4bKodd1",
        "UDP",
    );
    caller.send(gw.sip, &msg).await;
    backend.recv().await;
    let m = gw.scrape();
    let body = m.split("\r\n\r\n").nth(1).unwrap();
    assert!(
        body.contains(&format!(
            r#"dualgate_call_attempts_total{{replica="east\"1\\a",number="{A}",queue="fuzhou",trunk="fuzhou"}} 1"#
        )),
        "escaped as the text format wants:\n{body}"
    );
    let mut seen = 0;
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let s = parse_line(line).unwrap_or_else(|| panic!("unparsable: {line}"));
        assert_eq!(s.label("replica"), Some(odd), "{line}");
        seen += 1;
    }
    assert!(seen > 50, "{seen} samples");
}
