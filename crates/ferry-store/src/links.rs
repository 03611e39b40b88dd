//! Shared links on SQLite (see [`LinkStore`]).

use crate::decisions::LinkColumns;
use crate::rows::*;
use crate::sqlite::{SqliteStore, insert_log_with, now_ms};
use crate::{LinkResult, LinkStore, LinkTarget, StoreResult, StoredLink};
use async_trait::async_trait;
use ferry_core::model::RecordId;

/// A link row is wanted when there is none, or when it is due again and has no url (a failed
/// try) or an expired one.
const WANTED: &str = "(l.item IS NULL OR (l.next_at <= ?3 AND (l.url IS NULL \
                      OR (l.expires_at IS NOT NULL AND l.expires_at <= ?3))))";

#[async_trait]
impl LinkStore for SqliteStore {
    async fn links_wanted(
        &self,
        connection: &str,
        rule: &str,
        folders: bool,
        now_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<LinkTarget>> {
        let files = format!(
            "SELECT f.dropbox_id AS item, f.record_id, f.binding_id, b.folder_display, \
             f.rel_display, COALESCE(l.attempts, 0) AS attempts \
             FROM sync_files f JOIN bindings b ON b.id = f.binding_id \
             LEFT JOIN shared_links l ON l.connection = f.connection AND l.item = f.dropbox_id \
             WHERE f.connection = ?1 AND f.rule_name = ?2 AND f.state = 'synced' \
             AND f.rev IS NOT NULL AND f.dropbox_id IS NOT NULL AND {WANTED} \
             ORDER BY f.id LIMIT ?4"
        );
        let mut rows = sqlx::query(&files)
            .bind(connection)
            .bind(rule)
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        if folders && rows.len() < limit as usize {
            // A folder is linked once Dropbox holds it: a file synced into it, or its
            // default subfolders made.
            let folders = format!(
                "SELECT 'binding:' || b.id AS item, b.record_id, b.id AS binding_id, \
                 b.folder_display, NULL AS rel_display, COALESCE(l.attempts, 0) AS attempts \
                 FROM bindings b \
                 LEFT JOIN shared_links l ON l.connection = b.connection AND l.item = 'binding:' || b.id \
                 WHERE b.connection = ?1 AND b.rule_name = ?2 AND {WANTED} \
                 AND (EXISTS (SELECT 1 FROM sync_files f WHERE f.binding_id = b.id AND f.rev IS NOT NULL) \
                      OR EXISTS (SELECT 1 FROM binding_subfolders s WHERE s.binding_id = b.id)) \
                 ORDER BY b.id LIMIT ?4"
            );
            rows.extend(
                sqlx::query(&folders)
                    .bind(connection)
                    .bind(rule)
                    .bind(now_ms)
                    .bind(i64::from(limit) - rows.len() as i64)
                    .fetch_all(&self.pool)
                    .await?,
            );
        }
        rows.iter()
            .map(|r| link_target_from_row(connection, r))
            .collect()
    }

    async fn save_link(&self, target: &LinkTarget, result: &LinkResult) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let c = LinkColumns::of(target, result);
        // A failed renewal keeps the old link on show (with the error) until one is made.
        sqlx::query(
            "INSERT INTO shared_links (connection, item, url, audience, expires_at, error, attempts, \
             next_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (connection, item) DO UPDATE SET \
             url = COALESCE(excluded.url, shared_links.url), \
             audience = CASE WHEN excluded.url IS NULL THEN shared_links.audience ELSE excluded.audience END, \
             expires_at = CASE WHEN excluded.url IS NULL THEN shared_links.expires_at ELSE excluded.expires_at END, \
             error = excluded.error, attempts = excluded.attempts, next_at = excluded.next_at, \
             updated_at = excluded.updated_at",
        )
        .bind(&target.connection)
        .bind(&target.item)
        .bind(c.url)
        .bind(c.audience)
        .bind(c.expires_at)
        .bind(c.error)
        .bind(c.attempts)
        .bind(c.next_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let entry = c.log_entry(target, now);
        let subscribed = crate::webhooks::any_subscription(&mut tx).await?;
        insert_log_with(&mut tx, &entry, subscribed).await?;
        if subscribed {
            let record: Option<(String, String)> =
                sqlx::query_as("SELECT kind, key FROM records WHERE id = ?")
                    .bind(target.record_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let (event, data) = c.event(target, record);
            crate::webhooks::emit(&mut tx, event, data).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_links(&self, record_id: RecordId) -> StoreResult<Vec<StoredLink>> {
        let rows = sqlx::query(
            "SELECT l.connection, l.item, l.url, l.audience, l.expires_at, l.error \
             FROM sync_files f JOIN shared_links l ON l.connection = f.connection AND l.item = f.dropbox_id \
             WHERE f.record_id = ?1 \
             UNION SELECT l.connection, l.item, l.url, l.audience, l.expires_at, l.error \
             FROM bindings b JOIN shared_links l ON l.connection = b.connection AND l.item = 'binding:' || b.id \
             WHERE b.record_id = ?1 ORDER BY 1, 2",
        )
        .bind(record_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_link_from_row).collect()
    }

    async fn prune_links(&self, connection: &str) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM shared_links WHERE connection = ?1 \
             AND item NOT IN (SELECT dropbox_id FROM sync_files WHERE connection = ?1 AND dropbox_id IS NOT NULL) \
             AND item NOT IN (SELECT 'binding:' || id FROM bindings WHERE connection = ?1)",
        )
        .bind(connection)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }
}
