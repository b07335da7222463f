//! The Prometheus HTTP API client for `dualgate retirement`: instant queries
//! (`GET /api/v1/query`) over http or https through ureq, with basic auth (user info in the URL),
//! a bearer token, a private CA, proxies (`HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`) and redirects.
//!
//! An edge: this module does network I/O; decoding the API's JSON is a pure function tested
//! below, and the queries the report runs are built here, next to the client that sends them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use thiserror::Error;

use super::{Observed, Slice, Window};

/// How long to wait for the TCP connection (and TLS handshake) to Prometheus.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one query may take in all; long-range queries can take a while.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest response accepted; a report's answer is a few kilobytes.
const MAX_RESPONSE: u64 = 16 * 1024 * 1024;

/// One element of an instant vector: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels (including `__name__` when the query kept it).
    pub labels: BTreeMap<String, String>,
    /// The value at the evaluation time.
    pub value: f64,
}

/// How to reach Prometheus besides its URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// PEM file of the CA(s) to trust for https instead of the built-in web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// File holding a bearer token (trailing whitespace ignored), sent as `Authorization`.
    pub bearer_token_file: Option<PathBuf>,
    /// How long one query may take in all (default 60 s).
    pub timeout: Option<Duration>,
}

/// Why a query failed.
#[derive(Debug, Error)]
pub enum PromError {
    /// The URL does not parse, or is not `http(s)://host[:port][/prefix]`.
    #[error("{url}: {why}; expected http(s)://[user:password@]host[:port][/prefix]")]
    BadUrl {
        /// The URL given (user info masked).
        url: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Both user info in the URL and a bearer token: which one to send is ambiguous.
    #[error("give either user:password in the URL or a bearer token file, not both")]
    TwoCredentials,
    /// A CA or token file could not be read or holds nothing usable.
    #[error("{path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The request failed: DNS, connect, TLS, timeout, too many redirects, body too large ...
    #[error("{url}: {source}")]
    Http {
        /// The URL queried (user info masked).
        url: String,
        /// ureq's error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// Prometheus answered with a non-200 status (bad query, timeout, overload, 401 ...).
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

/// A Prometheus server to query: its base URL and the credentials to send.
pub struct Client {
    agent: ureq::Agent,
    /// `scheme://host:port/prefix` without a trailing slash and without user info.
    base: String,
    authorization: Option<String>,
}

/// Splits user info off an `http(s)://` URL: (the URL without it, `user:password` decoded).
fn split_user_info(url: &str) -> Result<(String, Option<String>), PromError> {
    let bad = |why| PromError::BadUrl {
        url: mask(url),
        why,
    };
    let uri: ureq::http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(bad("the scheme must be http or https")),
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.host().is_empty() {
        return Err(bad("no host"));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(bad("a query string or fragment cannot be kept"));
    }
    let (user_info, host) = match authority.as_str().rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority.as_str()),
    };
    let path = uri.path().trim_end_matches('/');
    let base = format!("{}://{host}{path}", uri.scheme_str().unwrap_or("http"));
    let user_info = user_info
        .map(|u| percent_decode(u).ok_or_else(|| bad("bad percent-encoding in user info")))
        .transpose()?;
    Ok((base, user_info))
}

/// Checks that `url` is one [`Client::new`] accepts (for command-line parsing).
///
/// # Errors
/// [`PromError::BadUrl`] naming what is wrong.
pub fn check_url(url: &str) -> Result<(), PromError> {
    split_user_info(url).map(|_| ())
}

/// The URL with `user:password@` replaced by `***@`, for messages.
pub fn mask(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(a)) if a > s => format!("{}***{}", &url[..s + 3], &url[a..]),
        _ => url.to_string(),
    }
}

