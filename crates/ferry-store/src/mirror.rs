//! The remote mirror (see [`MirrorStore`]) on both backends: the SQL is written once, with
//! numbered `?N` parameters that PostgreSQL reads as `$N` ([`postgres_sql`]), and so is the
//! code around it ([`mirror_store_impl`]), since the two differ only in their types.

use crate::rows::Cols;
use crate::sqlite::SqliteStore;
use crate::{MirrorFile, StoreResult};
use std::borrow::Cow;

/// Files at paths of a mirror: the head of a multi-row insert, its values follow.
pub(crate) const PUT_FILES: &str = "INSERT INTO mirror_files \
     (connection, epoch, path_lower, path_display, dropbox_id, rev, size, content_hash) ";
/// The tail of [`PUT_FILES`]: a file replaces what the mirror held at its path.
pub(crate) const PUT_FILES_CONFLICT: &str = " ON CONFLICT (connection, epoch, path_lower) \
     DO UPDATE SET path_display = excluded.path_display, dropbox_id = excluded.dropbox_id, \
     rev = excluded.rev, size = excluded.size, content_hash = excluded.content_hash";
/// Most files in one insert: 8 parameters each stays far below either backend's limit.
pub(crate) const PUT_FILES_CHUNK: usize = 500;
/// Files of one mirror read per SQLite statement (see [`BY_PATH_SQLITE`]).
pub(crate) const BY_PATH_PAGE: usize = 1000;
/// The next page of one mirror's files by path after `?3`, as SQLite runs it: one row, the
/// files as a JSON array. SQLite hands each result row from its own thread to the caller's,
/// a thread switch per row, which made a million-file stream cost several seconds; a page
/// of a thousand in one row does not.
pub(crate) const BY_PATH_SQLITE: &str = "SELECT json_group_array(json_array(path_lower, \
     path_display, dropbox_id, rev, size, content_hash) ORDER BY path_lower) AS page \
     FROM (SELECT * FROM mirror_files WHERE connection = ?1 AND epoch = ?2 \
     AND path_lower > ?3 ORDER BY path_lower LIMIT 1000)";
/// The files of one mirror by path, as PostgreSQL runs it (the column is `COLLATE "C"`:
/// byte order; rows come in batches over the wire, so one query streams them all).
pub(crate) const BY_PATH_POSTGRES: &str = "SELECT path_lower, path_display, dropbox_id, rev, \
     size, content_hash FROM mirror_files WHERE connection = $1 AND epoch = $2 \
     ORDER BY path_lower";
/// Every scratch mirror of a connection.
pub(crate) const DROP_SCRATCH: &str =
    "DELETE FROM mirror_files WHERE connection = ?1 AND epoch < 0";
/// No file at a path.
pub(crate) const DROP_FILE: &str =
    "DELETE FROM mirror_files WHERE connection = ?1 AND epoch = ?2 AND path_lower = ?3";
/// Nothing at a path or under it: `?4` is the path plus `/`, `?5` the path plus `0` (the
/// character after `/`), so the range holds exactly the paths inside (byte order).
pub(crate) const DROP_TREE: &str = "DELETE FROM mirror_files WHERE connection = ?1 AND epoch = ?2 \
     AND (path_lower = ?3 OR (path_lower >= ?4 AND path_lower < ?5))";
/// The cursor and epoch of a connection whose cursor is `?3` under root `?2`.
pub(crate) const EPOCH_AT_CURSOR: &str =
    "SELECT mirror_epoch FROM connections WHERE name = ?1 AND root = ?2 AND cursor = ?3";
/// A feed page's cursor and liveness.
pub(crate) const ADVANCE: &str =
    "UPDATE connections SET cursor = ?2, mirror_live_until = ?3 WHERE name = ?1";
/// The first cursor, with the mirror it is current for.
pub(crate) const FINISH: &str = "UPDATE connections SET cursor = ?4, mirror_epoch = ?3, \
     mirror_live_until = ?5 WHERE name = ?1 AND root = ?2 AND cursor IS NULL";
/// Every mirror of a connection but one.
pub(crate) const DROP_OTHER_EPOCHS: &str =
    "DELETE FROM mirror_files WHERE connection = ?1 AND epoch <> ?2";
