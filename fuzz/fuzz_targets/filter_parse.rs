//! Fuzzes the filter parser: no input may panic, and any input that parses must
//! print to a form that parses back to the same tree (spans aside).

#![no_main]

use basalt_filter::{Limits, parse, parse_with};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_with(input, &Limits::client_filter());
    match parse(input) {
        Ok(expr) => {
            let printed = expr.to_string();
            let reparsed = match parse(&printed) {
                Ok(reparsed) => reparsed,
                Err(err) => panic!("{input:?} printed as {printed:?}, which fails: {err}"),
            };
            assert_eq!(
                reparsed.without_spans(),
                expr.without_spans(),
                "{printed:?}"
            );
            assert_eq!(reparsed.to_string(), printed);
        }
        Err(err) => {
            let span = err.span();
            assert!(
                span.start <= span.end && span.end <= input.len(),
                "{span:?}"
            );
            assert!(input.is_char_boundary(span.start) && input.is_char_boundary(span.end));
            let _ = err.to_string();
        }
    }
});
