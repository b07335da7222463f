//! The per-number families (requests, attempts, outcomes, last call and the calendar gauges of
//! each legacy number) as plain atomics, indexed by the typed ids of a [`Label`], and their
//! Prometheus text. With the national mapping these are ≈ 195 000 series: kept in the exporter's
//! registry they cost ≈ 0.5 KB each and a second per scrape.
//!
//! Two parts:
//! - the **store** (one per process) owns every series ever registered: its label values
//!   (interned, escaped once) and its cell, an `AtomicU64` that is never freed, so a series
//!   never disappears and a counter never goes back. It is keyed by the series' label *text*,
//!   so a snapshot that shares a series with an earlier one shares its cell;
//! - a **table** (one per snapshot) points into the store: per number the routes
//!   [`route::reachable`] lists, per route the cells of each trunk and decision. Counting a
//!   message is index arithmetic on the label's ids and a relaxed atomic add: no hashing, no
//!   allocation, no lock. A worker still counting into the previous snapshot's table after a
//!   reload adds to the same cells, so no increment is lost.
//!
//! Label combinations no route lists (a CANCEL to a legacy number, a request from a backend)
//! are looked up in the store by text the first time each worker meets them
//! ([`series`]), as the exporter did for every message before.

use crate::calendar::{phase_at, PHASES};
use crate::clock::unix_seconds;
use crate::config::{QueueId, Snapshot};
use crate::mapping::NumberId;
use crate::proxy::{Act, CallOutcome};
use crate::route::{self, PhaseLabel, TrunkId};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::SystemTime;

pub(crate) const REQUESTS: &str = "dualgate_requests_total";
pub(crate) const ATTEMPTS: &str = "dualgate_call_attempts_total";
pub(crate) const OUTCOMES: &str = "dualgate_call_outcomes_total";
pub(crate) const LAST_CALL: &str = "dualgate_last_call_timestamp_seconds";
pub(crate) const PHASE: &str = "dualgate_legacy_phase";
pub(crate) const RETIRED_FROM: &str = "dualgate_legacy_retired_from_timestamp_seconds";
pub(crate) const NEXT_BOUNDARY: &str = "dualgate_legacy_next_boundary_timestamp_seconds";

/// A metric family kept here rather than in the exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    Requests,
    Attempts,
    Outcomes,
    LastCall,
    Phase,
    RetiredFrom,
    NextBoundary,
}

impl Family {
    /// Every family, in the order they are rendered.
    const ALL: [Family; 7] = [
        Family::Requests,
        Family::Attempts,
        Family::Outcomes,
        Family::LastCall,
        Family::Phase,
        Family::RetiredFrom,
        Family::NextBoundary,
    ];

