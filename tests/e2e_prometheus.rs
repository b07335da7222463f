//! End to end through Prometheus: sipp places calls through the real gateway, a real Prometheus
//! scrapes the gateway's /metrics every second, and `dualgate retirement` reads the counts back
//! from Prometheus' query API and decides which retired legacy numbers are safe to switch off.
//!
//! Needs `sipp` (Debian `sip-tester`) and `prometheus` (Debian `prometheus`) on PATH: without
//! them the test FAILS. Prometheus runs on a free loopback port with its data in a temporary
//! directory; both are removed when the test ends, whatever its result.
#![allow(clippy::unwrap_used)]

mod common;

use common::{free_port, udp_uri, Gateway, Mapping};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// Polling step for every wait below; waits are counted in steps, tests do not read the clock.
const POLL: Duration = Duration::from_millis(100);
/// How long sipp, Prometheus start-up, or Prometheus catching up may take.
const DEADLINE: Duration = Duration::from_secs(25);
/// The instant the report assesses phases at: a day into the legacy numbers' retirement.
const RETIRED_DAY: &str = "2025-05-08T00:00:00+08:00";
/// Samples of a series Prometheus must hold before `increase()` over it rounds exactly; see
/// [`wait_for_samples`].
const SAMPLES: u64 = 14;

/// The test mappings (tests/common) with every sipp peer on the loopback trunk; only the Fuzhou
/// backend takes calls here.
fn mappings(fuzhou: u16) -> String {
    Mapping::sipp(fuzhou, free_port(), free_port())
        .when_retired(r#"{ treatment = "reject", status = 410 }"#)
        .text()
}

fn require(tool: &str, package: &str) {
    if let Err(e) = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        panic!(
            "`{tool}` is required by this end-to-end test and could not be run ({e}): install \
             Debian's `{package}` package, e.g. with .ci/run"
        );
    }
}

/// A child process killed on drop, with its working directory removed then (the directory is
/// kept and named when the test fails, except Prometheus' TSDB).
struct Proc {
    name: String,
    child: Option<Child>,
    dir: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let _ = std::fs::remove_dir_all(self.dir.join("tsdb"));
            eprintln!("{} files kept in {}", self.name, self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Proc {
    fn spawn(name: &str, program: &str, args: &[String]) -> Proc {
        Proc::spawn_in(common::temp_dir(), name, program, args)
    }

    /// As [`Proc::spawn`], in `dir`.
    fn spawn_in(dir: PathBuf, name: &str, program: &str, args: &[String]) -> Proc {
        let child = Command::new(program)
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program} for {name}: {e}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
            dir,
        }
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    /// sipp with its statistics in `stat.csv`.
    fn sipp(name: &str, scenario: &str, args: &[&str]) -> Proc {
        require("sipp", "sip-tester");
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let sf = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sipp")
            .join(scenario);
        all.extend(["-sf".into(), sf.display().to_string()]);
        all.extend(["-i", "127.0.0.1", "-trace_stat", "-stf", "stat.csv"].map(String::from));
        all.extend(["-trace_err", "-error_file", "errors.log"].map(String::from));
        Proc::spawn(name, "sipp", &all)
    }

    /// Waits for the process to exit within [`DEADLINE`].
    fn wait(&mut self) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        for _ in 0..DEADLINE.as_millis() / POLL.as_millis() {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(POLL);
        }
        panic!("{} still running after {DEADLINE:?}", self.name);
    }

    /// Waits for sipp to exit and asserts it exited 0 with `calls` successful, none failed.
    fn assert_calls_succeeded(&mut self, calls: u64) {
        let status = self.wait();
        let stat = self.read("stat.csv");
        let mut rows = stat.lines().filter(|l| !l.trim().is_empty());
        let head: Vec<&str> = rows.next().unwrap_or("").split(';').collect();
        let last: Vec<&str> = rows.next_back().unwrap_or("").split(';').collect();
        let count = |column: &str| -> Option<u64> {
            let i = head.iter().position(|h| *h == column)?;
            last.get(i)?.parse().ok()
        };
        let why = format!(
            "{} exited with {status}\n{}\n{}",
            self.name,
            self.read("stdout"),
            self.read("errors.log")
        );
        assert!(status.success(), "{why}");
        assert_eq!(
            (count("SuccessfulCall(C)"), count("FailedCall(C)")),
            (Some(calls), Some(0)),
            "{why}"
        );
    }
}

