//! The routing table: which configured entry a canonical dialled number names. Pure data and
//! lookups; no I/O, no clock.

use crate::calendar::Schedule;
use crate::config::QueueId;
use crate::number::{AreaCode, Dialled, MAX_NATIONAL};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::SystemTime;

/// An area that answers the new number, and the queue it answers on.
#[derive(Debug, Clone, PartialEq)]
pub struct Area {
    /// Area code with trunk prefix, e.g. `0591`.
    pub code: AreaCode,
    /// Human name, e.g. `Fuzhou (and Pingtan)`.
    pub name: String,
    /// Index of the area's queue.
    pub queue: QueueId,
    /// When the new number starts answering in this area, if configured.
    pub launch: Option<SystemTime>,
    /// Whether the new number already answers before `launch`.
    pub answer_before_launch: bool,
    /// The area form of the new number, e.g. `059112356`.
    pub new_number: String,
}

/// A legacy number with its queue and migration calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct Legacy {
    /// Canonical number, e.g. `059185666661`.
    pub number: String,
    /// Human name, e.g. `Fujian provincial psychological-aid hotline`.
    pub name: String,
    /// Index of the queue it routes to.
    pub queue: QueueId,
    /// The migration calendar.
    pub schedule: Schedule,
    /// Share of its area's calls below which `dualgate retirement` calls it safe to retire.
    pub max_share: f64,
}

impl Legacy {
    /// The area code of the legacy number, if it is geographic.
    pub fn area<'a>(&self, areas: &'a [Area]) -> Option<&'a Area> {
        areas
            .iter()
            .find(|a| self.number.starts_with(a.code.as_str()))
    }
}

/// What a dialled number refers to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Entry<'m> {
    /// A legacy number.
    Legacy(&'m Legacy),
    /// The new number in a configured area, or with no area known (`area: None`).
    NewNumber {
        /// The area it was dialled in, if known.
        area: Option<&'m Area>,
    },
}

impl Entry<'_> {
    /// Index of the queue the entry's calls go to outside any retired treatment: the legacy
    /// number's queue, the area's queue, or the default queue for the new number without area.
    pub fn queue(&self, m: &Mappings) -> Option<QueueId> {
        match self {
            Entry::Legacy(l) => Some(l.queue),
            Entry::NewNumber { area: Some(a) } => Some(a.queue),
            Entry::NewNumber { area: None } => m.default_queue,
        }
    }
}

/// A message's `number` label as an id into the mappings that routed it: which configured
/// number it is, or `other` (not configured) or `none` (not routed). The text is looked up only
/// when a series is registered or rendered ([`Mappings::number_text`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NumberId {
    /// The `i`-th legacy number.
    Legacy(usize),
    /// The new number in the `i`-th area.
    Area(usize),
    /// The new number with no area known.
    New,
    /// A number that is not configured: `other`.
    Other,
    /// No number (the message was not routed): `none`.
    None,
}

/// Every configured number, indexed by canonical form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mappings {
    /// The new short number, e.g. `12356`.
    pub new_number: String,
    /// Queue for the new number dialled with no area known.
    pub default_queue: Option<QueueId>,
    /// Areas answering the new number.
    pub areas: Vec<Area>,
    /// Legacy numbers.
    pub legacy: Vec<Legacy>,
    /// Hashed with foldhash (seeded per process): SipHash's resistance to chosen keys guards
    /// insertions, and the keys inserted here come from the mapping file; a dialled number
    /// only looks up, once per request.
    index: HashMap<Key, Slot, foldhash::fast::RandomState>,
}

/// A number as the index holds it: its bytes in a fixed array, zero after the last, and how
/// many there are. A [`Dialled`] is one already (no copy, no UTF-8 check), and it hashes as
/// three words where a byte slice hashes its length and then its bytes in a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    bytes: [u8; MAX_NATIONAL],
    len: usize,
}

impl Key {
    /// The key of `text`; `None` when it is longer than any canonical number.
    fn of(text: &[u8]) -> Option<Key> {
        let mut bytes = [0; MAX_NATIONAL];
        bytes.get_mut(..text.len())?.copy_from_slice(text);
        Some(Key {
            bytes,
            len: text.len(),
        })
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let (head, tail) = self.bytes.split_at(16);
        let word = |b: &[u8]| {
            let mut w = [0; 8];
            w.iter_mut().zip(b).for_each(|(w, b)| *w = *b);
            u64::from_le_bytes(w)
        };
        let (a, b) = head.split_at(8);
        h.write_u64(word(a));
        h.write_u64(word(b));
        // The length too: the bytes alone do not tell `0` from `0` + a zero byte.
        h.write_u64(word(tail) ^ ((self.len as u64) << 56));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Legacy(usize),
    Area(usize),
}

impl Mappings {
    /// Builds the index; `areas` and `legacy` must already be free of duplicates. A number
    /// longer than any canonical number (which validation never lets through) is not indexed.
    pub fn new(
        new_number: String,
        default_queue: Option<QueueId>,
        areas: Vec<Area>,
        legacy: Vec<Legacy>,
    ) -> Mappings {
        let mut index = HashMap::with_capacity_and_hasher(
            areas.len() + legacy.len(),
            foldhash::fast::RandomState::default(),
        );
        for (i, a) in areas.iter().enumerate() {
            if let Some(k) = Key::of(a.new_number.as_bytes()) {
                index.insert(k, Slot::Area(i));
            }
        }
        for (i, l) in legacy.iter().enumerate() {
            if let Some(k) = Key::of(l.number.as_bytes()) {
                index.insert(k, Slot::Legacy(i));
            }
        }
        Mappings {
            new_number,
            default_queue,
            areas,
            legacy,
            index,
        }
    }

