//! A mapping file's text -> its serde shape ([`RawFile`]), without stopping at the first
//! problem. Pure: text in, shape and problems out.
//!
//! serde stops at the first unknown or mistyped field. So that an operator sees every problem at
//! once, each error is located in the document (toml_edit keeps every key's and value's span),
//! reported with its full path (`trunk[1].orgin_area`) in plain words, and the offending entry is
//! blanked out with spaces (offsets and line numbers stay put) before parsing again, at most
//! [`MAX_PROBLEMS`] times. The `Raw*` structs stay the one description of the file: a field added
//! there is read, typo-checked and type-checked here with no further code.

use super::raw::RawFile;
use std::ops::Range;
use toml_edit::{ImDocument, Item, Table, Value};

/// How many problems are collected before giving up on a file.
pub const MAX_PROBLEMS: usize = 200;

/// One problem found while reading the file's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where in the text.
    pub span: Range<usize>,
    /// Full path of the field, e.g. `trunk[1].orgin_area`.
    pub field: String,
    /// What is wrong, in plain words.
    pub problem: String,
}

/// The file's shape with every problem found reading it.
#[derive(Debug)]
pub struct Parsed {
    /// The shape, once whatever was wrong has been set aside; `None` when the file could not be
    /// read at all (a TOML syntax error, a required top-level table missing).
    pub raw: Option<RawFile>,
    /// Every problem, in the order found.
    pub problems: Vec<Problem>,
    /// `[[table]]` entries set aside whole (a required field missing): (table name, index in the
    /// file). Later entries of the same table are shifted down by one in `raw`.
    dropped: Vec<(String, usize)>,
}

impl Parsed {
    /// Rewrites a field path built from an index into `raw` (e.g. `legacy[1].queue`) to the
    /// entry's index in the file, which differs once an earlier entry was set aside.
    pub fn field_in_file(&self, field: &str) -> String {
        let Some((name, rest)) = field.split_once('[') else {
            return field.to_string();
        };
        let Some((index, tail)) = rest.split_once(']') else {
            return field.to_string();
        };
        let Ok(mut k) = index.parse::<usize>() else {
            return field.to_string();
        };
        let mut gone: Vec<usize> = self
            .dropped
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, i)| *i)
            .collect();
        gone.sort_unstable();
        for g in gone {
            if g <= k {
                k += 1;
            }
        }
        format!("{name}[{k}]{tail}")
    }
}

