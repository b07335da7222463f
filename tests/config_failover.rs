//! Validation of the failover and overload settings: defaults that need no configuration, and
//! every mistake named by line and field.
#![allow(clippy::unwrap_used)]

use dualgate::config::{validate, ConfigError};
use dualgate::limit::Rate;
use std::path::Path;
use std::time::Duration;

const BASE: &str = r#"[gateway]
advertised = "192.0.2.10:5060"
[new_number]
number = "12356"
[[queue]]
name = "fuzhou"
backends = ["sip:10.0.0.1"]
@FUZHOU@
[[queue]]
name = "provincial"
backends = ["sip:10.0.0.2"]
@PROVINCIAL@
[[area]]
code = "0591"
queue = "fuzhou"
[[trunk]]
name = "t"
sources = ["10.1.0.0/16"]
@TRUNK@
@TABLES@
"#;

fn file(fuzhou: &str, provincial: &str, trunk: &str, tables: &str) -> String {
    BASE.replace("@FUZHOU@", fuzhou)
        .replace("@PROVINCIAL@", provincial)
        .replace("@TRUNK@", trunk)
        .replace("@TABLES@", tables)
}

/// The problems as `line: field: problem`.
fn problems(text: &str) -> Vec<String> {
    match validate(Path::new("m.toml"), text) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { issues, .. }) => issues
            .iter()
            .map(|i| format!("{}: {}: {}", i.line, i.field, i.problem))
            .collect(),
        Err(e) => vec![e.to_string()],
    }
}

#[test]
fn without_configuration_backends_are_probed_and_trunks_limited() {
    let s = validate(Path::new("m.toml"), &file("", "", "", "")).unwrap();
    let p = s.probe.unwrap();
    assert_eq!(
        (p.interval, p.down_after, p.up_after, p.require_2xx),
        (Duration::from_secs(2), 3, 2, false)
    );
    assert_eq!(s.trunks[0].limits.trunk, Rate::TRUNK_DEFAULT);
    assert_eq!(s.trunks[0].limits.source, Rate::TRUNK_DEFAULT);
    assert_eq!(
        (
            s.failover.backend_503,
            s.failover.status,
            s.failover.retry_after
        ),
        (480, 503, 30)
    );
    assert_eq!((s.overload.retry_after, s.overload.shed), (5, true));
    assert!(s
        .queues
        .iter()
        .all(|q| q.overflow.is_none() && q.hours.is_always() && q.probe));
}

#[test]
fn every_setting_is_read() {
    let s = validate(
        Path::new("m.toml"),
        &file(
            "overflow = \"provincial\"\nhours = [\"08:00-22:00\"]",
            "probe = false",
            "rate = 50\nsource_rate = 10\nsource_burst = 15",
            "[probe]\ninterval = \"500ms\"\ndown_after = 4\nup_after = 1\nrequire_2xx = true\n\
             [overload]\ntrunk_rate = 300\nretry_after = 9\nshed = false\n\
             [failover]\nbackend_503 = 500\nstatus = 480\nretry_after = 60\n",
        ),
    )
    .unwrap();
    let p = s.probe.unwrap();
    assert_eq!(
        (p.interval, p.down_after, p.up_after, p.require_2xx),
        (Duration::from_millis(500), 4, 1, true)
    );
    assert_eq!(s.queues[0].overflow.map(|q| q.index()), Some(1));
    assert_eq!(s.queues[0].hours.to_string(), "08:00-22:00 CST");
    assert!(!s.queues[1].probe);
    let l = s.trunks[0].limits;
    assert_eq!(
        (l.trunk, l.source),
        (
            Rate {
                per_second: 50,
                burst: 100
            },
            Rate {
                per_second: 10,
                burst: 15
            }
        )
    );
    assert_eq!((s.overload.retry_after, s.overload.shed), (9, false));
    assert_eq!(
        (
            s.failover.backend_503,
            s.failover.status,
            s.failover.retry_after
        ),
        (500, 480, 60)
    );
    let off = validate(
        Path::new("m.toml"),
        &file("", "", "", "[probe]\nenabled = false\n"),
    )
    .unwrap();
    assert!(off.probe.is_none());
}

#[test]
fn overflow_cycles_unknown_queues_and_bad_values_are_named_by_line_and_field() {
    let cycle = problems(&file(
        "overflow = \"provincial\"",
        "overflow = \"fuzhou\"",
        "",
        "",
    ));
    assert_eq!(
        cycle,
        vec![
            "8: queue[0].overflow: overflow cycle: fuzhou -> provincial -> fuzhou",
            "12: queue[1].overflow: overflow cycle: provincial -> fuzhou -> provincial",
        ]
    );
    assert_eq!(
        problems(&file("overflow = \"fuzhou\"", "", "", "")),
        vec!["8: queue[0].overflow: a queue cannot overflow to itself"]
    );
    assert_eq!(
        problems(&file("overflow = \"nowhere\"", "", "", "")),
        vec!["8: queue[0].overflow: unknown queue `nowhere`"]
    );
    let bad = problems(&file(
        "hours = [\"8-22\", \"22:00-22:00\"]",
        "",
        "burst = 0\nrate = 5",
        "[probe]\ninterval = \"2 minutes\"\ndown_after = 0\n[failover]\nstatus = 200\n",
    ));
    let want = [
        "8: queue[0].hours: `8-22` is not a period HH:MM-HH:MM (China Standard Time), e.g. 08:00-22:00",
        "8: queue[0].hours: `22:00-22:00` is empty; write 00:00-24:00 for a queue open all day",
        "19: trunk[0].burst: must be at least 1",
        "22: probe.interval: `2 minutes` is not a duration of at least 50ms, e.g. \"2s\"",
        "23: probe.down_after: must be at least 1",
        "25: failover.status: 200 is not a 4xx-6xx final status",
    ];
    assert_eq!(bad, want);
}
