//! Fuzzes the `sort`, `fields` and `expand` parsers: no input may panic, sort terms
//! print back to themselves, and spans stay inside the input.

#![no_main]

use basalt_filter::{parse_expand, parse_fields, parse_sort};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    match parse_sort(input) {
        Ok(terms) => {
            for term in &terms {
                assert!(term.span.start <= term.span.end && term.span.end <= input.len());
            }
            let printed: Vec<String> = terms.iter().map(ToString::to_string).collect();
            let reparsed = parse_sort(&printed.join(",")).expect("printed sort reparses");
            let again: Vec<String> = reparsed.iter().map(ToString::to_string).collect();
            assert_eq!(printed, again);
        }
        Err(err) => assert!(err.span().end <= input.len()),
    }
    if let Err(err) = parse_fields(input) {
        assert!(err.span().end <= input.len());
    }
    if let Err(err) = parse_expand(input) {
        assert!(err.span().end <= input.len());
    }
});