/// One mirror of a connection.
pub(crate) const DROP_EPOCH: &str = "DELETE FROM mirror_files WHERE connection = ?1 AND epoch = ?2";
/// Liveness.
pub(crate) const LIVE: &str = "UPDATE connections SET mirror_live_until = ?2 WHERE name = ?1";
/// The files inside a folder, in one statement so the epoch and the rows agree: no row means
/// no usable mirror; one row without a path, an empty folder.
pub(crate) const WITHIN: &str = "SELECT m.path_lower, m.path_display, m.dropbox_id, m.rev, \
     m.size, m.content_hash FROM connections c LEFT JOIN mirror_files m \
     ON m.connection = c.name AND m.epoch = c.mirror_epoch \
     AND m.path_lower >= ?2 AND m.path_lower < ?3 \
     WHERE c.name = ?1 AND c.cursor IS NOT NULL AND c.mirror_epoch <> 0 \
     AND c.mirror_live_until >= ?4 ORDER BY m.path_lower";
/// The epoch in use (none: no row).
pub(crate) const EPOCH_IN_USE: &str = "SELECT mirror_epoch FROM connections \
     WHERE name = ?1 AND cursor IS NOT NULL AND mirror_epoch <> 0";
/// A correction where the mirror holds revision `?9`.
pub(crate) const CORRECT_FILE: &str = "UPDATE mirror_files SET path_display = ?4, \
     dropbox_id = ?5, rev = ?6, size = ?7, content_hash = ?8 \
     WHERE connection = ?1 AND epoch = ?2 AND path_lower = ?3 AND rev = ?9";
/// A correction to "no file" where the mirror holds revision `?4`.
pub(crate) const CORRECT_GONE: &str = "DELETE FROM mirror_files \
     WHERE connection = ?1 AND epoch = ?2 AND path_lower = ?3 AND rev = ?4";
/// A correction to a file where the mirror holds none.
pub(crate) const CORRECT_NEW: &str = "INSERT INTO mirror_files \
     (connection, epoch, path_lower, path_display, dropbox_id, rev, size, content_hash) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (connection, epoch, path_lower) DO NOTHING";

/// `sql` as SQLite runs it.
pub(crate) fn sqlite_sql(sql: &'static str) -> Cow<'static, str> {
    Cow::Borrowed(sql)
}

/// `sql` with PostgreSQL's `$N` parameters for SQLite's `?N` (the texts hold no other `?`).
pub(crate) fn postgres_sql(sql: &'static str) -> Cow<'static, str> {
    Cow::Owned(sql.replace('?', "$"))
}

/// The key range of the paths inside `folder_lower`: from `folder/` up to `folder0`.
pub(crate) fn inside(folder_lower: &str) -> (String, String) {
    (format!("{folder_lower}/"), format!("{folder_lower}0"))
}

/// A mirror row; `None` for the empty row of an empty folder.
pub(crate) fn file_from_row(row: &impl Cols) -> StoreResult<Option<MirrorFile>> {
    let Some(path_lower) = row.col::<Option<String>>("path_lower")? else {
        return Ok(None);
    };
    Ok(Some(MirrorFile {
        path_lower,
        path_display: row.col("path_display")?,
        id: row.col("dropbox_id")?,
        rev: row.col("rev")?,
        size: row.count("size")?,
        content_hash: row.col("content_hash")?,
    }))
}

impl SqliteStore {
    /// [`MirrorStore::mirror_files_by_path`](crate::MirrorStore::mirror_files_by_path), a
    /// page of [`BY_PATH_PAGE`] files per statement.
    pub(crate) fn mirror_files_sorted<'a>(
        &'a self,
        connection: &'a str,
        epoch: i64,
    ) -> futures::stream::BoxStream<'a, StoreResult<MirrorFile>> {
        use futures::{StreamExt, TryStreamExt};
        type Row = (String, String, String, String, i64, Option<String>);
        futures::stream::try_unfold(Some(String::new()), move |after| async move {
            let Some(after) = after else {
                return StoreResult::Ok(None);
            };
            let page: String = sqlx::query_scalar(BY_PATH_SQLITE)
                .bind(connection)
                .bind(epoch)
                .bind(&after)
                .fetch_one(&self.pool)
                .await?;
            let rows: Vec<Row> = serde_json::from_str(&page)
                .map_err(|e| crate::StoreError::Corrupt(format!("mirror page: {e}")))?;
            let next = match rows.last() {
                Some(last) if rows.len() == BY_PATH_PAGE => Some(last.0.clone()),
                _ => None,
            };
            let files =
                rows.into_iter()
                    .map(|(path_lower, path_display, id, rev, size, content_hash)| {
                        Ok(MirrorFile {
                            path_lower,
                            path_display,
                            id,
                            rev,
                            size: u64::try_from(size).unwrap_or(0),
                            content_hash,
                        })
                    });
            Ok(Some((
                futures::stream::iter(files.collect::<Vec<_>>()),
                next,
            )))
        })
        .try_flatten()
        .boxed()
    }
}

