#![allow(clippy::unwrap_used)]
//! The files in `deploy/` are checked by the tools that will load them: `promtool` (from the
//! Debian package `prometheus`) validates the scrape config and the rules and runs the rules'
//! unit tests, and the Grafana dashboard may only query metrics the gateway exports.
//!
//! A missing `promtool` fails these tests: `.ci/run` installs it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every metric the gateway exports (see `src/metrics.rs`); dashboards may use nothing else.
const METRICS: &[&str] = &[
    "dualgate_requests_total",
    "dualgate_call_attempts_total",
    "dualgate_call_outcomes_total",
    "dualgate_last_call_timestamp_seconds",
    "dualgate_legacy_phase",
    "dualgate_legacy_retired_from_timestamp_seconds",
    "dualgate_rejected_total",
    "dualgate_config_reloads_total",
    "dualgate_config_last_reload_success_timestamp_seconds",
    "dualgate_backend_errors_total",
    "dualgate_request_duration_seconds",
    "dualgate_build_info",
    "dualgate_responses_total",
    "dualgate_udp_receive_drops_total",
    "dualgate_area_launch_timestamp_seconds",
    "dualgate_legacy_next_boundary_timestamp_seconds",
    "dualgate_config_info",
];

/// Histograms: their series are exported with these suffixes only.
const HISTOGRAMS: &[&str] = &["dualgate_request_duration_seconds"];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Runs `promtool ARGS...` in `deploy/` and returns its combined output, failing the test when
/// promtool is missing or reports an error.
fn promtool(args: &[&str]) -> String {
    let bin = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_string());
    let out = match Command::new(&bin)
        .args(args)
        .current_dir(deploy_dir())
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run `{bin}` ({e}): promtool is required for these tests. Install it with \
             `apt-get install prometheus` (Debian 12 ships promtool 2.42 in that package), run \
             `.ci/run`, or set PROMTOOL=/path/to/promtool"
        ),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {args:?} failed ({}):\n{text}",
        out.status
    );
    text
}

#[test]
fn prometheus_config_is_valid_and_loads_the_rules() {
    let out = promtool(&["check", "config", "prometheus.yml"]);
    assert!(out.contains("SUCCESS: 1 rule files found"), "{out}");
}

#[test]
fn alert_rules_are_valid() {
    let out = promtool(&["check", "rules", "dualgate.rules.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    let out = promtool(&["test", "rules", "dualgate.rules.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn rule_tests_cover_the_legacy_alert_firing_and_not_firing() {
    let text = std::fs::read_to_string(deploy_dir().join("dualgate.rules.test.yml")).unwrap();
    let mut fires = 0;
    let mut silent = 0;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "alertname: DualgateLegacyNumberStillInUse" {
            match lines.peek().map(|l| l.trim()) {
                Some("exp_alerts: []") => silent += 1,
                Some("exp_alerts:") => fires += 1,
                other => panic!("unexpected line after alertname: {other:?}"),
            }
        }
    }
    assert!(
        fires >= 1,
        "no test expects DualgateLegacyNumberStillInUse to fire"
    );
    assert!(
        silent >= 1,
        "no test expects DualgateLegacyNumberStillInUse to stay silent"
    );
}

/// Every `expr` of every panel (rows nest panels) and every templating query.
fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<String> {
    fn walk(panels: &[serde_json::Value], out: &mut Vec<String>) {
        for p in panels {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str();
                let title = &p["title"];
                out.push(
                    expr.unwrap_or_else(|| panic!("a target of {title} has no expr"))
                        .to_string(),
                );
            }
            walk(p["panels"].as_array().map_or(&[], |v| v.as_slice()), out);
        }
    }
    let mut out = Vec::new();
    walk(dashboard["panels"].as_array().unwrap(), &mut out);
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(q) = v["query"]["query"].as_str().or(v["query"].as_str()) {
            out.push(q.to_string());
        }
    }
    out
}

/// The `dualgate_[a-z_]+` tokens of a PromQL expression.
fn metric_tokens(expr: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let bytes = expr.as_bytes();
    let mut at = 0;
    while let Some(pos) = expr[at..].find("dualgate_") {
        let start = at + pos;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start + "dualgate_".len();
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            found.push(&expr[start..end]);
        }
        at = end;
    }
    found
}

fn is_exported(name: &str) -> bool {
    METRICS.contains(&name)
        || HISTOGRAMS.iter().any(|h| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name.strip_prefix(h) == Some(s))
        })
}

