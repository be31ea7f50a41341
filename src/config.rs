//! Settings: defaults, then an optional TOML file (`--config`), then
//! `HERALD_*` environment variables, each overriding the one before.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::crypto::SecretKey;
use crate::db::DatabaseUrl;

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    /// `host:port`; port 0 picks a free port (tests).
    pub bind: String,
    /// base64 of 32 bytes; see [`Settings::secret_key`].
    pub secret_key: Option<String>,
    /// Connections in the pool.
    pub pool_size: u32,
    /// `tracing` filter, e.g. `info` or `herald=debug`.
    pub log_filter: String,
    /// Log lines as JSON instead of text.
    pub log_json: bool,
    pub dispatch: DispatchSettings,
    /// The networks' app registrations and addresses.
    pub networks: NetworkSettings,
    pub replies: ReplySettings,
    pub webhooks: WebhookSettings,
}

/// Reply tracking: how often each published post is polled, by age, and
/// when the tone counts as turning negative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplySettings {
    /// How often the collection job looks for due polls (`HERALD_REPLIES_JOB_S`).
    pub job_s: u64,
    /// Poll interval while the post is younger than `fast_until_s`.
    pub fast_s: u64,
    pub fast_until_s: u64,
    /// Then this interval until `medium_until_s`.
    pub medium_s: u64,
    pub medium_until_s: u64,
    /// Then this interval until `track_s` after publication, when polling stops.
    pub slow_s: u64,
    pub track_s: u64,
    /// Negative-spike warning: the sliding window, the share of negative
    /// replies (percent) above which it fires, and the minimum replies in
    /// the window.
    pub spike_window_s: u64,
    pub spike_share_pct: u32,
    pub spike_min_replies: u32,
}

impl Default for ReplySettings {
    fn default() -> Self {
        Self {
            job_s: 10,
            fast_s: 60,
            fast_until_s: 3_600,
            medium_s: 300,
            medium_until_s: 86_400,
            slow_s: 3_600,
            track_s: 7 * 86_400,
            spike_window_s: 1_800,
            spike_share_pct: 40,
            spike_min_replies: 10,
        }
    }
}

/// Outbound webhooks: how often the outbox is sent, the first retry delay
/// (doubling after), how long a call is retried, and its timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    pub job_s: u64,
    pub retry_s: u64,
    pub give_up_s: u64,
    pub timeout_s: u64,
    /// How long settled calls (delivered, failed, cancelled) and their
    /// tries are kept, after which the sender deletes them
    /// (`HERALD_WEBHOOKS_KEEP_S`). Pending calls are never deleted.
    pub keep_s: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            job_s: 2,
            retry_s: 10,
            give_up_s: 86_400,
            timeout_s: 10,
            keep_s: 30 * 86_400,
        }
    }
}

/// One network's app registration (OAuth client) and addresses. The
/// addresses default to the network's real ones; tests and proxies point
/// them elsewhere (`HERALD_<NET>_API_URL`, `_AUTH_URL`, `_TOKEN_URL`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NetworkApp {
    /// `HERALD_<NET>_CLIENT_ID`.
    pub client_id: Option<String>,
    /// `HERALD_<NET>_CLIENT_SECRET`. Never logged (see `Debug`).
    pub client_secret: Option<String>,
    /// Base of the network's API, without a trailing slash.
    pub api_url: String,
    /// Base of the pages where users authorize Herald.
    pub auth_url: String,
    /// The token endpoint, where it is not under `api_url` as documented.
    pub token_url: Option<String>,
}

impl NetworkApp {
    fn new(api_url: &str, auth_url: &str, token_url: Option<&str>) -> Self {
        Self {
            client_id: None,
            client_secret: None,
            api_url: api_url.into(),
            auth_url: auth_url.into(),
            token_url: token_url.map(str::to_string),
        }
    }

    /// Both the client id and secret are set.
    pub fn configured(&self) -> bool {
        self.client_id.is_some() && self.client_secret.is_some()
    }

