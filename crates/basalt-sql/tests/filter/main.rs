//! Tests of the filter/rule compiler (`basalt_sql::filter`).

mod db;
mod exec;
mod schema;
mod snapshots;