/// Reads `text` as a mapping file, collecting every problem of shape (unknown fields, wrong
/// types, missing required fields) instead of stopping at the first.
pub fn parse(text: &str) -> Parsed {
    let mut out = Parsed {
        raw: None,
        problems: Vec::new(),
        dropped: Vec::new(),
    };
    // The common case, a good file, is one parse; the document with its spans is built only
    // to explain a failure (a national file is 84 000 lines: issue 12).
    if let Ok(raw) = toml::from_str::<RawFile>(text) {
        out.raw = Some(raw);
        return out;
    }
    let doc = match ImDocument::parse(text) {
        Ok(d) => d,
        Err(_) if text.parse::<toml::Table>().is_ok() => {
            // Good TOML 1.1 (the reader's version) that the problem finder, TOML 1.0, cannot
            // read: report the reader's own first problem where it is, not the 1.1 syntax.
            if let Err(e) = toml::from_str::<RawFile>(text) {
                out.problems.push(Problem {
                    span: e.span().unwrap_or(0..0),
                    field: "(file)".to_string(),
                    problem: format!(
                        "{} (only this first problem is reported: the file uses TOML 1.1 \
                         syntax, such as a time without seconds; in TOML 1.0 every problem is \
                         reported with its field)",
                        e.message().trim()
                    ),
                });
            }
            return out;
        }
        Err(e) => {
            out.problems.push(Problem {
                span: e.span().unwrap_or(0..0),
                field: "(syntax)".to_string(),
                problem: e.message().trim().to_string(),
            });
            return out;
        }
    };
    let mut work = text.to_string();
    // Paths already reported: a "missing field" for one of them is the same problem again.
    let mut covered: Vec<String> = Vec::new();
    for _ in 0..MAX_PROBLEMS {
        let e = match toml::from_str::<RawFile>(&work) {
            Ok(raw) => {
                out.raw = Some(raw);
                return out;
            }
            Err(e) => e,
        };
        let span = e.span().unwrap_or(0..0);
        let kind = Kind::of(e.message());
        let Some(hit) = locate(doc.as_table(), &span) else {
            out.problems.push(Problem {
                span,
                field: "(file)".to_string(),
                problem: e.message().trim().to_string(),
            });
            return out;
        };
        let (field, problem) = describe(&kind, &hit.path);
        let suppressed = matches!(kind, Kind::Missing { .. })
            && covered
                .iter()
                .any(|c| c == &field || c.starts_with(&format!("{field}.")));
        if !suppressed {
            out.problems.push(Problem {
                span: span.clone(),
                field: field.clone(),
                problem,
            });
        }
        covered.push(field.clone());
        if let Kind::Unknown { name, expected } = &kind {
            if let Some(s) = closest(name, expected) {
                covered.push(join(&hit.parent_path(), Some(&s)));
            }
        }
        // Set the entry aside: the field itself, or, for a missing field, the table lacking it.
        let mut removal: Vec<Range<usize>> = match (&kind, &hit.node) {
            (Kind::Missing { .. }, Node::Root) => {
                return out;
            }
            (_, Node::Entry(r, sep)) => vec![with_comma(&work, r.clone(), *sep)],
            (_, node) => node.ranges(),
        };
        if let Node::Element { table, index, .. } = &hit.node {
            out.dropped.push((table.clone(), *index));
        }
        if let (Kind::Unknown { .. }, Node::Element { all, .. }) = (&kind, &hit.node) {
            // `[[trunks]]`: an unknown table name set aside with every one of its entries.
            removal.clone_from(all);
            out.dropped.pop();
        }
        if !blank(&mut work, &removal) {
            return out;
        }
    }
    out.problems.push(Problem {
        span: 0..0,
        field: "(file)".to_string(),
        problem: format!("more than {MAX_PROBLEMS} problems; stopped reading"),
    });
    out
}

/// Overwrites `ranges` of `work` with spaces, keeping newlines (and so every offset and line).
/// False when nothing changed, so the caller cannot loop on the same error.
fn blank(work: &mut String, ranges: &[Range<usize>]) -> bool {
    let mut bytes = std::mem::take(work).into_bytes();
    let mut changed = false;
    for r in ranges {
        for b in bytes.get_mut(r.clone()).into_iter().flatten() {
            if *b != b'\n' && *b != b' ' {
                *b = b' ';
                changed = true;
            }
        }
    }
    // Only whole characters were in the ranges and every byte became ASCII, so this holds.
    *work = String::from_utf8(bytes).unwrap_or_default();
    changed
}

/// What serde said was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// `unknown field `x`, expected one of `a`, `b``.
    Unknown { name: String, expected: Vec<String> },
    /// `missing field `x``.
    Missing { name: String },
    /// `invalid type: FOUND, expected WANT`.
    Type { found: String, want: String },
    /// `invalid value: FOUND, expected WANT` (out of range).
    Value { found: String, want: String },
    /// Anything else, as serde wrote it.
    Other(String),
}