    fn name(self) -> &'static str {
        match self {
            Family::Requests => REQUESTS,
            Family::Attempts => ATTEMPTS,
            Family::Outcomes => OUTCOMES,
            Family::LastCall => LAST_CALL,
            Family::Phase => PHASE,
            Family::RetiredFrom => RETIRED_FROM,
            Family::NextBoundary => NEXT_BOUNDARY,
        }
    }

    fn help(self) -> &'static str {
        match self {
            Family::Requests => "SIP requests handled, by method, dialled number, queue, trunk, migration phase and decision.",
            Family::Attempts => "Calls (initial INVITEs, each Call-ID and CSeq counted once) per dialled number, queue and trunk.",
            Family::Outcomes => "Final responses to INVITEs per dialled number, queue and outcome.",
            Family::LastCall => "Unix time of the last call attempt per dialled number (0: none since start).",
            Family::Phase => "1 for a legacy number's current migration phase, 0 for the others.",
            Family::RetiredFrom => "Unix time a legacy number's parallel period ends.",
            Family::NextBoundary => "Unix time of a legacy number's next phase boundary (0: none remains).",
        }
    }

    fn is_counter(self) -> bool {
        matches!(self, Family::Requests | Family::Attempts | Family::Outcomes)
    }

    /// Label names, in the order they are written (after the global `replica`).
    fn labels(self) -> &'static [&'static str] {
        match self {
            Family::Requests => &["method", "number", "queue", "trunk", "phase", "decision"],
            Family::Attempts => &["number", "queue", "trunk"],
            Family::Outcomes => &["number", "queue", "outcome"],
            Family::LastCall | Family::RetiredFrom | Family::NextBoundary => &["number"],
            Family::Phase => &["number", "phase"],
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The position of the `number` label in [`Family::labels`].
    fn number_at(self) -> usize {
        match self {
            Family::Requests => 1,
            _ => 0,
        }
    }
}

/// One series' value: a counter's count, or a gauge's `f64` bits.
#[derive(Debug, Default)]
pub(crate) struct Cell(AtomicU64);

/// Cells live as long as the process: a series, once registered, is never removed.
pub(crate) type CellRef = &'static Cell;

impl Cell {
    /// Adds to a counter.
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets a gauge.
    pub(crate) fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Label value ids of one series, in its family's label order; unused places are [`NO_VALUE`].
type Values = [u32; 6];
const NO_VALUE: u32 = u32::MAX;
/// Cells are allocated this many at a time.
const CELL_BLOCK: usize = 4096;

/// The store's hasher: a reload looks up every series of the national file (≈ 200 000), and
/// SipHash's resistance to chosen keys buys nothing for ids and label values the mapping file
/// defines.
type Quick = foldhash::fast::RandomState;

/// Every series of the families in [`Family`], for the life of the process.
#[derive(Default)]
struct Store {
    /// Interned label values, escaped for the text format.
    escaped: Vec<Box<str>>,
    /// Label value text to its id in `escaped`.
    ids: HashMap<Box<str>, u32, Quick>,
    /// Series by their `number` label's value, then by family and label values. A table
    /// registers a number's series one after another: looked up in a small map of that number's
    /// own, they stay in cache, where in one map of every series (≈ 200 000 with the national
    /// file) each lookup was a cache miss, a quarter of a reload.
    series: HashMap<u32, HashMap<(Family, Values), CellRef, Quick>, Quick>,
    /// Per family, its series in registration order (the order they are rendered).
    order: [Vec<(Values, CellRef)>; Family::ALL.len()],
    /// Cells not yet handed out.
    free: &'static [Cell],
}

static STORE: LazyLock<Mutex<Store>> = LazyLock::new(|| Mutex::new(Store::default()));

fn store() -> MutexGuard<'static, Store> {
    STORE.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    /// The id of label value `text`.
    fn value(&mut self, text: &str) -> u32 {
        if let Some(id) = self.ids.get(text) {
            return *id;
        }
        let id = u32::try_from(self.escaped.len()).unwrap_or(NO_VALUE - 1);
        self.escaped.push(escape(text).into_boxed_str());
        self.ids.insert(text.into(), id);
        id
    }

    /// The cell of a series, created at 0 if it is new.
    fn series(&mut self, f: Family, labels: &[u32]) -> CellRef {
        let mut key = [NO_VALUE; 6];
        for (k, v) in key.iter_mut().zip(labels) {
            *k = *v;
        }
        let number = key.get(f.number_at()).copied().unwrap_or(NO_VALUE);
        let of_number = self.series.entry(number).or_default();
        if let Some(c) = of_number.get(&(f, key)) {
            return c;
        }
        let cell = match self.free.split_first() {
            Some((c, rest)) => {
                self.free = rest;
                c
            }
            None => {
                let block: Box<[Cell]> = (0..CELL_BLOCK).map(|_| Cell::default()).collect();
                let block: &'static [Cell] = Box::leak(block);
                let (c, rest) = block
                    .split_first()
                    .expect("invariant: a cell block is not empty");
                self.free = rest;
                c
            }
        };
        of_number.insert((f, key), cell);
        self.order[f.index()].push((key, cell));
        cell
    }
}

/// The cell of the series of family `f` with label values `text` (in the family's label
/// order), created at 0 if new: the slow path, for combinations no table lists.
pub(crate) fn series(f: Family, text: &[&str]) -> CellRef {
    let mut s = store();
    let mut ids = [NO_VALUE; 6];
    for (id, t) in ids.iter_mut().zip(text) {
        *id = s.value(t);
    }
    s.series(f, &ids[..text.len().min(6)])
}

/// Escapes a label value for the text format: backslash, double quote and line feed.
pub(crate) fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The global labels written first in every series (`replica="…",`), set once by `install`.
static GLOBAL: OnceLock<String> = OnceLock::new();

/// Sets the global `replica` label of every series rendered here.
pub(crate) fn set_replica(replica: &str) {
    let _ = GLOBAL.set(format!("replica=\"{}\"", escape(replica)));
}

/// The labels every series carries (`replica="…"`), as written; empty before [`set_replica`].
pub(crate) fn global_labels() -> &'static str {
    GLOBAL.get().map_or("", String::as_str)
}

