//! sipp for the end-to-end tests: running scenarios from `tests/sipp/`, bounded and killed on
//! drop, and reading what they leave behind (statistics, logs, screens).
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::{free_port, Gateway};

/// How long a test waits for a sipp to exit before killing it (its own `-timeout` is shorter).
pub const SIPP_DEADLINE: Duration = Duration::from_secs(25);

/// A test's working directory (and its gateway's): removed when the test passes, kept (and
/// named) when it fails.
pub struct Scratch(pub PathBuf, pub Option<PathBuf>);

impl Scratch {
    pub fn new() -> Scratch {
        Scratch(super::temp_dir(), None)
    }

    /// Also cleans up the directory holding `gw`'s mapping file.
    pub fn holding(mut self, gw: &Gateway) -> Scratch {
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
pub fn require_sipp() {
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

pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// One running sipp, killed on drop.
pub struct Sipp {
    pub child: Option<Child>,
    pub name: String,
    pub dir: PathBuf,
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
pub struct Done {
    pub name: String,
    pub status: ExitStatus,
    /// The last row of its `-trace_stat` file, by column.
    pub stat: HashMap<String, String>,
    /// Its `-trace_logs` file (the scenarios' `<log>` lines).
    pub log: String,
    /// Its screen and error file, for failure messages.
    pub screen: String,
}

impl Done {
    /// A cumulative statistic, e.g. `SuccessfulCall(C)`.
    pub fn count(&self, column: &str) -> u64 {
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
    pub fn assert_calls_succeeded(&self, calls: u64) {
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
    pub fn invites(&self) -> Vec<Invite> {
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
pub struct Invite {
    pub ruri: String,
    pub history_info: String,
    pub diversion: String,
}

impl Sipp {
    /// Starts sipp with `args`, in `dir`, with its statistics, logs and errors in files there.
    pub fn spawn(dir: &Path, name: &str, args: &[String]) -> Sipp {
        Sipp::spawn_with(dir, name, args, true)
    }

    /// [`Sipp::spawn`], keeping every message (`-trace_msg`) only when `messages` is true (a
    /// soak's messages would fill the disk).
    pub fn spawn_with(dir: &Path, name: &str, args: &[String], messages: bool) -> Sipp {
        require_sipp();
        let file = |ext: &str| dir.join(format!("{name}.{ext}"));
        let mut cmd = Command::new("sipp");
        cmd.args(args)
            .args(["-trace_stat", "-stf"])
            .arg(file("csv"))
            .args(["-trace_logs", "-log_file"])
            .arg(file("log"))
            .args(["-trace_err", "-error_file"])
            .arg(file("err"));
        if messages {
            cmd.args(["-trace_msg", "-message_file"]).arg(file("msg"));
        }
        let child = cmd
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
    pub fn uas(dir: &Path, name: &str, scenario_file: &str, port: u16, calls: u32) -> Sipp {
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
        let uas = Sipp::spawn(dir, name, &args);
        // Listening before any caller starts: a call placed earlier would meet no backend.
        super::wait_udp_bound(port);
        uas
    }

    /// A carrier trunk calling the gateway at `gw`: `number` is the dialled Request-URI user;
    /// `extra` adds options (`-t t1`, `-key expected 410`, `-m 4` ...; `-m 1` otherwise).
    pub fn uac(
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
    pub fn finish(self) -> Done {
        self.finish_within(SIPP_DEADLINE)
    }

    /// Kills sipp now (a backend dying) and reads its files.
    pub fn kill(mut self) -> Done {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
        }
        self.finish_within(Duration::from_secs(5))
    }

    /// Waits for sipp to exit (killing it after `deadline`) and reads its files.
    pub fn finish_within(mut self, deadline: Duration) -> Done {
        let mut child = self.child.take().unwrap();
        // Polled rather than timed: tests do not read the clock (clippy.toml).
        const POLL: Duration = Duration::from_millis(20);
        let mut status = None;
        for _ in 0..deadline.as_millis() / POLL.as_millis() {
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
                "{} still running after {deadline:?}\n{}",
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

    pub fn read(&self, ext: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.{ext}", self.name))).unwrap_or_default()
    }
}

/// The sum of every series of `name` whose labels include all of `labels`; 0 when none does.
pub fn total(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
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