impl Kind {
    fn of(msg: &str) -> Kind {
        let msg = msg.trim();
        let ticked = |s: &str| -> Vec<String> {
            s.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        };
        if let Some(rest) = msg.strip_prefix("unknown field ") {
            let (name, expected) = rest.split_once(", expected").unwrap_or((rest, ""));
            return Kind::Unknown {
                name: name.trim_matches('`').to_string(),
                expected: ticked(expected),
            };
        }
        if let Some(rest) = msg.strip_prefix("missing field ") {
            return Kind::Missing {
                name: rest.trim_matches('`').to_string(),
            };
        }
        for (prefix, value) in [("invalid type: ", false), ("invalid value: ", true)] {
            if let Some((found, want)) = msg
                .strip_prefix(prefix)
                .and_then(|r| r.rsplit_once(", expected "))
            {
                let (found, want) = (found.to_string(), want.to_string());
                return if value {
                    Kind::Value { found, want }
                } else {
                    Kind::Type { found, want }
                };
            }
        }
        Kind::Other(msg.to_string())
    }
}

/// The known name closest to `name`, if it is close enough to be a typo of it.
fn closest(name: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(name, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone())
}

/// Field path and plain-words problem for an error at `path`.
fn describe(kind: &Kind, path: &[Seg]) -> (String, String) {
    let field = join(path, None);
    match kind {
        Kind::Unknown { name, expected } => {
            let problem = match closest(name, expected) {
                Some(s) => format!("unknown field `{name}`; did you mean `{s}`?"),
                None if expected.is_empty() => format!("unknown field `{name}`"),
                None => format!(
                    "unknown field `{name}`; expected one of {}",
                    expected
                        .iter()
                        .map(|e| format!("`{e}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            (field, problem)
        }
        Kind::Missing { name } => (
            join(path, Some(name)),
            "required field is missing".to_string(),
        ),
        Kind::Type { found, want } => {
            let hint = if want == "a sequence" && found == "map" {
                format!(
                    "; write [[{}]] for each entry",
                    path.last().map_or(String::new(), Seg::to_string)
                )
            } else {
                String::new()
            };
            (
                field,
                format!(
                    "expected {}, found {}{hint}",
                    plain(want),
                    plain_found(found)
                ),
            )
        }
        Kind::Value { found, want } => (
            field,
            format!("{} is out of range: expected {}", bare(found), plain(want)),
        ),
        Kind::Other(m) => (field, m.clone()),
    }
}

/// serde's name for an expected type, in an operator's words.
fn plain(want: &str) -> String {
    let s = match want {
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a string" => "text in quotes",
        "a sequence" => "a list in brackets, e.g. [\"a\", \"b\"]",
        "a TOML datetime" => "a datetime with an offset, e.g. 2025-04-07T00:00:00+08:00",
        "a map" => "a table",
        w if w.starts_with("struct ") => "a table",
        w => w,
    };
    s.to_string()
}

/// serde's description of what was found, in an operator's words.
fn plain_found(found: &str) -> String {
    if let Some(s) = found.strip_prefix("string ") {
        return format!("the text {s}");
    }
    for p in ["integer ", "floating point "] {
        if let Some(n) = found.strip_prefix(p) {
            return format!("the number {}", n.trim_matches('`'));
        }
    }
    if let Some(b) = found.strip_prefix("boolean ") {
        return b.trim_matches('`').to_string();
    }
    match found {
        "map" => "a table".to_string(),
        "sequence" => "a list".to_string(),
        f => f.to_string(),
    }
}

/// `integer `70000`` -> `70000`.
fn bare(found: &str) -> String {
    found
        .split('`')
        .nth(1)
        .map_or_else(|| found.to_string(), str::to_string)
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

impl std::fmt::Display for Seg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seg::Key(k) => f.write_str(k),
            Seg::Index(i) => write!(f, "{i}"),
        }
    }
}

/// `trunk[1].origin_area`, with `last` appended as a key when given.
fn join(path: &[Seg], last: Option<&str>) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    if let Some(l) = last {
        if !s.is_empty() {
            s.push('.');
        }
        s.push_str(l);
    }
    s
}

/// What separates an entry from its neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    /// A line of its own in a table.
    None,
    /// A comma, in an inline table.
    Inline,
    /// A comma, in a list (which may end with one).
    List,
}

