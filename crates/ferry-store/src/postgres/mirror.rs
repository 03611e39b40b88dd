//! The remote mirror on PostgreSQL: the same SQL and code as SQLite's
//! ([`crate::mirror`]), with `$N` parameters.

use super::PgStore;

crate::mirror::mirror_store_impl!(
    PgStore,
    sqlx::Postgres,
    crate::mirror::postgres_sql,
    crate::mirror::BY_PATH_POSTGRES,
    crate::postgres::enqueue_tx
);
