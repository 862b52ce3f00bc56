//! Replays the committed fuzz seed corpora (`fuzz/corpus/*`) as plain tests, so that
//! `cargo test` checks every seed the fuzzer starts from.

use std::fs;
use std::path::PathBuf;

use basalt_filter::{parse, parse_expand, parse_fields, parse_sort};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let bytes = fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn filter_parse_corpus_replays() {
    let files = corpus("filter_parse");
    assert!(files.len() >= 30, "only {} seed files", files.len());
    let mut parsed = 0;
    for (path, bytes) in files {
        let Ok(input) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let Ok(expr) = parse(input) else {
            continue;
        };
        parsed += 1;
        let printed = expr.to_string();
        let reparsed = parse(&printed).unwrap_or_else(|err| {
            panic!("{}: {printed:?} does not reparse: {err}", path.display())
        });
        assert_eq!(
            reparsed.without_spans(),
            expr.without_spans(),
            "{}",
            path.display()
        );
    }
    assert!(parsed >= 15, "only {parsed} seeds parse");
}

#[test]
fn query_parse_corpus_replays() {
    for (path, bytes) in corpus("query_parse") {
        let input = String::from_utf8_lossy(&bytes);
        if let Ok(terms) = parse_sort(&input) {
            for term in terms {
                assert!(term.span.end <= input.len(), "{}", path.display());
            }
        }
        let _ = parse_fields(&input);
        let _ = parse_expand(&input);
    }
}
