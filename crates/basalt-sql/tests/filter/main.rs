//! Tests of the filter/rule compiler (`basalt_sql::filter`).

mod cache;
mod db;
mod differential;
mod exec;
mod fuzz_check;
mod schema;
mod snapshots;
