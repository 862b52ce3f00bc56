//! Tests of the filter/rule compiler (`basalt_sql::filter`).

mod schema;
mod snapshots;
