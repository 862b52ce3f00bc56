//! Tests of the filter/rule compiler (`basalt_sql::filter`).

mod db;
mod differential;
mod exec;
mod schema;
mod snapshots;