/// Appends the text of every family kept here to `out`: per family its `# HELP` and `# TYPE`
/// once, then one line per series; counters as integers, gauges as floats.
pub(crate) fn render_into(out: &mut String) {
    let global = global_labels();
    let s = store();
    for f in Family::ALL {
        let series = &s.order[f.index()];
        if series.is_empty() {
            continue;
        }
        let name = f.name();
        let kind = if f.is_counter() { "counter" } else { "gauge" };
        let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {kind}", f.help());
        out.reserve(series.len() * (name.len() + global.len() + 24 * f.labels().len() + 16));
        for (values, cell) in series {
            out.push_str(name);
            out.push('{');
            out.push_str(global);
            let mut first = global.is_empty();
            for (key, v) in f.labels().iter().zip(values) {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(key);
                out.push_str("=\"");
                out.push_str(s.escaped.get(*v as usize).map_or("", |e| e));
                out.push('"');
            }
            out.push_str("} ");
            let bits = cell.get();
            if f.is_counter() {
                let _ = write!(out, "{bits}");
            } else {
                write_float(out, f64::from_bits(bits));
            }
            out.push('\n');
        }
        out.push('\n');
    }
}

/// A float as the text format spells it (`+Inf`, `-Inf`, `NaN`; otherwise shortest decimal).
fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Methods a request with no number (`none`) is counted under, in table order.
const METHODS: [&str; 7] = [
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "other",
];
const ACTS: [Act; 3] = [Act::Forwarded, Act::Replied, Act::Dropped];

fn act_index(a: Act) -> usize {
    match a {
        Act::Forwarded => 0,
        Act::Replied => 1,
        Act::Dropped => 2,
    }
}

fn outcome_index(o: CallOutcome) -> usize {
    match o {
        CallOutcome::Answered => 0,
        CallOutcome::Redirected => 1,
        CallOutcome::Cancelled => 2,
        CallOutcome::Failed4xx => 3,
        CallOutcome::Failed5xx => 4,
        CallOutcome::Failed6xx => 5,
    }
}

/// A (queue, phase) a number's INVITEs are counted under: one of its rows in [`Table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route {
    queue: Option<QueueId>,
    phase: PhaseLabel,
}

/// An INVITE's place in a [`Table`]: its route's first cell and its trunk's position.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    base: usize,
    trunk: usize,
}

/// One snapshot's view of the store: per number its routes, per route the cells of its series.
pub(crate) struct Table {
    legacy: usize,
    areas: usize,
    trunks: usize,
    /// Per number (see [`Table::number`]) where its routes start in `routes`, and one more.
    starts: Box<[u32]>,
    routes: Box<[Route]>,
    /// Per route [`Table::stride`] cells: INVITEs by trunk and decision, attempts by trunk,
    /// outcomes; `None` where routing cannot produce the combination.
    cells: Box<[Option<CellRef>]>,
    /// Per number.
    last_call: Box<[Option<CellRef>]>,
    /// Per legacy number: its phase gauges (in [`PHASES`] order), then retired-from and next
    /// boundary ([`AT_NEXT_BOUNDARY`]).
    legacy_gauges: Box<[[CellRef; LEGACY_GAUGES]]>,
    /// Requests with no number, queue or phase (in-dialog requests, refusals before routing):
    /// by method, trunk and decision, created on first use.
    unrouted: Box<[OnceLock<CellRef>]>,
    /// What the next table can take over from this one ([`Table::build`]).
    reuse: Reuse,
}

/// What a table's cells were found from, so that the next table (the next reload, usually of a
/// nearly identical file) takes a number's cells over when they derive from the same label
/// values, instead of looking up each of its series in the store again (≈ 200 000 lookups with
/// the national file, most of a reload's registration). The store never drops a series, so the
/// same label values always name the same cells.
#[derive(Default)]
struct Reuse {
    /// Each registered number's position, by the value id of its `number` label.
    numbers: HashMap<u32, usize, Quick>,
    /// Per trunk position (trunks, backend, unknown), the value id of its `trunk` label.
    trunks: Box<[u32]>,
    /// Per route: the value id of its `queue` label, and whether it forwards.
    routes: Box<[(u32, bool)]>,
    /// Per legacy number, the value id its gauges were found with.
    legacy: Box<[u32]>,
}

impl Table {
    /// Trunk positions: the trunks, then `backend` and `unknown`.
    fn trunk_slots(&self) -> usize {
        self.trunks + 2
    }

    fn stride(&self) -> usize {
        self.trunk_slots() * ACTS.len() + self.trunk_slots() + CallOutcome::ALL.len()
    }

