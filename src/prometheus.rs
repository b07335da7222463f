//! A minimal Prometheus HTTP API client for `dualgate retirement`: instant queries over plain
//! HTTP/1.1 (`GET /api/v1/query`, `Connection: close`) on `std::net::TcpStream`.
//!
//! An edge: this module does network I/O and nothing else. URL parsing, response framing
//! (Content-Length or chunked) and JSON decoding are pure functions, unit-tested below. No TLS:
//! put Prometheus behind a local plain-HTTP address (or an SSH tunnel) for the report.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use thiserror::Error;

use crate::report::{Observed, Slice, Window};
use std::collections::HashMap;

/// How long to wait for the TCP connection to Prometheus.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one read or write may block; long-range queries can take a while.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest response accepted; a report's answer is a few kilobytes.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// One element of an instant vector: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels (including `__name__` when the query kept it).
    pub labels: BTreeMap<String, String>,
    /// The value at the evaluation time.
    pub value: f64,
}

/// Where Prometheus is: from `http://host:port[/path-prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port (80 when the URL has none).
    pub port: u16,
    /// Path prefix without a trailing slash, e.g. `/prometheus`, or empty.
    pub prefix: String,
}

/// Why a query failed.
#[derive(Debug, Error)]
pub enum PromError {
    /// The URL is `https://`; this client speaks plain HTTP only.
    #[error("{url}: https is not supported; use a plain http:// address (e.g. an SSH tunnel to Prometheus)")]
    Https {
        /// The URL given.
        url: String,
    },
    /// The URL does not start with `http://`.
    #[error("{url}: expected http://host:port[/prefix]")]
    NotHttp {
        /// The URL given.
        url: String,
    },
    /// The URL has no host, or an unbalanced IPv6 bracket.
    #[error("{url}: no host")]
    NoHost {
        /// The URL given.
        url: String,
    },
    /// The port is not a number in 1..=65535.
    #[error("{url}: bad port {port:?}")]
    BadPort {
        /// The URL given.
        url: String,
        /// The port text.
        port: String,
    },
    /// The URL carries a query string, fragment or user info, which this client cannot honour.
    #[error("{url}: query strings, fragments and user info are not supported")]
    UnsupportedUrl {
        /// The URL given.
        url: String,
    },
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// Host name.
        host: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// No address of the host accepted a connection.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The last address tried.
        addr: String,
        /// The socket error (refused, timed out, ...).
        #[source]
        source: std::io::Error,
    },
    /// Sending the request or reading the response failed (including a read timeout).
    #[error("talking to {addr}: {source}")]
    Io {
        /// The peer.
        addr: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The response is larger than the client accepts.
    #[error("response larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The response does not start with a valid HTTP/1.x status line and headers.
    #[error("malformed HTTP response: {what}")]
    BadResponse {
        /// What is wrong.
        what: &'static str,
    },
    /// A chunk size line is not hexadecimal, or a chunk is cut short.
    #[error("malformed chunked body at byte {at}")]
    BadChunk {
        /// Byte offset in the body.
        at: usize,
    },
    /// The body is shorter than its Content-Length.
    #[error("body cut short: {got} of {expected} bytes")]
    Truncated {
        /// Content-Length.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// Prometheus answered with a non-200 status (bad query, timeout, overload ...).
    #[error("Prometheus answered HTTP {status}: {message}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// The `error` field of the JSON body, or the start of the body.
        message: String,
    },
    /// The body is not the JSON the query API returns.
    #[error("unexpected JSON from Prometheus: {source}")]
    Json {
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// The API reported `"status": "error"` with HTTP 200.
    #[error("Prometheus error {error_type}: {message}")]
    Api {
        /// `errorType`.
        error_type: String,
        /// `error`.
        message: String,
    },
    /// The result is not an instant vector (e.g. a scalar or a matrix).
    #[error("expected an instant vector, got {found}")]
    NotVector {
        /// The `resultType` received.
        found: String,
    },
    /// A sample value is not a number string.
    #[error("sample value {value:?} is not a number")]
    BadValue {
        /// The value text.
        value: String,
    },
}

/// Parses `http://host[:port][/prefix]`.
///
/// # Errors
/// [`PromError::Https`] for https, [`PromError::NotHttp`] for other schemes, and
/// [`PromError::NoHost`], [`PromError::BadPort`], [`PromError::UnsupportedUrl`] for bad URLs.
pub fn parse_url(url: &str) -> Result<Endpoint, PromError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(PromError::Https {
            url: url.to_string(),
        });
    }
    if !lower.starts_with("http://") {
        return Err(PromError::NotHttp {
            url: url.to_string(),
        });
    }
    let rest = &url["http://".len()..];
    if rest.contains(['?', '#']) {
        return Err(PromError::UnsupportedUrl {
            url: url.to_string(),
        });
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err(PromError::UnsupportedUrl {
            url: url.to_string(),
        });
    }
    let no_host = || PromError::NoHost {
        url: url.to_string(),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(no_host)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(no_host)?),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(no_host());
    }
    let port = match port {
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(PromError::BadPort {
                    url: url.to_string(),
                    port: p.to_string(),
                })
            }
        },
    };
    Ok(Endpoint {
        host: host.to_string(),
        port,
        prefix: path.trim_end_matches('/').to_string(),
    })
}

