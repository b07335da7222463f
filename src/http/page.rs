//! The status page as HTML: one self-contained document (inline CSS, no JavaScript), laid out
//! for a phone first. Pure: a [`Status`] in, a `String` out; every text from the mappings is
//! escaped. The page reloads itself every [`REFRESH_SECONDS`], which keeps the countdowns fresh
//! without a script.

use super::status::{Number, Queue, Status};
use crate::clock::unix_seconds;
use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// How often the page reloads itself.
pub const REFRESH_SECONDS: u32 = 15;

const STYLE: &str = "
body{font:16px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;padding:0 12px 24px;background:#f6f7f9;color:#1b1f24}
header{padding:12px 0}
h1{font-size:1.35rem;margin:.2em 0}
h1 small{font-weight:400;color:#57606a;font-size:.95rem}
h2{font-size:1.1rem;margin:1.2em 0 .4em}
h3{font-size:1.05rem;margin:0 0 .3em;display:flex;flex-wrap:wrap;gap:.4em;align-items:center}
.ready{padding:8px 10px;border-radius:8px;font-weight:600;margin:.4em 0}
.ready.ok{background:#dafbe1;color:#116329}
.ready.bad{background:#ffebe9;color:#a40e26}
.ready ul{margin:.3em 0 0;padding-left:1.2em;font-weight:400}
.meta{color:#57606a;font-size:.9rem;margin:.2em 0}
article{background:#fff;border:1px solid #d0d7de;border-radius:10px;padding:10px 12px;margin:0 0 10px}
.name{color:#57606a;margin:0 0 .4em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15em .8em;margin:0}
dt{color:#57606a}
dd{margin:0;overflow-wrap:anywhere}
.phase{font-size:.8rem;font-weight:600;padding:1px 8px;border-radius:999px;text-transform:uppercase;letter-spacing:.03em}
.phase-before{background:#ddf4ff;color:#0550ae}
.phase-parallel{background:#fff8c5;color:#7d4e00}
.phase-retired{background:#ffebe9;color:#a40e26}
.phase-decommissioned{background:#eaeef2;color:#424a53}
.countdown{font-variant-numeric:tabular-nums;font-weight:600}
ul.backends{list-style:none;padding:0;margin:.3em 0 0}
ul.backends li{padding:2px 0;overflow-wrap:anywhere}
.state{display:inline-block;min-width:3.2em;font-weight:700}
.up .state{color:#116329}
.down .state{color:#a40e26}
code{font-size:.85rem;overflow-wrap:anywhere}
small{color:#57606a}
";

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `2025-05-07 00:00:00 +08:00`: China Standard Time, as the shipped mappings are written (the
/// same as `dualgate check`).
pub fn local(t: SystemTime) -> String {
    crate::timeline::local(t)
        .replacen('T', " ", 1)
        .replace("+08:00", " +08:00")
}

/// `2025-05-06 16:00:00 UTC`.
pub fn utc(t: SystemTime) -> String {
    crate::timeline::utc(t)
        .replacen('T', " ", 1)
        .replace('Z', " UTC")
}

/// `16d 14h 00m 00s`; days only when there are any.
pub fn countdown(left: Duration) -> String {
    let s = left.as_secs();
    let (d, h, m, s) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h:02}h {m:02}m {s:02}s")
    } else {
        format!("{h:02}h {m:02}m {s:02}s")
    }
}

fn calls(n: f64) -> String {
    format!("{n:.0}")
}

fn number(out: &mut String, n: &Number) {
    let phase = n.phase.as_str();
    let _ = write!(
        out,
        "<article class=\"number\" id=\"n-{id}\"><h3><span class=\"digits\">{num}</span> \
         <span class=\"phase phase-{phase}\">{phase}</span></h3><p class=\"name\">{name}</p><dl>",
        id = escape(&n.number),
        num = escape(&n.number),
        name = escape(&n.name),
    );
    let now = match &n.queue_now {
        Some(q) => format!("calls reach queue {}", escape(q)),
        None => "answered by the gateway".to_string(),
    };
    let _ = write!(out, "<dt>Now</dt><dd class=\"now\">{now}</dd>");
    match &n.next {
        Some(b) => {
            let _ = write!(
                out,
                "<dt>Next</dt><dd class=\"next\">{becomes} from <time datetime=\"{iso}\">{local}</time><br><small>{utc}</small></dd>\
                 <dt>In</dt><dd class=\"countdown\">{left}</dd>",
                becomes = b.becomes.as_str(),
                iso = crate::report::iso8601(unix_seconds(b.at).floor() as i64),
                local = local(b.at),
                utc = utc(b.at),
                left = countdown(b.left),
            );
        }
        None => out.push_str("<dt>Next</dt><dd class=\"next\">no further boundary</dd>"),
    }
    let _ = write!(
        out,
        "<dt>Retired</dt><dd class=\"treatment\">{}</dd>",
        escape(&n.treatment)
    );
    let share = n
        .share()
        .map_or_else(String::new, |p| format!(" ({p:.1} % legacy)"));
    let _ = write!(
        out,
        "<dt>Calls</dt><dd class=\"calls\">{} vs {} on {}{share}<br><small>this replica, since start</small></dd></dl></article>",
        calls(n.calls),
        calls(n.new_calls),
        escape(&n.new_number),
    );
}

fn queue(out: &mut String, q: &Queue) {
    let _ = write!(
        out,
        "<article class=\"queue\" id=\"q-{id}\"><h3>{name} <small>&rarr; {target}</small></h3><p class=\"name\">{probe}{overflow}</p><ul class=\"backends\">",
        id = escape(&q.name),
        name = escape(&q.name),
        target = escape(&q.target),
        probe = if q.probed { "probed" } else { "not probed (always up)" },
        overflow = q
            .overflow
            .as_ref()
            .map_or_else(String::new, |o| format!("; overflows to {}", escape(o))),
    );
    for b in &q.backends {
        let (class, word) = if b.up { ("up", "UP") } else { ("down", "DOWN") };
        let _ = write!(
            out,
            "<li class=\"backend {class}\"><span class=\"state\">{word}</span> {}</li>",
            escape(&b.uri)
        );
    }
    out.push_str("</ul></article>");
}

/// The whole page.
pub fn render(s: &Status) -> String {
    let mut out = String::with_capacity(8192);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>dualgate {replica}</title><style>{STYLE}</style></head><body><header>\
         <h1>dualgate <small>replica {replica}</small></h1>",
        replica = escape(&s.replica),
    );
    if s.not_ready.is_empty() {
        out.push_str("<div class=\"ready ok\" id=\"ready\">Ready</div>");
    } else {
        out.push_str("<div class=\"ready bad\" id=\"ready\">Not ready<ul>");
        for why in &s.not_ready {
            let _ = write!(out, "<li>{}</li>", escape(&why.to_string()));
        }
        out.push_str("</ul></div>");
    }
    let _ = write!(
        out,
        "<p class=\"meta\" id=\"now\">As of <time datetime=\"{iso}\">{local}</time> ({utc}); \
         version {version}; refreshes every {REFRESH_SECONDS} s</p></header>",
        iso = crate::report::iso8601(unix_seconds(s.now).floor() as i64),
        local = local(s.now),
        utc = utc(s.now),
        version = escape(&s.version),
    );
    out.push_str("<section id=\"numbers\"><h2>Legacy numbers</h2>");
    for n in &s.numbers {
        number(&mut out, n);
    }
    out.push_str("</section><section id=\"queues\"><h2>Queues and backends</h2>");
    for q in &s.queues {
        queue(&mut out, q);
    }
    let c = &s.config;
    let _ = write!(
        out,
        "</section><section id=\"config\"><h2>Mappings</h2><article><dl>\
         <dt>File</dt><dd><code>{path}</code></dd>\
         <dt>sha256</dt><dd><code id=\"sha256\">{sha}</code></dd>{fingerprint}\
         <dt>Loads</dt><dd id=\"loads\">{loads} ok, {rejected} rejected</dd>\
         <dt>Last load</dt><dd>{last}</dd></dl></article></section></body></html>",
        path = escape(&c.path),
        sha = c
            .file_sha256
            .as_deref()
            .map_or_else(|| "unreadable".to_string(), escape),
        fingerprint = c
            .fingerprint
            .as_deref()
            .map_or_else(String::new, |f| format!(
                "<dt>Routing</dt><dd><code>{}</code></dd>",
                escape(f)
            )),
        loads = calls(c.loads),
        rejected = calls(c.rejected),
        last = c.last_load.map_or_else(
            || "never".to_string(),
            |t| format!("{} ({})", local(t), utc(t))
        ),
    );
    if c.rejected > 0.0 {
        // A rejected reload is worth a look: say so where it is seen first.
        out = out.replacen(
            "<dd id=\"loads\">",
            "<dd id=\"loads\" style=\"color:#a40e26;font-weight:600\">",
            1,
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::calendar::PhaseName;
    use crate::http::status::{Backend, Boundary, Config, NotReady};

    #[test]
    fn times_and_countdowns_read_as_written_in_the_mappings() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_746_547_200);
        assert_eq!(local(t), "2025-05-07 00:00:00 +08:00");
        assert_eq!(utc(t), "2025-05-06 16:00:00 UTC");
        assert_eq!(
            countdown(Duration::from_secs(16 * 86400 + 14 * 3600)),
            "16d 14h 00m 00s"
        );
        assert_eq!(countdown(Duration::from_secs(3599)), "00h 59m 59s");
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_page_escapes_names_and_says_why_not_ready() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_745_114_400);
        let s = Status {
            replica: "r<1>".into(),
            version: "0.1.0".into(),
            now,
            not_ready: vec![NotReady::QueueDown {
                queue: "fuzhou".into(),
            }],
            numbers: vec![Number {
                number: "059185666661".into(),
                name: "<script>alert(1)</script>".into(),
                phase: PhaseName::Parallel,
                queue_now: Some("fuzhou".into()),
                treatment: "announce via queue announcement".into(),
                next: Some(Boundary {
                    at: now + Duration::from_secs(60),
                    becomes: PhaseName::Retired,
                    left: Duration::from_secs(60),
                }),
                calls: 1.0,
                new_number: "059112356".into(),
                new_calls: 3.0,
            }],
            queues: vec![Queue {
                name: "fuzhou".into(),
                target: "12356".into(),
                probed: true,
                backends: vec![
                    Backend {
                        uri: "sip:10.0.0.1:5060".into(),
                        up: true,
                    },
                    Backend {
                        uri: "sip:10.0.0.2:5060".into(),
                        up: false,
                    },
                ],
                overflow: None,
            }],
            config: Config {
                path: "/etc/dualgate/mappings.toml".into(),
                file_sha256: Some("ab".repeat(32)),
                fingerprint: None,
                loads: 2.0,
                rejected: 1.0,
                last_load: Some(now),
            },
        };
        let html = render(&s);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("replica r&lt;1&gt;"));
        assert!(html.contains("Not ready<ul><li>queue fuzhou: no backend up"));
        assert!(html.contains("retired from <time datetime=\"2025-04-20T02:01:00Z\">2025-04-20 10:01:00 +08:00</time>"));
        assert!(html.contains("<dd class=\"countdown\">00h 01m 00s</dd>"));
        assert!(html.contains("1 vs 3 on 059112356 (25.0 % legacy)"));
        assert!(html.contains(
            "<li class=\"backend down\"><span class=\"state\">DOWN</span> sip:10.0.0.2:5060</li>"
        ));
        assert!(html.contains(&"ab".repeat(32)));
        assert!(html.contains("2 ok, 1 rejected"));
    }
}