    /// The `(client_id, client_secret)` pair, when configured.
    pub fn client(&self) -> Option<(&str, &str)> {
        Some((self.client_id.as_deref()?, self.client_secret.as_deref()?))
    }
}

impl std::fmt::Debug for NetworkApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("api_url", &self.api_url)
            .field("auth_url", &self.auth_url)
            .field("token_url", &self.token_url)
            .finish()
    }
}

/// Every network's settings (shared/platforms.md has the addresses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSettings {
    /// Herald's public address, for OAuth redirects
    /// (`HERALD_PUBLIC_URL`; default `http://<bind>`).
    pub public_url: Option<String>,
    /// The name Herald registers under on Mastodon instances.
    pub mastodon_app_name: String,
    pub x: NetworkApp,
    pub linkedin: NetworkApp,
    /// `LinkedIn-Version` sent with every `/rest` call (`YYYYMM`).
    pub linkedin_version: String,
    pub facebook: NetworkApp,
    pub instagram: NetworkApp,
    pub threads: NetworkApp,
    /// Bot API base (`HERALD_TELEGRAM_API_URL`).
    pub telegram_api_url: String,
    /// REST API base for the Discord bot calls (`HERALD_DISCORD_API_URL`).
    pub discord_api_url: String,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        Self {
            public_url: None,
            mastodon_app_name: "Herald".into(),
            x: NetworkApp::new("https://api.x.com", "https://x.com", None),
            linkedin: NetworkApp::new("https://api.linkedin.com", "https://www.linkedin.com", None),
            linkedin_version: "202510".into(),
            facebook: NetworkApp::new(
                "https://graph.facebook.com/v23.0",
                "https://www.facebook.com/v23.0",
                None,
            ),
            instagram: NetworkApp::new(
                "https://graph.instagram.com",
                "https://www.instagram.com",
                Some("https://api.instagram.com/oauth/access_token"),
            ),
            threads: NetworkApp::new("https://graph.threads.net", "https://threads.net", None),
            telegram_api_url: "https://api.telegram.org".into(),
            discord_api_url: "https://discord.com/api/v10".into(),
        }
    }
}

impl NetworkSettings {
    /// Defaults, overridden by `[networks.<net>]` tables of the file, then
    /// by `HERALD_<NET>_*` variables.
    fn load(
        env: &impl Fn(&str) -> Option<String>,
        file: Option<NetworksFile>,
    ) -> anyhow::Result<Self> {
        let mut s = Self::default();
        let file = file.unwrap_or_default();
        let pick = |var: &str, from_file: Option<String>| {
            env(var)
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.trim().to_string())
                .or(from_file)
        };
        s.public_url = pick("HERALD_PUBLIC_URL", file.public_url).map(trim_slash);
        if let Some(name) = pick("HERALD_MASTODON_APP_NAME", file.mastodon_app_name) {
            s.mastodon_app_name = name;
        }
        if let Some(version) = pick("HERALD_LINKEDIN_VERSION", file.linkedin_version) {
            if version.len() != 6 || !version.bytes().all(|b| b.is_ascii_digit()) {
                anyhow::bail!("HERALD_LINKEDIN_VERSION must be YYYYMM, like 202510");
            }
            s.linkedin_version = version;
        }
        if let Some(url) = pick("HERALD_TELEGRAM_API_URL", file.telegram_api_url) {
            s.telegram_api_url = checked_url("HERALD_TELEGRAM_API_URL", url)?;
        }
        if let Some(url) = pick("HERALD_DISCORD_API_URL", file.discord_api_url) {
            s.discord_api_url = checked_url("HERALD_DISCORD_API_URL", url)?;
        }
        let apps = [
            ("X", file.x, &mut s.x),
            ("LINKEDIN", file.linkedin, &mut s.linkedin),
            ("FACEBOOK", file.facebook, &mut s.facebook),
            ("INSTAGRAM", file.instagram, &mut s.instagram),
            ("THREADS", file.threads, &mut s.threads),
        ];
        for (net, from_file, app) in apps {
            let f = from_file.unwrap_or_default();
            app.client_id = pick(&format!("HERALD_{net}_CLIENT_ID"), f.client_id);
            app.client_secret = pick(&format!("HERALD_{net}_CLIENT_SECRET"), f.client_secret);
            if let Some(url) = pick(&format!("HERALD_{net}_API_URL"), f.api_url) {
                app.api_url = checked_url(&format!("HERALD_{net}_API_URL"), url)?;
            }
            if let Some(url) = pick(&format!("HERALD_{net}_AUTH_URL"), f.auth_url) {
                app.auth_url = checked_url(&format!("HERALD_{net}_AUTH_URL"), url)?;
            }
            if let Some(url) = pick(&format!("HERALD_{net}_TOKEN_URL"), f.token_url) {
                app.token_url = Some(checked_url(&format!("HERALD_{net}_TOKEN_URL"), url)?);
            }
        }
        Ok(s)
    }
}