/// `GET path` over HTTP/1.0; the status and the body.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Percent-encodes a query-string value (everything but RFC 3986 unreserved characters).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A running Prometheus scraping one target every second.
struct Prometheus {
    proc: Proc,
    addr: SocketAddr,
}

impl Prometheus {
    /// Prometheus scraping `target` every second, with `extra` flags, ready to query.
    fn start_with(target: SocketAddr, extra: &[&str]) -> Prometheus {
        let p = Prometheus::spawn(target, extra);
        p.poll("Prometheus ready", || {
            http_get(p.addr, "/-/ready").is_some_and(|(status, _)| status == 200)
        });
        p
    }

    /// As [`Prometheus::start_with`], without waiting (its API may not speak plain HTTP).
    fn spawn(target: SocketAddr, extra: &[&str]) -> Prometheus {
        require("prometheus", "prometheus");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let dir = common::temp_dir();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: dualgate\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let args = [
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            format!("--web.listen-address={addr}"),
            "--storage.tsdb.retention.time=1h".to_string(),
        ];
        let args: Vec<String> = args
            .into_iter()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect();
        let proc = Proc::spawn_in(dir, "prometheus", "prometheus", &args);
        Prometheus { proc, addr }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An instant query at the current time: the `number` label and value of each sample.
    fn query(&self, promql: &str) -> HashMap<String, f64> {
        let path = format!("/api/v1/query?query={}", encode(promql));
        let Some((200, body)) = http_get(self.addr, &path) else {
            return HashMap::new();
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let number = s["metric"]["number"].as_str()?.to_string();
                let value = s["value"][1].as_str()?.parse().ok()?;
                Some((number, value))
            })
            .collect()
    }

    /// Polls `done` every [`POLL`] until it holds, failing the test after [`DEADLINE`].
    fn poll(&self, what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..DEADLINE.as_millis() / POLL.as_millis() {
            if done() {
                return;
            }
            std::thread::sleep(POLL);
        }
        panic!(
            "{what}: not within {DEADLINE:?}\n--- prometheus log ---\n{}",
            self.proc.read("stderr")
        );
    }
}

/// What `dualgate retirement` printed and how it exited.
struct Report {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Report {
    /// The table row of `number`, split into its cells (cells are separated by 2+ spaces).
    fn row(&self, number: &str) -> Vec<&str> {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with(number))
            .unwrap_or_else(|| panic!("no row for {number}\n{}", self.stdout));
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect()
    }
}

