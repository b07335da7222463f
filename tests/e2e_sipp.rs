//! End to end with sipp: sipp plays the carrier trunk (UAC) and the call-centre queues (UAS),
//! the real `dualgate` binary sits between them on loopback ports, and `/metrics` is scraped
//! over HTTP. Calls are whole dialogs (INVITE/100/180/200/ACK/BYE) that follow the gateway's
//! Record-Route, so every message of a call crosses the gateway.
//!
//! Needs `sipp` on PATH (Debian package `sip-tester`, 3.6.1): without it every test FAILS.
//! Every sipp is bounded by `-m` and `-timeout`, and killed when its handle drops.
#![allow(clippy::unwrap_used)]

mod common;

use common::{free_port, metric, Gateway, PARALLEL, RETIRED};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// How long a test waits for a sipp to exit before killing it (its own `-timeout` is shorter).
const SIPP_DEADLINE: Duration = Duration::from_secs(25);

/// A mapping file with one loopback trunk (origin area 0591) and one sipp backend per queue.
/// `@SIP@`/`@METRICS@` are filled in by [`Gateway::start`].
fn mappings(fuzhou: u16, xiamen: u16, announcement: u16, when_retired: &str) -> String {
    let uri = |port: u16| format!("sip:127.0.0.1:{port};transport=udp");
    common::mappings_with(
        &[uri(fuzhou)],
        &uri(xiamen),
        &uri(announcement),
        when_retired,
        common::LOOPBACK_TRUNK,
    )
}

const ROUTE: &str = r#"{ treatment = "route" }"#;
const REJECT_410: &str = r#"{ treatment = "reject", status = 410, reason = "Gone" }"#;
const ANNOUNCE: &str = r#"{ treatment = "announce", queue = "announcement" }"#;

/// A test's working directory (and its gateway's): removed when the test passes, kept (and
/// named) when it fails.
struct Scratch(PathBuf, Option<PathBuf>);

impl Scratch {
    fn new() -> Scratch {
        Scratch(common::temp_dir(), None)
    }

    /// Also cleans up the directory holding `gw`'s mapping file.
    fn holding(mut self, gw: &Gateway) -> Scratch {
        self.1 = gw.config.parent().map(Path::to_path_buf);
        self
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("sipp files kept in {}", self.0.display());
            return;
        }
        for d in std::iter::once(&self.0).chain(self.1.as_ref()) {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Fails the test with a clear message when sipp is not installed.
fn require_sipp() {
    match Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) => panic!(
            "sipp is required by the end-to-end tests and could not be run ({e}): install \
             Debian's `sip-tester` package (sipp 3.6.1), e.g. with .ci/run"
        ),
    }
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// One running sipp, killed on drop.
struct Sipp {
    child: Option<Child>,
    name: String,
    dir: PathBuf,
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What a finished sipp left behind.
struct Done {
    name: String,
    status: ExitStatus,
    /// The last row of its `-trace_stat` file, by column.
    stat: HashMap<String, String>,
    /// Its `-trace_logs` file (the scenarios' `<log>` lines).
    log: String,
    /// Its screen and error file, for failure messages.
    screen: String,
}

impl Done {
    /// A cumulative statistic, e.g. `SuccessfulCall(C)`.
    fn count(&self, column: &str) -> u64 {
        self.stat
            .get(column)
            .unwrap_or_else(|| {
                panic!(
                    "{}: no {column} in its statistics\n{}",
                    self.name, self.screen
                )
            })
            .parse()
            .unwrap()
    }

    /// Asserts sipp exited 0 with `calls` successful calls and no failed one.
    fn assert_calls_succeeded(&self, calls: u64) {
        assert!(
            self.status.success(),
            "{} exited with {}\n{}",
            self.name,
            self.status,
            self.screen
        );
        assert_eq!(
            (self.count("SuccessfulCall(C)"), self.count("FailedCall(C)")),
            (calls, 0),
            "{}: (successful, failed) calls\n{}",
            self.name,
            self.screen
        );
    }

