//! A legacy number's migration calendar: which phase it is in at an instant. Pure: the instant
//! is a parameter, never read here.

use std::time::SystemTime;

/// What happens to calls on a legacy number once its parallel period is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Treatment {
    /// Keep routing to the number's queue (a grace period), still marked as legacy.
    Route,
    /// Route to an announcement service (a queue, by index into the snapshot's queues) that says
    /// the number has changed and may transfer the caller to the new number.
    Announce {
        /// Index of the announcement queue.
        queue: crate::config::QueueId,
    },
    /// Answer 301/302 with a Contact for the new number, for switches that follow redirects.
    Redirect {
        /// 301 or 302.
        status: u16,
    },
    /// Answer a final error (410 Gone by default) with a Reason header.
    Reject {
        /// 404 or 410 (or another 4xx-6xx).
        status: u16,
        /// The reason phrase and Reason header text.
        reason: String,
    },
}

impl Treatment {
    /// The treatment's name as written in the mappings.
    pub fn as_str(&self) -> &'static str {
        match self {
            Treatment::Route => "route",
            Treatment::Announce { .. } => "announce",
            Treatment::Redirect { .. } => "redirect",
            Treatment::Reject { .. } => "reject",
        }
    }
}

/// One legacy number's dates, as instants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Start of the parallel period: from here both numbers reach the queue.
    pub parallel_from: SystemTime,
    /// End of the parallel period: from here the number is retired.
    pub retired_from: SystemTime,
    /// After this the number is unknown (404), if set.
    pub decommissioned_from: Option<SystemTime>,
    /// Treatment while retired.
    pub when_retired: Treatment,
}

/// Where a legacy number is in its migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase<'s> {
    /// Before the parallel period: the legacy number routes as it always did, unmarked.
    Before,
    /// Both numbers reach the queue; legacy calls are marked.
    Parallel,
    /// The parallel period is over; the configured treatment applies.
    Retired(&'s Treatment),
    /// The number is no longer in service.
    Decommissioned,
}

impl Phase<'_> {
    /// The phase's name, as used in metric labels and operator output.
    pub fn as_str(&self) -> &'static str {
        self.name().as_str()
    }

    /// The phase without its treatment.
    pub fn name(&self) -> PhaseName {
        match self {
            Phase::Before => PhaseName::Before,
            Phase::Parallel => PhaseName::Parallel,
            Phase::Retired(_) => PhaseName::Retired,
            Phase::Decommissioned => PhaseName::Decommissioned,
        }
    }
}

/// A phase without its treatment: what reports and labels compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseName {
    /// Before the parallel period.
    Before,
    /// During the parallel period.
    Parallel,
    /// After the parallel period.
    Retired,
    /// No longer in service.
    Decommissioned,
}

impl PhaseName {
    /// The name as used in metric labels and operator output.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseName::Before => "before",
            PhaseName::Parallel => "parallel",
            PhaseName::Retired => "retired",
            PhaseName::Decommissioned => "decommissioned",
        }
    }
}

/// Every phase name, in calendar order.
pub const PHASES: [&str; 4] = ["before", "parallel", "retired", "decommissioned"];

/// Which phase a legacy number is in at `now`; a boundary instant belongs to the later phase.
pub fn phase_at(s: &Schedule, now: SystemTime) -> Phase<'_> {
    match now {
        t if t < s.parallel_from => Phase::Before,
        t if t < s.retired_from => Phase::Parallel,
        t if s.decommissioned_from.is_some_and(|d| t >= d) => Phase::Decommissioned,
        _ => Phase::Retired(&s.when_retired),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    // 2025-04-07T00:00:00+08:00 = 2025-04-06T16:00:00Z = 1743955200
    const PARALLEL_FROM: u64 = 1_743_955_200;
    // 2025-05-07T00:00:00+08:00 = 2025-05-06T16:00:00Z = 1746547200
    const RETIRED_FROM: u64 = 1_746_547_200;
    // 2026-01-01T00:00:00+08:00 = 2025-12-31T16:00:00Z = 1767196800
    const DECOMMISSIONED_FROM: u64 = 1_767_196_800;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn schedule(when_retired: Treatment, decommissioned: bool) -> Schedule {
        Schedule {
            parallel_from: at(PARALLEL_FROM),
            retired_from: at(RETIRED_FROM),
            decommissioned_from: decommissioned.then(|| at(DECOMMISSIONED_FROM)),
            when_retired,
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn boundary_instants_belong_to_the_later_phase() {
        let s = schedule(Treatment::Route, true);
        let cases = [
            (at(PARALLEL_FROM) - MS, "before"),
            (at(PARALLEL_FROM), "parallel"),
            (at(RETIRED_FROM) - MS, "parallel"),
            (at(RETIRED_FROM), "retired"),
            (at(DECOMMISSIONED_FROM) - MS, "retired"),
            (at(DECOMMISSIONED_FROM), "decommissioned"),
            (at(0), "before"),
            (at(4_000_000_000), "decommissioned"),
        ];
        for (now, want) in cases {
            assert_eq!(phase_at(&s, now).as_str(), want, "{now:?}");
        }
    }

    #[test]
    fn without_a_decommission_date_a_number_stays_retired() {
        let s = schedule(Treatment::Route, false);
        assert_eq!(
            phase_at(&s, at(4_000_000_000)),
            Phase::Retired(&Treatment::Route)
        );
    }

    #[test]
    fn every_treatment_applies_from_the_end_of_the_parallel_period() {
        let treatments = [
            Treatment::Route,
            Treatment::Announce {
                queue: crate::config::QueueId::new(3),
            },
            Treatment::Redirect { status: 301 },
            Treatment::Reject {
                status: 410,
                reason: "Number Changed, Dial 12356".into(),
            },
        ];
        for t in treatments {
            let s = schedule(t.clone(), false);
            assert_eq!(
                phase_at(&s, at(RETIRED_FROM) - MS),
                Phase::Parallel,
                "{t:?}"
            );
            assert_eq!(phase_at(&s, at(RETIRED_FROM)), Phase::Retired(&t), "{t:?}");
        }
    }
}