fn trim_slash(url: String) -> String {
    url.trim_end_matches('/').to_string()
}

fn checked_url(var: &str, url: String) -> anyhow::Result<String> {
    match url::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(trim_slash(url)),
        _ => anyhow::bail!("{var} must be an http(s) URL"),
    }
}

/// `[networks]` of the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworksFile {
    public_url: Option<String>,
    mastodon_app_name: Option<String>,
    linkedin_version: Option<String>,
    telegram_api_url: Option<String>,
    discord_api_url: Option<String>,
    x: Option<NetworkAppFile>,
    linkedin: Option<NetworkAppFile>,
    facebook: Option<NetworkAppFile>,
    instagram: Option<NetworkAppFile>,
    threads: Option<NetworkAppFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkAppFile {
    client_id: Option<String>,
    client_secret: Option<String>,
    api_url: Option<String>,
    auth_url: Option<String>,
    token_url: Option<String>,
}

/// How the dispatcher publishes (DESIGN §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchSettings {
    /// Run the dispatcher in this process (`HERALD_DISPATCH`, default on).
    pub enabled: bool,
    /// Default `max_lateness_s` of a delivery: past it, it is `missed`.
    pub max_lateness_s: i32,
    /// Publications in flight at once in this process.
    pub concurrency: usize,
    /// Timeout of one call to a network, in seconds.
    pub publish_timeout_s: u64,
    /// How long a claim is held before another instance may rescue it.
    pub lease_s: u64,
    /// Transient failures before a delivery is `failed`.
    pub max_retries: i32,
    /// Reconciliation checks before an `unknown` outcome becomes `failed`.
    pub max_reconcile_tries: i32,
    /// How often tokens are refreshed and preflight checks run, in seconds
    /// (`HERALD_ACCOUNT_JOBS_S`).
    pub account_jobs_s: u64,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_lateness_s: 900,
            concurrency: 64,
            publish_timeout_s: 15,
            lease_s: 60,
            max_retries: 6,
            max_reconcile_tries: 10,
            account_jobs_s: 60,
        }
    }
}

/// The TOML file: every key optional, names as in the environment without
/// the `HERALD_` prefix, in lower case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    database_url: Option<String>,
    bind: Option<String>,
    secret_key: Option<String>,
    pool_size: Option<u32>,
    log: Option<String>,
    log_json: Option<bool>,
    dispatch: Option<bool>,
    max_lateness_s: Option<i64>,
    dispatch_concurrency: Option<i64>,
    publish_timeout_s: Option<i64>,
    lease_s: Option<i64>,
    max_retries: Option<i64>,
    max_reconcile_tries: Option<i64>,
    account_jobs_s: Option<i64>,
    networks: Option<NetworksFile>,
    replies_job_s: Option<i64>,
    replies_fast_s: Option<i64>,
    replies_fast_until_s: Option<i64>,
    replies_medium_s: Option<i64>,
    replies_medium_until_s: Option<i64>,
    replies_slow_s: Option<i64>,
    replies_track_s: Option<i64>,
    spike_window_s: Option<i64>,
    spike_share_pct: Option<i64>,
    spike_min_replies: Option<i64>,
    webhooks_job_s: Option<i64>,
    webhooks_retry_s: Option<i64>,
    webhooks_give_up_s: Option<i64>,
    webhooks_timeout_s: Option<i64>,
    webhooks_keep_s: Option<i64>,
}