    /// The `INVITE ruri=...` lines the UAS scenarios log, one per received INVITE.
    fn invites(&self) -> Vec<Invite> {
        self.log
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("INVITE ruri=")?;
                let (ruri, rest) = rest.split_once(" history-info=\"")?;
                let (hi, rest) = rest.split_once("\" diversion=\"")?;
                let div = rest.strip_suffix('"')?;
                Some(Invite {
                    ruri: ruri.to_string(),
                    history_info: hi.trim().to_string(),
                    diversion: div.trim().to_string(),
                })
            })
            .collect()
    }
}

/// One INVITE as a UAS scenario logged it.
#[derive(Debug, Clone, PartialEq)]
struct Invite {
    ruri: String,
    history_info: String,
    diversion: String,
}

impl Sipp {
    /// Starts sipp with `args`, in `dir`, with its statistics, logs and errors in files there.
    fn spawn(dir: &Path, name: &str, args: &[String]) -> Sipp {
        require_sipp();
        let file = |ext: &str| dir.join(format!("{name}.{ext}"));
        let child = Command::new("sipp")
            .args(args)
            .args(["-trace_stat", "-stf"])
            .arg(file("csv"))
            .args(["-trace_logs", "-log_file"])
            .arg(file("log"))
            .args(["-trace_err", "-error_file"])
            .arg(file("err"))
            .args(["-trace_msg", "-message_file"])
            .arg(file("msg"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(file("screen")).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting sipp for {name}: {e}"));
        Sipp {
            child: Some(child),
            name: name.to_string(),
            dir: dir.to_path_buf(),
        }
    }

    /// A call-centre backend on 127.0.0.1:`port` that handles `calls` calls, then exits.
    fn uas(dir: &Path, name: &str, scenario_file: &str, port: u16, calls: u32) -> Sipp {
        let args = [
            "-sf".into(),
            scenario(scenario_file).display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-m".into(),
            calls.to_string(),
            "-timeout".into(),
            "20s".into(),
        ];
        Sipp::spawn(dir, name, &args)
    }

    /// A carrier trunk calling the gateway at `gw`: `number` is the dialled Request-URI user;
    /// `extra` adds options (`-t t1`, `-key expected 410`, `-m 4` ...; `-m 1` otherwise).
    fn uac(
        dir: &Path,
        name: &str,
        gw: SocketAddr,
        scenario_file: &str,
        number: &str,
        extra: &[&str],
    ) -> Sipp {
        let mut args: Vec<String> = vec![
            gw.to_string(),
            "-sf".into(),
            scenario(scenario_file).display().to_string(),
            "-s".into(),
            number.into(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            free_port().to_string(),
            "-d".into(),
            "50".into(),
            "-timeout".into(),
            "15s".into(),
            "-recv_timeout".into(),
            "5000".into(),
        ];
        if !extra.contains(&"-m") {
            args.extend(["-m".into(), "1".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Sipp::spawn(dir, name, &args)
    }

    /// Waits for sipp to exit (killing it after [`SIPP_DEADLINE`]) and reads its files.
    fn finish(mut self) -> Done {
        let mut child = self.child.take().unwrap();
        // Polled rather than timed: tests do not read the clock (clippy.toml).
        const POLL: Duration = Duration::from_millis(20);
        let mut status = None;
        for _ in 0..SIPP_DEADLINE.as_millis() / POLL.as_millis() {
            status = child.try_wait().unwrap();
            if status.is_some() {
                break;
            }
            std::thread::sleep(POLL);
        }
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} still running after {SIPP_DEADLINE:?}\n{}",
                self.name,
                self.read("screen")
            );
        };
        let stat = self.read("csv");
        let mut rows = stat.lines().filter(|l| !l.trim().is_empty());
        let head: Vec<&str> = rows.next().unwrap_or("").split(';').collect();
        let last: Vec<&str> = rows.next_back().unwrap_or("").split(';').collect();
        let stat = head
            .iter()
            .zip(last.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let screen = format!(
            "--- {} screen ---\n{}\n--- errors ---\n{}",
            self.name,
            self.read("screen"),
            self.read("err")
        );
        Done {
            name: self.name.clone(),
            status,
            stat,
            log: self.read("log"),
            screen,
        }
    }

    fn read(&self, ext: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.{ext}", self.name))).unwrap_or_default()
    }
}

/// The sum of every series of `name` whose labels include all of `labels`; 0 when none does.
fn total(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            let all = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            (n == name && all)
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

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