/// Decodes `%XX` escapes; `None` for a bad escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes a query-string value: everything but RFC 3986 unreserved characters.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn read_file(path: &Path) -> Result<Vec<u8>, PromError> {
    std::fs::read(path).map_err(|e| PromError::File {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

impl Client {
    /// A client for the Prometheus at `url` (`http(s)://[user:password@]host[:port][/prefix]`).
    ///
    /// # Errors
    /// [`PromError::BadUrl`], [`PromError::TwoCredentials`], or [`PromError::File`] for an
    /// unreadable or empty CA or token file.
    pub fn new(url: &str, access: &Access) -> Result<Client, PromError> {
        let (base, user_info) = split_user_info(url)?;
        let token = match &access.bearer_token_file {
            Some(path) => {
                let text = String::from_utf8_lossy(&read_file(path)?)
                    .trim()
                    .to_string();
                if text.is_empty() {
                    return Err(PromError::File {
                        path: path.clone(),
                        why: "the bearer token file is empty".into(),
                    });
                }
                Some(text)
            }
            None => None,
        };
        let authorization = match (user_info, token) {
            (Some(_), Some(_)) => return Err(PromError::TwoCredentials),
            (Some(u), None) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(u)
            )),
            (None, Some(t)) => Some(format!("Bearer {t}")),
            (None, None) => None,
        };
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &access.ca_file {
            let pem = read_file(path)?;
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(PromError::File {
                    path: path.clone(),
                    why: "no PEM certificate in the CA file".into(),
                });
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(access.timeout.unwrap_or(QUERY_TIMEOUT)))
            // Prometheus explains a bad query in the JSON body of its 400: read it.
            .http_status_as_error(false)
            .user_agent(concat!("dualgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Client {
            agent,
            base,
            authorization,
        })
    }

    /// The request target for an instant query.
    fn query_url(&self, promql: &str, at_unix: Option<f64>) -> String {
        let mut url = format!(
            "{}/api/v1/query?query={}",
            self.base,
            encode_component(promql)
        );
        if let Some(t) = at_unix {
            url.push_str(&format!("&time={t:.3}"));
        }
        url
    }

    /// Runs an instant query evaluated at `at_unix` (unix seconds) or at Prometheus' "now".
    ///
    /// # Errors
    /// Any [`PromError`]: network, TLS or timeout failure, non-200 answer (with Prometheus'
    /// error message), or an answer that is not an instant vector.
    pub fn query(&self, promql: &str, at_unix: Option<f64>) -> Result<Vec<Sample>, PromError> {
        let url = self.query_url(promql, at_unix);
        let http = |source: ureq::Error| PromError::Http {
            url: mask(&self.base),
            source: Box::new(source),
        };
        let mut req = self.agent.get(&url).header("Accept", "application/json");
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        let mut resp = req.call().map_err(http)?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .map_err(http)?;
        decode(status, &body)
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
pub fn decode(status: u16, body: &[u8]) -> Result<Vec<Sample>, PromError> {
    let parsed: Result<RawAnswer, _> = serde_json::from_slice(body);
    if status != 200 {
        let message = match &parsed {
            Ok(RawAnswer { error: Some(e), .. }) => e.clone(),
            _ => String::from_utf8_lossy(body).chars().take(200).collect(),
        };
        return Err(PromError::Status { status, message });
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
/// As [`Client::query`], for any of the queries.
pub fn observe(client: &Client, window: &Window, now_unix: i64) -> Result<Observed, PromError> {
    let at = Some(now_unix as f64);
    let query = |promql: &str, at| client.query(promql, at);
    let calls = by_number(query(&calls_query(window), at)?);
    let late = by_number(query(&late_query(window), at)?);
    let last_call = by_number(query(&last_call_query(window), at)?);
    let called = by_number(query(&called_query(window), at)?);
    let mut trunks: HashMap<String, HashMap<String, f64>> = HashMap::new();
    for mut s in query(&trunks_query(window), at)? {
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
            let calls = by_number(query(&calls_query(&w), Some(end as f64))?);
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
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;

    #[test]
    fn urls_keep_scheme_host_port_and_prefix_and_yield_user_info() {
        const CASES: &[(&str, &str, Option<&str>)] = &[
            ("http://127.0.0.1:9090", "http://127.0.0.1:9090", None),
            ("http://127.0.0.1:9090/", "http://127.0.0.1:9090", None),
            (
                "https://prom.example:9090/prometheus/",
                "https://prom.example:9090/prometheus",
                None,
            ),
            ("HTTP://localhost", "http://localhost", None),
            ("http://[::1]:9090/p", "http://[::1]:9090/p", None),
            (
                "https://ops:s%40cret@prom:9090",
                "https://prom:9090",
                Some("ops:s@cret"),
            ),
        ];
        for (url, base, user) in CASES {
            let (b, u) = split_user_info(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!((b.as_str(), u.as_deref()), (*base, *user), "{url}");
        }
    }

    #[test]
    fn bad_urls_are_rejected_with_the_reason_and_no_password() {
        for url in [
            "prom:9090",
            "ftp://prom",
            "",
            "http://",
            "http://h/?x=1",
            "http://h#f",
            "http://[::1",
        ] {
            assert!(
                matches!(split_user_info(url), Err(PromError::BadUrl { .. })),
                "{url}"
            );
        }
        let err = split_user_info("ftp://ops:hunter2@prom").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("ftp://***@prom"), "{err}");
    }

    #[test]
    fn queries_are_percent_encoded() {
        let c = Client::new("http://h:1/prom", &Access::default()).unwrap();
        let q = "sum by (number) (increase(dualgate_call_attempts_total{a=\"b\"}[7d]))";
        assert_eq!(
            c.query_url(q, Some(1_746_547_200.0)),
            "http://h:1/prom/api/v1/query?query=sum%20by%20%28number%29%20%28increase%28dualgate_call_attempts_total\
             %7Ba%3D%22b%22%7D%5B7d%5D%29%29&time=1746547200.000"
        );
        assert_eq!(encode_component("a+b&c=d/é~"), "a%2Bb%26c%3Dd%2F%C3%A9~");
        assert_eq!(
            c.query_url("up", None),
            "http://h:1/prom/api/v1/query?query=up"
        );
    }

    #[test]
    fn credentials_come_from_the_url_or_a_token_file_not_both() {
        let dir = std::env::temp_dir().join(format!("dualgate-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "abc.def\n").unwrap();
        let access = Access {
            bearer_token_file: Some(token.clone()),
            ..Access::default()
        };
        let c = Client::new("http://h:1", &access).unwrap();
        assert_eq!(c.authorization.as_deref(), Some("Bearer abc.def"));
        assert!(matches!(
            Client::new("http://u:p@h:1", &access),
            Err(PromError::TwoCredentials)
        ));
        let c = Client::new("http://ops:secret@h:1", &Access::default()).unwrap();
        assert_eq!(c.authorization.as_deref(), Some("Basic b3BzOnNlY3JldA=="));
        std::fs::write(&token, "  \n").unwrap();
        assert!(matches!(
            Client::new("http://h:1", &access),
            Err(PromError::File { .. })
        ));
        let no_ca = Access {
            ca_file: Some(dir.join("missing.pem")),
            ..Access::default()
        };
        assert!(matches!(
            Client::new("https://h:1", &no_ca),
            Err(PromError::File { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    const VECTOR: &str = r#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"number":"059185666661"},"value":[1746547200.123,"12.5"]},
        {"metric":{"number":"059112356","queue":"fuzhou"},"value":[1746547200.123,"970"]},
        {"metric":{},"value":[1746547200.123,"NaN"]},
        {"metric":{"number":"x"},"value":[1746547200,"+Inf"]}]}}"#;

    #[test]
    fn vectors_decode_with_labels_and_special_values() {
        let samples = decode(200, VECTOR.as_bytes()).unwrap();
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
        let resp = |status, body: &'static str| (status, body.as_bytes());
        let bad_query =
            r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected"}"#;
        match decode_pair(resp(400, bad_query)) {
            Err(PromError::Status {
                status: 400,
                message,
            }) => {
                assert_eq!(message, "1:5: parse error: unexpected")
            }
            other => panic!("{other:?}"),
        }
        match decode_pair(resp(502, "<html>Bad Gateway</html>")) {
            Err(PromError::Status {
                status: 502,
                message,
            }) => assert_eq!(message, "<html>Bad Gateway</html>"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_pair(resp(200, bad_query)),
            Err(PromError::Api { .. })
        ));
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#;
        assert!(
            matches!(decode_pair(resp(200, scalar)), Err(PromError::NotVector { found }) if found == "scalar")
        );
        let word = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"many"]}]}}"#;
        assert!(matches!(
            decode_pair(resp(200, word)),
            Err(PromError::BadValue { .. })
        ));
        assert!(matches!(
            decode_pair(resp(200, "not json")),
            Err(PromError::Json { .. })
        ));
    }

    fn decode_pair((status, body): (u16, &[u8])) -> Result<Vec<Sample>, PromError> {
        decode(status, body)
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
        format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len())
            .into_bytes()
    }

    fn chunked(body: &str) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
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
        let c = Client::new(&format!("{base}/prom/"), &Access::default()).unwrap();
        let samples = c.query("up == 1", Some(1_746_547_200.0)).unwrap();
        assert_eq!(samples.len(), 4);
        let head = heads.recv().unwrap();
        let first = head.lines().next().unwrap();
        assert_eq!(
            first,
            "GET /prom/api/v1/query?query=up%20%3D%3D%201&time=1746547200.000 HTTP/1.1"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("\r\nhost: {}\r\n", &base["http://".len()..])),
            "{head}"
        );
    }

    #[test]
    fn query_reads_chunked_answers() {
        let (base, _heads) = serve(vec![chunked(VECTOR)]);
        let c = Client::new(&base, &Access::default()).unwrap();
        let samples = c.query("up", None).unwrap();
        assert_eq!(samples[1].value, 970.0);
    }

    #[test]
    fn query_reports_prometheus_errors() {
        let body =
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\""}"#;
        let (base, _heads) = serve(vec![with_length("400 Bad Request", body)]);
        let c = Client::new(&base, &Access::default()).unwrap();
        let err = c.query("up{", None).unwrap_err();
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
        let c = Client::new(&format!("http://127.0.0.1:{port}"), &Access::default()).unwrap();
        let err = c.query("up", None).unwrap_err();
        assert!(
            matches!(&err, PromError::Http { source, .. } if matches!(**source, ureq::Error::Io(_) | ureq::Error::ConnectionFailed)),
            "{err:?}"
        );
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
        let access = Access {
            timeout: Some(Duration::from_millis(100)),
            ..Access::default()
        };
        let err = Client::new(&base, &access)
            .unwrap()
            .query("up", None)
            .unwrap_err();
        assert!(
            matches!(&err, PromError::Http { source, .. } if matches!(**source, ureq::Error::Timeout(_))),
            "{err:?}"
        );
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
        let c = Client::new(&base, &Access::default()).unwrap();
        let obs = observe(&c, &window, now).unwrap();
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
