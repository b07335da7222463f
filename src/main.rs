//! The `dualgate` command: run the gateway, check a mapping file, rehearse a route, or report
//! which legacy numbers are safe to retire. Start-up, signals and exit codes live here.

use anyhow::{anyhow, Context};
use clap::{Args, Parser, Subcommand};
use dualgate::calendar::phase_at;
use dualgate::cli::{self, Format};
use dualgate::clock::{Clock, SystemClock};
use dualgate::config::diff::{describe, diff, Description};
use dualgate::config::{self, parse_instant, Checked, ConfigError, Snapshot};
use dualgate::number::AreaCode;
use dualgate::report::{prometheus, Window};
use dualgate::sip::HostPort;
use dualgate::timeline::local_and_utc;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::watch;

/// sysexits.h EX_USAGE: the command line is wrong (a flag, a datetime, a window, a URL).
const EX_USAGE: u8 = 64;
/// sysexits.h EX_CONFIG: the configuration is wrong.
const EX_CONFIG: u8 = 78;
/// sysexits.h EX_UNAVAILABLE: a service the command needs did not answer.
const EX_UNAVAILABLE: u8 = 69;

const DEFAULT_CONFIG: &str = "mappings/fujian.toml";

/// Stateless SIP gateway moving a hotline from legacy numbers to a new short number.
///
/// Exit statuses: 0 success; 1 `retirement` found a retired number still in use; 64 a usage
/// error (flags, datetimes, windows, URLs); 69 Prometheus could not be queried; 75
/// `retirement` cannot judge a number (a gap in Prometheus' data); 78 a bad mapping file.
#[derive(Parser, Debug)]
#[command(name = "dualgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway (the default when no command is given).
    Run(RunArgs),
    /// Validate a mapping file and print its routing table and each legacy number's timeline;
    /// or list the boundaries still ahead (--upcoming); or show what a new file would change
    /// (--diff RUNNING NEW). Exit status 78 when a file is invalid.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Show phases at this instant instead of now (e.g. 2025-04-07T00:00:00+08:00).
        #[arg(long, value_parser = instant_arg)]
        at: Option<SystemTime>,
        /// List every future boundary (legacy phases, area launches) with a countdown.
        #[arg(long, conflicts_with = "diff")]
        upcoming: bool,
        /// Compare the running mapping file with a new one: what a reload would change.
        #[arg(long, num_args = 2, value_names = ["RUNNING", "NEW"], conflicts_with = "config")]
        diff: Option<Vec<PathBuf>>,
        /// Output: text for a person, or JSON for automation.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Print what a call to NUMBER would do, and until when, without sending anything.
    Route {
        /// The dialled number or Request-URI (85666661, 059112356, tel:+86-591-12356, sip:12356@gw).
        number: String,
        #[command(flatten)]
        config: ConfigArg,
        /// The trunk the call arrives on (its origin area resolves local numbers).
        #[arg(long, conflicts_with = "from_area")]
        trunk: Option<String>,
        /// The caller's area code, e.g. 0591, instead of a trunk.
        #[arg(long, value_parser = area_arg)]
        from_area: Option<AreaCode>,
        /// The instant to route at (default: now), e.g. 2025-05-07T00:00:00+08:00.
        #[arg(long, value_parser = instant_arg)]
        at: Option<SystemTime>,
        /// A Call-ID, to show which backend of the queue this call would reach.
        #[arg(long)]
        call_id: Option<String>,
        /// Output: text for a person, or JSON for automation.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Ask Prometheus how much traffic each legacy number still gets, from which trunks, whether
    /// it is dying down and whether it is safe to retire. Exit status: 0 every retired number is
    /// safe, 1 some is still in use, 75 some cannot be judged (a gap in Prometheus' data), 69
    /// Prometheus could not be queried.
    Retirement {
        /// Prometheus base URL, e.g. http://127.0.0.1:9091
        #[arg(long, value_parser = prometheus_arg)]
        prometheus: String,
        /// Window of traffic to judge by (Prometheus duration: 7d, 24h, 90m).
        #[arg(long, default_value = "7d", value_parser = window_arg)]
        window: Window,
        #[command(flatten)]
        config: ConfigArg,
        /// Judge phases at this instant instead of now; traffic is always queried up to now.
        #[arg(long, value_parser = instant_arg)]
        at: Option<SystemTime>,
        /// Output: a table for a person, or JSON for automation.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// PEM file of the CA to trust for an https Prometheus (default: the web PKI roots).
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// File holding a bearer token for Prometheus (user:password go in the URL instead).
        #[arg(long)]
        bearer_token_file: Option<PathBuf>,
        /// Time zone of the table's times: an IANA name (Asia/Shanghai), an offset (+08:00)
        /// or UTC. JSON stays in UTC.
        #[arg(long, default_value = "UTC", value_parser = dualgate::timeline::zone)]
        tz: jiff::tz::TimeZone,
    },
}

