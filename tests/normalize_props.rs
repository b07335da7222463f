#![allow(clippy::unwrap_used)]
//! Properties of `number::normalize`: every spelling of a number gives the same canonical form,
//! the canonical form is a fixed point, and no input makes it panic.

use dualgate::number::{normalize, AreaCode, Dialled, Dialling};
use proptest::prelude::*;
use proptest::sample::{select, Index};

/// Areas mixing the 3-digit (010, 02x) and 4-digit codes.
const AREAS: &[&str] = &[
    "010", "020", "021", "022", "029", "0591", "0592", "0595", "0599", "0755", "0571", "0898",
];

/// A trunk's dialling context: its origin area is one of [`AREAS`], validated once.
fn dialling(area: Option<&str>) -> Dialling<'static> {
    static CODES: std::sync::OnceLock<Vec<AreaCode>> = std::sync::OnceLock::new();
    let codes = CODES.get_or_init(|| AREAS.iter().map(|a| AreaCode::new(a).unwrap()).collect());
    Dialling {
        origin_area: area.map(|a| {
            codes
                .iter()
                .find(|c| c.as_str() == a)
                .unwrap_or_else(|| panic!("{a} is not in AREAS"))
        }),
    }
}

/// A subscriber number (7-8 digits starting 2-9) or the hotline's short code.
fn local() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[2-9][0-9]{6,7}",
        1 => Just("12356".to_owned()),
    ]
}

/// Visual separators inserted at random places.
fn separators() -> impl Strategy<Value = Vec<(Index, char)>> {
    proptest::collection::vec(
        (any::<Index>(), select(vec!['-', '.', ' ', '(', ')'])),
        0..6,
    )
}

fn sprinkle(digits: &str, seps: &[(Index, char)]) -> String {
    let mut s = digits.to_owned();
    for (at, sep) in seps {
        // Insert between characters, never before the first (it may be '+').
        let i = 1 + at.index(s.len());
        s.insert(i, *sep);
    }
    s
}

fn parts(d: &Dialled) -> (&str, Option<&str>, &str) {
    (d.as_str(), d.area(), d.local())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_spelling_of_a_geographic_number_normalizes_alike(
        area in select(AREAS),
        local in local(),
        origin in proptest::option::of(select(AREAS)),
        seps in separators(),
    ) {
        let nsn = &area[1..];
        let want = format!("{area}{local}");
        let explicit = [
            format!("{area}{local}"),
            format!("+86{nsn}{local}"),
            format!("0086{nsn}{local}"),
            format!("tel:{}", sprinkle(&format!("+86{nsn}{local}"), &seps)),
            sprinkle(&format!("{area}{local}"), &seps),
            format!("sip:{area}{local}@gw;user=phone"),
            format!("sips:+86{nsn}{local}@gw;user=phone"),
            format!("SIP:%2B86{nsn}{local}@gw"),
            format!("sip:00{}@gw", sprinkle(&format!("86{nsn}{local}"), &seps)),
            format!("tel:{local};phone-context=+86-{nsn}"),
            format!("sip:{local};phone-context=+86{nsn}@gw;user=phone"),
        ];
        for input in &explicit {
            let got = normalize(input, &dialling(origin)).unwrap();
            prop_assert_eq!(parts(&got), (want.as_str(), Some(area), local.as_str()), "{}", input);
        }
        // Without an area in the number, the trunk's origin area supplies it.
        for input in [local.clone(), format!("sip:{local}@gw"), sprinkle(&local, &seps)] {
            let got = normalize(&input, &dialling(Some(area))).unwrap();
            prop_assert_eq!(parts(&got), (want.as_str(), Some(area), local.as_str()), "{}", input);
        }
    }

    #[test]
    fn every_spelling_of_a_mobile_number_normalizes_alike(
        mobile in "1[3-9][0-9]{9}",
        origin in proptest::option::of(select(AREAS)),
        seps in separators(),
    ) {
        for input in [
            mobile.clone(),
            format!("+86{mobile}"),
            format!("0086{mobile}"),
            format!("0{mobile}"),
            format!("tel:{}", sprinkle(&format!("+86{mobile}"), &seps)),
            format!("sip:{mobile}@gw;user=phone"),
        ] {
            let got = normalize(&input, &dialling(origin)).unwrap();
            prop_assert_eq!(parts(&got), (mobile.as_str(), None, mobile.as_str()), "{}", input);
        }
    }

    #[test]
    fn the_short_code_stays_bare_without_a_known_area(seps in separators()) {
        for input in ["12356".to_owned(), format!("sip:{}@gw", sprinkle("12356", &seps))] {
            let got = normalize(&input, &dialling(None)).unwrap();
            prop_assert_eq!(parts(&got), ("12356", None, "12356"));
        }
    }

    #[test]
    fn normalize_never_panics_on_any_string(s in any::<String>()) {
        let _ = normalize(&s, &dialling(None));
        let _ = normalize(&s, &dialling(Some("0591")));
    }

    #[test]
    fn normalize_never_panics_on_any_sip_or_tel_uri(s in any::<String>(), t in "\\PC{0,24}") {
        for input in [
            format!("sip:{s}"),
            format!("sips:{s}@gw"),
            format!("tel:{s}"),
            format!("sip:{t}"),
            format!("sip:+86{t}@gw"),
            format!("tel:1;phone-context={t}"),
            format!("sip:%{t}"),
        ] {
            let _ = normalize(&input, &dialling(Some("010")));
        }
    }
}

