//! The `dualgate` command: run the gateway, check a mapping file, rehearse a route, or report
//! which legacy numbers are safe to retire. Start-up, signals and exit codes live here.

use anyhow::{anyhow, Context};
use clap::{Args, Parser, Subcommand};
use dualgate::calendar::phase_at;
use dualgate::clock::{Clock, SystemClock};
use dualgate::config::{self, parse_instant, ConfigError, Snapshot, Trunk};
use dualgate::number::{normalize, AreaCode, Dialling};
use dualgate::route::{decide, Decision, Facts, Source};
use dualgate::sip::Method;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::watch;

/// sysexits.h EX_CONFIG: the configuration is wrong.
const EX_CONFIG: u8 = 78;
/// sysexits.h EX_UNAVAILABLE: a service the command needs did not answer.
const EX_UNAVAILABLE: u8 = 69;

const DEFAULT_CONFIG: &str = "mappings/fujian.toml";

/// Stateless SIP gateway moving a hotline from legacy numbers to a new short number.
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
    /// Validate a mapping file and print its routing table and each legacy number's timeline.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Show phases at this instant instead of now (e.g. 2025-04-07T00:00:00+08:00).
        #[arg(long)]
        at: Option<String>,
    },
    /// Print what a call to NUMBER would do, without sending anything.
    Route {
        /// The dialled number or Request-URI (85666661, 059112356, tel:+86-591-12356, sip:12356@gw).
        number: String,
        #[command(flatten)]
        config: ConfigArg,
        /// The trunk the call arrives on (its origin area resolves local numbers).
        #[arg(long, conflicts_with = "from_area")]
        trunk: Option<String>,
        /// The caller's area code, e.g. 0591, instead of a trunk.
        #[arg(long)]
        from_area: Option<String>,
        /// The instant to route at (default: now), e.g. 2025-05-07T00:00:00+08:00.
        #[arg(long)]
        at: Option<String>,
        /// A Call-ID, to show which backend of the queue this call would reach.
        #[arg(long)]
        call_id: Option<String>,
    },
    /// Ask Prometheus how much traffic each legacy number still gets, from which trunks, whether
    /// it is dying down and whether it is safe to retire. Exit status: 0 every retired number is
    /// safe, 1 some is still in use, 75 some cannot be judged (a gap in Prometheus' data), 69
    /// Prometheus could not be queried.
    Retirement {
        /// Prometheus base URL, e.g. http://127.0.0.1:9091
        #[arg(long)]
        prometheus: String,
        /// Window of traffic to judge by (Prometheus duration: 7d, 24h, 90m).
        #[arg(long, default_value = "7d")]
        window: String,
        #[command(flatten)]
        config: ConfigArg,
        /// Judge phases at this instant instead of now; traffic is always queried up to now.
        #[arg(long)]
        at: Option<String>,
        /// Output: a table for a person, or JSON for automation.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// PEM file of the CA to trust for an https Prometheus (default: the web PKI roots).
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// File holding a bearer token for Prometheus (user:password go in the URL instead).
        #[arg(long)]
        bearer_token_file: Option<PathBuf>,
    },
}

/// How a report is printed.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// An aligned text table.
    Table,
    /// One JSON document.
    Json,
}

#[derive(Args, Debug, Default)]
struct ConfigArg {
    /// Mapping file (default: mappings/fujian.toml).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
}

