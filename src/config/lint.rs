//! Checks of the mapping file as a whole: dates and references that are each valid alone but
//! contradict each other (a legacy number retired before 12356 answers in its area, a trunk
//! whose origin area has no 12356). Each problem names both lines. Pure: runs after
//! [`super::validate()`] has built what it could.

use super::raw::{RawArea, RawFile};
use super::validate::{instant, AreaOf, Issues};
use super::Snapshot;
use crate::calendar::Treatment;
use crate::mapping::{Area, Entry};
use crate::number::{normalize, AreaCode, Dialling};
use std::collections::HashMap;
use std::time::SystemTime;
use toml::Spanned;

/// Adds to `issues` every contradiction between the entries of `raw` (errors) and what is
/// allowed but probably not meant (warnings). `snap` holds the entries that validated.
pub(crate) fn lint(raw: &RawFile, snap: &Snapshot, issues: &mut Issues<'_>) {
    let m = &snap.mappings;
    let known_areas = || {
        let codes: Vec<&str> = m.areas.iter().map(|a| a.code.as_str()).collect();
        if codes.is_empty() {
            "none".to_string()
        } else {
            codes.join(", ")
        }
    };
    let raw_areas = raw_areas(raw);
    let area_of = AreaOf::new(&m.areas);
    for (i, l) in raw.legacy.iter().enumerate() {
        let r = l.get_ref();
        let field = |f: &str| format!("legacy[{i}].{f}");
        let Ok(d) = normalize(r.number.get_ref(), &Dialling::default()) else {
            continue;
        };
        let Some(Entry::Legacy(legacy)) = m.lookup(&d) else {
            continue;
        };
        let Some(area) = area_of.get(&legacy.number) else {
            let code = d.area().unwrap_or("?");
            issues.push(
                r.number.span(),
                field("number"),
                format!(
                    "area {code} of {} has no [[area]] (areas: {}): from its parallel period on, \
                     its callers are sent to {}, which does not answer in {code}",
                    legacy.number,
                    known_areas(),
                    m.new_number
                ),
            );
            continue;
        };
        let Some(&(k, raw_area)) = raw_areas.get(area.code.as_str()) else {
            continue;
        };
        let Some((launch, launch_span)) = effective_launch(area, raw_area) else {
            continue;
        };
        // Named only for a problem: most numbers have none (a national file has 10 000).
        let launch_field = || format!("area[{k}].launch");
        let launched = |what: &Spanned<toml::value::Datetime>| {
            format!(
                "{} is before area {}'s {} launch {}",
                what.get_ref(),
                area.code.as_str(),
                m.new_number,
                raw_area
                    .launch
                    .as_ref()
                    .map_or(String::new(), |l| l.get_ref().to_string()),
            )
        };
        let s = &legacy.schedule;
        if s.parallel_from < launch {
            issues.push_both(
                (r.parallel_from.span(), field("parallel_from")),
                format!(
                    "{}: the parallel period (both numbers answer) would start while {} still \
                     answers 404 there",
                    launched(&r.parallel_from),
                    area.new_number
                ),
                (launch_span.clone(), launch_field()),
            );
        }
        if s.retired_from < launch {
            let consequence = match &s.when_retired {
                Treatment::Redirect { .. } => format!(
                    "from retirement to launch, callers are redirected to {}, which answers 404",
                    area.new_number
                ),
                Treatment::Route => format!(
                    "from retirement to launch, calls are marked as moved to {}, which answers 404",
                    area.new_number
                ),
                Treatment::Announce { .. } | Treatment::Reject { .. } => format!(
                    "from retirement to launch, callers are told to dial {}, which answers 404",
                    m.new_number
                ),
            };
            issues.push_both(
                (r.retired_from.span(), field("retired_from")),
                format!("{}: {consequence}", launched(&r.retired_from)),
                (launch_span.clone(), launch_field()),
            );
        }
        if let (Some(d), Some(span)) = (s.decommissioned_from, r.decommissioned_from.as_ref()) {
            if d < launch {
                issues.push_both(
                    (span.span(), field("decommissioned_from")),
                    format!(
                        "{}: the old number would stop before the new one starts",
                        launched(span)
                    ),
                    (launch_span, launch_field()),
                );
            }
        }
    }

    for (i, t) in raw.trunk.iter().enumerate() {
        let r = t.get_ref();
        match r.origin_area.as_ref() {
            Some(a) => {
                let Ok(code) = AreaCode::new(a.get_ref().trim()) else {
                    continue;
                };
                if m.area(code.as_str()).is_none() {
                    issues.push(
                        a.span(),
                        format!("trunk[{i}].origin_area"),
                        format!(
                            "no [[area]] has code {} (areas: {}): {} dialled on this trunk would \
                             answer 404; add the area, or leave origin_area out so that \
                             [new_number] default_queue answers",
                            code.as_str(),
                            known_areas(),
                            m.new_number
                        ),
                    );
                }
            }
            None if m.default_queue.is_none() => issues.warn(
                (r.name.span(), format!("trunk[{i}].name")),
                format!(
                    "this trunk has no origin_area and [new_number] has no default_queue: {} \
                     dialled on it without an area code answers 404",
                    m.new_number
                ),
                Some((raw.new_number.span(), "new_number".to_string())),
            ),
            None => {}
        }
    }
}

/// The `[[area]]` entries by code, each with its index in the file (the first, if a code is
/// repeated: validation reports that).
fn raw_areas(raw: &RawFile) -> HashMap<&str, (usize, &RawArea)> {
    let mut by_code = HashMap::with_capacity(raw.area.len());
    for (k, a) in raw.area.iter().map(Spanned::get_ref).enumerate() {
        by_code.entry(a.code.get_ref().trim()).or_insert((k, a));
    }
    by_code
}

/// When the new number starts answering in `area` (none if it always has), and the line saying
/// so.
fn effective_launch(area: &Area, raw: &RawArea) -> Option<(SystemTime, std::ops::Range<usize>)> {
    if area.answer_before_launch {
        return None;
    }
    let spanned = raw.launch.as_ref()?;
    let at = instant(spanned.get_ref()).ok()?;
    Some((at, spanned.span()))
}
