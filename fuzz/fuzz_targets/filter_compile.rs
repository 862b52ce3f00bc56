//! Fuzzes parse + resolve + emit of the filter compiler: see
//! `crates/basalt-sql/tests/filter/fuzz_check.rs` for the property (no panic, binds match
//! placeholders, identifiers come from the schema, literal values never reach the SQL).
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/basalt-sql/tests/filter/schema.rs"]
mod schema;

#[allow(dead_code)]
#[path = "../../crates/basalt-sql/tests/filter/fuzz_check.rs"]
mod fuzz_check;

/// The snapshot module is not part of the fuzz build; the check refers to it only in
/// `#[test]` functions.
mod snapshots {
    pub(crate) const CASES: &[(&str, &str, &str)] = &[];
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_check::check(data));
