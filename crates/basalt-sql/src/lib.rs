//! `basalt-sql`: every piece of SQL text Basalt runs is produced here.
//!
//! Invariant: no I/O, no driver types. Values always travel as bound parameters;
//! identifiers always come from the schema.

pub mod authflow;
pub mod ddl;
pub mod filter;
mod query;
pub mod record;
pub mod view;

pub use query::{Dialect, SqlQuery, Value};
