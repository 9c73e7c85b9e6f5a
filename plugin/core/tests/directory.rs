//! The employee directory of the operator API: creation, tokens, lookups.

mod common;

use common::Bench;
use vk_core::ErrorKind;

#[test]
fn a_new_employee_is_found_by_their_token_and_the_token_is_not_stored() {
    let bench = Bench::empty();
    let (anna, token) = bench
        .core()
        .create_employee("  Anna  ")
        .expect("an employee");
    assert_eq!(anna.name, "Anna", "the name is trimmed");
    assert_eq!(token.len(), 64);
    assert_eq!(bench.core().authenticate(&token), Ok(Some(anna.id)));
    assert_eq!(bench.core().authenticate("made-up"), Ok(None));
    assert_eq!(bench.core().authenticate(&token[..63]), Ok(None));
    let stored: Vec<u8> = bench
        .snapshot()
        .into_iter()
        .flat_map(|e| [e.key.into_bytes(), e.value].concat())
        .collect();
    assert!(!String::from_utf8_lossy(&stored).contains(&token));
}

#[test]
fn every_employee_is_listed_and_known_by_id() {
    let bench = Bench::empty();
    let core = bench.core();
    let created: Vec<_> = (0..3)
        .map(|n| {
            core.create_employee(&format!("Operator {n}"))
                .expect("created")
                .0
        })
        .collect();
    let mut listed: Vec<_> = core
        .employees()
        .expect("listed")
        .iter()
        .map(|e| e.id)
        .collect();
    let mut expected: Vec<_> = created.iter().map(|e| e.id).collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(core.employee_exists(created[1].id), Ok(true));
    assert_eq!(core.employee_exists(vk_core::EmployeeId::new()), Ok(false));
}

#[test]
fn a_blank_or_overlong_name_is_refused_and_nothing_is_stored() {
    let bench = Bench::empty();
    for name in ["", "   ", &"я".repeat(201)] {
        let error = bench.core().create_employee(name).expect_err("refused");
        assert_eq!(
            (error.kind(), error.code()),
            (ErrorKind::BadInput, "invalid-field")
        );
    }
    assert!(bench.snapshot().is_empty());
}
