//! Cut-over day from the operator's side, over the real binary and real files: a calendar that
//! contradicts itself is refused (by `check` and by a reload, which keeps the old mappings
//! serving), every problem of a file is reported at once, what happens next is listed, logged
//! and exported, `--diff` says what a new file changes, and exit statuses tell a usage error
//! from a verdict.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn write(name: &str, text: &str) -> (PathBuf, String) {
    let path = temp_dir().join(name);
    std::fs::write(&path, text).unwrap();
    let p = path.display().to_string();
    (path, p)
}

/// Zhejiang's migration as the issue's operator wrote it, with Ningbo's launch moved after the
/// Ningbo line's retirement. Line numbers matter: the tests name them.
const ZHEJIANG: &str = r#"[gateway]
sip_udp = "127.0.0.1:5060"
metrics = "off"

[new_number]
number = "12356"
default_queue = "hangzhou"

[[queue]]
name = "hangzhou"
backends = ["sip:127.0.0.1:5091"]

[[queue]]
name = "ningbo"
backends = ["sip:127.0.0.1:5092"]

[[area]]
code = "0571"
name = "Hangzhou"
queue = "hangzhou"
launch = 2025-09-01T00:00:00+08:00

[[area]]
code = "0574"
name = "Ningbo"
queue = "ningbo"
launch = 2025-12-01T00:00:00+08:00

[[trunk]]
name = "ct"
sources = ["10.0.0.0/8"]
origin_area = "0571"

[[legacy]]
number = "0571-85029595"
name = "Hangzhou hotline"
queue = "hangzhou"
parallel_from = 2025-09-01T00:00:00+08:00
retired_from = 2025-10-31T00:00:00+08:00
when_retired = { treatment = "redirect", status = 301 }

[[legacy]]
number = "0574-87654321"
name = "Ningbo hotline"
queue = "ningbo"
parallel_from = 2025-09-01T00:00:00+08:00
retired_from = 2025-11-01T00:00:00+08:00
decommissioned_from = 2026-01-01T00:00:00+08:00
when_retired = { treatment = "reject", status = 410 }
"#;

