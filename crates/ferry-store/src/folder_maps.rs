//! Folders mapped to records by hand, on SQLite (see [`FolderMapStore`]).

use crate::rows::*;
use crate::sqlite::{SqliteStore, enqueue_tx, now_ms};
use crate::{FolderMap, FolderMapStore, Priority, StoreResult};
use async_trait::async_trait;
use ferry_core::model::RecordId;

#[async_trait]
impl FolderMapStore for SqliteStore {
    async fn put_folder_map(&self, map: &FolderMap) -> StoreResult<i64> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO folder_maps (record_id, connection, folder_id, folder_display, direction, \
             pull_subfolders, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (record_id, connection, folder_id) DO NOTHING",
        )
        .bind(map.record_id)
        .bind(&map.connection)
        .bind(&map.folder_id)
        .bind(&map.path)
        .bind(direction_text(map.direction))
        .bind(i64::from(map.pull_subfolders))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let id: i64 = sqlx::query_scalar(
            "SELECT id FROM folder_maps WHERE record_id = ? AND connection = ? AND folder_id = ?",
        )
        .bind(map.record_id)
        .bind(&map.connection)
        .bind(&map.folder_id)
        .fetch_one(&mut *tx)
        .await?;
        enqueue_tx(&mut tx, &[map.record_id], Priority::Normal).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn folder_maps(&self, record_id: RecordId) -> StoreResult<Vec<FolderMap>> {
        sqlx::query("SELECT * FROM folder_maps WHERE record_id = ? ORDER BY id")
            .bind(record_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(map_from_row)
            .collect()
    }

    async fn folder_maps_of_connection(&self, connection: &str) -> StoreResult<Vec<FolderMap>> {
        sqlx::query("SELECT * FROM folder_maps WHERE connection = ? ORDER BY id")
            .bind(connection)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(map_from_row)
            .collect()
    }

    async fn set_folder_map_path(&self, id: i64, path: &str) -> StoreResult<()> {
        sqlx::query("UPDATE folder_maps SET folder_display = ? WHERE id = ?")
            .bind(path)
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn delete_folder_map(
        &self,
        record_id: RecordId,
        id: i64,
    ) -> StoreResult<Option<FolderMap>> {
        let mut tx = self.write_tx().await?;
        let Some(row) = sqlx::query("SELECT * FROM folder_maps WHERE id = ? AND record_id = ?")
            .bind(id)
            .bind(record_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let map = map_from_row(&row)?;
        let rule = format!("map:{id}");
        let binding: Option<i64> =
            sqlx::query_scalar("SELECT id FROM bindings WHERE record_id = ? AND rule_name = ?")
                .bind(record_id)
                .bind(&rule)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(binding) = binding {
            for table in ["sync_files", "binding_subfolders"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE binding_id = ?"))
                    .bind(binding)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM bindings WHERE id = ?")
                .bind(binding)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM folder_maps WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(map))
    }
}