/// A size as the schema stores it.
pub(crate) fn size_col(f: &MirrorFile) -> i64 {
    i64::try_from(f.size).unwrap_or(i64::MAX)
}

/// Implements [`MirrorStore`](crate::MirrorStore) for a store type with a `pool`, a
/// `write_tx()` and an `enqueue_tx` on database `$db`, running the SQL above through `$sql`.
macro_rules! mirror_store_impl {
    ($store:ty, $db:ty, $sql:path, $enqueue:path) => {
        async fn apply(
            tx: &mut sqlx::Transaction<'static, $db>,
            connection: &str,
            epoch: i64,
            changes: &[$crate::MirrorChange],
        ) -> $crate::StoreResult<()> {
            use $crate::mirror::*;
            let mut changes = changes.iter().peekable();
            while let Some(change) = changes.peek().copied() {
                if !matches!(change, $crate::MirrorChange::File(_)) {
                    changes.next();
                }
                match change {
                    $crate::MirrorChange::File(_) => {
                        // Consecutive files go in one statement (a page of a listing is up
                        // to 2,000), up to a repeated path, which must come after the first.
                        let mut files: Vec<&$crate::MirrorFile> = Vec::new();
                        let mut paths = std::collections::HashSet::new();
                        while let Some($crate::MirrorChange::File(f)) = changes.peek().copied() {
                            if files.len() == PUT_FILES_CHUNK || !paths.insert(&f.path_lower) {
                                break;
                            }
                            files.push(f);
                            changes.next();
                        }
                        let mut q = sqlx::QueryBuilder::<$db>::new(PUT_FILES);
                        q.push_values(files, |mut row, f| {
                            row.push_bind(connection)
                                .push_bind(epoch)
                                .push_bind(&f.path_lower)
                                .push_bind(&f.path_display)
                                .push_bind(&f.id)
                                .push_bind(&f.rev)
                                .push_bind(size_col(f))
                                .push_bind(&f.content_hash);
                        });
                        q.push(PUT_FILES_CONFLICT);
                        q.build().execute(&mut **tx).await?;
                    }
                    $crate::MirrorChange::Folder { path_lower } => {
                        sqlx::query(&$sql(DROP_FILE))
                            .bind(connection)
                            .bind(epoch)
                            .bind(path_lower)
                            .execute(&mut **tx)
                            .await?;
                    }
                    $crate::MirrorChange::Deleted { path_lower } => {
                        let (from, to) = inside(path_lower);
                        sqlx::query(&$sql(DROP_TREE))
                            .bind(connection)
                            .bind(epoch)
                            .bind(path_lower)
                            .bind(from)
                            .bind(to)
                            .execute(&mut **tx)
                            .await?;
                    }
                }
            }
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::MirrorStore for $store {
            async fn seed_mirror(
                &self,
                connection: &str,
                epoch: i64,
                changes: &[$crate::MirrorChange],
            ) -> $crate::StoreResult<()> {
                let mut tx = self.write_tx().await?;
                apply(&mut tx, connection, epoch, changes).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn finish_mirror(
                &self,
                connection: &str,
                root: &str,
                epoch: i64,
                cursor: &str,
                live_until_ms: i64,
            ) -> $crate::StoreResult<bool> {
                use $crate::mirror::*;
                let mut tx = self.write_tx().await?;
                let in_use = sqlx::query(&$sql(FINISH))
                    .bind(connection)
                    .bind(root)
                    .bind(epoch)
                    .bind(cursor)
                    .bind(live_until_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                let drop = if in_use {
                    DROP_OTHER_EPOCHS
                } else {
                    DROP_EPOCH
                };
                sqlx::query(&$sql(drop))
                    .bind(connection)
                    .bind(epoch)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(in_use)
            }

            async fn apply_feed_page(
                &self,
                page: &$crate::FeedPage<'_>,
            ) -> $crate::StoreResult<bool> {
                use $crate::mirror::*;
                let mut tx = self.write_tx().await?;
                let Some(epoch) = sqlx::query_scalar::<_, i64>(&$sql(EPOCH_AT_CURSOR))
                    .bind(page.connection)
                    .bind(page.root)
                    .bind(page.from)
                    .fetch_optional(&mut *tx)
                    .await?
                else {
                    return Ok(false);
                };
                apply(&mut tx, page.connection, epoch, page.changes).await?;
                sqlx::query(&$sql(ADVANCE))
                    .bind(page.connection)
                    .bind(page.to)
                    .bind(page.live_until_ms)
                    .execute(&mut *tx)
                    .await?;
                $enqueue(&mut tx, page.records, $crate::Priority::Blocking).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn mirror_live(
                &self,
                connection: &str,
                until_ms: i64,
            ) -> $crate::StoreResult<()> {
                sqlx::query(&$sql($crate::mirror::LIVE))
                    .bind(connection)
                    .bind(until_ms)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn mirror_within(
                &self,
                connection: &str,
                folder_lower: &str,
                now_ms: i64,
            ) -> $crate::StoreResult<Option<Vec<$crate::MirrorFile>>> {
                use $crate::mirror::*;
                let (from, to) = inside(folder_lower);
                let rows = sqlx::query(&$sql(WITHIN))
                    .bind(connection)
                    .bind(from)
                    .bind(to)
                    .bind(now_ms)
                    .fetch_all(&self.pool)
                    .await?;
                if rows.is_empty() {
                    return Ok(None);
                }
                let mut files = Vec::with_capacity(rows.len());
                for row in &rows {
                    files.extend(file_from_row(row)?);
                }
                Ok(Some(files))
            }

            fn mirror_files_by_path<'a>(
                &'a self,
                connection: &'a str,
                epoch: i64,
            ) -> futures::stream::BoxStream<'a, $crate::StoreResult<$crate::MirrorFile>> {
                self.mirror_files_sorted(connection, epoch)
            }

            async fn drop_scratch_mirrors(&self, connection: &str) -> $crate::StoreResult<()> {
                sqlx::query(&$sql($crate::mirror::DROP_SCRATCH))
                    .bind(connection)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn correct_mirror(
                &self,
                connection: &str,
                corrections: &[$crate::MirrorCorrection],
            ) -> $crate::StoreResult<()> {
                use $crate::mirror::*;
                let mut tx = self.write_tx().await?;
                let Some(epoch) = sqlx::query_scalar::<_, i64>(&$sql(EPOCH_IN_USE))
                    .bind(connection)
                    .fetch_optional(&mut *tx)
                    .await?
                else {
                    return Ok(());
                };
                for c in corrections {
                    match (&c.was_rev, &c.now) {
                        (Some(was), Some(f)) => {
                            sqlx::query(&$sql(CORRECT_FILE))
                                .bind(connection)
                                .bind(epoch)
                                .bind(&c.path_lower)
                                .bind(&f.path_display)
                                .bind(&f.id)
                                .bind(&f.rev)
                                .bind(size_col(f))
                                .bind(&f.content_hash)
                                .bind(was)
                                .execute(&mut *tx)
                                .await?;
                        }
                        (Some(was), None) => {
                            sqlx::query(&$sql(CORRECT_GONE))
                                .bind(connection)
                                .bind(epoch)
                                .bind(&c.path_lower)
                                .bind(was)
                                .execute(&mut *tx)
                                .await?;
                        }
                        (None, Some(f)) => {
                            sqlx::query(&$sql(CORRECT_NEW))
                                .bind(connection)
                                .bind(epoch)
                                .bind(&c.path_lower)
                                .bind(&f.path_display)
                                .bind(&f.id)
                                .bind(&f.rev)
                                .bind(size_col(f))
                                .bind(&f.content_hash)
                                .execute(&mut *tx)
                                .await?;
                        }
                        (None, None) => {}
                    }
                }
                tx.commit().await?;
                Ok(())
            }
        }
    };
}
pub(crate) use mirror_store_impl;

mirror_store_impl!(
    SqliteStore,
    sqlx::Sqlite,
    crate::mirror::sqlite_sql,
    crate::sqlite::enqueue_tx
);
