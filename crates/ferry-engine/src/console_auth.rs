//! Who may use the console: admin accounts with argon2id password hashes, sessions, and
//! one-time login links (what `ferry demo` and `ferry admin login-link` print).
//!
//! The browser holds a random session token; the store keeps only its SHA-256, so a copy of
//! the database opens no session. Each session has its own CSRF token, which every form
//! carries. Hashing a password costs ~20 ms of CPU and 19 MiB, so at most two run at once,
//! and a name that keeps failing is made to wait (doubling, up to five minutes).

use crate::{Engine, EngineError};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ferry_core::secret::Secret;
use ferry_store::AdminSession;
use rand::RngCore;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a console session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// How long a one-time login link works.
pub const LOGIN_LINK_LIFETIME: Duration = Duration::from_secs(600);
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted (hashing is linear in it; this bounds the work).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Failures of one name before it is made to wait.
const FREE_FAILURES: u32 = 5;
/// The longest such wait.
const MAX_LOCKOUT: Duration = Duration::from_secs(300);

/// Hashes in flight at once, across all engines of the process.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// A session just begun: the token goes into the browser's cookie, once.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The cookie value (never stored, never logged).
    pub token: Secret,
    /// The session as stored.
    pub session: AdminSession,
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown name or wrong password (the two are not told apart).
    #[error("the name or the password is wrong")]
    Wrong,
    /// Too many failures for this name lately.
    #[error("too many failed sign-ins for this name; try again in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    /// The link is unknown, used or expired.
    #[error("this sign-in link is unknown, was already used, or expired; ask for a new one")]
    BadLink,
    /// The store failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Failed sign-ins per admin name, to slow down guessing.
#[derive(Debug, Default)]
pub(crate) struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    fn wait_for(&self, name: &str) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (count, last) = failures.get(name)?;
        let over = count.checked_sub(FREE_FAILURES)?;
        let wait = Duration::from_secs(1u64 << over.min(9)).min(MAX_LOCKOUT);
        wait.checked_sub(last.elapsed())
    }

    fn failed(&self, name: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: names that stopped failing a while ago are forgotten first.
        if failures.len() > 10_000 {
            failures.retain(|_, (_, last)| last.elapsed() < MAX_LOCKOUT);
        }
        let entry = failures
            .entry(name.to_owned())
            .or_insert((0, Instant::now()));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = Instant::now();
    }

    fn succeeded(&self, name: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }
}

/// SHA-256 of a token, hex: what the store keeps.
pub fn token_hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

fn random_token() -> String {
    let mut buf = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

use ferry_core::clock::now_ms;

/// Checks an admin name: 1–64 letters, digits, `.`, `_`, `-`, `@`.
pub fn validate_admin_name(name: &str) -> Result<(), EngineError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(
            "admin name: 1 to 64 letters, digits, '.', '_', '-' or '@'".into(),
        ))
    }
}

async fn hash_password(password: Secret) -> Result<String, EngineError> {
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|_| EngineError::Conflict("shutting down".into()))?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        argon2::Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| EngineError::Invalid(format!("cannot hash that password: {e}")))
    })
    .await
    .map_err(|e| EngineError::Conflict(format!("password hashing stopped: {e}")))?
}