    /// The dense position of a number: legacy numbers, areas' new numbers, the bare new
    /// number, `other`, `none`.
    fn number(&self, n: NumberId) -> Option<usize> {
        let (l, a) = (self.legacy, self.areas);
        match n {
            NumberId::Legacy(i) if i < l => Some(i),
            NumberId::Area(i) if i < a => Some(l + i),
            NumberId::New => Some(l + a),
            NumberId::Other => Some(l + a + 1),
            NumberId::None => Some(l + a + 2),
            NumberId::Legacy(_) | NumberId::Area(_) => None,
        }
    }

    fn trunk(&self, t: TrunkId) -> Option<usize> {
        match t {
            TrunkId::Trunk(i) if i < self.trunks => Some(i),
            TrunkId::Backend => Some(self.trunks),
            TrunkId::Unknown => Some(self.trunks + 1),
            TrunkId::Trunk(_) => None,
        }
    }

    /// The first cell of the route of `n` with `queue` (and `phase`, if given).
    fn route(
        &self,
        n: NumberId,
        queue: Option<QueueId>,
        phase: Option<PhaseLabel>,
    ) -> Option<usize> {
        let n = self.number(n)?;
        let from = *self.starts.get(n)? as usize;
        let to = *self.starts.get(n + 1)? as usize;
        let i = (from..to).find(|i| {
            self.routes
                .get(*i)
                .is_some_and(|r| r.queue == queue && phase.is_none_or(|p| p == r.phase))
        })?;
        Some(i * self.stride())
    }

    fn cell(&self, at: usize) -> Option<CellRef> {
        self.cells.get(at).copied().flatten()
    }

    /// Where an INVITE's cells are for these labels, if a route lists them: looked up once for
    /// the INVITE and its attempt.
    pub(crate) fn row(
        &self,
        n: NumberId,
        queue: Option<QueueId>,
        trunk: TrunkId,
        phase: PhaseLabel,
    ) -> Option<Row> {
        Some(Row {
            base: self.route(n, queue, Some(phase))?,
            trunk: self.trunk(trunk)?,
        })
    }

    /// The cell of an INVITE counted under these labels, if a route lists it.
    #[cfg(test)]
    pub(crate) fn invite(
        &self,
        n: NumberId,
        queue: Option<QueueId>,
        trunk: TrunkId,
        phase: PhaseLabel,
        act: Act,
    ) -> Option<CellRef> {
        self.invite_at(self.row(n, queue, trunk, phase)?, act)
    }

    /// The cell of an INVITE at `row` with decision `act`.
    pub(crate) fn invite_at(&self, row: Row, act: Act) -> Option<CellRef> {
        self.cell(row.base + row.trunk * ACTS.len() + act_index(act))
    }

    /// The cell of a request with no number, queue or phase; created on first use.
    pub(crate) fn unrouted(
        &self,
        method: &'static str,
        trunk: TrunkId,
        act: Act,
        snap: &Snapshot,
    ) -> Option<CellRef> {
        let m = METHODS.iter().position(|x| *x == method)?;
        let t = self.trunk(trunk)?;
        let slot = self
            .unrouted
            .get((m * self.trunk_slots() + t) * ACTS.len() + act_index(act))?;
        Some(slot.get_or_init(|| {
            series(
                Family::Requests,
                &[
                    method,
                    "none",
                    "none",
                    trunk.text(snap),
                    "none",
                    act.as_str(),
                ],
            )
        }))
    }

    /// The cell of a call attempt counted under these labels, if a route lists it.
    #[cfg(test)]
    pub(crate) fn attempt(
        &self,
        n: NumberId,
        queue: Option<QueueId>,
        trunk: TrunkId,
        phase: PhaseLabel,
    ) -> Option<CellRef> {
        self.attempt_at(self.row(n, queue, trunk, phase)?)
    }

    /// The cell of a call attempt at `row`.
    pub(crate) fn attempt_at(&self, row: Row) -> Option<CellRef> {
        self.cell(row.base + self.trunk_slots() * ACTS.len() + row.trunk)
    }

    /// The cell of a call outcome counted under these labels, if a route lists it.
    pub(crate) fn outcome(
        &self,
        n: NumberId,
        queue: Option<QueueId>,
        o: CallOutcome,
    ) -> Option<CellRef> {
        let base = self.route(n, queue, None)?;
        self.cell(base + self.trunk_slots() * (ACTS.len() + 1) + outcome_index(o))
    }

    /// The last-call gauge of `n`, if registered.
    pub(crate) fn last_call(&self, n: NumberId) -> Option<CellRef> {
        self.last_call.get(self.number(n)?).copied().flatten()
    }