    /// The entry a canonical number names, if any.
    pub fn lookup(&self, d: &Dialled) -> Option<Entry<'_>> {
        self.lookup_dialled(d).map(|(_, e)| e)
    }

    /// The entry a canonical number names, with its id; one hash lookup.
    pub fn lookup_dialled(&self, d: &Dialled) -> Option<(NumberId, Entry<'_>)> {
        let (bytes, len) = d.padded();
        self.find(Some(Key { bytes: *bytes, len }), d.as_bytes())
    }

    /// The entry a canonical number (as a string) names, if any. `12356` with no area is the
    /// new number without an area.
    pub fn lookup_str(&self, canonical: &str) -> Option<Entry<'_>> {
        self.lookup_id(canonical).map(|(_, e)| e)
    }

    /// The entry a canonical number names, with its id; one hash lookup.
    pub fn lookup_id(&self, canonical: &str) -> Option<(NumberId, Entry<'_>)> {
        let canonical = canonical.as_bytes();
        self.find(Key::of(canonical), canonical)
    }

    /// [`Mappings::lookup_id`] of the number's key and bytes.
    fn find(&self, key: Option<Key>, canonical: &[u8]) -> Option<(NumberId, Entry<'_>)> {
        match key.and_then(|k| self.index.get(&k)) {
            Some(Slot::Legacy(i)) => self
                .legacy
                .get(*i)
                .map(|l| (NumberId::Legacy(*i), Entry::Legacy(l))),
            Some(Slot::Area(i)) => self
                .areas
                .get(*i)
                .map(|a| (NumberId::Area(*i), Entry::NewNumber { area: Some(a) })),
            None if canonical == self.new_number.as_bytes() => {
                Some((NumberId::New, Entry::NewNumber { area: None }))
            }
            None => None,
        }
    }

    /// The id of the configured number equal to `n`, as [`Mappings::numbers`] lists it (the
    /// number a response's `dgn` mark is counted under); one hash lookup, whatever the table's
    /// size.
    pub fn number_id(&self, n: &str) -> Option<NumberId> {
        self.lookup_id(n).map(|(id, _)| id)
    }

    /// The label text of `id`: the configured number, `other` or `none`.
    ///
    /// # Panics
    /// If `id` indexes past these mappings' lists; ids come from the mappings they are used
    /// with (routing and registration read one snapshot).
    pub fn number_text(&self, id: NumberId) -> &str {
        match id {
            NumberId::Legacy(i) => {
                &self
                    .legacy
                    .get(i)
                    .expect("invariant: a NumberId indexes the mappings that made it")
                    .number
            }
            NumberId::Area(i) => {
                &self
                    .areas
                    .get(i)
                    .expect("invariant: a NumberId indexes the mappings that made it")
                    .new_number
            }
            NumberId::New => &self.new_number,
            NumberId::Other => "other",
            NumberId::None => "none",
        }
    }

    /// Every configured number as it appears in metric labels: legacy numbers, the new number
    /// per area, and the bare new number.
    pub fn numbers(&self) -> impl Iterator<Item = &str> {
        self.legacy
            .iter()
            .map(|l| l.number.as_str())
            .chain(self.areas.iter().map(|a| a.new_number.as_str()))
            .chain(std::iter::once(self.new_number.as_str()))
    }

    /// The area entry for an area code.
    pub fn area(&self, code: &str) -> Option<&Area> {
        self.areas.iter().find(|a| a.code.as_str() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Treatment;
    use std::time::UNIX_EPOCH;

    #[test]
    fn every_listed_number_is_its_own_label_and_nothing_else_is() {
        let schedule = Schedule {
            parallel_from: UNIX_EPOCH,
            retired_from: UNIX_EPOCH,
            decommissioned_from: None,
            when_retired: Treatment::Route,
        };
        let legacy = |n: &str| Legacy {
            number: n.to_string(),
            name: n.to_string(),
            queue: QueueId::new(0),
            schedule: schedule.clone(),
            max_share: 0.1,
        };
        let area = Area {
            code: AreaCode::new("0591").expect("invariant: a valid code"),
            name: "Fuzhou".into(),
            queue: QueueId::new(0),
            launch: None,
            answer_before_launch: true,
            new_number: "059112356".into(),
        };
        let m = Mappings::new(
            "12356".into(),
            Some(QueueId::new(0)),
            vec![area],
            vec![legacy("059185666661"), legacy("059187000000")],
        );
        let listed: Vec<&str> = m.numbers().collect();
        assert_eq!(listed.len(), 4);
        for n in &listed {
            let id = m.number_id(n).expect("a listed number has an id");
            assert_eq!(m.number_text(id), *n, "{n}");
        }
        for other in [
            "",
            "1235",
            "059185666662",
            "0591123567",
            "0591856666610",
            "05918566666",
            "059185666661059185666661",
        ] {
            assert_eq!(m.number_id(other), None, "{other}");
        }
        // A dialled number finds what its text finds.
        let nowhere = crate::number::Dialling::default();
        for text in listed
            .iter()
            .chain(&["059185666662", "059112345", "13800000000"])
        {
            let d = crate::number::normalize(text, &nowhere).expect("a valid number");
            assert_eq!(m.lookup_dialled(&d), m.lookup_id(d.as_str()), "{text}");
        }
    }
}
