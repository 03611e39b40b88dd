//! Folders mapped to records by hand, on PostgreSQL (see [`FolderMapStore`]).

use super::{PgStore, enqueue_tx, now_ms};
use crate::rows::*;
use crate::{FolderMap, FolderMapStore, Priority, StoreResult};
use async_trait::async_trait;
use ferry_core::model::RecordId;

#[async_trait]
impl FolderMapStore for PgStore {
    async fn put_folder_map(&self, map: &FolderMap) -> StoreResult<i64> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO folder_maps (record_id, connection, folder_id, folder_display, direction, \
             pull_subfolders, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
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
            "SELECT id FROM folder_maps WHERE record_id = $1 AND connection = $2 AND folder_id = $3",
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
        sqlx::query("SELECT * FROM folder_maps WHERE record_id = $1 ORDER BY id")
            .bind(record_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(map_from_row)
            .collect()
    }

    async fn folder_maps_of_connection(&self, connection: &str) -> StoreResult<Vec<FolderMap>> {
        sqlx::query("SELECT * FROM folder_maps WHERE connection = $1 ORDER BY id")
            .bind(connection)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(map_from_row)
            .collect()
    }

    async fn set_folder_map_path(&self, id: i64, path: &str) -> StoreResult<()> {
        sqlx::query("UPDATE folder_maps SET folder_display = $1 WHERE id = $2")
            .bind(path)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_folder_map(
        &self,
        record_id: RecordId,
        id: i64,
    ) -> StoreResult<Option<FolderMap>> {
        let mut tx = self.write_tx().await?;
        let Some(row) = sqlx::query("SELECT * FROM folder_maps WHERE id = $1 AND record_id = $2")
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
            sqlx::query_scalar("SELECT id FROM bindings WHERE record_id = $1 AND rule_name = $2")
                .bind(record_id)
                .bind(&rule)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(binding) = binding {
            for table in ["sync_files", "binding_subfolders"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE binding_id = $1"))
                    .bind(binding)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM bindings WHERE id = $1")
                .bind(binding)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM folder_maps WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(map))
    }
}
