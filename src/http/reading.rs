//! What the status page and `/readyz` read from this replica's own metrics: the text the
//! exporter renders for `/metrics`, parsed back into typed values. Pure: text in, values out.
//! Reading the registry (rather than counting a second time alongside it) keeps one source of
//! truth: the page shows exactly what Prometheus scrapes.

use crate::metrics::{ATTEMPTS, BACKEND_UP, BUILD_INFO, LAST_RELOAD, RELOADS};
use std::collections::BTreeMap;

use crate::metrics::CONFIG_INFO;

/// One sample of the text exposition format: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name.
    pub name: String,
    /// Label pairs, in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one line of the Prometheus text format (version 0.0.4); `None` for comments, blank
/// lines and anything malformed.
pub fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut body) = rest.strip_prefix('{') {
        loop {
            body = body.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
            if let Some(after) = body.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = body.split_once('=')?;
            let after = after.strip_prefix('"')?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i + 1,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    (_, other) => value.push(other),
                }
            };
            labels.push((key.trim().to_string(), value));
            body = &after[end..];
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The figures the status page and readiness need, from one rendering of the registry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readings {
    /// Calls since start per dialled number (`dualgate_call_attempts_total` summed over queues
    /// and trunks).
    pub calls: BTreeMap<String, f64>,
    /// Backend state per `(queue, backend URI)` as the prober last set it.
    pub backend_up: BTreeMap<(String, String), bool>,
    /// Successful mapping loads (start-up included).
    pub reloads_ok: f64,
    /// Rejected reloads.
    pub reloads_failed: f64,
    /// Unix time of the last successful load.
    pub last_reload: Option<f64>,
    /// The routing fingerprint served, where the build exports it.
    pub fingerprint: Option<String>,
    /// The running build's version.
    pub version: Option<String>,
}

impl Readings {
    /// Reads the metrics text of this replica.
    pub fn from_text(text: &str) -> Readings {
        let mut r = Readings::default();
        for s in text.lines().filter_map(parse_line) {
            match s.name.as_str() {
                ATTEMPTS => {
                    if let Some(n) = s.label("number") {
                        *r.calls.entry(n.to_string()).or_default() += s.value;
                    }
                }
                BACKEND_UP => {
                    if let (Some(q), Some(b)) = (s.label("queue"), s.label("backend")) {
                        r.backend_up
                            .insert((q.to_string(), b.to_string()), s.value >= 1.0);
                    }
                }
                RELOADS => match s.label("result") {
                    Some("success") => r.reloads_ok += s.value,
                    Some("failure") => r.reloads_failed += s.value,
                    _ => {}
                },
                LAST_RELOAD => r.last_reload = Some(s.value),
                CONFIG_INFO if s.value >= 1.0 => {
                    r.fingerprint = s.label("sha256").map(str::to_string);
                }
                BUILD_INFO => r.version = s.label("version").map(str::to_string),
                _ => {}
            }
        }
        r
    }

    /// Calls since start to `number` (0 when it has no series).
    pub fn calls_to(&self, number: &str) -> f64 {
        self.calls.get(number).copied().unwrap_or(0.0)
    }

    /// Whether a backend is up; one without a gauge yet counts as up, as the prober starts
    /// every backend up (`health::State::default`).
    pub fn is_up(&self, queue: &str, backend: &str) -> bool {
        self.backend_up
            .get(&(queue.to_string(), backend.to_string()))
            .copied()
            .unwrap_or(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_with_escapes_and_without_labels() {
        let s = parse_line(r#"dualgate_backend_up{replica="a",queue="q\"1",backend="sip:10.0.0.1:5060;transport=udp"} 0"#).unwrap();
        assert_eq!(s.name, "dualgate_backend_up");
        assert_eq!(s.label("queue"), Some("q\"1"));
        assert_eq!(s.label("backend"), Some("sip:10.0.0.1:5060;transport=udp"));
        assert_eq!(s.value, 0.0);
        let s = parse_line("dualgate_config_last_reload_success_timestamp_seconds 1746547200.5")
            .unwrap();
        assert!(s.labels.is_empty());
        assert_eq!(s.value, 1_746_547_200.5);
        assert_eq!(
            parse_line("x_bucket{le=\"+Inf\"} +Inf").unwrap().value,
            f64::INFINITY
        );
        for bad in [
            "# HELP x y",
            "",
            "x{a=\"1\" 2",
            "x{a=1} 2",
            "x{a=\"1\"}",
            "x nope",
        ] {
            assert_eq!(parse_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn readings_sum_calls_per_number_and_take_the_served_fingerprint() {
        let text = r#"
# TYPE dualgate_call_attempts_total counter
dualgate_call_attempts_total{replica="r",number="059185666661",queue="fuzhou",trunk="a"} 2
dualgate_call_attempts_total{replica="r",number="059185666661",queue="announcement",trunk="b"} 3
dualgate_call_attempts_total{replica="r",number="059112356",queue="fuzhou",trunk="a"} 7
dualgate_backend_up{replica="r",queue="fuzhou",backend="sip:127.0.0.1:5091"} 0
dualgate_config_reloads_total{replica="r",result="success"} 2
dualgate_config_reloads_total{replica="r",result="failure"} 1
dualgate_config_info{replica="r",sha256="old"} 0
dualgate_config_info{replica="r",sha256="new"} 1
dualgate_build_info{replica="r",version="0.1.0"} 1
"#;
        let r = Readings::from_text(text);
        assert_eq!(r.calls_to("059185666661"), 5.0);
        assert_eq!(r.calls_to("059112356"), 7.0);
        assert_eq!(r.calls_to("12356"), 0.0);
        assert!(!r.is_up("fuzhou", "sip:127.0.0.1:5091"));
        assert!(r.is_up("fuzhou", "sip:127.0.0.1:5092"));
        assert_eq!((r.reloads_ok, r.reloads_failed), (2.0, 1.0));
        assert_eq!(r.fingerprint.as_deref(), Some("new"));
        assert_eq!(r.version.as_deref(), Some("0.1.0"));
    }
}