#[test]
fn a_calendar_that_contradicts_itself_is_refused_naming_both_lines() {
    let (_, p) = write("zhejiang.toml", ZHEJIANG);
    let (code, out, err) = dualgate(&["check", "--config", &p]);
    assert_eq!(code, 78, "{out}{err}");
    let wants = [
        format!("{p}:46: legacy[1].parallel_from: 2025-09-01T00:00:00+08:00 is before area 0574's 12356 launch 2025-12-01T00:00:00+08:00: the parallel period (both numbers answer) would start while 057412356 still answers 404 there ({p}:27: area[1].launch)"),
        format!("{p}:47: legacy[1].retired_from: 2025-11-01T00:00:00+08:00 is before area 0574's 12356 launch 2025-12-01T00:00:00+08:00: from retirement to launch, callers are told to dial 12356, which answers 404 ({p}:27: area[1].launch)"),
    ];
    for w in &wants {
        assert!(err.contains(w.as_str()), "want {w:?} in\n{err}");
    }
    assert!(err.contains(": 2 problems"), "{err}");
    // Launch Ningbo with Hangzhou and the file is accepted.
    let fixed = ZHEJIANG.replace(
        "launch = 2025-12-01T00:00:00+08:00",
        "launch = 2025-09-01T00:00:00+08:00",
    );
    let (_, p) = write("zhejiang-fixed.toml", &fixed);
    let (code, _, err) = dualgate(&["check", "--config", &p]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn other_contradictions_an_operator_can_write_are_refused_too() {
    let cases: [(&str, &str, &str); 4] = [
        (
            // Decommissioned before retired.
            "decommissioned_from = 2026-01-01T00:00:00+08:00",
            "decommissioned_from = 2025-10-01T00:00:00+08:00",
            "48: legacy[1].decommissioned_from: must be after retired_from 2025-11-01T00:00:00+08:00: a number is retired before it is decommissioned (FILE:47: legacy[1].retired_from)",
        ),
        (
            // A trunk whose origin area has no [[area]].
            "origin_area = \"0571\"",
            "origin_area = \"0573\"",
            "32: trunk[0].origin_area: no [[area]] has code 0573 (areas: 0571, 0574): 12356 dialled on this trunk would answer 404",
        ),
        (
            // A redirect to a 12356 not yet launched in the number's area.
            "retired_from = 2025-10-31T00:00:00+08:00",
            "retired_from = 2025-08-31T00:00:00+08:00",
            "39: legacy[0].retired_from: 2025-08-31T00:00:00+08:00 is before area 0571's 12356 launch 2025-09-01T00:00:00+08:00: from retirement to launch, callers are redirected to 057112356, which answers 404 (FILE:21: area[0].launch)",
        ),
        (
            // A legacy number in an area without 12356.
            "number = \"0571-85029595\"",
            "number = \"0573-85029595\"",
            "35: legacy[0].number: area 0573 of 057385029595 has no [[area]] (areas: 0571, 0574)",
        ),
    ];
    let base = ZHEJIANG.replace(
        "launch = 2025-12-01T00:00:00+08:00",
        "launch = 2025-09-01T00:00:00+08:00",
    );
    for (from, to, want) in cases {
        let text = base.replacen(from, to, 1);
        assert_ne!(text, base, "{from}");
        let (_, p) = write("case.toml", &text);
        let (code, _, err) = dualgate(&["check", "--config", &p]);
        assert_eq!(code, 78, "{to}: {err}");
        let want = format!("{p}:{}", want.replace("FILE", &p));
        assert!(err.contains(&want), "want {want:?} in\n{err}");
    }
}

#[test]
fn two_typos_and_a_semantic_error_are_reported_together() {
    let text = ZHEJIANG
        .replace(
            "launch = 2025-12-01T00:00:00+08:00",
            "launch = 2025-09-01T00:00:00+08:00",
        )
        .replace("origin_area = \"0571\"", "orgin_area = \"0571\"")
        .replace("status = 301 }", "status = \"301\" }")
        .replace(
            "queue = \"ningbo\"\nparallel",
            "queue = \"ningbo2\"\nparallel",
        );
    let (_, p) = write("typos.toml", &text);
    let (code, out, err) = dualgate(&["check", "--config", &p]);
    assert_eq!(code, 78, "{out}{err}");
    let wants = [
        format!("{p}:32: trunk[0].orgin_area: unknown field `orgin_area`; did you mean `origin_area`?"),
        format!("{p}:40: legacy[0].when_retired.status: expected a whole number from 0 to 65535, found the text \"301\""),
        format!("{p}:45: legacy[1].queue: unknown queue `ningbo2`; queues: hangzhou, ningbo"),
    ];
    for w in &wants {
        assert!(err.contains(w.as_str()), "want {w:?} in\n{err}");
    }
    assert!(err.contains(": 3 problems"), "{err}");
    // The same, as JSON for automation.
    let (code, out, _) = dualgate(&["check", "--config", &p, "--format", "json"]);
    assert_eq!(code, 78);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    let fields: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec![
            "trunk[0].orgin_area",
            "legacy[0].when_retired.status",
            "legacy[1].queue"
        ]
    );
}

#[test]
fn duplicates_name_both_lines() {
    let text = ZHEJIANG
        .replace(
            "launch = 2025-12-01T00:00:00+08:00",
            "launch = 2025-09-01T00:00:00+08:00",
        )
        .replace("name = \"ningbo\"", "name = \"hangzhou\"");
    let (_, p) = write("dup.toml", &text);
    let (code, _, err) = dualgate(&["check", "--config", &p]);
    assert_eq!(code, 78);
    let want = format!(
        "{p}:14: queue[1].name: queue `hangzhou` is configured twice ({p}:10: queue[0].name)"
    );
    assert!(err.contains(&want), "want {want:?} in\n{err}");
}

#[test]
fn upcoming_lists_every_future_boundary_and_route_says_until_when() {
    let fixed = ZHEJIANG.replace(
        "launch = 2025-12-01T00:00:00+08:00",
        "launch = 2025-09-01T00:00:00+08:00",
    );
    let (_, p) = write("upcoming.toml", &fixed);
    let (code, out, err) = dualgate(&[
        "check",
        "--config",
        &p,
        "--upcoming",
        "--at",
        "2025-10-30T00:00:00+08:00",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "{p}: 3 upcoming boundaries after 2025-10-30T00:00:00+08:00 (2025-10-29T16:00:00Z)\n\
             \x20 2025-10-31T00:00:00+08:00  2025-10-30T16:00:00Z  in 1d 0h 0m      legacy 057185029595: retired: redirect 301 to 057112356\n\
             \x20 2025-11-01T00:00:00+08:00  2025-10-31T16:00:00Z  in 2d 0h 0m      legacy 057487654321: retired: reject 410 \"Number Changed, Please Dial The New Number\"\n\
             \x20 2026-01-01T00:00:00+08:00  2025-12-31T16:00:00Z  in 63d 0h 0m     legacy 057487654321: decommissioned: answers 410 Gone (number changed)\n"
        )
    );
    let (code, out, err) = dualgate(&[
        "route",
        "87654321",
        "--from-area",
        "0574",
        "--config",
        &p,
        "--at",
        "2025-10-30T00:00:00+08:00",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("until:     2025-11-01T00:00:00+08:00 (2025-10-31T16:00:00Z) (in 2d 0h 0m), then retired: reject 410 \"Number Changed, Please Dial The New Number\"\n"), "{out}");
    let (code, out, _) = dualgate(&[
        "route",
        "87654321",
        "--from-area",
        "0574",
        "--config",
        &p,
        "--at",
        "2025-10-30T00:00:00+08:00",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["canonical"], "057487654321");
    assert_eq!(v["phase"], "parallel");
    assert_eq!(v["decision"], "forward");
    assert_eq!(v["queue"], "ningbo");
    assert_eq!(v["until"]["at"], "2025-10-31T16:00:00Z");
    assert_eq!(v["until"]["in_seconds"], 2 * 86_400);
}

#[test]
fn diff_shows_a_moved_date_and_what_waits_for_a_restart() {
    let fixed = ZHEJIANG.replace(
        "launch = 2025-12-01T00:00:00+08:00",
        "launch = 2025-09-01T00:00:00+08:00",
    );
    let (_, running) = write("running.toml", &fixed);
    let moved = fixed
        .replace(
            "retired_from = 2025-11-01T00:00:00+08:00",
            "retired_from = 2025-11-15T00:00:00+08:00",
        )
        .replace(
            "sip_udp = \"127.0.0.1:5060\"",
            "sip_udp = \"127.0.0.1:5070\"",
        );
    let (_, new) = write("new.toml", &moved);
    let (code, out, err) = dualgate(&["check", "--diff", &running, &new]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "{running} -> {new}:\n\
             \x20 gateway: sip_udp 127.0.0.1:5060 -> 127.0.0.1:5070 (takes effect on restart)\n\
             \x20 gateway: replica 127.0.0.1:5060 -> 127.0.0.1:5070 (takes effect on restart)\n\
             \x20 gateway: advertised 127.0.0.1:5060 -> 127.0.0.1:5070\n\
             \x20 legacy 057487654321: retired_from 2025-11-01T00:00:00+08:00 -> 2025-11-15T00:00:00+08:00\n"
        )
    );
    let (code, out, _) = dualgate(&["check", "--diff", &running, &new, "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let moved = &v["changes"][3];
    assert_eq!(moved["entry"], "legacy 057487654321");
    assert_eq!(moved["field"], "retired_from");
    assert_eq!(moved["new"], "2025-11-15T00:00:00+08:00");
    assert_eq!(moved["needs_restart"], false);
    // A bad new file: exit 78 with its problems, nothing compared.
    let (_, bad) = write("bad.toml", ZHEJIANG);
    let (code, out, err) = dualgate(&["check", "--diff", &running, &bad]);
    assert_eq!(code, 78, "{out}{err}");
    assert!(out.is_empty(), "{out}");
}

/// A fake Prometheus answering every query with the same vector: 059112356 (a number the
/// shipped file knows) had 10 calls, legacy 059185666661 had 10 calls: a share of 50%.
fn fake_prometheus() -> (SocketAddr, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        l.set_nonblocking(false).unwrap();
        // Bounded: the report makes a handful of queries.
        for _ in 0..64 {
            let Ok((mut s, _)) = l.accept() else { return };
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            if n == 0 || buf[..n].starts_with(b"GET /quit") {
                return;
            }
            let body = r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"number":"059185666661","trunk":"loopback"},"value":[1746547200,"10"]},
                {"metric":{"number":"059185666221","trunk":"loopback"},"value":[1746547200,"10"]},
                {"metric":{"number":"059185666222","trunk":"loopback"},"value":[1746547200,"10"]},
                {"metric":{"number":"059112356","trunk":"loopback"},"value":[1746547200,"10"]}]}}"#;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, h)
}

