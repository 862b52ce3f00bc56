//! Integration tests of `basalt-filter`: one binary, one module per feature.
//!
//! Most tests are one line of input and a one-line expected rendering, through the
//! `check` helpers of each module.

mod corpus;
mod fields;
mod filter;
mod limits;
mod path;
mod roundtrip;
mod sexp;
mod sort;
