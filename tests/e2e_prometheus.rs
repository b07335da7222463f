//! End to end through Prometheus: sipp places calls through the real gateway, a real Prometheus
//! scrapes the gateway's /metrics every second, and `dualgate retirement` reads the counts back
//! from Prometheus' query API and decides which retired legacy numbers are safe to switch off.
//!
//! Needs `sipp` (Debian `sip-tester`) and `prometheus` (Debian `prometheus`) on PATH: without
//! them the test FAILS. Prometheus runs on a free loopback port with its data in a temporary
//! directory; both are removed when the test ends, whatever its result.
#![allow(clippy::unwrap_used)]

mod common;

use common::{free_port, Gateway, PARALLEL};
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
    let uri = |port: u16| format!("sip:127.0.0.1:{port};transport=udp");
    let retired = r#"{ treatment = "reject", status = 410 }"#;
    common::mappings_with(
        &[uri(fuzhou)],
        &uri(free_port()),
        &uri(free_port()),
        retired,
        common::LOOPBACK_TRUNK,
    )
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
    fn start(target: SocketAddr) -> Prometheus {
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
        let proc = Proc::spawn_in(dir, "prometheus", "prometheus", &args);
        let p = Prometheus { proc, addr };
        p.poll("Prometheus ready", || {
            http_get(p.addr, "/-/ready").is_some_and(|(status, _)| status == 200)
        });
        p
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

#[tokio::test]
async fn the_retirement_report_counts_calls_through_prometheus_and_gates_on_max_share() {
    require("sipp", "sip-tester");
    require("prometheus", "prometheus");
    let fuzhou_port = free_port();
    let gw = Gateway::start(&mappings(fuzhou_port), &["--now", PARALLEL]).await;
    let prom = Prometheus::start(gw.metrics);
    let attempts = "dualgate_call_attempts_total";
    // The counters' first samples must be their zeros, from before any call.
    prom.poll("the gateway's zero counters scraped", || {
        prom.query(attempts).get("059185666661") == Some(&0.0)
    });

    let port = fuzhou_port.to_string();
    let mut fuzhou = Proc::sipp(
        "fuzhou",
        "uas.xml",
        &["-p", &port, "-m", "6", "-timeout", "20s"],
    );
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
    let mut legacy = caller("uac-059185666661", "059185666661", "2");
    let mut new = caller("uac-12356", "12356", "4");
    legacy.assert_calls_succeeded(2);
    new.assert_calls_succeeded(4);
    fuzhou.assert_calls_succeeded(6);

    let want: HashMap<String, f64> = [
        ("059185666661", 2.0),
        ("059185666221", 0.0),
        ("059112356", 4.0),
    ]
    .map(|(n, v)| (n.to_string(), v))
    .into();
    prom.poll("final counts in Prometheus", || {
        let got = prom.query(attempts);
        want.iter().all(|(n, v)| got.get(n) == Some(v))
    });
    wait_for_samples(&prom);

    // Default max_share (1%): 059185666661 still carries 2 of Fuzhou's 6 calls.
    let r = retirement(&prom.url(), &gw.config);
    let why = format!(
        "exit {:?}\n{}\n{}\n(counts of 0 would mean the report queried Prometheus at --at, \
         not now)",
        r.code, r.stdout, r.stderr
    );
    assert!(
        r.stdout
            .starts_with("Legacy numbers over the last 5m, up to "),
        "{why}"
    );
    let row = r.row("059185666661");
    assert_eq!(row.len(), 9, "{row:?}\n{why}");
    assert_eq!(
        row[..6],
        ["059185666661", "retired", "2", "059112356", "4", "33.33%"],
        "{why}"
    );
    assert!(
        row[6].starts_with("2025-04-20T02:00:"),
        "last call on the gateway's clock\n{why}"
    );
    assert_eq!(
        row[7..],
        ["still in use (33.33% >= 1.00%)", "provincial hotline"],
        "{why}"
    );
    let row = r.row("059185666221");
    assert_eq!(
        row,
        [
            "059185666221",
            "retired",
            "0",
            "059112356",
            "4",
            "0.00%",
            "never",
            "safe to retire",
            "Fuzhou hotline"
        ],
        "{why}"
    );
    assert!(
        r.stdout.ends_with(
            "NOT SAFE: 1 of 2 retired number(s) still carry calls at or above their threshold.\n"
        ),
        "{why}"
    );
    assert_eq!(r.code, Some(1), "{why}");

    // With max_share 0.5, a third of the area's calls is tolerated: the gate opens.
    let lenient = gw.config.with_file_name("lenient.toml");
    let text = std::fs::read_to_string(&gw.config).unwrap();
    std::fs::write(&lenient, format!("{text}\n[retirement]\nmax_share = 0.5\n")).unwrap();
    let r = retirement(&prom.url(), &lenient);
    let why = format!("exit {:?}\n{}\n{}", r.code, r.stdout, r.stderr);
    let row = r.row("059185666661");
    assert_eq!(
        row[..6],
        ["059185666661", "retired", "2", "059112356", "4", "33.33%"],
        "{why}"
    );
    assert_eq!(row[7], "safe to retire", "{why}");
    assert!(
        r.stdout
            .ends_with("OK: all 2 retired number(s) are below their retirement threshold.\n"),
        "{why}"
    );
    assert_eq!(r.code, Some(0), "{why}");

    // A legacy number this gateway never served has no series: not "safe", but "no data" (69).
    let unknown = gw.config.with_file_name("unknown.toml");
    let extra = "\n[[legacy]]\nnumber = \"0591-85666222\"\nqueue = \"fuzhou\"\n\
                 parallel_from = 2025-04-07T00:00:00+08:00\nretired_from = 2025-05-07T00:00:00+08:00\n\
                 when_retired = { treatment = \"route\" }\n";
    std::fs::write(&unknown, format!("{text}{extra}")).unwrap();
    let r = retirement(&prom.url(), &unknown);
    assert_eq!(r.code, Some(69), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("no dualgate_call_attempts_total") && r.stderr.contains("059185666222"),
        "{}",
        r.stderr
    );
    let _ = std::fs::remove_dir_all(gw.config.parent().unwrap());
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