/// Percent-encodes a query-string value: everything but RFC 3986 unreserved characters.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The request target for an instant query.
fn query_path(ep: &Endpoint, promql: &str, at_unix: Option<f64>) -> String {
    let mut path = format!(
        "{}/api/v1/query?query={}",
        ep.prefix,
        encode_component(promql)
    );
    if let Some(t) = at_unix {
        path.push_str(&format!("&time={t:.3}"));
    }
    path
}

/// A parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body, de-chunked.
    pub body: Vec<u8>,
}

/// Splits a complete HTTP/1.x response (read until the server closed) into status and body.
///
/// # Errors
/// [`PromError::BadResponse`], [`PromError::BadChunk`] or [`PromError::Truncated`].
pub fn parse_response(raw: &[u8]) -> Result<Response, PromError> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(PromError::BadResponse {
            what: "no end of headers",
        })?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| PromError::BadResponse {
        what: "headers are not UTF-8",
    })?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(PromError::BadResponse {
            what: "no HTTP/1.x status line",
        });
    }
    let status =
        parts
            .next()
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or(PromError::BadResponse {
                what: "bad status code",
            })?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(PromError::BadResponse {
            what: "header without colon",
        })?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .to_ascii_lowercase()
                .split(',')
                .any(|c| c.trim() == "chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| PromError::BadResponse {
                what: "bad Content-Length",
            })?);
        }
    }
    // RFC 9112 §6.3: chunked wins over Content-Length.
    let body = if chunked {
        decode_chunked(body)?
    } else if let Some(expected) = length {
        if body.len() < expected {
            return Err(PromError::Truncated {
                expected,
                got: body.len(),
            });
        }
        body[..expected].to_vec()
    } else {
        body.to_vec()
    };
    Ok(Response { status, body })
}

/// Decodes a `Transfer-Encoding: chunked` body (RFC 9112 §7.1), ignoring extensions/trailers.
///
/// # Errors
/// [`PromError::BadChunk`] with the byte offset of a bad size line or a short chunk.
pub fn decode_chunked(mut body: &[u8]) -> Result<Vec<u8>, PromError> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let bad = PromError::BadChunk { at };
        let eol = body.windows(2).position(|w| w == b"\r\n").ok_or(bad)?;
        let line = std::str::from_utf8(&body[..eol]).map_err(|_| PromError::BadChunk { at })?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| PromError::BadChunk { at })?;
        let data_start = eol + 2;
        if size == 0 {
            return Ok(out);
        }
        let data_end = data_start
            .checked_add(size)
            .ok_or(PromError::BadChunk { at })?;
        if body.len() < data_end + 2 || &body[data_end..data_end + 2] != b"\r\n" {
            return Err(PromError::BadChunk {
                at: at + data_start,
            });
        }
        out.extend_from_slice(&body[data_start..data_end]);
        body = &body[data_end + 2..];
        at += data_end + 2;
    }
}

#[derive(serde::Deserialize)]
struct RawAnswer {
    status: String,
    #[serde(default)]
    data: Option<RawData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(serde::Deserialize)]
struct RawData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(serde::Deserialize)]
struct RawSample {
    metric: BTreeMap<String, String>,
    value: (serde_json::Value, String),
}