/// An integer setting from the environment or the file, within bounds.
fn int_setting(
    env: &impl Fn(&str) -> Option<String>,
    var: &str,
    from_file: Option<i64>,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> anyhow::Result<i64> {
    let value = match env(var).filter(|v| !v.is_empty()) {
        Some(text) => text
            .trim()
            .parse::<i64>()
            .map_err(|_| anyhow::anyhow!("{var} must be an integer"))?,
        None => from_file.unwrap_or(default),
    };
    if !range.contains(&value) {
        anyhow::bail!(
            "{var} must be between {} and {}",
            range.start(),
            range.end()
        );
    }
    Ok(value)
}

pub const DEFAULT_DATABASE: &str = "herald.db";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

impl Settings {
    /// Read the file (if any) and the process environment.
    pub fn load(config_file: Option<&Path>) -> anyhow::Result<Self> {
        Self::from_sources(config_file, |name| std::env::var(name).ok())
    }

    pub fn from_sources(
        config_file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let file = match config_file {
            None => FileSettings::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("cannot read the config file {}: {e}", path.display())
                })?;
                toml::from_str(&text).map_err(|e| {
                    anyhow::anyhow!("the config file {} is invalid: {e}", path.display())
                })?
            }
        };
        let pick =
            |var: &str, from_file: Option<String>| env(var).filter(|v| !v.is_empty()).or(from_file);
        let url = pick("HERALD_DATABASE_URL", file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE.into());
        let database_url =
            DatabaseUrl::parse(&url).map_err(|e| anyhow::anyhow!("HERALD_DATABASE_URL: {e}"))?;
        let pool_size = match env("HERALD_POOL_SIZE") {
            Some(v) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("HERALD_POOL_SIZE must be a positive integer"))?,
            None => file.pool_size.unwrap_or(8),
        };
        if pool_size == 0 {
            anyhow::bail!("HERALD_POOL_SIZE must be at least 1");
        }
        let log_json = match env("HERALD_LOG_JSON") {
            Some(v) => matches!(v.as_str(), "1" | "true" | "yes"),
            None => file.log_json.unwrap_or(false),
        };
        let d = DispatchSettings::default();
        let dispatch = DispatchSettings {
            enabled: match env("HERALD_DISPATCH") {
                Some(v) => !matches!(v.as_str(), "0" | "false" | "no" | "off"),
                None => file.dispatch.unwrap_or(true),
            },
            max_lateness_s: int_setting(
                &env,
                "HERALD_MAX_LATENESS_S",
                file.max_lateness_s,
                d.max_lateness_s.into(),
                crate::deliveries::MIN_LATENESS_S..=crate::deliveries::MAX_LATENESS_S,
            )? as i32,
            concurrency: int_setting(
                &env,
                "HERALD_DISPATCH_CONCURRENCY",
                file.dispatch_concurrency,
                d.concurrency as i64,
                1..=4096,
            )? as usize,
            publish_timeout_s: int_setting(
                &env,
                "HERALD_PUBLISH_TIMEOUT_S",
                file.publish_timeout_s,
                d.publish_timeout_s as i64,
                1..=300,
            )? as u64,
            lease_s: int_setting(
                &env,
                "HERALD_LEASE_S",
                file.lease_s,
                d.lease_s as i64,
                2..=3600,
            )? as u64,
            max_retries: int_setting(
                &env,
                "HERALD_MAX_RETRIES",
                file.max_retries,
                d.max_retries.into(),
                0..=100,
            )? as i32,
            max_reconcile_tries: int_setting(
                &env,
                "HERALD_MAX_RECONCILE_TRIES",
                file.max_reconcile_tries,
                d.max_reconcile_tries.into(),
                1..=1000,
            )? as i32,
            account_jobs_s: int_setting(
                &env,
                "HERALD_ACCOUNT_JOBS_S",
                file.account_jobs_s,
                d.account_jobs_s as i64,
                1..=3600,
            )? as u64,
        };
        // A call may run up to the timeout plus a 5 s margin: the lease must outlast it.
        if dispatch.lease_s <= dispatch.publish_timeout_s + 5 {
            anyhow::bail!("HERALD_LEASE_S must be more than HERALD_PUBLISH_TIMEOUT_S + 5");
        }
        let networks = NetworkSettings::load(&env, file.networks)?;
        let int = |var: &str, from_file: Option<i64>, default: u64, max: i64| {
            int_setting(&env, var, from_file, default as i64, 1..=max).map(|v| v as u64)
        };
        let r = ReplySettings::default();
        const WEEK: i64 = 7 * 86_400;
        let replies = ReplySettings {
            job_s: int("HERALD_REPLIES_JOB_S", file.replies_job_s, r.job_s, 3_600)?,
            fast_s: int(
                "HERALD_REPLIES_FAST_S",
                file.replies_fast_s,
                r.fast_s,
                86_400,
            )?,
            fast_until_s: int(
                "HERALD_REPLIES_FAST_UNTIL_S",
                file.replies_fast_until_s,
                r.fast_until_s,
                WEEK * 4,
            )?,
            medium_s: int(
                "HERALD_REPLIES_MEDIUM_S",
                file.replies_medium_s,
                r.medium_s,
                86_400,
            )?,
            medium_until_s: int(
                "HERALD_REPLIES_MEDIUM_UNTIL_S",
                file.replies_medium_until_s,
                r.medium_until_s,
                WEEK * 4,
            )?,
            slow_s: int(
                "HERALD_REPLIES_SLOW_S",
                file.replies_slow_s,
                r.slow_s,
                86_400,
            )?,
            track_s: int(
                "HERALD_REPLIES_TRACK_S",
                file.replies_track_s,
                r.track_s,
                WEEK * 4,
            )?,
            spike_window_s: int(
                "HERALD_SPIKE_WINDOW_S",
                file.spike_window_s,
                r.spike_window_s,
                86_400,
            )?,
            spike_share_pct: int(
                "HERALD_SPIKE_SHARE_PCT",
                file.spike_share_pct,
                r.spike_share_pct.into(),
                100,
            )? as u32,
            spike_min_replies: int(
                "HERALD_SPIKE_MIN_REPLIES",
                file.spike_min_replies,
                r.spike_min_replies.into(),
                100_000,
            )? as u32,
        };
        let w = WebhookSettings::default();
        let webhooks = WebhookSettings {
            job_s: int("HERALD_WEBHOOKS_JOB_S", file.webhooks_job_s, w.job_s, 3_600)?,
            retry_s: int(
                "HERALD_WEBHOOKS_RETRY_S",
                file.webhooks_retry_s,
                w.retry_s,
                3_600,
            )?,
            give_up_s: int(
                "HERALD_WEBHOOKS_GIVE_UP_S",
                file.webhooks_give_up_s,
                w.give_up_s,
                WEEK,
            )?,
            timeout_s: int(
                "HERALD_WEBHOOKS_TIMEOUT_S",
                file.webhooks_timeout_s,
                w.timeout_s,
                300,
            )?,
            keep_s: int(
                "HERALD_WEBHOOKS_KEEP_S",
                file.webhooks_keep_s,
                w.keep_s,
                366 * 86_400,
            )?,
        };
        Ok(Settings {
            dispatch,
            networks,
            replies,
            webhooks,
            database_url,
            bind: pick("HERALD_BIND", file.bind).unwrap_or_else(|| DEFAULT_BIND.into()),
            secret_key: pick("HERALD_SECRET_KEY", file.secret_key),
            pool_size,
            log_filter: pick("HERALD_LOG", file.log).unwrap_or_else(|| "info".into()),
            log_json,
        })
    }

    /// The credential key. When none is set and the store is SQLite, a key is
    /// generated once into `herald.key` next to the database (mode 0600) and
    /// reused after. PostgreSQL deployments share one key between instances,
    /// so there it must be set.
    pub fn secret_key(&self) -> anyhow::Result<(SecretKey, Option<PathBuf>)> {
        if let Some(text) = &self.secret_key {
            let key = SecretKey::from_base64(text)
                .map_err(|e| anyhow::anyhow!("HERALD_SECRET_KEY: {e}"))?;
            return Ok((key, None));
        }
        match &self.database_url {
            DatabaseUrl::Postgres(_) => anyhow::bail!(
                "HERALD_SECRET_KEY is required with PostgreSQL (every instance must share it); \
                 make one with: head -c 32 /dev/urandom | base64"
            ),
            DatabaseUrl::Sqlite(path) => {
                let key_path = key_file_for(Path::new(path));
                load_or_create_key_file(&key_path)
                    .map(|(key, created)| (key, created.then_some(key_path)))
            }
        }
    }
}