    /// The routes `list` of the number at position `n` of a table being built, with `queue`
    /// and `trunks` the value ids of its queues and trunk positions: the cells `self` found for
    /// the same number and label values, if any.
    fn reusable(
        &self,
        (number, other): (u32, bool),
        list: &[(Route, bool)],
        queue: impl Fn(Option<QueueId>) -> u32,
        trunks: &[u32],
    ) -> Option<(&[Option<CellRef>], Option<CellRef>)> {
        let r = &self.reuse;
        let p = *r.numbers.get(&number)?;
        let from = *self.starts.get(p)? as usize;
        let to = *self.starts.get(p + 1)? as usize;
        let same = *r.trunks == *trunks
            && (p == self.legacy + self.areas + 1) == other
            && to - from == list.len()
            && self
                .routes
                .get(from..to)?
                .iter()
                .zip(r.routes.get(from..to)?)
                .zip(list)
                .all(|((old, (q, f)), (new, forwarded))| {
                    old.phase == new.phase && *q == queue(new.queue) && f == forwarded
                });
        let stride = self.stride();
        let cells = self.cells.get(from * stride..to * stride)?;
        same.then(|| (cells, self.last_call.get(p).copied().flatten()))
    }

    /// Builds the table of `snap`, registering every series it lists (at 0 when new); the cells
    /// of numbers `previous` already lists with the same label values are taken over.
    fn build(snap: &Snapshot, s: &mut Store, previous: Option<&Table>) -> Table {
        let m = &snap.mappings;
        let (legacy, areas, trunks) = (m.legacy.len(), m.areas.len(), snap.trunks.len());
        let numbers = legacy + areas + 3;
        let mut t = Table {
            legacy,
            areas,
            trunks,
            starts: Box::new([]),
            routes: Box::new([]),
            cells: Box::new([]),
            last_call: Box::new([]),
            legacy_gauges: Box::new([]),
            unrouted: (0..METHODS.len() * (trunks + 2) * ACTS.len())
                .map(|_| OnceLock::new())
                .collect(),
            reuse: Reuse::default(),
        };
        // Each number's routes, merged over `forwarded` (a route forwarded at one instant may be
        // answered at another).
        let mut by_number: Vec<Vec<(Route, bool)>> = vec![Vec::new(); numbers];
        for r in route::reachable(snap) {
            let Some(n) = t.number(r.ids.number) else {
                continue;
            };
            let route = Route {
                queue: r.ids.queue,
                phase: r.ids.phase,
            };
            let list = &mut by_number[n];
            match list.iter_mut().find(|(x, _)| *x == route) {
                Some((_, f)) => *f |= r.forwarded,
                None => list.push((route, r.forwarded)),
            }
        }
        let ids = |i: usize| match i {
            i if i < legacy => NumberId::Legacy(i),
            i if i < legacy + areas => NumberId::Area(i - legacy),
            i if i == legacy + areas => NumberId::New,
            i if i == legacy + areas + 1 => NumberId::Other,
            _ => NumberId::None,
        };
        let queue_text: Vec<u32> = snap.queues.iter().map(|q| s.value(&q.name)).collect();
        let none = s.value("none");
        let queue_value = |q: Option<QueueId>| {
            q.and_then(|q| queue_text.get(q.index()).copied())
                .unwrap_or(none)
        };
        let trunk_text: Vec<u32> = (0..trunks + 2)
            .map(|i| {
                let id = match i {
                    i if i < trunks => TrunkId::Trunk(i),
                    i if i == trunks => TrunkId::Backend,
                    _ => TrunkId::Unknown,
                };
                s.value(id.text(snap))
            })
            .collect();
        let invite = s.value("INVITE");
        let acts = ACTS.map(|a| s.value(a.as_str()));
        let outcomes = CallOutcome::ALL.map(|o| s.value(o.as_str()));
        let phases = PhaseLabel::ALL.map(|p| s.value(p.as_str()));
        let stride = t.stride();
        let mut starts = Vec::with_capacity(numbers + 1);
        let mut routes = Vec::new();
        let mut cells: Vec<Option<CellRef>> = Vec::new();
        let mut last_call = vec![None; numbers];
        let mut reuse = Reuse {
            numbers: HashMap::with_capacity_and_hasher(numbers, Quick::default()),
            ..Reuse::default()
        };
        let mut route_values = Vec::new();
        for (n, list) in by_number.iter().enumerate() {
            starts.push(u32::try_from(routes.len()).unwrap_or(u32::MAX));
            if list.is_empty() {
                continue;
            }
            let id = ids(n);
            let number = s.value(m.number_text(id));
            reuse.numbers.insert(number, n);
            if let Some((old, old_last_call)) = previous.and_then(|p| {
                p.reusable(
                    (number, id == NumberId::Other),
                    list,
                    queue_value,
                    &trunk_text,
                )
            }) {
                cells.extend_from_slice(old);
                for (route, forwarded) in list {
                    routes.push(*route);
                    route_values.push((queue_value(route.queue), *forwarded));
                }
                last_call[n] = old_last_call;
                continue;
            }
            let first = routes.len();
            for (route, forwarded) in list {
                let base = cells.len();
                cells.resize(base + stride, None);
                // Attempts and outcomes do not carry the phase: a route of the same number and
                // queue already holds their cells.
                let earlier = (first..routes.len()).find(|i| {
                    routes
                        .get(*i)
                        .is_some_and(|r: &Route| r.queue == route.queue)
                });
                let queue = queue_value(route.queue);
                let phase = phases[route.phase.index()];
                // A routed call can still be answered here (no backend up, a rate limit,
                // shedding) and a stranger's INVITE is dropped: register what each can become.
                let (from, decisions): (usize, &[usize]) = match (id, forwarded) {
                    (NumberId::Other, _) => (trunks + 2, &[0, 1, 2]),
                    (_, true) => (trunks, &[0, 1]),
                    (_, false) => (trunks, &[1]),
                };
                let per_call = trunks_offset_attempt(trunks);
                if let Some(e) = earlier {
                    let (e, to) = (e * stride + per_call, base + per_call);
                    cells.copy_within(e..e + stride - per_call, to);
                }
                for (tr, trunk) in trunk_text.iter().enumerate().take(from) {
                    if earlier.is_none() {
                        cells[base + per_call + tr] =
                            Some(s.series(Family::Attempts, &[number, queue, *trunk]));
                    }
                    for d in decisions {
                        let labels = [invite, number, queue, *trunk, phase, acts[*d]];
                        cells[base + tr * ACTS.len() + d] =
                            Some(s.series(Family::Requests, &labels));
                    }
                }
                for (o, text) in outcomes.iter().enumerate().filter(|_| earlier.is_none()) {
                    cells[base + per_call + trunks + 2 + o] =
                        Some(s.series(Family::Outcomes, &[number, queue, *text]));
                }
                routes.push(*route);
                route_values.push((queue, *forwarded));
            }
            last_call[n] = Some(s.series(Family::LastCall, &[number]));
        }
        starts.push(u32::try_from(routes.len()).unwrap_or(u32::MAX));
        let legacy_phases = PHASES.map(|p| s.value(p));
        let mut legacy_values = Vec::with_capacity(legacy);
        t.legacy_gauges = m
            .legacy
            .iter()
            .map(|l| {
                let number = s.value(&l.number);
                legacy_values.push(number);
                let old = previous.and_then(|p| {
                    let at = *p.reuse.numbers.get(&number)?;
                    let same = p.reuse.legacy.get(at) == Some(&number);
                    p.legacy_gauges.get(at).filter(|_| same)
                });
                let gauges = match old {
                    Some(g) => *g,
                    None => {
                        let [a, b, c, d] =
                            legacy_phases.map(|p| s.series(Family::Phase, &[number, p]));
                        [
                            a,
                            b,
                            c,
                            d,
                            s.series(Family::RetiredFrom, &[number]),
                            s.series(Family::NextBoundary, &[number]),
                        ]
                    }
                };
                gauges[AT_RETIRED_FROM].set(unix_seconds(l.schedule.retired_from));
                gauges
            })
            .collect();
        reuse.trunks = trunk_text.into();
        reuse.routes = route_values.into();
        reuse.legacy = legacy_values.into();
        t.reuse = reuse;
        t.starts = starts.into();
        t.routes = routes.into();
        t.cells = cells.into();
        t.last_call = last_call.into();
        t
    }

