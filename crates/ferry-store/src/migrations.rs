//! Migrations compiled into the binary, so a fresh machine needs no migration files on disk.

use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (
        2,
        "live_claims",
        include_str!("../migrations/0002_live_claims.sql"),
    ),
    (
        3,
        "record_deletion",
        include_str!("../migrations/0003_record_deletion.sql"),
    ),
    (
        4,
        "binding_subfolders",
        include_str!("../migrations/0004_binding_subfolders.sql"),
    ),
    (
        5,
        "webhooks",
        include_str!("../migrations/0005_webhooks.sql"),
    ),
    (
        6,
        "shared_links",
        include_str!("../migrations/0006_shared_links.sql"),
    ),
    (
        7,
        "team_context",
        include_str!("../migrations/0007_team_context.sql"),
    ),
    (8, "offload", include_str!("../migrations/0008_offload.sql")),
    (
        9,
        "oauth_states",
        include_str!("../migrations/0009_oauth_states.sql"),
    ),
    (
        10,
        "console",
        include_str!("../migrations/0010_console.sql"),
    ),
    (
        11,
        "app_access",
        include_str!("../migrations/0011_app_access.sql"),
    ),
    (12, "duties", include_str!("../migrations/0012_duties.sql")),
    (13, "mirror", include_str!("../migrations/0013_mirror.sql")),
];

/// PostgreSQL's migrations: its schema starts where SQLite's is now (one file), and each
/// later schema change adds a file to both lists.
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "duties",
        include_str!("../migrations/postgres/0002_duties.sql"),
    ),
    (
        3,
        "mirror",
        include_str!("../migrations/postgres/0003_mirror.sql"),
    ),
];

#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, name, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*name),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The migrator for Ferry's schema on SQLite.
pub(crate) async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded(MIGRATIONS)).await
}

/// The migrator for Ferry's schema on PostgreSQL.
pub(crate) async fn postgres_migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded(POSTGRES_MIGRATIONS)).await
}