/// `herald.key` in the database's folder.
pub fn key_file_for(database: &Path) -> PathBuf {
    match database.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("herald.key"),
        _ => PathBuf::from("herald.key"),
    }
}

/// Returns the key and whether it was created now.
fn load_or_create_key_file(path: &Path) -> anyhow::Result<(SecretKey, bool)> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let key = SecretKey::from_base64(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return Ok((key, false));
    }
    let key = SecretKey::generate();
    write_private(path, &format!("{}\n", key.to_base64()))?;
    Ok((key, true))
}

#[cfg(unix)]
fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    file.write_all(content.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    std::fs::write(path, content)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_are_a_local_sqlite_file_and_the_loopback_port_8080() {
        let s = Settings::from_sources(None, env_of(&[])).unwrap();
        assert_eq!(s.database_url, DatabaseUrl::Sqlite("herald.db".into()));
        assert_eq!(s.bind, "127.0.0.1:8080");
        assert!(s.secret_key.is_none());
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herald.toml");
        std::fs::write(
            &file,
            "bind = \"0.0.0.0:9000\"\ndatabase_url = \"sqlite://from-file.db\"\n",
        )
        .unwrap();
        let s =
            Settings::from_sources(Some(&file), env_of(&[("HERALD_BIND", "127.0.0.1:1")])).unwrap();
        assert_eq!(s.bind, "127.0.0.1:1");
        assert_eq!(s.database_url, DatabaseUrl::Sqlite("from-file.db".into()));
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herald.toml");
        std::fs::write(&file, "bnid = \"x\"\n").unwrap();
        let error = Settings::from_sources(Some(&file), env_of(&[])).unwrap_err();
        assert!(error.to_string().contains("bnid"), "{error}");
    }

    #[test]
    fn a_missing_key_is_generated_once_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("herald.db");
        let s = Settings::from_sources(
            None,
            env_of(&[("HERALD_DATABASE_URL", db.to_str().unwrap())]),
        )
        .unwrap();
        let (first, created) = s.secret_key().unwrap();
        let path = created.expect("created now");
        assert_eq!(path, dir.path().join("herald.key"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (second, created_again) = s.secret_key().unwrap();
        assert!(created_again.is_none());
        assert_eq!(first.to_base64(), second.to_base64());
    }

    #[test]
    fn postgres_needs_an_explicit_key() {
        let s = Settings::from_sources(None, env_of(&[("HERALD_DATABASE_URL", "postgres://h/db")]))
            .unwrap();
        assert!(s.secret_key().is_err());
        let key = SecretKey::generate().to_base64();
        let s = Settings::from_sources(
            None,
            env_of(&[
                ("HERALD_DATABASE_URL", "postgres://h/db"),
                ("HERALD_SECRET_KEY", &key),
            ]),
        )
        .unwrap();
        assert!(s.secret_key().is_ok());
    }
}