#[derive(Args, Debug, Default)]
struct ConfigArg {
    /// Mapping file (default: mappings/fujian.toml).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
}

/// A listen-address flag: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Listen(Option<SocketAddr>);

#[derive(Args, Debug, Default)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// SIP over UDP listen address, overriding the file's gateway.sip_udp ("off" disables).
    #[arg(long, value_parser = listen_arg)]
    sip_udp: Option<Listen>,
    /// SIP over TCP listen address, overriding the file's gateway.sip_tcp ("off" disables).
    #[arg(long, value_parser = listen_arg)]
    sip_tcp: Option<Listen>,
    /// Prometheus listen address, overriding the file's gateway.metrics ("off" disables).
    #[arg(long, value_parser = listen_arg)]
    metrics: Option<Listen>,
    /// host:port written in Via and Record-Route, overriding gateway.advertised.
    #[arg(long, value_parser = advertised_arg)]
    advertised: Option<HostPort>,
    /// Rehearse another date: the gateway's clock starts at this instant and runs on.
    #[arg(long, value_parser = instant_arg)]
    now: Option<SystemTime>,
    /// UDP worker threads, each with its own socket (SO_REUSEPORT); default: one per core.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    udp_workers: Option<u16>,
}

fn instant_arg(s: &str) -> Result<SystemTime, String> {
    parse_instant(s)
}

fn area_arg(s: &str) -> Result<AreaCode, String> {
    AreaCode::new(s.trim()).map_err(|e| e.to_string())
}

fn window_arg(s: &str) -> Result<Window, String> {
    dualgate::report::parse_window(s).map_err(|e| e.to_string())
}