fn retirement(prometheus: &str, config: &Path) -> Report {
    let out = Command::new(env!("CARGO_BIN_EXE_dualgate"))
        .args(["retirement", "--prometheus", prometheus, "--window", "5m"])
        .arg("--config")
        .arg(config)
        .args(["--at", RETIRED_DAY])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Report {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Waits until Prometheus holds [`SAMPLES`] samples of the 12356 counter.
///
/// `increase()` extrapolates to the end of the range: with the series' first sample at 0 (it
/// is scraped before any call) nothing is added at the start, and at most one scrape interval
/// `i` at the end, so `increase` reads `n * (1 + e/S)` with `e <= i` and `S` the time the
/// series has been sampled. It rounds to `n` while `n * i / S < 0.5`: for n = 4 calls and
/// i = 1 s that needs S > 8 s; 13 s gives a margin for late scrapes.
fn wait_for_samples(p: &Prometheus) {
    let q = "count_over_time(dualgate_call_attempts_total{number=\"059112356\"}[5m])";
    p.poll("Prometheus holding enough samples", || {
        p.query(q)
            .get("059112356")
            .is_some_and(|n| *n >= SAMPLES as f64)
    });
}

/// The instant the legacy numbers of [`TREATMENTS`] retire.
const BOUNDARY: &str = "2025-05-07T00:00:00+08:00";
/// The gateway's clock starts a few seconds before [`BOUNDARY`], so the boundary passes while it
/// runs (and after Prometheus scraped its zeros).
const JUST_BEFORE: &str = "2025-05-06T23:59:53+08:00";

/// One legacy number per retired treatment, all retiring at [`BOUNDARY`]; the Fuzhou and
/// announcement queues are sipp UASes, Xiamen's backend is never used.
fn treatments(fuzhou: u16, announcement: u16) -> String {
    let legacy = |number: &str, name: &str, queue: &str, treatment: &str| {
        format!(
            "[[legacy]]\nnumber = \"{number}\"\nname = \"{name}\"\nqueue = \"{queue}\"\n\
             parallel_from = 2025-04-07T00:00:00+08:00\nretired_from = {BOUNDARY}\n\
             when_retired = {treatment}\n\n"
        )
    };
    format!(
        r#"
[gateway]
sip_udp = "@SIP@"
sip_tcp = "@SIP@"
metrics = "@METRICS@"
advertised = "@SIP@"
mark_legacy = ["history-info"]
replica = "test"

[new_number]
number = "12356"
default_queue = "fuzhou"

[[queue]]
name = "fuzhou"
backends = ["{fuzhou}"]

[[queue]]
name = "xiamen"
backends = ["{xiamen}"]

[[queue]]
name = "announcement"
target = "number-changed"
backends = ["{announcement}"]

[[area]]
code = "0591"
queue = "fuzhou"

[[area]]
code = "0592"
queue = "xiamen"
{trunk}
{l1}{l2}{l3}{l4}{probe_off}"#,
        fuzhou = udp_uri(fuzhou),
        xiamen = udp_uri(free_port()),
        announcement = udp_uri(announcement),
        trunk = common::LOOPBACK_TRUNK,
        probe_off = common::PROBE_OFF,
        l1 = legacy(
            "0591-85666661",
            "announced",
            "fuzhou",
            r#"{ treatment = "announce", queue = "announcement" }"#
        ),
        l2 = legacy(
            "0591-85666221",
            "routed",
            "fuzhou",
            r#"{ treatment = "route" }"#
        ),
        l3 = legacy(
            "0591-85666222",
            "redirected",
            "fuzhou",
            r#"{ treatment = "redirect", status = 302 }"#
        ),
        l4 = legacy(
            "0592-12345678",
            "rejected",
            "xiamen",
            r#"{ treatment = "reject", status = 410, reason = "Number Changed" }"#
        ),
    )
}

/// A raw UDP caller: INVITE `number`, expect the gateway's own `status`, ACK it.
async fn refused_call(gw: &Gateway, number: &str, call: &str, status: u16) {
    let caller = common::Peer::bind("127.0.0.1").await;
    let ruri = format!("sip:{number}@{}", gw.sip);
    let branch = format!("z9hG4bK{call}");
    caller
        .send(
            gw.sip,
            &common::invite(&ruri, &caller.addr, call, &branch, "UDP"),
        )
        .await;
    let (resp, _) = caller.recv().await;
    assert!(
        common::start_line(&resp).starts_with(&format!("SIP/2.0 {status} ")),
        "{number}: {resp}"
    );
    let to_tag = common::header(&resp, "To")
        .and_then(|t| t.split(";tag=").nth(1))
        .unwrap_or_default()
        .to_string();
    let ack = common::request(
        "ACK",
        &ruri,
        &caller.addr,
        call,
        &branch,
        "UDP",
        1,
        &to_tag,
        "70",
    );
    caller.send(gw.sip, &ack).await;
}

/// The report as JSON.
fn retirement_json(prometheus: &str, config: &Path) -> (Option<i32>, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dualgate"))
        .args(["retirement", "--prometheus", prometheus, "--window", "5m"])
        .args(["--format", "json", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), v, text)
}

/// The JSON row of `number`.
fn json_row<'v>(v: &'v serde_json::Value, number: &str) -> &'v serde_json::Value {
    v["numbers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["number"] == number)
        .unwrap_or_else(|| panic!("no row for {number}: {v}"))
}

/// `POST path` over HTTP/1.0; the status.
fn http_post(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(
        format!("POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split(' ').nth(1)?.parse().ok()
}

/// The bug this guards against: a retired number's calls went to series (the announcement
/// queue's) born at their first increment, which `increase()` cannot see, and the report said
/// "safe to retire" three calls after they were placed. Here the gateway starts inside the
/// parallel period, a real Prometheus scrapes it from before the first call, the retirement
/// boundary passes while it runs, every treatment is called right after it and again right
/// after a SIGHUP reload, and the report must count every call and say "still in use".
#[tokio::test]
async fn retired_numbers_are_counted_exactly_under_every_treatment() {
    require("sipp", "sip-tester");
    require("prometheus", "prometheus");
    let (fuzhou_port, announcement_port) = (free_port(), free_port());
    let gw = Gateway::start(
        &treatments(fuzhou_port, announcement_port),
        &["--now", JUST_BEFORE],
    )
    .await;
    let phase = |m: &str, p: &str| {
        common::metric(
            m,
            "dualgate_legacy_phase",
            &[("number", "059185666661"), ("phase", p)],
        )
    };
    assert_eq!(
        phase(&gw.scrape(), "parallel"),
        Some(1.0),
        "started before the boundary"
    );
    let prom = Prometheus::start_with(gw.metrics, &["--web.enable-admin-api"]);
    prom.poll("the announcement queue's zero series scraped", || {
        prom.query("sum by (number) (dualgate_call_attempts_total{queue=\"announcement\"})")
            .get("059185666661")
            == Some(&0.0)
    });
    prom.poll("the boundary passed on the gateway's clock", || {
        phase(&gw.scrape(), "retired") == Some(1.0)
    });

    let mut announcement = Proc::sipp(
        "announcement",
        "uas.xml",
        &[
            "-p",
            &announcement_port.to_string(),
            "-m",
            "3",
            "-timeout",
            "30s",
        ],
    );
    let mut fuzhou = Proc::sipp(
        "fuzhou",
        "uas.xml",
        &["-p", &fuzhou_port.to_string(), "-m", "2", "-timeout", "30s"],
    );
    common::wait_udp_bound(announcement_port);
    common::wait_udp_bound(fuzhou_port);
    let gw_sip = gw.sip.to_string();
    let caller = |name: &str, number: &str, calls: &str| {
        let p = free_port().to_string();
        Proc::sipp(
            name,
            "uac.xml",
            &[
                &gw_sip,
                "-s",
                number,
                "-p",
                &p,
                "-m",
                calls,
                "-d",
                "50",
                "-timeout",
                "15s",
                "-recv_timeout",
                "5000",
            ],
        )
    };
    // Right after start-up (and the boundary).
    caller("announced-1", "85666661", "2").assert_calls_succeeded(2);
    caller("routed-1", "85666221", "1").assert_calls_succeeded(1);
    refused_call(&gw, "85666222", "redirected-1", 302).await;
    refused_call(&gw, "059212345678", "rejected-1", 410).await;
    // Right after a reload.
    gw.reload();
    prom.poll("the reload applied", || {
        common::metric(
            &gw.scrape(),
            "dualgate_config_reloads_total",
            &[("result", "success")],
        ) == Some(2.0)
    });
    caller("announced-2", "85666661", "1").assert_calls_succeeded(1);
    caller("routed-2", "85666221", "1").assert_calls_succeeded(1);
    refused_call(&gw, "059212345678", "rejected-2", 410).await;
    announcement.assert_calls_succeeded(3);
    fuzhou.assert_calls_succeeded(2);

    let placed: HashMap<String, f64> = [
        ("059185666661", 3.0),
        ("059185666221", 2.0),
        ("059185666222", 1.0),
        ("059212345678", 2.0),
    ]
    .map(|(n, v)| (n.to_string(), v))
    .into();
    prom.poll("every call in Prometheus", || {
        let got = prom.query("sum by (number) (dualgate_call_attempts_total)");
        placed.iter().all(|(n, v)| got.get(n) == Some(v))
    });
    wait_for_samples(&prom);

    let r = retirement(&prom.url(), &gw.config);
    let why = format!("exit {:?}\n{}\n{}", r.code, r.stdout, r.stderr);
    for (number, calls) in &placed {
        let row = r.row(number);
        assert_eq!(
            row[1..3],
            ["retired", &calls.to_string()],
            "{number}\n{why}"
        );
        assert_eq!(row[7], "still in use (100.00% >= 1.00%)", "{number}\n{why}");
    }
    assert!(
        r.stdout
            .contains("\n  059185666661  by trunk: loopback 3\n"),
        "{why}"
    );
    assert!(
        r.stdout.ends_with(
            "NOT SAFE: 4 of 4 retired number(s) still carry calls at or above their threshold.\n"
        ),
        "{why}"
    );
    assert_eq!(r.code, Some(1), "{why}");
    let (code, v, text) = retirement_json(&prom.url(), &gw.config);
    assert_eq!(
        (code, &v["outcome"]),
        (Some(1), &"still_in_use".into()),
        "{text}"
    );
    let row = json_row(&v, "059185666661");
    assert_eq!(row["calls"], 3, "{text}");
    assert_eq!(row["trunks"][0]["trunk"], "loopback", "{text}");
    assert_eq!(row["trunks"][0]["calls"], 3, "{text}");
    assert_eq!(row["verdict"], "still_in_use", "{text}");

    // The cross-check: the gateway goes away and Prometheus loses counter series (deleted
    // through the admin API). A number called inside the window must not read as "safe".
    let config = common::temp_dir().join("kept.toml");
    std::fs::copy(&gw.config, &config).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    drop(gw);
    for series in [
        r#"dualgate_call_attempts_total{number="059185666661",queue="announcement"}"#,
        r#"dualgate_call_attempts_total{number="059185666221"}"#,
    ] {
        let path = format!(
            "/api/v1/admin/tsdb/delete_series?match[]={}",
            encode(series)
        );
        assert_eq!(http_post(prom.addr, &path), Some(204), "{series}");
    }
    let (code, v, text_json) = retirement_json(&prom.url(), &config);
    let uncounted = json_row(&v, "059185666661");
    assert_eq!(uncounted["verdict"], "unknown", "{text_json}");
    assert!(
        uncounted["reason"]
            .as_str()
            .unwrap()
            .contains("inside the window but no call was counted"),
        "{text_json}"
    );
    let absent = json_row(&v, "059185666221");
    assert_eq!(absent["verdict"], "unknown", "{text_json}");
    assert!(
        absent["reason"]
            .as_str()
            .unwrap()
            .contains("no dualgate_call_attempts_total series for 059185666221"),
        "{text_json}"
    );
    // The other two still carry calls: "still in use" wins.
    assert_eq!(code, Some(1), "{text_json}");
    // With only the two numbers whose data has gaps: unknown, exit 75, never 0.
    let cut = text
        .split("[[legacy]]")
        .filter(|part| !part.contains("85666222") && !part.contains("12345678"))
        .collect::<Vec<_>>()
        .join("[[legacy]]");
    let gaps = config.with_file_name("gaps.toml");
    std::fs::write(&gaps, cut).unwrap();
    let r = retirement(&prom.url(), &gaps);
    let why = format!("exit {:?}\n{}\n{}", r.code, r.stdout, r.stderr);
    assert!(r.row("059185666661")[7].starts_with("unknown: "), "{why}");
    assert!(
        r.stdout.ends_with(
            "UNKNOWN: 2 of 2 retired number(s) cannot be assessed from the data Prometheus holds.\n"
        ),
        "{why}"
    );
    assert_eq!(r.code, Some(75), "{why}");
    let _ = std::fs::remove_dir_all(config.parent().unwrap());
}

#[test]
fn the_retirement_report_exits_69_when_prometheus_does_not_answer() {
    let dir = common::temp_dir();
    let config = dir.join("mappings.toml");
    std::fs::write(
        &config,
        mappings(free_port())
            .replace("@SIP@", "127.0.0.1:5060")
            .replace("@METRICS@", "127.0.0.1:9090"),
    )
    .unwrap();
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let r = retirement(&nobody, &config);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(r.code, Some(69), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.is_empty(), "no table without data: {}", r.stdout);
}

/// A bcrypt hash (cost 4) of `report-secret`, for Prometheus' `basic_auth_users`.
const REPORT_SECRET_BCRYPT: &str = "$2b$04$beCn9lCJ6HCEEMfKBblglezH6qj0Q9QEejBCJhL0n4Mym1y7PxJry";

/// `dualgate retirement` against an https URL with `--ca-file`.
fn retirement_tls(url: &str, ca: Option<&Path>, config: &Path) -> Report {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dualgate"));
    cmd.args(["retirement", "--prometheus", url, "--window", "1m"])
        .args(["--at", RETIRED_DAY, "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    if let Some(ca) = ca {
        cmd.arg("--ca-file").arg(ca);
    }
    let out = cmd.output().unwrap();
    Report {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The report reaches a Prometheus that serves its API over TLS with basic auth (Prometheus'
/// own `--web.config.file`), trusting the private CA given with `--ca-file`; a wrong password
/// or an untrusted certificate is "cannot query" (69), never a verdict.
#[tokio::test]
async fn the_report_reads_a_prometheus_behind_tls_and_basic_auth() {
    require("prometheus", "prometheus");
    let gw = Gateway::start(&mappings(free_port()), &[]).await;
    let dir = common::temp_dir();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dualgate test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, AsRef::<rcgen::Certificate>::as_ref(&ca).pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  ops: {REPORT_SECRET_BCRYPT}\n",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display()
        ),
    )
    .unwrap();
    let prom = Prometheus::spawn(
        gw.metrics,
        &[&format!("--web.config.file={}", web.display())],
    );
    let port = prom.addr.port();
    let good = format!("https://ops:report-secret@127.0.0.1:{port}");
    // Safe (0) once Prometheus is up and has scraped the gateway's zeros; 69 before it
    // listens, 75 before its first scrape.
    let mut last = None;
    for _ in 0..DEADLINE.as_millis() / POLL.as_millis() {
        let r = retirement_tls(&good, Some(&ca_file), &gw.config);
        if r.code == Some(0) {
            last = Some(r);
            break;
        }
        last = Some(r);
        std::thread::sleep(POLL);
    }
    let r = last.unwrap();
    assert_eq!(
        r.code,
        Some(0),
        "{}\n{}\n{}",
        r.stdout,
        r.stderr,
        prom.proc.read("stderr")
    );
    assert!(
        r.stdout.contains("\nOK: all 2 retired number(s)"),
        "{}",
        r.stdout
    );
    // The operator's zone: the same report with its times in China time.
    let out = Command::new(env!("CARGO_BIN_EXE_dualgate"))
        .args(["retirement", "--prometheus", &good, "--window", "1m"])
        .args(["--at", RETIRED_DAY, "--tz", "+08:00", "--ca-file"])
        .arg(&ca_file)
        .arg("--config")
        .arg(&gw.config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("Legacy numbers over the last 1m, up to ") && first.ends_with("+08:00"),
        "{text}"
    );
    // A wrong password: Prometheus answers 401.
    let r = retirement_tls(
        &format!("https://ops:wrong@127.0.0.1:{port}"),
        Some(&ca_file),
        &gw.config,
    );
    assert_eq!(r.code, Some(69), "{}", r.stderr);
    assert!(r.stderr.contains("HTTP 401"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("wrong"),
        "the password is not echoed: {}",
        r.stderr
    );
    // The certificate is not from a public CA: without --ca-file the handshake fails.
    let r = retirement_tls(&good, None, &gw.config);
    assert_eq!(r.code, Some(69), "{}", r.stderr);
    assert!(
        r.stderr.to_lowercase().contains("certificate"),
        "{}",
        r.stderr
    );
    // Plain http to a TLS port is no answer either.
    let r = retirement_tls(&format!("http://127.0.0.1:{port}"), None, &gw.config);
    assert_eq!(r.code, Some(69), "{}", r.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}