/// Decodes a query API answer into the samples of an instant vector.
///
/// # Errors
/// [`PromError::Status`] for a non-200 status (with the API's error message),
/// [`PromError::Api`], [`PromError::NotVector`], [`PromError::BadValue`] or [`PromError::Json`].
pub fn decode(resp: &Response) -> Result<Vec<Sample>, PromError> {
    let parsed: Result<RawAnswer, _> = serde_json::from_slice(&resp.body);
    if resp.status != 200 {
        let message = match &parsed {
            Ok(RawAnswer { error: Some(e), .. }) => e.clone(),
            _ => String::from_utf8_lossy(&resp.body)
                .chars()
                .take(200)
                .collect(),
        };
        return Err(PromError::Status {
            status: resp.status,
            message,
        });
    }
    let answer = parsed.map_err(|source| PromError::Json { source })?;
    if answer.status != "success" {
        return Err(PromError::Api {
            error_type: answer.error_type.unwrap_or_default(),
            message: answer.error.unwrap_or_default(),
        });
    }
    let data = answer.data.ok_or(PromError::NotVector {
        found: "no data".to_string(),
    })?;
    if data.result_type != "vector" {
        return Err(PromError::NotVector {
            found: data.result_type,
        });
    }
    let raw: Vec<RawSample> =
        serde_json::from_value(data.result).map_err(|source| PromError::Json { source })?;
    raw.into_iter()
        .map(|s| {
            // Prometheus writes values as strings: "12", "0.5", "NaN", "+Inf", "-Inf".
            let value = s.value.1.parse::<f64>().map_err(|_| PromError::BadValue {
                value: s.value.1.clone(),
            })?;
            Ok(Sample {
                labels: s.metric,
                value,
            })
        })
        .collect()
}

/// Sends one GET and reads the whole response (the server closes the connection).
fn get(ep: &Endpoint, path: &str, connect: Duration, io: Duration) -> Result<Response, PromError> {
    let addrs: Vec<SocketAddr> = (ep.host.as_str(), ep.port)
        .to_socket_addrs()
        .map_err(|source| PromError::Resolve {
            host: ep.host.clone(),
            source,
        })?
        .collect();
    let mut last = None;
    let mut stream = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, connect) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some((addr.to_string(), e)),
        }
    }
    let mut stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some((addr, source))) => return Err(PromError::Connect { addr, source }),
        (None, None) => {
            let source = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
            return Err(PromError::Resolve {
                host: ep.host.clone(),
                source,
            });
        }
    };
    let peer = format!("{}:{}", ep.host, ep.port);
    let io_err = |source| PromError::Io {
        addr: peer.clone(),
        source,
    };
    stream.set_read_timeout(Some(io)).map_err(io_err)?;
    stream.set_write_timeout(Some(io)).map_err(io_err)?;
    let host = if ep.host.contains(':') {
        format!("[{}]", ep.host)
    } else {
        ep.host.clone()
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: dualgate/{}\r\n\
         Accept: application/json\r\nConnection: close\r\n\r\n",
        ep.port,
        env!("CARGO_PKG_VERSION"),
    );
    stream.write_all(request.as_bytes()).map_err(io_err)?;
    let mut raw = Vec::new();
    let limit = u64::try_from(MAX_RESPONSE).unwrap_or(u64::MAX);
    (&mut stream)
        .take(limit + 1)
        .read_to_end(&mut raw)
        .map_err(io_err)?;
    if raw.len() > MAX_RESPONSE {
        return Err(PromError::TooLarge {
            limit: MAX_RESPONSE,
        });
    }
    parse_response(&raw)
}

/// Runs an instant query against the Prometheus at `base` (`http://host:port[/prefix]`),
/// evaluated at `at_unix` (unix seconds) or at Prometheus' "now".
///
/// # Errors
/// Any [`PromError`]: bad URL, network failure or timeout, non-200 answer (with Prometheus'
/// error message), or an answer that is not an instant vector.
pub fn query(base: &str, promql: &str, at_unix: Option<f64>) -> Result<Vec<Sample>, PromError> {
    query_with(base, promql, at_unix, CONNECT_TIMEOUT, IO_TIMEOUT)
}