#[derive(Args, Debug, Default)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// SIP over UDP listen address, overriding the file's gateway.sip_udp ("off" disables).
    #[arg(long)]
    sip_udp: Option<String>,
    /// SIP over TCP listen address, overriding the file's gateway.sip_tcp ("off" disables).
    #[arg(long)]
    sip_tcp: Option<String>,
    /// Prometheus listen address, overriding the file's gateway.metrics ("off" disables).
    #[arg(long)]
    metrics: Option<String>,
    /// host:port written in Via and Record-Route, overriding gateway.advertised.
    #[arg(long)]
    advertised: Option<String>,
    /// Rehearse another date: the gateway's clock starts at this instant and runs on.
    #[arg(long)]
    now: Option<String>,
    /// UDP worker threads, each with its own socket (SO_REUSEPORT); default: one per core.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    udp_workers: Option<u16>,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Command::Check { config, at } => check(&config_path(&config), at.as_deref()),
        Command::Route {
            number,
            config,
            trunk,
            from_area,
            at,
            call_id,
        } => route(
            &config_path(&config),
            &number,
            trunk.as_deref(),
            from_area.as_deref(),
            at.as_deref(),
            call_id.as_deref(),
        ),
        Command::Retirement {
            prometheus,
            window,
            config,
            at,
            format,
            ca_file,
            bearer_token_file,
        } => retirement(
            &config_path(&config),
            &prometheus,
            &window,
            at.as_deref(),
            format,
            &dualgate::report::prometheus::Access {
                ca_file,
                bearer_token_file,
                timeout: None,
            },
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dualgate: {e:#}");
            if e.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(EX_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn instant_or_now(at: Option<&str>) -> anyhow::Result<SystemTime> {
    match at {
        Some(s) => parse_instant(s).map_err(|e| anyhow!(e)),
        None => Ok(SystemClock::real().now()),
    }
}

/// Listen-address flags, applied to every snapshot loaded (start-up and reloads).
struct Overrides {
    sip_udp: Option<Option<SocketAddr>>,
    sip_tcp: Option<Option<SocketAddr>>,
    metrics: Option<Option<SocketAddr>>,
    advertised: Option<(String, u16)>,
    /// The branch key when the file sets none: random, for this process's life (reloads too).
    secret: dualgate::sip::Key,
}

fn addr_flag(name: &str, v: Option<&str>) -> anyhow::Result<Option<Option<SocketAddr>>> {
    match v {
        None => Ok(None),
        Some("off") => Ok(Some(None)),
        Some(s) => s
            .parse()
            .map(|a| Some(Some(a)))
            .map_err(|_| anyhow!("--{name} `{s}` is not an ip:port address")),
    }
}

impl Overrides {
    fn from(args: &RunArgs) -> anyhow::Result<Overrides> {
        let advertised = match args.advertised.as_deref() {
            None => None,
            Some(s) => {
                let (h, p) = s
                    .rsplit_once(':')
                    .ok_or_else(|| anyhow!("--advertised `{s}` is not host:port"))?;
                Some((
                    h.to_string(),
                    p.parse()
                        .map_err(|_| anyhow!("--advertised `{s}` has a bad port"))?,
                ))
            }
        };
        let mut secret = [0u8; 16];
        getrandom::fill(&mut secret)
            .map_err(|e| anyhow!("no randomness for the branch key: {e}"))?;
        Ok(Overrides {
            sip_udp: addr_flag("sip-udp", args.sip_udp.as_deref())?,
            sip_tcp: addr_flag("sip-tcp", args.sip_tcp.as_deref())?,
            metrics: addr_flag("metrics", args.metrics.as_deref())?,
            advertised,
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
        let follows = |a: Option<SocketAddr>, host: &str, port: u16| {
            a.is_some_and(|a| {
                a.port() == port
                    && a.ip().to_string() == host.trim_start_matches('[').trim_end_matches(']')
            })
        };
        // An advertised address that was the listen address follows a moved listener.
        let advertised_follows = follows(g.sip_udp, &g.advertised_host, g.advertised_port)
            || follows(g.sip_tcp, &g.advertised_host, g.advertised_port);
        if let Some(a) = self.sip_udp {
            g.sip_udp = a;
        }
        if let Some(a) = self.sip_tcp {
            g.sip_tcp = a;
        }
        if let Some(a) = self.metrics {
            g.metrics = a;
        }
        if let Some((h, p)) = &self.advertised {
            g.advertised_host.clone_from(h);
            g.advertised_port = *p;
        } else if advertised_follows {
            if let Some(a) = g.sip_udp.or(g.sip_tcp) {
                g.advertised_host = match a.ip() {
                    std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                    v4 => v4.to_string(),
                };
                g.advertised_port = a.port();
            }
        }
        s
    }
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let path = config_path(&args.config);
    let overrides = Overrides::from(&args)?;
    let clock: Arc<dyn Clock> = match args.now.as_deref() {
        Some(s) => Arc::new(SystemClock::starting_at(
            parse_instant(s).map_err(|e| anyhow!("--now: {e}"))?,
        )),
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
    let snap = overrides.apply(config::load(&path)?);
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
        let (tx, rx) = watch::channel(Arc::new(snap.clone()));
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
        let sockets = dualgate::Sockets::bind(&g)
            .await
            .with_context(|| format!("binding SIP on udp {:?} / tcp {:?}", g.sip_udp, g.sip_tcp))?;
        if let Some(ctx) = &http {
            ctx.sip_bound();
        }
        let now = clock.now();
        dualgate::metrics::register(&snap, now);
        dualgate::metrics::register_failover(&snap);
        dualgate::metrics::record_reload(true, now);
        tracing::info!(
            config = %path.display(),
            sip_udp = ?g.sip_udp,
            sip_tcp = ?g.sip_tcp,
            metrics = ?g.metrics,
            advertised = %g.advertised(),
            numbers = snap.mappings.numbers().count(),
            "dualgate listening"
        );
        if dualgate::watcher::enabled() {
            // A changed file (a ConfigMap update) takes the SIGHUP path below.
            tokio::spawn(dualgate::watcher::mapping_file(
                path.clone(),
                dualgate::watcher::EVERY,
            ));
        }
        tokio::spawn(reload_on_sighup(path, overrides, tx, clock.clone()));
        let udp_workers = udp_workers.map_or(workers, usize::from);
        dualgate::run(sockets, udp_workers, rx, clock, shutdown_signal())
            .await
            .context("serving")?;
        tracing::info!("dualgate stopped");
        Ok(ExitCode::SUCCESS)
    })
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

/// SIGHUP reloads the mapping file: a valid file replaces the snapshot for the next message; a
/// bad one is logged and counted, and the old snapshot keeps serving.
async fn reload_on_sighup(
    path: PathBuf,
    overrides: Overrides,
    tx: watch::Sender<Arc<Snapshot>>,
    clock: Arc<dyn Clock>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: reloads disabled");
        return;
    };
    while hup.recv().await.is_some() {
        let now = clock.now();
        match config::load(&path) {
            Ok(new) => {
                let new = overrides.apply(new);
                let old = tx.borrow().gateway.clone();
                let g = &new.gateway;
                if (g.sip_udp, g.sip_tcp, g.metrics) != (old.sip_udp, old.sip_tcp, old.metrics) {
                    tracing::warn!(
                        "listen addresses changed in {}: they take effect on restart",
                        path.display()
                    );
                }
                dualgate::metrics::register(&new, now);
                dualgate::metrics::register_failover(&new);
                dualgate::metrics::record_reload(true, now);
                tracing::info!(config = %path.display(), numbers = new.mappings.numbers().count(), "mappings reloaded");
                tx.send_replace(Arc::new(new));
            }
            Err(e) => {
                dualgate::metrics::record_reload(false, now);
                tracing::error!(error = %e, "reload rejected; the previous mappings keep serving");
            }
        }
    }
}

fn fmt_instant(t: SystemTime) -> String {
    // Shown in China Standard Time, as the shipped mappings are written, and in UTC.
    let secs = dualgate::clock::unix_seconds(t).floor() as i64;
    let cst = dualgate::report::iso8601(secs + 8 * 3600).replace('Z', "+08:00");
    format!("{cst} ({})", dualgate::report::iso8601(secs))
}

fn check(path: &Path, at: Option<&str>) -> anyhow::Result<ExitCode> {
    let snap = config::load(path)?;
    let now = instant_or_now(at)?;
    let m = &snap.mappings;
    let g = &snap.gateway;
    println!("{}: OK", path.display());
    println!("\ngateway: sip udp {:?}, tcp {:?}, metrics {:?}, advertised {}, record-route {}, replica {}", g.sip_udp, g.sip_tcp, g.metrics, g.advertised(), g.record_route, g.replica);
    println!(
        "branch key: {}; strangers: {}; tcp message deadline {:?}, output budget {} bytes per connection",
        if g.secret.is_some() { "configured" } else { "none (random per process: replicas cannot share responses)" },
        if g.answer_strangers { "answered 403 (never larger than the request)" } else { "dropped silently" },
        g.tcp.message_deadline,
        g.tcp.output_budget,
    );
    println!("\nqueues:");
    for q in &snap.queues {
        let backends: Vec<&str> = q.backends.iter().map(|b| b.uri.as_str()).collect();
        println!(
            "  {:<14} target {:<16} backends {}",
            q.name,
            q.target,
            backends.join(", ")
        );
    }
    println!("\ntrunks:");
    for t in &snap.trunks {
        let sources: Vec<String> = t.sources.iter().map(ToString::to_string).collect();
        println!(
            "  {:<14} origin area {:<6} sources {}",
            t.name,
            t.origin_area.as_ref().map_or("-", AreaCode::as_str),
            sources.join(", ")
        );
    }
    println!(
        "\nnew number {} (no area known: queue {}):",
        m.new_number,
        m.default_queue
            .and_then(|i| snap.queues.get(i))
            .map_or("none (404)", |q| &q.name)
    );
    for a in &m.areas {
        let launch = a.launch.map_or_else(
            || "always".to_string(),
            |l| format!("from {}", fmt_instant(l)),
        );
        let queue = snap.queues.get(a.queue).map_or("?", |q| &q.name);
        println!(
            "  {:<10} {:<24} -> {:<12} {launch}",
            a.new_number, a.name, queue
        );
    }
    println!("\nlegacy numbers (phase at {}):", fmt_instant(now));
    for l in &m.legacy {
        let s = &l.schedule;
        let queue = snap.queues.get(l.queue).map_or("?", |q| &q.name);
        println!("  {} {} -> {queue}", l.number, l.name);
        println!("    before          until {}", fmt_instant(s.parallel_from));
        println!(
            "    parallel        {} .. {}",
            fmt_instant(s.parallel_from),
            fmt_instant(s.retired_from)
        );
        let treatment = match &s.when_retired {
            dualgate::calendar::Treatment::Announce { queue } => format!(
                "announce via queue {}",
                snap.queues.get(*queue).map_or("?", |q| &q.name)
            ),
            dualgate::calendar::Treatment::Redirect { status } => {
                format!("redirect {status} to the area's new number")
            }
            dualgate::calendar::Treatment::Reject { status, reason } => {
                format!("reject {status} \"{reason}\"")
            }
            dualgate::calendar::Treatment::Route => "route (grace period, marked)".to_string(),
        };
        println!(
            "    retired         from {}: {treatment}",
            fmt_instant(s.retired_from)
        );
        if let Some(d) = s.decommissioned_from {
            println!("    decommissioned  from {}: 404", fmt_instant(d));
        }
        println!("    now: {}", phase_at(s, now).as_str());
    }
    Ok(ExitCode::SUCCESS)
}

fn route(
    path: &Path,
    number: &str,
    trunk: Option<&str>,
    from_area: Option<&str>,
    at: Option<&str>,
    call_id: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let snap = config::load(path)?;
    let now = instant_or_now(at)?;
    let synthetic;
    let t: &Trunk = match (trunk, from_area) {
        (Some(name), _) => snap
            .trunks
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| anyhow!("no trunk named `{name}` in {}", path.display()))?,
        (None, area) => {
            let origin_area = area
                .map(AreaCode::new)
                .transpose()
                .map_err(|e| anyhow!("--from-area: {e}"))?;
            synthetic = Trunk {
                name: "(command line)".into(),
                sources: Vec::new(),
                origin_area,
                limits: dualgate::limit::Limits::default(),
            };
            &synthetic
        }
    };
    let uri = if number.contains(':') {
        number.to_string()
    } else {
        format!(
            "sip:{}@{}",
            number.replace(' ', ""),
            snap.gateway.advertised()
        )
    };
    println!("at:        {}", fmt_instant(now));
    println!(
        "trunk:     {} (origin area {})",
        t.name,
        t.origin_area.as_ref().map_or("none", AreaCode::as_str)
    );
    match normalize(
        &uri,
        &Dialling {
            origin_area: t.origin_area.clone(),
        },
    ) {
        Ok(d) => println!("canonical: {}", d.as_str()),
        Err(e) => println!("canonical: not a number: {e}"),
    }
    let routed = decide(
        &Facts {
            method: Method::Invite,
            request_uri: &uri,
            source: Source::Trunk(t),
        },
        &snap,
        now,
    );
    println!("number:    {} (phase {})", routed.number, routed.phase);
    match routed.decision {
        Decision::Forward { queue, user, mark } => {
            let q = snap
                .queues
                .get(queue)
                .ok_or_else(|| anyhow!("queue index {queue} out of range"))?;
            println!(
                "decision:  forward to queue {} as sip:{user}@<backend>{}",
                q.name,
                if mark {
                    ", marked as a legacy call (History-Info/Diversion)"
                } else {
                    ""
                }
            );
            for line in dualgate::backend::explain(&snap, queue, now) {
                println!("           {line}");
            }
            let down = dualgate::health::Down::none();
            let taken = match dualgate::backend::pick(&snap, queue, b"", &down, now) {
                dualgate::backend::Pick::To { queue, .. } => snap.queues.get(queue).unwrap_or(q),
                dualgate::backend::Pick::Nowhere { .. } => q,
            };
            let q = taken;
            match call_id {
                Some(c) => {
                    let b = dualgate::proxy::choose(&q.backends, c.as_bytes())
                        .ok_or_else(|| anyhow!("queue {} has no backends", q.name))?;
                    println!("backend:   {} (Call-ID {c})", b.uri);
                }
                None => {
                    let all: Vec<&str> = q.backends.iter().map(|b| b.uri.as_str()).collect();
                    println!(
                        "backend:   one of {} by Call-ID (give --call-id to see which)",
                        all.join(", ")
                    );
                }
            }
        }
        Decision::Reply {
            status,
            reason,
            reason_header,
            contact,
            ..
        } => {
            println!("decision:  answer {status} {reason}");
            if let Some(r) = reason_header {
                println!("           Reason: {r}");
            }
            if let Some(c) = contact {
                println!("           Contact: {c}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn retirement(
    path: &Path,
    prometheus: &str,
    window: &str,
    at: Option<&str>,
    format: Format,
    access: &dualgate::report::prometheus::Access,
) -> anyhow::Result<ExitCode> {
    use dualgate::report::{assess, outcome, parse_window, render, render_json, LegacyLine};
    let snap = config::load(path)?;
    let phase_instant = instant_or_now(at)?;
    let window = parse_window(window).map_err(|e| anyhow!("--window: {e}"))?;
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
    let shown = dualgate::report::prometheus::mask(prometheus);
    // Traffic is what Prometheus holds up to now; `--at` only moves the calendar.
    let now = dualgate::clock::unix_seconds(SystemClock::real().now()).floor() as i64;
    let observed = match dualgate::report::prometheus::Client::new(prometheus, access)
        .and_then(|client| dualgate::report::prometheus::observe(&client, &window, now))
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
    match format {
        Format::Table => print!("{}", render(&rows, &window.to_string(), now)),
        Format::Json => print!("{}", render_json(&rows, &window, now)),
    }
    Ok(ExitCode::from(outcome(&rows).exit_code()))
}
