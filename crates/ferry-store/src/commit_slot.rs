//! One commit in flight per Dropbox namespace, across processes. Dropbox locks a namespace
//! for each commit and answers `too_many_write_operations` to a second one meanwhile; inside
//! a process the engine keeps commits one at a time itself, and with several processes on
//! PostgreSQL a [`CommitSlot`] does it across them: a session advisory lock held on one
//! pooled connection for the length of the commit. The server releases it when that
//! connection ends, so a process that dies mid-commit holds no one up.

use sqlx::pool::PoolConnection;
use sqlx::postgres::Postgres;

/// The right to commit to one connection's namespace now. Give it back with
/// [`release`](CommitSlot::release); dropped without that (a cancelled pass), its database
/// connection is closed instead of pooled, which frees the lock on the server.
#[derive(Debug, Default)]
pub struct CommitSlot {
    held: Option<(PoolConnection<Postgres>, i32)>,
}

/// The advisory lock class of commit slots (the first key of `pg_advisory_lock(int, int)`;
/// "fc" for Ferry commits), apart from [`crate::WRITE_LOCK`]'s single-key space.
const COMMIT_CLASS: i32 = 0x6663;

impl CommitSlot {
    /// No lock to hold (one process, SQLite): the engine's own lock is enough.
    pub fn unshared() -> CommitSlot {
        CommitSlot { held: None }
    }

    /// Waits for and takes the slot of `key` on a connection of `pool`. Cancelled while it
    /// waits (a timeout, a pass dropped), the connection is closed, not pooled: the server
    /// would otherwise grant the lock to it later, and an idle pooled connection would hold
    /// the namespace for good.
    pub(crate) async fn take(pool: &sqlx::PgPool, key: &str) -> Result<CommitSlot, sqlx::Error> {
        let mut waiting = CommitSlot {
            held: Some((pool.acquire().await?, 0)),
        };
        if let Some((conn, key_hash)) = waiting.held.as_mut() {
            *key_hash = sqlx::query_scalar("SELECT hashtext($1)")
                .bind(key)
                .fetch_one(&mut **conn)
                .await?;
            sqlx::query("SELECT pg_advisory_lock($1, $2)")
                .bind(COMMIT_CLASS)
                .bind(*key_hash)
                .execute(&mut **conn)
                .await?;
        }
        Ok(waiting)
    }

    /// Gives the slot back (the connection returns to the pool unlocked). Cancelled before
    /// the unlock is done, the slot is dropped with the connection still in it, and closed.
    pub async fn release(mut self) {
        let Some((conn, key_hash)) = self.held.as_mut() else {
            return;
        };
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
            .bind(COMMIT_CLASS)
            .bind(*key_hash)
            .execute(&mut **conn)
            .await;
        if unlocked.is_ok() {
            // Unlocked: the connection may be pooled again (dropping the slot would close it).
            drop(self.held.take());
        }
    }
}

impl Drop for CommitSlot {
    fn drop(&mut self) {
        if let Some((conn, _)) = self.held.take() {
            // Closing the session frees its advisory locks; pooled, it would keep them.
            drop(conn.detach());
        }
    }
}