#[test]
fn exit_statuses_tell_a_usage_error_from_a_verdict() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/fujian.toml");
    // 64: usage errors, clap's own included.
    for args in [
        vec![
            "retirement",
            "--prometheus",
            "http://127.0.0.1:1",
            "--window",
            "7x",
        ],
        vec!["retirement", "--prometheus", "ftp://127.0.0.1:1"],
        vec![
            "retirement",
            "--prometheus",
            "http://127.0.0.1:1",
            "--tz",
            "Nowhere/Bogus",
        ],
        vec!["check", "--at", "2025-05-07"],
        vec!["check", "--bogus"],
        vec!["route"],
        vec!["route", "12356", "--trunk", "nowhere", "--config", shipped],
        vec!["route", "12356", "--from-area", "59"],
        vec!["run", "--sip-udp", "127.0.0.1"],
        vec!["run", "--now", "tomorrow"],
    ] {
        let (code, out, err) = dualgate(&args);
        assert_eq!(code, 64, "{args:?}: {out}{err}");
    }
    let (code, _, err) = dualgate(&["route", "12356", "--trunk", "nowhere", "--config", shipped]);
    assert_eq!(code, 64);
    assert!(
        err.contains("no trunk named `nowhere`; trunks: loopback"),
        "{err}"
    );
    let (code, _, err) = dualgate(&[
        "retirement",
        "--prometheus",
        "http://127.0.0.1:1",
        "--tz",
        "+8:5x",
    ]);
    assert_eq!(code, 64);
    assert!(
        err.contains("`+8:5x` is not an offset like +08:00"),
        "{err}"
    );
    // 0: a good file; --help too.
    assert_eq!(dualgate(&["check", "--config", shipped]).0, 0);
    assert_eq!(dualgate(&["--help"]).0, 0);
    // 78: a bad file.
    let (_, bad) = write("bad.toml", ZHEJIANG);
    assert_eq!(dualgate(&["check", "--config", &bad]).0, 78);
    assert_eq!(dualgate(&["route", "12356", "--config", &bad]).0, 78);
    // 69: Prometheus does not answer (a port nothing listens on).
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}");
    let (code, _, err) = dualgate(&["retirement", "--prometheus", &url, "--config", shipped]);
    assert_eq!(code, 69, "{err}");
    // 1: a retired number still carries half of its area's calls.
    let (addr, h) = fake_prometheus();
    let url = format!("http://{addr}");
    let (code, out, err) = dualgate(&["retirement", "--prometheus", &url, "--config", shipped]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("still in use"), "{out}");
    let _ = TcpStream::connect(addr).and_then(|mut s| s.write_all(b"GET /quit HTTP/1.0\r\n\r\n"));
    h.join().unwrap();
}