/// What an error's span points at.
#[derive(Debug)]
enum Node {
    /// The whole document.
    Root,
    /// `key = value` (in a table or an inline table) or a list element: the text to blank.
    Entry(Range<usize>, Sep),
    /// A `[table]`.
    Table(Range<usize>),
    /// One `[[table]]` entry; `all` is every entry of that table.
    Element {
        table: String,
        index: usize,
        span: Range<usize>,
        all: Vec<Range<usize>>,
    },
}

impl Node {
    fn ranges(&self) -> Vec<Range<usize>> {
        match self {
            Node::Root => Vec::new(),
            Node::Entry(r, _) => vec![r.clone()],
            Node::Table(r) | Node::Element { span: r, .. } => vec![r.clone()],
        }
    }
}

#[derive(Debug)]
struct Hit {
    path: Vec<Seg>,
    node: Node,
}

impl Hit {
    /// The path of the table holding the field the hit names.
    fn parent_path(&self) -> Vec<Seg> {
        let mut p = self.path.clone();
        p.pop();
        p
    }
}

fn within(inner: &Range<usize>, outer: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && inner.start < outer.end
}

/// The innermost entry of `root` whose text holds `span`.
fn locate(root: &Table, span: &Range<usize>) -> Option<Hit> {
    let mut path = Vec::new();
    match in_table(root, span, &mut path) {
        Some(h) => Some(h),
        None => Some(Hit {
            path: Vec::new(),
            node: Node::Root,
        }),
    }
}

fn in_table(t: &Table, span: &Range<usize>, path: &mut Vec<Seg>) -> Option<Hit> {
    for (k, item) in t.iter() {
        let key_span = t.key(k).and_then(toml_edit::Key::span);
        let on_key = key_span.as_ref().is_some_and(|ks| within(span, ks));
        match item {
            Item::Value(v) => {
                let Some(vs) = v.span() else { continue };
                let entry = key_span.as_ref().map_or(vs.clone(), |ks| ks.start..vs.end);
                if on_key || within(span, &vs) {
                    path.push(Seg::Key(k.to_string()));
                    if !on_key {
                        if let Some(h) = in_value(v, span, path) {
                            return Some(h);
                        }
                    }
                    return Some(Hit {
                        path: path.clone(),
                        node: Node::Entry(entry, Sep::None),
                    });
                }
            }
            Item::Table(sub) => {
                let inside = sub.span().is_none_or(|ts| within(span, &ts));
                if on_key || (inside && sub.span().is_some()) {
                    path.push(Seg::Key(k.to_string()));
                    if let Some(h) = in_table(sub, span, path) {
                        return Some(h);
                    }
                    return Some(Hit {
                        path: path.clone(),
                        node: sub.span().map_or(Node::Root, Node::Table),
                    });
                }
                if sub.span().is_none() {
                    // An implicit parent (`[a.b]` without `[a]`): look inside.
                    path.push(Seg::Key(k.to_string()));
                    if let Some(h) = in_table(sub, span, path) {
                        return Some(h);
                    }
                    path.pop();
                }
            }
            Item::ArrayOfTables(a) => {
                let all: Vec<Range<usize>> = a.iter().filter_map(Table::span).collect();
                for (i, sub) in a.iter().enumerate() {
                    let Some(ts) = sub.span() else { continue };
                    if within(span, &ts) {
                        path.push(Seg::Key(k.to_string()));
                        path.push(Seg::Index(i));
                        if let Some(h) = in_table(sub, span, path) {
                            return Some(h);
                        }
                        return Some(Hit {
                            path: path.clone(),
                            node: Node::Element {
                                table: k.to_string(),
                                index: i,
                                span: ts,
                                all,
                            },
                        });
                    }
                }
            }
            Item::None => {}
        }
    }
    None
}