    /// Sets each legacy number's phase gauges for `now`.
    pub(crate) fn set_phases(&self, snap: &Snapshot, now: SystemTime) {
        for (l, g) in snap.mappings.legacy.iter().zip(self.legacy_gauges.iter()) {
            let current = phase_at(&l.schedule, now).as_str();
            for (p, cell) in PHASES.iter().zip(g) {
                cell.set(if *p == current { 1.0 } else { 0.0 });
            }
        }
    }

    /// Sets each legacy number's next-boundary gauge for `now`.
    pub(crate) fn set_next_boundaries(&self, snap: &Snapshot, now: SystemTime) {
        for (l, g) in snap.mappings.legacy.iter().zip(self.legacy_gauges.iter()) {
            g[AT_NEXT_BOUNDARY]
                .set(crate::timeline::next_for(l, now).map_or(0.0, |(at, _)| unix_seconds(at)));
        }
    }
}

/// A legacy number's gauges: one per phase, then retired-from and next boundary.
const LEGACY_GAUGES: usize = PHASES.len() + 2;
/// Index of the retired-from gauge in a legacy number's gauges.
const AT_RETIRED_FROM: usize = PHASES.len();
/// Index of the next-boundary gauge in a legacy number's gauges.
const AT_NEXT_BOUNDARY: usize = PHASES.len() + 1;

