//! The store: one connection type for SQLite and PostgreSQL, the pool, the
//! embedded migrations and the write-transaction helper every capability uses.
//!
//! Queries are sync diesel run on blocking threads (`web::block` /
//! `spawn_blocking`); see docs/ARCHITECTURE.md for why.

pub mod schema;

use std::time::Duration;

use chrono::{NaiveDateTime, Timelike, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// The migrations of each back end, compiled into the binary.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Advisory-lock key that serialises migrations across Herald instances ("HERALDMG").
const MIGRATION_LOCK_KEY: i64 = 0x4845_5241_4c44_4d47;

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Which database a URL points at, decided from its scheme, never by trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A file path (or `:memory:`).
    Sqlite(String),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl DatabaseUrl {
    /// `postgres://…` / `postgresql://…` select PostgreSQL; `sqlite://PATH`,
    /// `sqlite:PATH` or a plain path select SQLite.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("the database URL is empty".into());
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_string()));
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .unwrap_or(raw);
        if path.is_empty() {
            return Err("the SQLite URL names no file".into());
        }
        if path.contains("://") {
            return Err(format!(
                "unsupported database URL scheme in '{}': use postgres://, sqlite:// or a file path",
                redact_url(raw)
            ));
        }
        Ok(Self::Sqlite(path.to_string()))
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// The URL with any password replaced, fit for a log line.
    pub fn display(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{path}"),
            Self::Postgres(url) => redact_url(url),
        }
    }
}

/// Hide the password part of `scheme://user:password@host`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Opens connections of the right kind and prepares each SQLite connection
/// (WAL, busy timeout, foreign keys) before the pool hands it out.
#[derive(Debug, Clone)]
pub struct ConnectionFactory {
    url: DatabaseUrl,
}

impl ConnectionFactory {
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url }
    }

    pub fn connect(&self) -> ConnectionResult<DbConnection> {
        match &self.url {
            DatabaseUrl::Postgres(url) => Ok(DbConnection::Postgres(PgConnection::establish(url)?)),
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)?;
                let setup = |conn: &mut SqliteConnection, sql: &str| {
                    conn.batch_execute(sql)
                        .map_err(ConnectionError::CouldntSetupConfiguration)
                };
                setup(
                    &mut conn,
                    "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                )?;
                // Switching a new file to WAL needs a moment alone with it, and
                // SQLite does not wait for that through busy_timeout: retry.
                let mut attempts = 0;
                while let Err(error) = setup(&mut conn, "PRAGMA journal_mode = WAL;") {
                    attempts += 1;
                    if attempts >= 100 || !error.to_string().contains("locked") {
                        return Err(error);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                setup(&mut conn, "PRAGMA synchronous = NORMAL;")?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

impl ManageConnection for ConnectionFactory {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        ConnectionFactory::connect(self).map_err(r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        false
    }
}

pub type DbPool = Pool<ConnectionFactory>;
pub type PooledConn = PooledConnection<ConnectionFactory>;

/// Build the pool. Pool checkout waits at most `timeout`; the HTTP layer maps
/// a timeout to 503.
pub fn pool(url: &DatabaseUrl, max_size: u32, timeout: Duration) -> anyhow::Result<DbPool> {
    let pool = Pool::builder()
        .max_size(max_size)
        .connection_timeout(timeout)
        .build(ConnectionFactory::new(url.clone()))?;
    Ok(pool)
}

/// Run pending migrations. On PostgreSQL this holds an advisory lock so that
/// several instances starting together run them once.
pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let applied = match conn {
        DbConnection::Postgres(pg) => {
            pg.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
            let result = pg
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|versions| versions.iter().map(|v| v.to_string()).collect::<Vec<_>>())
                .map_err(|e| anyhow::anyhow!("migration failed: {e}"));
            pg.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
            result?
        }
        // An immediate transaction holds the write lock, so a CLI command and
        // a starting server never run the same migration twice.
        DbConnection::Sqlite(lite) => lite.immediate_transaction(|lite| {
            lite.run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|versions| versions.iter().map(|v| v.to_string()).collect::<Vec<_>>())
                .map_err(|e| anyhow::anyhow!("migration failed: {e}"))
        })?,
    };
    Ok(applied)
}

/// Run `f` in one transaction that is allowed to write.
///
/// On SQLite the first statement takes the database write lock, so the
/// transaction never reads a snapshot that a concurrent writer has made stale
/// (which SQLite would otherwise answer with SQLITE_BUSY mid-transaction).
pub fn write_tx<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    conn.transaction(|conn| {
        if matches!(conn, DbConnection::Sqlite(_)) {
            take_write_gate(conn)?;
        }
        f(conn)
    })
}