fn prometheus_arg(s: &str) -> Result<String, String> {
    prometheus::check_url(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

fn listen_arg(s: &str) -> Result<Listen, String> {
    match s.trim() {
        "off" => Ok(Listen(None)),
        a => a
            .parse()
            .map(|a| Listen(Some(a)))
            .map_err(|_| format!("`{s}` is not an ip:port address or \"off\"")),
    }
}

fn advertised_arg(s: &str) -> Result<HostPort, String> {
    let hp: HostPort = s
        .parse()
        .map_err(|e: dualgate::sip::uri::HostPortError| e.to_string())?;
    Ok(HostPort {
        port: Some(hp.port_or_default()),
        ..hp
    })
}

fn config_path(c: &ConfigArg) -> PathBuf {
    match &c.config {
        Some(p) => p.clone(),
        None => {
            let local = PathBuf::from(DEFAULT_CONFIG);
            let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG);
            if !local.exists() && shipped.exists() {
                shipped
            } else {
                local
            }
        }
    }
}

/// A command-line value the library rejected (a trunk that is not configured): exit 64.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

/// Standard output was closed by its reader (`dualgate check | head`): stop quietly.
#[derive(Debug, thiserror::Error)]
#[error("standard output closed")]
struct Closed;

/// Writes a command's output; a closed pipe becomes [`Closed`].
fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Closed.into()),
        Err(e) => Err(anyhow!(e).context("writing to standard output")),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version print to stdout and succeed; every other clap error is a
            // usage error.
            let code = if e.use_stderr() { EX_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: files and the journal get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command.unwrap_or(Command::Run(RunArgs::default())) {
        Command::Run(args) => run(args),
        Command::Check {
            config,
            at,
            upcoming,
            diff,
            format,
        } => match diff.as_deref() {
            Some([running, new]) => check_diff(running, new, format),
            _ => check(&config_path(&config), at, upcoming, format),
        },
        Command::Route {
            number,
            config,
            trunk,
            from_area,
            at,
            call_id,
            format,
        } => route(
            &config_path(&config),
            &cli::route::Query {
                number: &number,
                trunk: trunk.as_deref(),
                from_area,
                call_id: call_id.as_deref(),
            },
            at,
            format,
        ),
        Command::Retirement {
            prometheus,
            window,
            config,
            at,
            format,
            ca_file,
            bearer_token_file,
            tz,
        } => retirement(
            &config_path(&config),
            &prometheus,
            window,
            at,
            (format, &tz),
            &prometheus::Access {
                ca_file,
                bearer_token_file,
                timeout: None,
            },
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<Closed>().is_some() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dualgate: {e:#}");
            if e.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(EX_CONFIG)
            } else if e.downcast_ref::<Usage>().is_some() {
                ExitCode::from(EX_USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn instant_or_now(at: Option<SystemTime>) -> SystemTime {
    at.unwrap_or_else(|| SystemClock::real().now())
}

/// Prints a valid file's warnings on standard error (the output stays machine-readable).
fn print_warnings(path: &Path, c: &Checked) {
    for w in &c.warnings {
        eprintln!("warning: {}", w.display(path));
    }
}

/// Listen-address flags, applied to every snapshot loaded (start-up and reloads).
struct Overrides {
    sip_udp: Option<Option<SocketAddr>>,
    sip_tcp: Option<Option<SocketAddr>>,
    metrics: Option<Option<SocketAddr>>,
    advertised: Option<HostPort>,
    /// The branch key when the file sets none: random, drawn once per process.
    secret: dualgate::sip::Key,
}

impl Overrides {
    fn from(args: &RunArgs) -> anyhow::Result<Overrides> {
        let mut secret = [0u8; 16];
        getrandom::fill(&mut secret)
            .map_err(|e| anyhow!("no randomness for the branch key: {e}"))?;
        Ok(Overrides {
            sip_udp: args.sip_udp.map(|l| l.0),
            sip_tcp: args.sip_tcp.map(|l| l.0),
            metrics: args.metrics.map(|l| l.0),
            advertised: args.advertised.clone(),
            secret: dualgate::sip::Key::from_bytes(secret),
        })
    }

    fn apply(&self, mut s: Snapshot) -> Snapshot {
        let g = &mut s.gateway;
        if g.secret.is_none() {
            tracing::warn!(
                "no gateway.secret or secret_file: branches are keyed with a random key of this \
                 process, so another replica (or this one after a restart) drops the responses \
                 to requests this one forwarded; give every replica the same secret"
            );
            g.secret = Some(self.secret);
        }
        // An advertised address that was the listen address follows a moved listener.
        let advertised_follows = [g.sip_udp, g.sip_tcp]
            .into_iter()
            .flatten()
            .any(|a| g.advertised.host_port().same(&a.into()));
        if let Some(a) = self.sip_udp {
            g.sip_udp = a;
        }
        if let Some(a) = self.sip_tcp {
            g.sip_tcp = a;
        }
        if let Some(a) = self.metrics {
            g.metrics = a;
        }
        if let Some(hp) = &self.advertised {
            g.advertised = hp.clone().into();
        } else if advertised_follows {
            if let Some(a) = g.sip_udp.or(g.sip_tcp) {
                g.advertised = a.into();
            }
        }
        s
    }
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let path = config_path(&args.config);
    let overrides = Overrides::from(&args)?;
    let clock: Arc<dyn Clock> = match args.now {
        Some(start) => {
            let real = SystemClock::real().now();
            let offset = dualgate::clock::unix_seconds(start) - dualgate::clock::unix_seconds(real);
            tracing::warn!(
                now = %local_and_utc(start),
                offset_seconds = offset.round() as i64,
                "--now: the gateway's clock starts at this instant (not the real time) and runs on; the calendar follows it"
            );
            Arc::new(SystemClock::starting_at(start))
        }
        None => Arc::new(SystemClock::real()),
    };
    // Connection budgets derive from the descriptor limit: take all the hard limit allows.
    match dualgate::transport::raise_open_files_limit() {
        Ok(n) => tracing::info!(
            nofile = n,
            "file-descriptor limit (RLIMIT_NOFILE soft = hard)"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            nofile = dualgate::transport::open_files_limit(),
            "cannot raise the file-descriptor limit; connection budgets follow the current one"
        ),
    }
    let checked = config::load_checked(&path)?;
    log_warnings(&path, &checked);
    let snap = overrides.apply(checked.snapshot);
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let udp_workers = args.udp_workers;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let g = snap.gateway.clone();
        let registry =
            dualgate::metrics::install(&g.replica).context("installing the metrics recorder")?;
        // The HTTP listener (metrics, health, status page) comes up before SIP, so /readyz can
        // say what is missing; `--metrics off` opens none.
        let served = Arc::new(snap.clone());
        let (tx, rx) = watch::channel(served.clone());
        let http = match g.metrics {
            Some(addr) => {
                let l = dualgate::http::bind(addr)
                    .await
                    .with_context(|| format!("starting the metrics listener on {addr}"))?;
                let ctx = dualgate::http::Context::new(registry, rx.clone(), clock.clone());
                tokio::spawn(dualgate::http::serve(l, ctx.clone()));
                Some(ctx)
            }
            None => None,
        };
        let sockets = dualgate::Sockets::bind(&g).await.with_context(|| {
            format!(
                "binding SIP on udp {} / tcp {}",
                cli::check::addr(g.sip_udp),
                cli::check::addr(g.sip_tcp)
            )
        })?;
        if let Some(ctx) = &http {
            ctx.sip_bound();
        }
        let now = clock.now();
        let described = describe(&snap);
        let sha256 = described.fingerprint();
        dualgate::metrics::register(&served, now);
        dualgate::metrics::register_failover(&served);
        dualgate::metrics::record_calendar(&served, now);
        drop(served);
        dualgate::metrics::record_config(None, &sha256);
        dualgate::metrics::record_reload(true, now);
        tracing::info!(
            config = %path.display(),
            sip_udp = %cli::check::addr(g.sip_udp),
            sip_tcp = %cli::check::addr(g.sip_tcp),
            metrics = %cli::check::addr(g.metrics),
            advertised = %g.advertised,
            numbers = snap.mappings.numbers().count(),
            sha256 = %sha256,
            "dualgate listening"
        );
        if dualgate::watcher::enabled() {
            // A changed file (a ConfigMap update) takes the SIGHUP path below.
            tokio::spawn(dualgate::watcher::mapping_file(
                path.clone(),
                dualgate::watcher::EVERY,
            ));
        }
        let served = Served { described, sha256 };
        tokio::spawn(reload_on_sighup(path, overrides, tx, served, clock.clone()));
        let udp_workers = udp_workers.map_or(workers, usize::from);
        dualgate::run(sockets, udp_workers, rx, clock, shutdown_signal())
            .await
            .context("serving")?;
        tracing::info!("dualgate stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn log_warnings(path: &Path, c: &Checked) {
    for w in &c.warnings {
        tracing::warn!(config = %path.display(), warning = %w.display(path), "mapping file warning");
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

/// What the reload loop keeps of the snapshot being served, to tell what a new file changes.
struct Served {
    /// Its entries as an operator reads them.
    described: Description,
    /// Its routing fingerprint.
    sha256: String,
}

/// SIGHUP reloads the mapping file: a valid file replaces the snapshot for the next message,
/// and what changed is logged (`[gateway]` fields read only at start-up as warnings); a bad one
/// is logged and counted, and the old snapshot keeps serving.
///
/// The reloads run one after another on a thread of their own, not on the runtime's threads.
/// Reading a national-size file allocates several times the snapshot for a moment (≈ 50 MB).
/// Run on whichever runtime thread was free, that peak landed in a different glibc arena each
/// time, and the resident size climbed for dozens of reloads (85 → 285 MB) unless every reload
/// ended in `malloc_trim`, which handed the pages back only for the next reload to fault them
/// in again (10 000 faults, a fifth of its time). On one thread, one arena holds that peak and
/// every reload reuses it: flat from the first reload, with no trim (BENCHMARKS.md).
async fn reload_on_sighup(
    path: PathBuf,
    overrides: Overrides,
    tx: watch::Sender<Arc<Snapshot>>,
    served: Served,
    clock: Arc<dyn Clock>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: reloads disabled");
        return;
    };
    // One pending request is enough: signals that arrive during a reload fold into the next.
    let (wake, mut asked) = tokio::sync::mpsc::channel::<()>(1);
    let reload_clock = clock.clone();
    let reloader = std::thread::Builder::new()
        .name("dualgate-reload".into())
        .spawn(move || {
            let mut served = served;
            while asked.blocking_recv().is_some() {
                reload(&path, &overrides, &tx, &mut served, reload_clock.as_ref());
            }
        });
    if let Err(e) = reloader {
        tracing::warn!(error = %e, "cannot start the reload thread: reloads disabled");
        return;
    }
    while hup.recv().await.is_some() {
        match wake.try_send(()) {
            // Sent, or a reload is already pending: it will read the file as it is now.
            Ok(()) | Err(tokio::sync::mpsc::error::TrySendError::Full(())) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Closed(())) => {
                tracing::error!("the reload thread has stopped: reloads disabled until restart");
                dualgate::metrics::record_reload(false, clock.now());
            }
        }
    }
}

/// One reload: load and check the file, register its series, swap it in, log what changed.
fn reload(
    path: &Path,
    overrides: &Overrides,
    tx: &watch::Sender<Arc<Snapshot>>,
    served: &mut Served,
    clock: &dyn Clock,
) {
    let now = clock.now();
    let watch = dualgate::clock::Stopwatch::start();
    match config::load_checked(path) {
        Ok(checked) => {
            let load = watch.elapsed();
            log_warnings(path, &checked);
            let new = Arc::new(overrides.apply(checked.snapshot));
            let numbers = new.mappings.numbers().count();
            let described = describe(&new);
            let sha256 = described.fingerprint();
            let fingerprinted = watch.elapsed();
            // Every series the new mappings can count exists (at 0) before they serve.
            dualgate::metrics::register(&new, now);
            dualgate::metrics::register_failover(&new);
            dualgate::metrics::record_calendar(&new, now);
            dualgate::metrics::record_config(Some(&served.sha256), &sha256);
            let registered = watch.elapsed();
            tx.send_replace(new);
            // What changed only feeds the log: told once the new mappings serve.
            let served_then = std::mem::replace(served, Served { described, sha256 });
            let changes = served_then.described.diff(&served.described);
            drop(served_then);
            for c in changes.needing_restart() {
                tracing::warn!(config = %path.display(), field = %format!("gateway.{}", c.field), change = %c, "this change takes effect on restart only");
            }
            for c in changes.applied() {
                tracing::info!(config = %path.display(), change = %c, "reload changes");
            }
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
            let compared = watch.elapsed().saturating_sub(registered);
            tracing::info!(
                config = %path.display(),
                numbers,
                changes = changes.applied().count(),
                restart_needed = changes.needing_restart().count(),
                sha256 = %served.sha256,
                load_ms = ms(load),
                diff_ms = ms(fingerprinted.saturating_sub(load) + compared),
                metrics_ms = ms(registered.saturating_sub(fingerprinted)),
                "mappings reloaded"
            );
            // Swapped and told, then counted: whoever waits on the counter sees the new
            // mappings and finds what changed logged.
            dualgate::metrics::record_reload(true, now);
        }
        Err(e) => {
            // Log, then count: whoever waits on the counter finds the reason logged.
            tracing::error!(error = %e, "reload rejected; the previous mappings keep serving");
            dualgate::metrics::record_reload(false, now);
        }
    }
}

fn check(
    path: &Path,
    at: Option<SystemTime>,
    upcoming: bool,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let checked = match config::load_checked(path) {
        Ok(c) => c,
        Err(ConfigError::Invalid { path, issues }) if format == Format::Json => {
            emit(&cli::problems_json(&path, &issues))?;
            return Err(ConfigError::Invalid { path, issues }.into());
        }
        Err(e) => return Err(e.into()),
    };
    let now = instant_or_now(at);
    print_warnings(path, &checked);
    let text = match (upcoming, format) {
        (true, Format::Table) => cli::check::upcoming(path, &checked.snapshot, now),
        (true, Format::Json) => cli::check::upcoming_json(path, &checked.snapshot, now),
        (false, Format::Table) => cli::check::render(path, &checked, now),
        (false, Format::Json) => cli::check::render_json(path, &checked, now),
    };
    emit(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn check_diff(running: &Path, new: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let old = config::load(running)?;
    let checked = config::load_checked(new)?;
    print_warnings(new, &checked);
    let d = diff(&old, &checked.snapshot);
    emit(&match format {
        Format::Table => cli::check::diff(running, new, &d),
        Format::Json => cli::check::diff_json(running, new, &d),
    })?;
    Ok(ExitCode::SUCCESS)
}

fn route(
    path: &Path,
    query: &cli::route::Query<'_>,
    at: Option<SystemTime>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let snap = config::load(path)?;
    let now = instant_or_now(at);
    let r = cli::route::rehearse(&snap, query, now)
        .map_err(|e| Usage(format!("--trunk: {e} (in {})", path.display())))?;
    emit(&match format {
        Format::Table => cli::route::render(&r, now),
        Format::Json => cli::route::render_json(&r),
    })?;
    Ok(ExitCode::SUCCESS)
}

fn retirement(
    path: &Path,
    url: &str,
    window: Window,
    at: Option<SystemTime>,
    (format, tz): (Format, &jiff::tz::TimeZone),
    access: &prometheus::Access,
) -> anyhow::Result<ExitCode> {
    use dualgate::report::{assess, outcome, render, render_json, LegacyLine};
    let snap = config::load(path)?;
    let phase_instant = instant_or_now(at);
    let m = &snap.mappings;
    let lines: Vec<LegacyLine> = m
        .legacy
        .iter()
        .map(|l| LegacyLine {
            number: l.number.clone(),
            name: l.name.clone(),
            new_number: l
                .area(&m.areas)
                .map_or_else(|| m.new_number.clone(), |a| a.new_number.clone()),
            phase: phase_at(&l.schedule, phase_instant).name(),
            max_share: l.max_share,
        })
        .collect();
    // Traffic is what Prometheus holds up to now; `--at` only moves the calendar.
    let now = dualgate::clock::unix_seconds(SystemClock::real().now()).floor() as i64;
    let shown = prometheus::mask(url);
    let observed = match prometheus::Client::new(url, access)
        .and_then(|client| prometheus::observe(&client, &window, now))
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("dualgate: cannot query Prometheus at {shown}: {e}");
            return Ok(ExitCode::from(EX_UNAVAILABLE));
        }
    };
    // Numbers without series are rows with an "unknown" verdict; say it here too, with the
    // likely cause.
    let missing: Vec<&str> = lines
        .iter()
        .flat_map(|l| [l.number.as_str(), l.new_number.as_str()])
        .filter(|n| !observed.calls.contains_key(*n))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "dualgate: Prometheus at {shown} has no dualgate_call_attempts_total over {window} for {}; \
             is every gateway replica scraped (see deploy/prometheus.yml) and the window longer than two scrape intervals?",
            missing.join(", ")
        );
    }
    let rows = assess(&lines, &observed, now, window.seconds());
    emit(&match format {
        Format::Table => render(&rows, &window.to_string(), now, tz),
        Format::Json => render_json(&rows, &window, now),
    })?;
    Ok(ExitCode::from(outcome(&rows).exit_code()))
}
