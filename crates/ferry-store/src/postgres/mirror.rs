//! The remote mirror on PostgreSQL: the same SQL and code as SQLite's
//! ([`crate::mirror`]), with `$N` parameters.

use super::PgStore;

crate::mirror::mirror_store_impl!(
    PgStore,
    sqlx::Postgres,
    crate::mirror::postgres_sql,
    crate::postgres::enqueue_tx
);

impl PgStore {
    /// [`MirrorStore::mirror_files_by_path`](crate::MirrorStore::mirror_files_by_path): one
    /// query, streamed.
    pub(crate) fn mirror_files_sorted<'a>(
        &'a self,
        connection: &'a str,
        epoch: i64,
    ) -> futures::stream::BoxStream<'a, crate::StoreResult<crate::MirrorFile>> {
        use futures::StreamExt;
        sqlx::query(crate::mirror::BY_PATH_POSTGRES)
            .bind(connection)
            .bind(epoch)
            .fetch(&self.pool)
            .map(|row| {
                crate::mirror::file_from_row(&row?)?
                    .ok_or_else(|| crate::StoreError::Corrupt("a mirror row without a path".into()))
            })
            .boxed()
    }
}
