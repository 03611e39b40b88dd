//! The console's admins, sessions and login links on SQLite (see [`ConsoleStore`]).

use crate::rows::*;
use crate::sqlite::{SqliteStore, now_ms};
use crate::{AdminAccount, AdminSession, ConsoleStore, PendingConnection, StoreResult};
use async_trait::async_trait;
use sqlx::Row;

#[async_trait]
impl ConsoleStore for SqliteStore {
    async fn put_admin(&self, name: &str, password_hash: &str) -> StoreResult<bool> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let existed: Option<i64> = sqlx::query_scalar("SELECT 1 FROM admins WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO admins (name, password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?3) \
             ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(password_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // A new password signs the admin out everywhere.
        for table in ["admin_sessions", "admin_login_links"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE admin = ?"))
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(existed.is_none())
    }

    async fn admin(&self, name: &str) -> StoreResult<Option<AdminAccount>> {
        let row = sqlx::query("SELECT * FROM admins WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(admin_from_row).transpose()
    }

    async fn admin_count(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admins")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn put_session(&self, session: &AdminSession) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= ?")
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO admin_sessions (id_hash, admin, csrf, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&session.id_hash)
        .bind(&session.admin)
        .bind(&session.csrf)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str, now_ms: i64) -> StoreResult<Option<AdminSession>> {
        let row = sqlx::query("SELECT * FROM admin_sessions WHERE id_hash = ? AND expires_at > ?")
            .bind(id_hash)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM admin_sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_login_link(
        &self,
        token_hash: &str,
        admin: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM admin_login_links WHERE expires_at <= ?")
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO admin_login_links (token_hash, admin, expires_at) VALUES (?, ?, ?)",
        )
        .bind(token_hash)
        .bind(admin)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn put_pending_connection(&self, p: &PendingConnection) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM pending_connections WHERE expires_at <= ?")
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO pending_connections (id, session_hash, connection, root, api_url, \
             content_url, notify_url, credentials_ciphertext, expires_at, after_disconnect) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&p.id)
        .bind(&p.session_hash)
        .bind(&p.connection)
        .bind(&p.root)
        .bind(&p.api_url)
        .bind(&p.content_url)
        .bind(&p.notify_url)
        .bind(&p.credentials_ciphertext)
        .bind(p.expires_at)
        .bind(i64::from(p.after_disconnect))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn pending_connection(
        &self,
        id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<PendingConnection>> {
        let row = sqlx::query("SELECT * FROM pending_connections WHERE id = ? AND expires_at > ?")
            .bind(id)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(pending_from_row).transpose()
    }

    async fn confirm_pending_switch(&self, id: &str, expires_at: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE pending_connections SET after_disconnect = 1, expires_at = ? WHERE id = ?",
        )
        .bind(expires_at)
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn pending_switch_connections(&self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT connection FROM pending_connections \
             WHERE after_disconnect = 1 AND expires_at > ? ORDER BY connection",
        )
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?)
    }

    async fn pending_switch(&self, connection: &str) -> StoreResult<Option<PendingConnection>> {
        let row = sqlx::query(
            "SELECT * FROM pending_connections WHERE connection = ? AND after_disconnect = 1 \
             AND expires_at > ? ORDER BY expires_at DESC LIMIT 1",
        )
        .bind(connection)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(pending_from_row).transpose()
    }

    async fn delete_pending_connection(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM pending_connections WHERE id = ?")
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn take_login_link(&self, token_hash: &str, now_ms: i64) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "DELETE FROM admin_login_links WHERE token_hash = ? RETURNING admin, expires_at",
        )
        .bind(token_hash)
        .fetch_optional(self.writer())
        .await?;
        Ok(match row {
            Some(r) if r.try_get::<i64, _>("expires_at")? > now_ms => Some(r.try_get("admin")?),
            _ => None,
        })
    }
}