const IDEMPOTENCE_CASES: u32 = 512;

/// Runs `check` over `IDEMPOTENCE_CASES` cases of `strategy` and returns how many reached the
/// assertions (the others were inputs `normalize` rightly refused), so a property that silently
/// stops reaching its assertion fails instead of passing vacuously.
fn count_reached<S: Strategy>(
    strategy: S,
    check: impl Fn(S::Value) -> Result<bool, TestCaseError>,
) -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    let reached = AtomicU32::new(0);
    let mut runner =
        proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(IDEMPOTENCE_CASES));
    let result = runner.run(&strategy, |v| {
        if check(v)? {
            reached.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    reached.load(Ordering::Relaxed)
}

#[test]
fn normalize_is_idempotent_on_generated_numbers() {
    let strategy = (
        select(AREAS),
        local(),
        proptest::option::of(select(AREAS)),
        0usize..4,
    );
    let reached = count_reached(strategy, |(area, local, origin, form)| {
        let nsn = &area[1..];
        let input = match form {
            0 => format!("sip:+86{nsn}{local}@gw"),
            1 => format!("tel:{local};phone-context=+86-{nsn}"),
            2 => format!("sip:{local}@gw"),
            _ => "12356".to_owned(),
        };
        let d = dialling(origin);
        match normalize(&input, &d) {
            Ok(once) => {
                prop_assert_eq!(normalize(once.as_str(), &d), Ok(once));
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    });
    eprintln!("{reached} of {IDEMPOTENCE_CASES} generated numbers reached the assertion");
    // Local forms without an origin area are refused; every other form normalizes.
    assert!(
        reached >= IDEMPOTENCE_CASES / 2,
        "only {reached} cases reached the assertion"
    );
}

#[test]
fn normalize_is_idempotent_whenever_it_succeeds() {
    let strategy = (
        // Mostly number-shaped (prefixes, separators, area codes in and out), so most cases
        // normalize and reach the assertions; the old free-form pattern reached none.
        "(sip:|tel:)?(\\+86|0086|\\+86-)?(0?591|0?10|0?21|0?755)?[ .()-]{0,2}[1-9][0-9]{3}[ .-]?[0-9]{4}(;phone-context=\\+86-?(10|21|591))?(@gw)?",
        proptest::option::of(select(AREAS)),
    );
    let reached = count_reached(strategy, |(s, origin)| {
        let d = dialling(origin);
        match normalize(&s, &d) {
            Ok(once) => {
                prop_assert_eq!(normalize(once.as_str(), &d), Ok(once), "{}", s);
                prop_assert!(once.as_str().bytes().all(|b| b.is_ascii_digit()));
                prop_assert_eq!(
                    format!("{}{}", once.area().unwrap_or(""), once.local()),
                    once.as_str()
                );
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    });
    eprintln!("{reached} of {IDEMPOTENCE_CASES} arbitrary strings normalized and were checked");
    assert!(
        reached >= IDEMPOTENCE_CASES / 4,
        "only {reached} cases reached the assertion"
    );
}