fn in_value(v: &Value, span: &Range<usize>, path: &mut Vec<Seg>) -> Option<Hit> {
    match v {
        Value::InlineTable(t) => {
            for (k, inner) in t.iter() {
                let key_span = t.key(k).and_then(toml_edit::Key::span);
                let on_key = key_span.as_ref().is_some_and(|ks| within(span, ks));
                let Some(vs) = inner.span() else { continue };
                if on_key || within(span, &vs) {
                    path.push(Seg::Key(k.to_string()));
                    if !on_key {
                        if let Some(h) = in_value(inner, span, path) {
                            return Some(h);
                        }
                    }
                    let entry = key_span.map_or(vs.clone(), |ks| ks.start..vs.end);
                    return Some(Hit {
                        path: path.clone(),
                        node: Node::Entry(entry, Sep::Inline),
                    });
                }
            }
            None
        }
        Value::Array(a) => {
            for (i, inner) in a.iter().enumerate() {
                let Some(vs) = inner.span() else { continue };
                if within(span, &vs) {
                    path.push(Seg::Index(i));
                    if let Some(h) = in_value(inner, span, path) {
                        return Some(h);
                    }
                    return Some(Hit {
                        path: path.clone(),
                        node: Node::Entry(vs, Sep::List),
                    });
                }
            }
            None
        }
        _ => None,
    }
}

