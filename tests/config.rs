//! Mapping files from the operator's side: `check`, `route`, start-up with a bad file, and
//! SIGHUP reloads against a running gateway.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::time::Duration;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/fujian.toml");

#[test]
fn the_shipped_fujian_file_checks_and_its_legacy_lines_are_retired_today() {
    let (code, out, err) = dualgate(&["check", "--config", SHIPPED]);
    assert_eq!(code, 0, "{err}");
    for area in [
        "059112356",
        "059212356",
        "059312356",
        "059412356",
        "059512356",
        "059612356",
        "059712356",
        "059812356",
        "059912356",
    ] {
        assert!(out.contains(area), "{area} missing:\n{out}");
    }
    for legacy in ["059185666661", "059185666221", "059185666222"] {
        assert!(out.contains(legacy), "{legacy} missing:\n{out}");
    }
    assert_eq!(out.matches("now: retired").count(), 3, "{out}");
    assert_eq!(
        out.matches("announce via queue announcement").count(),
        3,
        "{out}"
    );
    let (_, out, _) = dualgate(&[
        "check",
        "--config",
        SHIPPED,
        "--at",
        "2025-04-20T10:00:00+08:00",
    ]);
    assert_eq!(out.matches("now: parallel").count(), 3, "{out}");
}

#[test]
fn route_rehearses_the_cut_over_without_sending_anything() {
    let cases = [
        (
            vec![
                "85666221",
                "--trunk",
                "loopback",
                "--at",
                "2025-04-06T23:59:59+08:00",
            ],
            vec![
                "canonical: 059185666221",
                "phase before",
                "forward to queue fuzhou",
            ],
        ),
        (
            vec![
                "85666221",
                "--trunk",
                "loopback",
                "--at",
                "2025-05-06T23:59:59+08:00",
            ],
            vec![
                "phase parallel",
                "forward to queue fuzhou",
                "marked as a legacy call",
            ],
        ),
        (
            vec!["0591-85666221", "--at", "2025-05-07T00:00:00+08:00"],
            vec![
                "phase retired",
                "forward to queue announcement as sip:number-changed@",
            ],
        ),
        (
            vec!["12356", "--from-area", "0592"],
            vec!["canonical: 059212356", "forward to queue xiamen"],
        ),
        (
            vec!["tel:+86-591-12356", "--call-id", "x"],
            vec![
                "canonical: 059112356",
                "backend:   sip:127.0.0.1:5091;transport=udp (Call-ID x)",
            ],
        ),
        (
            vec!["85666221", "--from-area", "0592"],
            vec!["canonical: 059285666221", "answer 404 Not Found"],
        ),
    ];
    for (args, wants) in cases {
        let mut full = vec!["route"];
        full.extend(args.iter().copied());
        full.extend(["--config", SHIPPED]);
        let (code, out, err) = dualgate(&full);
        assert_eq!(code, 0, "{args:?}: {err}");
        for w in wants {
            assert!(out.contains(w), "{args:?}: want {w:?} in\n{out}");
        }
    }
}

const BAD: &str = r#"[gateway]
sip_udp = "127.0.0.1:5060"
[new_number]
number = "12356"
[[queue]]
name = "fuzhou"
backends = ["sip:127.0.0.1:5091"]
[[trunk]]
name = "a"
sources = ["10.0.0.0/8"]
[[trunk]]
name = "b"
sources = ["10.1.0.0/16"]
[[legacy]]
number = "0591-85666661"
queue = "fuzhu"
parallel_from = 2025-04-07T00:00:00
retired_from = 2025-05-07T00:00:00+08:00
when_retired = { treatment = "route" }
[[legacy]]
number = "059185666661"
queue = "fuzhou"
parallel_from = 2025-04-07T00:00:00+08:00
retired_from = 2025-04-01T00:00:00+08:00
when_retired = { treatment = "announce" }
"#;