#[test]
fn metric_tokens_are_found_whole() {
    assert_eq!(
        metric_tokens(
            "sum(rate(dualgate_request_duration_seconds_bucket{a=\"b\"}[5m])) / dualgate_x"
        ),
        vec!["dualgate_request_duration_seconds_bucket", "dualgate_x"]
    );
    assert!(is_exported("dualgate_request_duration_seconds_count"));
    assert!(!is_exported("dualgate_requests_total_bucket"));
    assert!(!is_exported("dualgate_call_attempts"));
}

#[test]
fn dashboard_queries_only_exported_metrics() {
    let path = deploy_dir().join("grafana/dualgate.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 10, "only {} queries found", exprs.len());
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let tokens = metric_tokens(expr);
        assert!(!tokens.is_empty(), "query uses no dualgate metric: {expr}");
        for name in tokens {
            assert!(
                is_exported(name),
                "dashboard queries unknown metric {name} in: {expr}"
            );
            used.insert(name.to_string());
        }
    }
    for needed in [
        "dualgate_call_attempts_total",
        "dualgate_call_outcomes_total",
        "dualgate_legacy_phase",
        "dualgate_rejected_total",
        "dualgate_request_duration_seconds_bucket",
        "dualgate_config_reloads_total",
    ] {
        assert!(used.contains(needed), "no panel shows {needed}");
    }
}

#[test]
fn dashboard_is_importable() {
    let path = deploy_dir().join("grafana/dualgate.json");
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    assert_eq!(d["__inputs"][0]["name"], "DS_PROMETHEUS");
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(vars.contains(&"area"), "{vars:?}");
    // Every panel id is unique and every datasource is the input variable.
    let mut ids = BTreeSet::new();
    fn walk(ps: &[serde_json::Value], ids: &mut BTreeSet<u64>) {
        for p in ps {
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "duplicate panel id {}",
                p["id"]
            );
            if p["type"] != "row" {
                assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
            }
            walk(p["panels"].as_array().map_or(&[], |v| v.as_slice()), ids);
        }
    }
    walk(d["panels"].as_array().unwrap(), &mut ids);
    let types: BTreeSet<&str> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert!(types.contains("state-timeline"), "{types:?}");
}

/// The label names of a series written `name{k="v",...}` (as in a scrape or a rule test),
/// without those Prometheus adds itself (`instance`, `job`).
fn label_names(series: &str) -> (String, BTreeSet<String>) {
    let (name, rest) = series.split_once('{').unwrap_or((series, "}"));
    let mut names = BTreeSet::new();
    let mut rest = rest.trim_end_matches('}');
    while let Some((k, v)) = rest.split_once("=\"") {
        let k = k.trim_start_matches(',').trim();
        if !["instance", "job"].contains(&k) {
            names.insert(k.to_string());
        }
        // Label values in these files never contain a quote.
        rest = v.split_once('"').map_or("", |(_, after)| after);
    }
    (name.trim().to_string(), names)
}

/// The promtool rule tests must feed series shaped exactly as the gateway emits them (same
/// label names; counters starting at 0, as the gateway pre-registers every series it can
/// increment): a test fed with series the gateway never produces proves nothing.
#[tokio::test]
async fn rule_tests_feed_series_shaped_as_the_gateway_emits_them() {
    let f = common::Peer::bind("127.0.0.1").await;
    let gw = common::Gateway::start(
        &common::Mapping::one_backend(&f.uri())
            .when_retired(common::ANNOUNCE)
            .text(),
        &[],
    )
    .await;
    let mut emitted: BTreeMap<String, BTreeSet<BTreeSet<String>>> = BTreeMap::new();
    for line in gw.scrape().lines().filter(|l| l.starts_with("dualgate_")) {
        let series = line.rsplit_once(' ').map_or(line, |(s, _)| s);
        let (name, labels) = label_names(series);
        emitted.entry(name).or_default().insert(labels);
    }
    let tests = std::fs::read_to_string(deploy_dir().join("dualgate.rules.test.yml")).unwrap();
    let mut checked = 0;
    let mut lines = tests.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(series) = line.trim().strip_prefix("- series: '") else {
            continue;
        };
        let series = series.trim_end_matches('\'');
        let (name, labels) = label_names(series);
        if !name.starts_with("dualgate_") {
            continue;
        }
        let shapes = emitted
            .get(&name)
            .unwrap_or_else(|| panic!("{name} is not exported by the gateway"));
        assert!(
            shapes.contains(&labels),
            "{series}: labels {labels:?}, the gateway emits {shapes:?}"
        );
        let values = lines.peek().map_or("", |l| l.trim());
        if name.ends_with("_total") {
            assert!(
                values.starts_with("values: '0"),
                "{series}: a counter the gateway pre-registers starts at 0, not {values}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} series checked");
}