#[test]
fn check_piped_into_head_exits_quietly() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/fujian.toml");
    for args in [
        vec!["check", "--config", shipped],
        vec![
            "check",
            "--config",
            shipped,
            "--upcoming",
            "--at",
            "2025-01-01T00:00:00+08:00",
        ],
        vec!["route", "12356", "--config", shipped],
    ] {
        // The reader is gone before the command writes (it reads its file first), as with
        // `| head -0`: every write meets a closed pipe.
        let mut child = Command::new(env!("CARGO_BIN_EXE_dualgate"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let done = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&done.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
        assert_eq!(done.status.code(), Some(0), "{args:?}: {err}");
    }
}

/// A gateway whose log (RUST_LOG=info) goes to a file, for the tests that read it.
struct Logged {
    child: Child,
    sip: SocketAddr,
    metrics: SocketAddr,
    config: PathBuf,
    log: PathBuf,
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Logged {
    async fn start(text: &str, args: &[&str]) -> Logged {
        let sip: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let dir = temp_dir();
        let config = dir.join("mappings.toml");
        let log = dir.join("gateway.log");
        std::fs::write(
            &config,
            text.replace("@SIP@", &sip.to_string())
                .replace("@METRICS@", &metrics.to_string()),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_dualgate"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let gw = Logged {
            child,
            sip,
            metrics,
            config,
            log,
        };
        gw.wait_for("the gateway listening", |_, log| {
            log.contains("dualgate listening")
        })
        .await;
        gw
    }

    fn scrape(&self) -> String {
        scrape_once(self.metrics).unwrap_or_default()
    }

    /// The log so far, without the colour codes tracing adds.
    fn log(&self) -> String {
        let raw = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw.as_str();
        while let Some(at) = rest.find('\x1b') {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            rest = rest.find('m').map_or("", |m| &rest[m + 1..]);
        }
        out.push_str(rest);
        out
    }

    /// Polls (bounded: 100 × 50 ms) until `ok(scrape, log)`.
    async fn wait_for(&self, what: &str, ok: impl Fn(&str, &str) -> bool) {
        for _ in 0..100 {
            if ok(&self.scrape(), &self.log()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what} never happened:\n{}\n{}", self.log(), self.scrape());
    }

    fn reload(&self) {
        let ok = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

/// Fujian's test mappings with a launch date in each area.
fn launched_mappings(f: &Peer) -> String {
    Mapping::one_backend(&f.uri())
        .when_retired(ANNOUNCE)
        .text()
        .replace(
            "name = \"Fuzhou\"\nqueue = \"fuzhou\"\n",
            "name = \"Fuzhou\"\nqueue = \"fuzhou\"\nlaunch = 2025-04-07T00:00:00+08:00\n",
        )
}

#[tokio::test]
async fn the_gateway_logs_each_boundary_as_it_passes_and_exports_what_comes_next() {
    let f = Peer::bind("127.0.0.1").await;
    let text = launched_mappings(&f);
    assert!(text.contains("launch = 2025-04-07T00:00:00+08:00"));
    let gw = Logged::start(&text, &["--now", "2025-05-06T23:59:58+08:00"]).await;
    let log = gw.log();
    assert!(
        log.contains("--now: the gateway's clock starts at this instant")
            && log.contains("now=2025-05-06T23:59:58+08:00 (2025-05-06T15:59:58Z)"),
        "{log}"
    );
    let m = gw.scrape();
    let retire = 1_746_547_200.0; // 2025-05-07T00:00:00+08:00
    let next = |m: &str| {
        metric(
            m,
            "dualgate_legacy_next_boundary_timestamp_seconds",
            &[("number", "059185666661")],
        )
    };
    assert_eq!(next(&m), Some(retire), "{m}");
    assert_eq!(
        metric(
            &m,
            "dualgate_area_launch_timestamp_seconds",
            &[("area", "0591")]
        ),
        Some(1_743_955_200.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "dualgate_area_launch_timestamp_seconds",
            &[("area", "0592")]
        ),
        Some(0.0),
        "{m}"
    );
    gw.wait_for("the retirement boundary", |m, log| {
        log.contains("calendar boundary passed") && next(m) == Some(0.0)
    })
    .await;
    let log = gw.log();
    let line = log
        .lines()
        .find(|l| l.contains("calendar boundary passed") && l.contains("059185666661"))
        .unwrap_or_else(|| panic!("{log}"));
    for want in [
        "area=\"0591\"",
        "phase=\"retired\"",
        "announce via queue announcement",
    ] {
        let bare = want.replace('"', "");
        assert!(
            line.contains(want) || line.contains(&bare),
            "{want} in {line}"
        );
    }
    assert_eq!(log.matches("calendar boundary passed").count(), 2, "{log}");
    // The routing fingerprint is exported as check prints it.
    let (_, out, _) = dualgate(&["check", "--config", &gw.config.display().to_string()]);
    let sha = out
        .lines()
        .find_map(|l| l.strip_prefix("routing fingerprint (dualgate_config_info sha256): "))
        .unwrap();
    let m = gw.scrape();
    assert_eq!(
        metric(&m, "dualgate_config_info", &[("sha256", sha)]),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test]
async fn a_reload_with_a_contradicting_calendar_is_refused_and_the_old_routing_serves() {
    let (fuzhou, xiamen, ann, carrier) = peers().await;
    let text = Mapping::on(&fuzhou, &xiamen, &ann).text();
    let gw = Logged::start(&text, &["--now", PARALLEL]).await;
    let applied = std::fs::read_to_string(&gw.config).unwrap();
    let sha_before = {
        let m = gw.scrape();
        series(&m, "dualgate_config_info", &[])
            .into_iter()
            .find(|(_, v)| *v == 1.0)
            .map(|(labels, _)| labels)
            .unwrap()
    };
    // Fuzhou's 12356 launches after the provincial line retires: refused as a whole.
    std::fs::write(
        &gw.config,
        applied.replacen(
            "name = \"Fuzhou\"\nqueue = \"fuzhou\"\n",
            "name = \"Fuzhou\"\nqueue = \"fuzhou\"\nlaunch = 2025-06-01T00:00:00+08:00\n",
            1,
        ),
    )
    .unwrap();
    gw.reload();
    gw.wait_for("the reload failure", |m, _| {
        metric(m, "dualgate_config_reloads_total", &[("result", "failure")]) == Some(1.0)
    })
    .await;
    let log = gw.log();
    assert!(
        log.contains("reload rejected; the previous mappings keep serving"),
        "{log}"
    );
    assert!(log.contains("legacy[0].retired_from: 2025-05-07T00:00:00+08:00 is before area 0591's 12356 launch 2025-06-01T00:00:00+08:00"), "{log}");
    carrier
        .send(
            gw.sip,
            &invite("sip:85666661@gw", &carrier.addr, "c1", "z9hG4bKc1", "UDP"),
        )
        .await;
    let (got, _) = fuzhou.recv().await;
    assert!(
        start_line(&got).starts_with("INVITE sip:12356@"),
        "old mappings still serve: {got}"
    );
    // A good file with a moved date and a moved listener: the change summary is logged, the
    // listener as a restart warning, and the fingerprint moves.
    std::fs::write(
        &gw.config,
        applied
            .replacen(
                "retired_from = 2025-05-07T00:00:00+08:00",
                "retired_from = 2025-05-14T00:00:00+08:00",
                1,
            )
            .replacen(
                &format!("metrics = \"{}\"", gw.metrics),
                "metrics = \"127.0.0.1:1\"",
                1,
            ),
    )
    .unwrap();
    gw.reload();
    gw.wait_for("the reload success", |m, _| {
        metric(m, "dualgate_config_reloads_total", &[("result", "success")]) == Some(2.0)
    })
    .await;
    let log = gw.log();
    assert!(log.contains("legacy 059185666661: retired_from 2025-05-07T00:00:00+08:00 -> 2025-05-14T00:00:00+08:00"), "{log}");
    let restart = log
        .lines()
        .find(|l| l.contains("takes effect on restart only"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        restart.contains("WARN") && restart.contains("gateway.metrics"),
        "{restart}"
    );
    let m = gw.scrape();
    let info = series(&m, "dualgate_config_info", &[]);
    assert_eq!(info.len(), 2, "{m}");
    assert!(info.contains(&(sha_before.clone(), 0.0)), "{m}");
    assert_eq!(info.iter().filter(|(_, v)| *v == 1.0).count(), 1, "{m}");
}