/// Touch the single `write_gate` row. On SQLite this takes the write lock; on
/// PostgreSQL its row lock, held to the end of the transaction, serialises
/// whatever follows (the publish-log append) across all instances.
pub fn take_write_gate(conn: &mut DbConnection) -> QueryResult<()> {
    use schema::write_gate::dsl::*;
    diesel::update(write_gate.filter(id.eq(1)))
        .set(ticks.eq(ticks + 1))
        .execute(conn)?;
    Ok(())
}

/// Lock one row until the transaction ends. On PostgreSQL this is
/// `SELECT … FOR UPDATE`, so two instances changing the same resource take
/// turns (two approvals of a severe statement both count); on SQLite the
/// write transaction already excludes every other writer.
pub fn lock_row(conn: &mut DbConnection, table: LockableTable, id: &str) -> QueryResult<()> {
    if let DbConnection::Postgres(pg) = conn {
        diesel::sql_query(format!(
            "SELECT 1 FROM {} WHERE id = $1 FOR UPDATE",
            table.name()
        ))
        .bind::<diesel::sql_types::Text, _>(id)
        .execute(pg)?;
    }
    Ok(())
}

/// Tables whose rows [`lock_row`] may lock (a closed list: no SQL from outside).
#[derive(Debug, Clone, Copy)]
pub enum LockableTable {
    Statements,
    Accounts,
    ApiKeys,
    Deliveries,
}

impl LockableTable {
    fn name(self) -> &'static str {
        match self {
            Self::Statements => "statements",
            Self::Accounts => "accounts",
            Self::ApiKeys => "api_keys",
            Self::Deliveries => "deliveries",
        }
    }
}

/// Run `f` with a pooled connection on a blocking thread: how the jobs
/// (dispatcher, collector, account lifecycle, webhook sender) reach the
/// store from async code.
pub async fn blocking<T: Send + 'static>(
    pool: &DbPool,
    f: impl FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
) -> anyhow::Result<T> {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<T> {
        let mut conn = pool.get()?;
        Ok(f(&mut conn)?)
    })
    .await?
}

/// The current instant, truncated to microseconds so that it reads back the
/// same from both back ends (the publish-log hash depends on it).
pub fn now() -> NaiveDateTime {
    truncate_micros(Utc::now().naive_utc())
}

pub fn truncate_micros(t: NaiveDateTime) -> NaiveDateTime {
    let nanos = t.nanosecond();
    t.with_nanosecond(nanos - nanos % 1_000).unwrap_or(t)
}

/// A new sortable id (UUIDv7, lowercase hyphenated text).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_select_postgres() {
        assert_eq!(
            DatabaseUrl::parse("postgres://u@h/db").unwrap(),
            DatabaseUrl::Postgres("postgres://u@h/db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("postgresql://h/db").unwrap().backend(),
            "postgres"
        );
    }

    #[test]
    fn sqlite_urls_and_plain_paths_select_sqlite() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/herald.db").unwrap(),
            DatabaseUrl::Sqlite("/var/lib/herald.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://herald.db").unwrap(),
            DatabaseUrl::Sqlite("herald.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("data/herald.db").unwrap(),
            DatabaseUrl::Sqlite("data/herald.db".into())
        );
    }

    #[test]
    fn other_schemes_are_refused() {
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
        assert!(DatabaseUrl::parse("").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn passwords_never_reach_a_log_line() {
        assert_eq!(
            redact_url("postgres://herald:s3cret@db:5432/herald"),
            "postgres://herald:***@db:5432/herald"
        );
        assert_eq!(redact_url("postgres://db/herald"), "postgres://db/herald");
    }

    #[test]
    fn both_backends_have_the_same_migrations() {
        let names = |dir: &str| {
            let mut v: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let root = env!("CARGO_MANIFEST_DIR");
        let sqlite = names(&format!("{root}/migrations/sqlite"));
        let postgres = names(&format!("{root}/migrations/postgres"));
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, postgres);
    }
}