#[test]
fn a_bad_file_is_rejected_naming_file_line_and_field() {
    let path = temp_dir().join("bad.toml");
    std::fs::write(&path, BAD).unwrap();
    let p = path.display().to_string();
    let (code, _, err) = dualgate(&["check", "--config", &p]);
    assert_eq!(code, 78, "{err}");
    let wants = [
        format!("{p}:13: trunk[1].sources: 10.1.0.0/16 overlaps a source of trunk `a`"),
        format!("{p}:16: legacy[0].queue: unknown queue `fuzhu`"),
        format!("{p}:17: legacy[0].parallel_from:"),
        format!("{p}:21: legacy[1].number: number `059185666661` is configured twice"),
        format!("{p}:24: legacy[1].retired_from: must be after parallel_from"),
        format!("{p}:25: legacy[1].when_retired: treatment \"announce\" needs `queue`"),
    ];
    for w in &wants {
        assert!(err.contains(w.as_str()), "want {w:?} in\n{err}");
    }
    // The same file stops `run` before it binds anything.
    let (code, _, err) = dualgate(&["run", "--config", &p]);
    assert_eq!(code, 78, "{err}");
}

#[test]
fn toml_syntax_and_unknown_fields_name_the_line() {
    let path = temp_dir().join("syntax.toml");
    std::fs::write(&path, "[new_number]\nnumber = \"12356\"\n[[queue]]\nname = \"q\"\nbackend = [\"sip:127.0.0.1\"]\n").unwrap();
    let p = path.display().to_string();
    let (code, _, err) = dualgate(&["check", "--config", &p]);
    assert_eq!(code, 78);
    assert!(
        err.contains(&format!(
            "{p}:5: queue[0].backend: unknown field `backend`; did you mean `backends`?"
        )),
        "{err}"
    );
    let (code, _, err) = dualgate(&["check", "--config", "/nonexistent/dualgate.toml"]);
    assert_eq!(code, 78);
    assert!(
        err.contains("/nonexistent/dualgate.toml: cannot read"),
        "{err}"
    );
}

async fn wait_for_reloads(gw: &Gateway, result: &str, want: f64) {
    for _ in 0..100 {
        if metric(
            &gw.scrape(),
            "dualgate_config_reloads_total",
            &[("result", result)],
        ) == Some(want)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("reload {result} never reached {want}:\n{}", gw.scrape());
}

#[tokio::test]
async fn sighup_with_a_broken_file_keeps_routing_and_a_good_file_changes_it() {
    let (fuzhou, xiamen, ann, carrier) = peers().await;
    let gw = Mapping::on(&fuzhou, &xiamen, &ann)
        .start(&["--now", PARALLEL])
        .await;
    let applied = std::fs::read_to_string(&gw.config).unwrap();

    std::fs::write(
        &gw.config,
        applied.replace(
            "queue = \"fuzhou\"\nparallel_from",
            "queue = \"nowhere\"\nparallel_from",
        ),
    )
    .unwrap();
    gw.reload();
    wait_for_reloads(&gw, "failure", 1.0).await;
    carrier
        .send(
            gw.sip,
            &invite("sip:85666661@gw", &carrier.addr, "h1", "z9hG4bKh1", "UDP"),
        )
        .await;
    let (got, _) = fuzhou.recv().await;
    assert!(
        start_line(&got).starts_with("INVITE sip:12356@"),
        "old mappings still serve: {got}"
    );

    // Move the provincial hotline to Xiamen's queue: the next call follows.
    let moved = applied.replacen(
        "number = \"0591-85666661\"\nname = \"provincial hotline\"\nqueue = \"fuzhou\"",
        "number = \"0591-85666661\"\nname = \"provincial hotline\"\nqueue = \"xiamen\"",
        1,
    );
    assert_ne!(moved, applied);
    std::fs::write(&gw.config, moved).unwrap();
    gw.reload();
    wait_for_reloads(&gw, "success", 2.0).await;
    carrier
        .send(
            gw.sip,
            &invite("sip:85666661@gw", &carrier.addr, "h2", "z9hG4bKh2", "UDP"),
        )
        .await;
    let (got, _) = xiamen.recv().await;
    assert_eq!(
        start_line(&got),
        format!("INVITE sip:12356@{} SIP/2.0", xiamen.addr)
    );
    fuzhou.silent_for(Duration::from_millis(100)).await;
}