/// Whether `password` matches `hash` (a PHC string). A malformed hash matches nothing.
async fn verify_password(password: Secret, hash: String) -> bool {
    let Ok(_permit) = HASHING.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// A hash of no one's password, verified for unknown names so that they take as long as
/// known ones.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        argon2::Argon2::default()
            .hash_password(random_token().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

impl Engine {
    /// Creates an admin or sets a new password (which signs the admin out everywhere).
    /// True if the admin is new.
    pub async fn set_admin_password(
        &self,
        name: &str,
        password: &Secret,
    ) -> Result<bool, EngineError> {
        validate_admin_name(name)?;
        let chars = password.expose().chars().count();
        if chars < MIN_PASSWORD_CHARS || password.expose().len() > MAX_PASSWORD_BYTES {
            return Err(EngineError::Invalid(format!(
                "password: at least {MIN_PASSWORD_CHARS} characters and at most {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        let hash = hash_password(password.clone()).await?;
        let created = self.store.put_admin(name, &hash).await?;
        self.login_throttle.succeeded(name);
        tracing::info!(admin = %name, created, "console admin password set");
        Ok(created)
    }

    /// How many admins can sign in to the console.
    pub async fn admin_count(&self) -> Result<u64, EngineError> {
        Ok(self.store.admin_count().await?)
    }

    /// Signs an admin in with a password.
    pub async fn login(&self, name: &str, password: &Secret) -> Result<NewSession, LoginError> {
        if let Some(wait) = self.login_throttle.wait_for(name) {
            return Err(LoginError::Throttled(wait));
        }
        if password.expose().len() > MAX_PASSWORD_BYTES {
            self.login_throttle.failed(name);
            return Err(LoginError::Wrong);
        }
        let admin = match validate_admin_name(name) {
            Ok(()) => self.store.admin(name).await.map_err(EngineError::from)?,
            Err(_) => None,
        };
        let hash = admin
            .as_ref()
            .map_or_else(|| decoy_hash().to_owned(), |a| a.password_hash.clone());
        let matches = verify_password(password.clone(), hash).await;
        match admin {
            Some(admin) if matches => {
                self.login_throttle.succeeded(name);
                tracing::info!(admin = %admin.name, "console sign-in");
                Ok(self.begin_session(&admin.name).await?)
            }
            _ => {
                self.login_throttle.failed(name);
                tracing::warn!("console sign-in refused");
                Err(LoginError::Wrong)
            }
        }
    }

    /// A one-time link's token that signs `admin` in (within [`LOGIN_LINK_LIFETIME`]).
    pub async fn login_link(&self, admin: &str) -> Result<(Secret, i64), EngineError> {
        if self.store.admin(admin).await?.is_none() {
            return Err(EngineError::NotFound(format!(
                "no console admin named {admin:?}"
            )));
        }
        let token = random_token();
        let expires_at = now_ms() + LOGIN_LINK_LIFETIME.as_millis() as i64;
        self.store
            .put_login_link(&token_hash(&token), admin, expires_at)
            .await?;
        Ok((Secret::new(token), expires_at))
    }

    /// Signs in with a one-time link's token (which then stops working).
    pub async fn redeem_login_link(&self, token: &str) -> Result<NewSession, LoginError> {
        let admin = self
            .store
            .take_login_link(&token_hash(token), now_ms())
            .await
            .map_err(EngineError::from)?
            .ok_or(LoginError::BadLink)?;
        tracing::info!(admin = %admin, "console sign-in with a one-time link");
        Ok(self.begin_session(&admin).await?)
    }

    /// The live session a cookie's token opens, if any.
    pub async fn console_session(&self, token: &str) -> Result<Option<AdminSession>, EngineError> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        Ok(self.store.session(&token_hash(token), now_ms()).await?)
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str) -> Result<(), EngineError> {
        self.store.delete_session(&token_hash(token)).await?;
        Ok(())
    }

    async fn begin_session(&self, admin: &str) -> Result<NewSession, EngineError> {
        let token = random_token();
        let now = now_ms();
        let session = AdminSession {
            id_hash: token_hash(&token),
            admin: admin.to_owned(),
            csrf: random_token(),
            created_at: now,
            expires_at: now + SESSION_LIFETIME.as_millis() as i64,
        };
        self.store.put_session(&session).await?;
        Ok(NewSession {
            token: Secret::new(token),
            session,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_keeps_failing_waits_longer_each_time() {
        let t = LoginThrottle::default();
        for _ in 0..FREE_FAILURES {
            assert!(t.wait_for("ada").is_none());
            t.failed("ada");
        }
        let first = t.wait_for("ada").expect("made to wait");
        assert!(first <= Duration::from_secs(1));
        t.failed("ada");
        t.failed("ada");
        assert!(t.wait_for("ada").unwrap() > Duration::from_secs(2));
        assert!(t.wait_for("bob").is_none(), "other names are not slowed");
        t.succeeded("ada");
        assert!(t.wait_for("ada").is_none());
    }

    #[test]
    fn admin_names_are_plain() {
        assert!(validate_admin_name("ada.lovelace@example").is_ok());
        for bad in ["", "a b", "x/y", "<script>", &"a".repeat(65)] {
            assert!(validate_admin_name(bad).is_err(), "{bad:?}");
        }
    }
}