fn query_with(
    base: &str,
    promql: &str,
    at_unix: Option<f64>,
    connect: Duration,
    io: Duration,
) -> Result<Vec<Sample>, PromError> {
    let ep = parse_url(base)?;
    let resp = get(&ep, &query_path(&ep, promql, at_unix), connect, io)?;
    decode(&resp)
}

/// The PromQL for calls per number over `window`, all replicas together.
pub fn calls_query(window: &Window) -> String {
    format!("sum by (number) (increase(dualgate_call_attempts_total[{window}]))")
}

/// The PromQL for calls per number and trunk over `window`.
pub fn trunks_query(window: &Window) -> String {
    format!("sum by (number, trunk) (increase(dualgate_call_attempts_total[{window}]))")
}

/// The PromQL for calls `increase()` cannot see: series that appear inside `window` already
/// above 0 (no sample at the window's start), counted at their lowest value.
pub fn late_query(window: &Window) -> String {
    format!(
        "sum by (number) (min_over_time(dualgate_call_attempts_total[{window}]) \
         unless dualgate_call_attempts_total offset {window})"
    )
}

/// The PromQL for the last call per number within `window`, latest over the replicas, those
/// that went away during the window included.
pub fn last_call_query(window: &Window) -> String {
    format!("max by (number) (max_over_time(dualgate_last_call_timestamp_seconds[{window}]))")
}

/// The PromQL for how often each number's last-call gauge changed within `window`: evidence of
/// calls that holds whatever clock the gateway ran on (a rehearsal's `--now`).
pub fn called_query(window: &Window) -> String {
    format!("sum by (number) (changes(dualgate_last_call_timestamp_seconds[{window}]))")
}

/// Samples keyed by their `number` label; samples without one are ignored.
fn by_number(samples: Vec<Sample>) -> HashMap<String, f64> {
    samples
        .into_iter()
        .filter_map(|mut s| s.labels.remove("number").map(|n| (n, s.value)))
        .collect()
}

/// The buckets a window is cut into for the trend: whole days (at most 31, the latest ones)
/// when the window spans two days or more, otherwise six equal parts. (count, seconds each).
pub fn bucket_plan(window: &Window) -> (u64, u64) {
    const DAY: u64 = 86_400;
    let w = window.seconds();
    if w >= 2 * DAY {
        ((w / DAY).min(31), DAY)
    } else if w >= 6 {
        (6, w / 6)
    } else {
        (1, w)
    }
}