/// Extends an inline-table entry or list element over its comma, so that blanking it leaves
/// valid TOML: the comma after it, or (inline tables allow no trailing comma) the one before.
fn with_comma(text: &str, entry: Range<usize>, sep: Sep) -> Range<usize> {
    if sep == Sep::None {
        return entry;
    }
    let bytes = text.as_bytes();
    let mut at = entry.end;
    while at < bytes.len() {
        match bytes[at] {
            b' ' | b'\t' | b'\r' | b'\n' => at += 1,
            b'#' => {
                while at < bytes.len() && bytes[at] != b'\n' {
                    at += 1;
                }
            }
            b',' => return entry.start..at + 1,
            _ => break,
        }
    }
    if sep == Sep::Inline {
        let mut at = entry.start;
        while at > 0 && matches!(bytes[at - 1], b' ' | b'\t') {
            at -= 1;
        }
        if at > 0 && bytes[at - 1] == b',' {
            return at - 1..entry.end;
        }
    }
    entry
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MIN: &str = "[new_number]\nnumber = \"12356\"\n[[queue]]\nname = \"q\"\nbackends = [\"sip:127.0.0.1\"]\n";

    fn problems(extra: &str) -> Vec<(usize, String, String)> {
        let text = format!("{MIN}{extra}");
        let p = parse(&text);
        p.problems
            .iter()
            .map(|p| {
                let line = text[..p.span.start].matches('\n').count() + 1;
                (line, p.field.clone(), p.problem.clone())
            })
            .collect()
    }

    #[test]
    fn every_shape_problem_is_reported_with_its_path_in_plain_words() {
        let got = problems(
            "[[trunk]]\nname = \"a\"\nsources = [\"10.0.0.0/8\", 7]\norgin_area = \"0591\"\n\
             [[legacy]]\nnumber = \"0591-85666661\"\nqueue = \"q\"\nparallel_from = 2025-04-07T00:00:00+08:00\n\
             retired_from = \"soon\"\nwhen_retired = { treatment = \"redirect\", staus = 301, status = 70000 }\n\
             [gateway]\nrecord_route = \"yes\"\nzz = 1\n",
        );
        let want = [
            (8, "trunk[0].sources[1]", "expected text in quotes, found the number 7"),
            (9, "trunk[0].orgin_area", "unknown field `orgin_area`; did you mean `origin_area`?"),
            (14, "legacy[0].retired_from", "expected a datetime with an offset, e.g. 2025-04-07T00:00:00+08:00, found the text \"soon\""),
            (15, "legacy[0].when_retired.staus", "unknown field `staus`; did you mean `status`?"),
            (15, "legacy[0].when_retired.status", "70000 is out of range: expected a whole number from 0 to 65535"),
            (17, "gateway.record_route", "expected true or false, found the text \"yes\""),
            (18, "gateway.zz", "unknown field `zz`; expected one of `sip_udp`, `sip_tcp`, `metrics`, `advertised`, `record_route`, `mark_legacy`, `replica`, `secret`, `secret_file`, `answer_strangers`"),
        ];
        let mut got_sorted = got.clone();
        got_sorted.sort();
        let mut want: Vec<(usize, String, String)> = want
            .iter()
            .map(|(l, f, p)| (*l, f.to_string(), p.to_string()))
            .collect();
        want.sort();
        // `retired_from` set aside leaves it missing: reported once, not twice.
        assert_eq!(got_sorted, want);
    }

    #[test]
    fn a_table_written_once_instead_of_as_a_list_says_so() {
        let text = "[new_number]\nnumber = \"12356\"\n[queue]\nname = \"q\"\nbackends = []\n";
        let p = parse(text);
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        assert_eq!(p.problems[0].field, "queue");
        assert_eq!(
            p.problems[0].problem,
            "expected a list in brackets, e.g. [\"a\", \"b\"], found a table; write [[queue]] for each entry"
        );
        assert!(p.raw.is_some());
    }

    #[test]
    fn an_entry_missing_a_required_field_is_set_aside_and_later_entries_keep_their_index() {
        let p = parse(&format!(
            "{MIN}[[legacy]]\nnumber = \"0591-85666661\"\n[[legacy]]\nnumber = \"0591-85666221\"\nqueue = \"q\"\n\
             parallel_from = 2025-04-07T00:00:00+08:00\nretired_from = 2025-05-07T00:00:00+08:00\n\
             when_retired = {{ treatment = \"route\" }}\n"
        ));
        assert_eq!(p.problems[0].field, "legacy[0].queue");
        assert_eq!(p.problems[0].problem, "required field is missing");
        let raw = p.raw.as_ref().unwrap();
        assert_eq!(raw.legacy.len(), 1);
        assert_eq!(p.field_in_file("legacy[0].number"), "legacy[1].number");
    }

    #[test]
    fn a_toml_1_1_file_with_a_mistake_is_told_the_mistake_not_the_1_1_syntax() {
        const FILE: &str = include_str!("../../mappings/fujian.toml");
        let text = FILE
            .replacen("T00:00:00+08:00", "T00:00+08:00", 1)
            .replacen("origin_area", "orgin_area", 1);
        assert_ne!(text, FILE);
        let p = parse(&text);
        assert!(p.raw.is_none());
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        assert!(
            p.problems[0].problem.contains("orgin_area"),
            "{:?}",
            p.problems[0]
        );
        let line = text[..p.problems[0].span.start].matches('\n').count();
        assert!(
            text.lines().nth(line).unwrap_or("").contains("orgin_area"),
            "line {}",
            line + 1
        );
        // Without the mistake, the same TOML 1.1 file is good.
        assert!(parse(&FILE.replacen("T00:00:00+08:00", "T00:00+08:00", 1))
            .raw
            .is_some());
    }

    #[test]
    fn syntax_errors_stop_reading_with_toml_s_message() {
        let p = parse("[new_number\nnumber = 1\n");
        assert!(p.raw.is_none());
        assert_eq!(p.problems.len(), 1);
        assert_eq!(p.problems[0].field, "(syntax)");
    }

    #[test]
    fn field_paths_follow_removed_entries() {
        let p = Parsed {
            raw: None,
            problems: Vec::new(),
            dropped: vec![("legacy".into(), 1)],
        };
        assert_eq!(p.field_in_file("legacy[0].queue"), "legacy[0].queue");
        assert_eq!(p.field_in_file("legacy[1].queue"), "legacy[2].queue");
        assert_eq!(p.field_in_file("area[1].code"), "area[1].code");
        assert_eq!(p.field_in_file("gateway.sip_udp"), "gateway.sip_udp");
    }
}