/// Where the attempt cells start within a route's cells.
fn trunks_offset_attempt(trunks: usize) -> usize {
    (trunks + 2) * ACTS.len()
}

/// Tables of the snapshots still alive. A `Weak` keeps its snapshot's allocation, so an
/// address is never reused while its entry exists.
static TABLES: Mutex<Vec<(Weak<Snapshot>, Arc<Table>)>> = Mutex::new(Vec::new());

/// The table of `snap`, built (and its series registered) on first use.
pub(crate) fn table_for(snap: &Arc<Snapshot>) -> Arc<Table> {
    let mut tables = TABLES.lock().unwrap_or_else(PoisonError::into_inner);
    tables.retain(|(w, _)| w.strong_count() > 0);
    if let Some((_, t)) = tables
        .iter()
        .find(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(snap)))
    {
        return t.clone();
    }
    // The table built last (the served snapshot's, on a reload) lends its cells.
    let previous = tables.last().map(|(_, t)| t.clone());
    let t = Arc::new(Table::build(snap, &mut store(), previous.as_deref()));
    tables.push((Arc::downgrade(snap), t.clone()));
    t
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::validate;
    use std::path::Path;

    const MAPPINGS: &str = r#"
[gateway]
advertised = "192.0.2.10:5060"
[new_number]
number = "12356"
default_queue = "fuzhou"
[[queue]]
name = "fuzhou"
backends = ["sip:192.0.2.20:5060"]
[[queue]]
name = "announcement"
backends = ["sip:192.0.2.21:5060"]
[[area]]
code = "0591"
queue = "fuzhou"
[[trunk]]
name = "t1"
sources = ["192.0.2.0/28"]
origin_area = "0591"
[[trunk]]
name = "t2"
sources = ["192.0.2.16/28"]
origin_area = "0591"
[[legacy]]
number = "@A@"
queue = "fuzhou"
parallel_from = 2025-04-07T00:00:00+08:00
retired_from = 2025-05-07T00:00:00+08:00
decommissioned_from = 2026-01-01T00:00:00+08:00
when_retired = { treatment = "announce", queue = "announcement" }
[[legacy]]
number = "@B@"
queue = "fuzhou"
parallel_from = 2025-04-07T00:00:00+08:00
retired_from = 2025-05-07T00:00:00+08:00
when_retired = { treatment = "route" }
"#;

    fn snap(a: &str, b: &str) -> Arc<Snapshot> {
        let text = MAPPINGS.replace("@A@", a).replace("@B@", b);
        Arc::new(validate(Path::new("m.toml"), &text).unwrap())
    }

    #[test]
    fn every_invite_routing_can_produce_has_a_cell_in_the_table() {
        let s = snap("059185666661", "059185666221");
        let t = table_for(&s);
        for r in route::reachable(&s) {
            let trunks = (0..s.trunks.len()).map(TrunkId::Trunk);
            let acts: &[Act] = if r.forwarded {
                &[Act::Forwarded, Act::Replied]
            } else {
                &[Act::Replied]
            };
            for trunk in trunks {
                for act in acts {
                    let got = t.invite(r.ids.number, r.ids.queue, trunk, r.ids.phase, *act);
                    let want = series(
                        Family::Requests,
                        &[
                            "INVITE",
                            r.number,
                            r.queue,
                            trunk.text(&s),
                            r.phase(),
                            act.as_str(),
                        ],
                    );
                    assert!(
                        got.is_some_and(|c| std::ptr::eq(c, want)),
                        "{r:?} {trunk:?} {act:?}"
                    );
                }
                let got = t.attempt(r.ids.number, r.ids.queue, trunk, r.ids.phase);
                assert!(got.is_some(), "{r:?} {trunk:?}");
            }
            for o in CallOutcome::ALL {
                let got = t.outcome(r.ids.number, r.ids.queue, o);
                let want = series(Family::Outcomes, &[r.number, r.queue, o.as_str()]);
                assert!(got.is_some_and(|c| std::ptr::eq(c, want)), "{r:?} {o:?}");
            }
            assert!(t.last_call(r.ids.number).is_some(), "{r:?}");
        }
        // Strangers' INVITEs to unknown numbers are dropped: registered too.
        let dropped = t.invite(
            NumberId::Other,
            None,
            TrunkId::Unknown,
            PhaseLabel::None,
            Act::Dropped,
        );
        assert!(dropped.is_some());
    }

    #[test]
    fn a_table_that_renumbers_the_legacy_numbers_shares_their_cells() {
        // Numbers of their own, so that no other test touches these series.
        let old = snap("059187000001", "059187000002");
        let new = snap("059187000002", "059187000001");
        let (t_old, t_new) = (table_for(&old), table_for(&new));
        let parallel = PhaseLabel::Legacy(crate::calendar::PhaseName::Parallel);
        let fuzhou = old.queue_id("fuzhou");
        let trunk = TrunkId::Trunk(0);
        let a_old = t_old
            .invite(NumberId::Legacy(0), fuzhou, trunk, parallel, Act::Forwarded)
            .unwrap();
        let a_new = t_new
            .invite(NumberId::Legacy(1), fuzhou, trunk, parallel, Act::Forwarded)
            .unwrap();
        assert!(std::ptr::eq(a_old, a_new));
        let b_new = t_new
            .invite(NumberId::Legacy(0), fuzhou, trunk, parallel, Act::Forwarded)
            .unwrap();
        assert!(!std::ptr::eq(a_old, b_new));
        // Counted into the old table after the new one exists: one series, both counts.
        a_old.add(2);
        a_new.add(3);
        let mut text = String::new();
        render_into(&mut text);
        let line = "dualgate_requests_total{method=\"INVITE\",number=\"059187000001\",queue=\"fuzhou\",trunk=\"t1\",phase=\"parallel\",decision=\"forwarded\"} 5\n";
        assert!(text.contains(line), "{text}");
        assert_eq!(
            text.matches("# TYPE dualgate_requests_total counter\n")
                .count(),
            1
        );
    }

    /// The cells a table found, as addresses.
    fn layout(t: &Table) -> Vec<Vec<Option<*const Cell>>> {
        let at = |c: &Option<CellRef>| c.map(|c| c as *const Cell);
        vec![
            t.cells.iter().map(at).collect(),
            t.last_call.iter().map(at).collect(),
            t.legacy_gauges
                .iter()
                .flatten()
                .map(|c| Some(*c as *const Cell))
                .collect(),
            t.starts.iter().map(|s| Some(*s as *const Cell)).collect(),
        ]
    }

    #[test]
    fn a_table_that_takes_cells_over_from_the_previous_one_finds_the_same_cells() {
        // Numbers of their own; the second file moves one number to another queue, drops one
        // and adds one.
        let old = snap("059187200001", "059187200002");
        let new = Arc::new(
            validate(
                Path::new("m.toml"),
                &MAPPINGS
                    .replace("@A@", "059187200003")
                    .replace("@B@", "059187200001")
                    .replacen(
                        "queue = \"fuzhou\"\nparallel_from",
                        "queue = \"announcement\"\nparallel_from",
                        1,
                    ),
            )
            .unwrap(),
        );
        let moved = new
            .mappings
            .legacy
            .first()
            .map(|l| new.queue(l.queue).name.as_str());
        assert_eq!(moved, Some("announcement"));
        let before = Table::build(&old, &mut store(), None);
        let fresh = Table::build(&new, &mut store(), None);
        let taken_over = Table::build(&new, &mut store(), Some(&before));
        assert_eq!(layout(&taken_over), layout(&fresh));
        assert_eq!(taken_over.routes, fresh.routes);
        // Identical files share every cell.
        let again = Table::build(&old, &mut store(), Some(&before));
        assert_eq!(layout(&again), layout(&before));
    }

    #[test]
    fn every_family_says_where_its_number_label_is() {
        for f in Family::ALL {
            assert_eq!(f.labels().get(f.number_at()), Some(&"number"), "{f:?}");
        }
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
        assert_eq!(escape(r"\\"), r"\\\\");
        assert_eq!(escape("fuzhou"), "fuzhou");
    }

    #[test]
    fn gauges_are_written_as_floats_and_counters_as_integers() {
        let mut s = String::new();
        for v in [0.0, 1.0, 1_746_547_200.0, 0.5, f64::INFINITY, f64::NAN] {
            write_float(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "0 1 1746547200 0.5 +Inf NaN ");
    }
}