/// Fetches what [`crate::report::assess`] needs over the `window` up to `now_unix`: calls per
/// number (and per trunk, and per bucket), calls on late-born series, and the last call.
///
/// # Errors
/// As [`query`], for any of the queries.
pub fn observe(base: &str, window: &Window, now_unix: i64) -> Result<Observed, PromError> {
    let at = Some(now_unix as f64);
    let calls = by_number(query(base, &calls_query(window), at)?);
    let late = by_number(query(base, &late_query(window), at)?);
    let last_call = by_number(query(base, &last_call_query(window), at)?);
    let called = by_number(query(base, &called_query(window), at)?);
    let mut trunks: HashMap<String, HashMap<String, f64>> = HashMap::new();
    for mut s in query(base, &trunks_query(window), at)? {
        if let (Some(n), Some(t)) = (s.labels.remove("number"), s.labels.remove("trunk")) {
            trunks.entry(n).or_default().insert(t, s.value);
        }
    }
    let (count, size) = bucket_plan(window);
    let mut buckets = Vec::new();
    if let Some(w) = Window::from_seconds(size) {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        for back in (0..count).rev() {
            let end = now_unix.saturating_sub(size.saturating_mul(back as i64));
            let calls = by_number(query(base, &calls_query(&w), Some(end as f64))?);
            buckets.push(Slice {
                start: end.saturating_sub(size),
                end,
                calls,
            });
        }
    }
    Ok(Observed {
        calls,
        late,
        last_call,
        called,
        trunks,
        buckets,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // until clippy.toml sets allow-unwrap-in-tests
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;

    #[test]
    fn urls_parse_into_host_port_and_prefix() {
        const CASES: &[(&str, &str, u16, &str)] = &[
            ("http://127.0.0.1:9090", "127.0.0.1", 9090, ""),
            ("http://127.0.0.1:9090/", "127.0.0.1", 9090, ""),
            (
                "http://prom.example:9090/prometheus/",
                "prom.example",
                9090,
                "/prometheus",
            ),
            ("HTTP://localhost", "localhost", 80, ""),
            ("http://[::1]:9090/p", "::1", 9090, "/p"),
            ("http://[::1]", "::1", 80, ""),
        ];
        for (url, host, port, prefix) in CASES {
            let ep = parse_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(
                (ep.host.as_str(), ep.port, ep.prefix.as_str()),
                (*host, *port, *prefix),
                "{url}"
            );
        }
    }

    #[test]
    fn bad_urls_are_rejected_with_the_reason() {
        for url in ["https://prom:9090", "HTTPS://prom"] {
            let err = parse_url(url).unwrap_err();
            assert!(matches!(err, PromError::Https { .. }), "{url}: {err:?}");
            assert!(err.to_string().contains("https is not supported"), "{err}");
        }
        for url in ["prom:9090", "ftp://prom", ""] {
            assert!(
                matches!(parse_url(url), Err(PromError::NotHttp { .. })),
                "{url}"
            );
        }
        for url in ["http://", "http://:9090", "http://[::1", "http://[::1]x"] {
            assert!(
                matches!(parse_url(url), Err(PromError::NoHost { .. })),
                "{url}"
            );
        }
        for url in [
            "http://h:0",
            "http://h:65536",
            "http://h:x",
            "http://h:",
            "http://h:+80",
        ] {
            assert!(
                matches!(parse_url(url), Err(PromError::BadPort { .. })),
                "{url}"
            );
        }
        for url in ["http://h/?x=1", "http://u:p@h:9090", "http://h#f"] {
            assert!(
                matches!(parse_url(url), Err(PromError::UnsupportedUrl { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn queries_are_percent_encoded() {
        let ep = parse_url("http://h:1/prom").unwrap();
        let q = "sum by (number) (increase(dualgate_call_attempts_total{a=\"b\"}[7d]))";
        assert_eq!(
            query_path(&ep, q, Some(1_746_547_200.0)),
            "/prom/api/v1/query?query=sum%20by%20%28number%29%20%28increase%28dualgate_call_attempts_total\
             %7Ba%3D%22b%22%7D%5B7d%5D%29%29&time=1746547200.000"
        );
        assert_eq!(encode_component("a+b&c=d/é~"), "a%2Bb%26c%3Dd%2F%C3%A9~");
        assert_eq!(query_path(&ep, "up", None), "/prom/api/v1/query?query=up");
    }

    #[test]
    fn chunked_bodies_decode() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            (
                b"3\r\nabc\r\n2;ext=1\r\nde\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n",
                b"abcde0123456789",
            ),
            (b"0\r\n\r\n", b""),
        ];
        for (raw, want) in cases {
            assert_eq!(
                decode_chunked(raw).unwrap(),
                *want,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let bad: &[(&[u8], usize)] = &[
            (b"zz\r\nhello\r\n0\r\n\r\n", 0),
            (b"5\r\nhel", 3),
            (b"5\r\nhelloXX0\r\n\r\n", 3),
            (b"3\r\nabc\r\n", 8),
            (b"", 0),
        ];
        for (raw, at) in bad {
            match decode_chunked(raw) {
                Err(PromError::BadChunk { at: got }) => {
                    assert_eq!(got, *at, "{}", String::from_utf8_lossy(raw))
                }
                other => panic!("{}: {other:?}", String::from_utf8_lossy(raw)),
            }
        }
    }

    #[test]
    fn responses_are_framed_by_length_or_chunks() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}junk").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, b"{}".as_slice()));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\nContent-Length: 99\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"{}");
        let r = parse_response(b"HTTP/1.0 400 Bad Request\r\n\r\n{\"a\":1}").unwrap();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (400, b"{\"a\":1}".as_slice())
        );
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}"),
            Err(PromError::Truncated {
                expected: 10,
                got: 2
            })
        ));
        for raw in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"SIP/2.0 200 OK\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n",
        ] {
            assert!(
                matches!(parse_response(raw), Err(PromError::BadResponse { .. })),
                "{raw:?}"
            );
        }
    }

    const VECTOR: &str = r#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"number":"059185666661"},"value":[1746547200.123,"12.5"]},
        {"metric":{"number":"059112356","queue":"fuzhou"},"value":[1746547200.123,"970"]},
        {"metric":{},"value":[1746547200.123,"NaN"]},
        {"metric":{"number":"x"},"value":[1746547200,"+Inf"]}]}}"#;

    #[test]
    fn vectors_decode_with_labels_and_special_values() {
        let samples = decode(&Response {
            status: 200,
            body: VECTOR.as_bytes().to_vec(),
        })
        .unwrap();
        assert_eq!(samples.len(), 4);
        assert_eq!(
            samples[0].labels.get("number").map(String::as_str),
            Some("059185666661")
        );
        assert_eq!(samples[0].value, 12.5);
        assert_eq!(samples[1].labels.len(), 2);
        assert_eq!(samples[1].value, 970.0);
        assert!(samples[2].value.is_nan());
        assert_eq!(samples[3].value, f64::INFINITY);
    }

    #[test]
    fn errors_decode_with_prometheus_message() {
        let resp = |status, body: &str| Response {
            status,
            body: body.as_bytes().to_vec(),
        };
        let bad_query =
            r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected"}"#;
        match decode(&resp(400, bad_query)) {
            Err(PromError::Status {
                status: 400,
                message,
            }) => {
                assert_eq!(message, "1:5: parse error: unexpected")
            }
            other => panic!("{other:?}"),
        }
        match decode(&resp(502, "<html>Bad Gateway</html>")) {
            Err(PromError::Status {
                status: 502,
                message,
            }) => assert_eq!(message, "<html>Bad Gateway</html>"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(&resp(200, bad_query)),
            Err(PromError::Api { .. })
        ));
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#;
        assert!(
            matches!(decode(&resp(200, scalar)), Err(PromError::NotVector { found }) if found == "scalar")
        );
        let word = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"many"]}]}}"#;
        assert!(matches!(
            decode(&resp(200, word)),
            Err(PromError::BadValue { .. })
        ));
        assert!(matches!(
            decode(&resp(200, "not json")),
            Err(PromError::Json { .. })
        ));
    }

    /// A one-shot HTTP server per canned response: returns its base URL and a receiver of the
    /// request heads it saw.
    fn serve(responses: Vec<Vec<u8>>) -> (String, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for response in responses {
                let (mut conn, _) = listener.accept().unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
                    head.push(byte[0]);
                }
                tx.send(String::from_utf8(head).unwrap()).unwrap();
                conn.write_all(&response).unwrap();
                // Dropping `conn` closes the connection, as with `Connection: close`.
            }
        });
        (base, rx)
    }

    fn with_length(status: &str, body: &str) -> Vec<u8> {
        format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
            .into_bytes()
    }

    fn chunked(body: &str) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for piece in body.as_bytes().chunks(7) {
            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            out.extend_from_slice(piece);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    #[test]
    fn query_speaks_http_to_a_server_with_content_length() {
        let (base, heads) = serve(vec![with_length("200 OK", VECTOR)]);
        let samples = query(&format!("{base}/prom/"), "up == 1", Some(1_746_547_200.0)).unwrap();
        assert_eq!(samples.len(), 4);
        let head = heads.recv().unwrap();
        let first = head.lines().next().unwrap();
        assert_eq!(
            first,
            "GET /prom/api/v1/query?query=up%20%3D%3D%201&time=1746547200.000 HTTP/1.1"
        );
        assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
        assert!(
            head.contains(&format!("\r\nHost: {}\r\n", &base["http://".len()..])),
            "{head}"
        );
    }

    #[test]
    fn query_reads_chunked_answers() {
        let (base, _heads) = serve(vec![chunked(VECTOR)]);
        let samples = query(&base, "up", None).unwrap();
        assert_eq!(samples[1].value, 970.0);
    }

    #[test]
    fn query_reports_prometheus_errors() {
        let body =
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\""}"#;
        let (base, _heads) = serve(vec![with_length("400 Bad Request", body)]);
        let err = query(&base, "up{", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Prometheus answered HTTP 400: invalid parameter \"query\""
        );
    }

    #[test]
    fn query_fails_cleanly_when_nobody_listens() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = query(&format!("http://127.0.0.1:{port}"), "up", None).unwrap_err();
        assert!(matches!(err, PromError::Connect { .. }), "{err:?}");
    }

    #[test]
    fn query_times_out_on_a_silent_server() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let keep = thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            thread::sleep(Duration::from_millis(600));
            drop(conn);
        });
        let err = query_with(
            &base,
            "up",
            None,
            CONNECT_TIMEOUT,
            Duration::from_millis(100),
        )
        .unwrap_err();
        match &err {
            PromError::Io { source, .. } => assert!(
                matches!(
                    source.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{err:?}"
            ),
            other => panic!("{other:?}"),
        }
        keep.join().unwrap();
    }

    #[test]
    fn observe_runs_every_query_at_now_and_keys_by_number_trunk_and_bucket() {
        let calls = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"number":"059185666661"},"value":[1,"30.4"]},
            {"metric":{"number":"059112356"},"value":[1,"970"]},
            {"metric":{},"value":[1,"5"]}]}}"#;
        let late = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"number":"059185666661"},"value":[1,"2"]}]}}"#;
        let last = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"number":"059185666661"},"value":[1,"1746547200"]}]}}"#;
        let trunks = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"number":"059185666661","trunk":"fuzhou"},"value":[1,"28"]},
            {"metric":{"number":"059185666661","trunk":"national"},"value":[1,"2.4"]}]}}"#;
        let day = |n: u32| {
            format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[
                {{"metric":{{"number":"059185666661"}},"value":[1,"{n}"]}}]}}}}"#
            )
        };
        let mut responses = vec![
            with_length("200 OK", calls),
            with_length("200 OK", late),
            chunked(last),
            with_length("200 OK", last),
            with_length("200 OK", trunks),
        ];
        responses.extend((1..=7).map(|n| with_length("200 OK", &day(n))));
        let (base, heads) = serve(responses);
        let window = crate::report::parse_window("1w").unwrap();
        let now = 1_748_736_000;
        let obs = observe(&base, &window, now).unwrap();
        assert_eq!(obs.calls.len(), 2);
        assert_eq!(obs.calls["059185666661"], 30.4);
        assert_eq!(obs.calls["059112356"], 970.0);
        assert_eq!(obs.late["059185666661"], 2.0);
        assert_eq!(obs.last_call["059185666661"], 1_746_547_200.0);
        assert_eq!(obs.trunks["059185666661"]["national"], 2.4);
        assert_eq!(obs.buckets.len(), 7);
        // Oldest first, each a day, the last ending now.
        assert_eq!(obs.buckets[6].end, now);
        assert_eq!(obs.buckets[0].start, now - 7 * 86_400);
        assert_eq!(obs.buckets[0].calls["059185666661"], 1.0);
        assert_eq!(obs.buckets[6].calls["059185666661"], 7.0);
        let heads: Vec<String> = heads.iter().take(12).collect();
        let at = |promql: &str, t: i64| {
            format!(
                "GET /api/v1/query?query={}&time={t}.000 ",
                encode_component(promql)
            )
        };
        assert!(
            heads[0].starts_with(&at(&calls_query(&window), now)),
            "{}",
            heads[0]
        );
        assert!(
            heads[1].starts_with(&at(&late_query(&window), now)),
            "{}",
            heads[1]
        );
        assert!(
            heads[2].starts_with(&at(&last_call_query(&window), now)),
            "{}",
            heads[2]
        );
        assert!(
            heads[3].starts_with(&at(&called_query(&window), now)),
            "{}",
            heads[3]
        );
        assert!(
            heads[4].starts_with(&at(&trunks_query(&window), now)),
            "{}",
            heads[4]
        );
        let day_window = crate::report::parse_window("1d").unwrap();
        assert!(
            heads[5].starts_with(&at(&calls_query(&day_window), now - 6 * 86_400)),
            "{}",
            heads[5]
        );
        assert!(
            heads[11].starts_with(&at(&calls_query(&day_window), now)),
            "{}",
            heads[11]
        );
    }

    #[test]
    fn windows_are_cut_into_days_or_sixths() {
        let plan = |w: &str| bucket_plan(&crate::report::parse_window(w).unwrap());
        assert_eq!(plan("7d"), (7, 86_400));
        assert_eq!(plan("90d"), (31, 86_400));
        assert_eq!(plan("1d"), (6, 14_400));
        assert_eq!(plan("5m"), (6, 50));
        assert_eq!(plan("3s"), (1, 3));
    }
}
