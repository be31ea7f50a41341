//! Wiring: the store, the scheduler and the HTTP server, built from a
//! `Settings` value (never a global), so tests can run the real thing on
//! port 0 against a temporary database.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::accounts::lifecycle::Lifecycle;
use crate::accounts::sessions::Sessions;
use crate::config::{NetworkSettings, Settings};
use crate::crypto::SecretKey;
use crate::db::{self, DbConnection, DbPool};
use crate::dispatch::{Dispatcher, Periodic, Scheduler, Waker};
use crate::http::{self, error::ApiError, error::ApiResult};
use crate::platforms::{sandbox::Sandbox, Connectors};
use crate::replies::collector::Collector;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: DbPool,
    pub secret: SecretKey,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Wakes this process's dispatcher when a nearer delivery is scheduled.
    pub waker: Waker,
    /// Default `max_lateness_s` of new deliveries.
    pub max_lateness_s: i32,
    /// Timeout of one call to a network (`HERALD_PUBLISH_TIMEOUT_S`).
    pub publish_timeout_s: u64,
    /// HTTP client for calls to networks made by the API (instance limits).
    pub http: reqwest::Client,
    /// Every network's connector, for the calls the API makes itself
    /// (OAuth connection, preflight checks, retraction).
    pub connectors: Connectors,
    /// Live account sessions, shared with the dispatcher (one credentials
    /// lock per account in this process).
    pub sessions: std::sync::Arc<Sessions>,
    /// Token refresh and preflight checks (also run by the scheduler).
    pub lifecycle: std::sync::Arc<Lifecycle>,
    /// The networks' app registrations and addresses.
    pub networks: std::sync::Arc<NetworkSettings>,
    /// Herald's own address as the networks see it (OAuth redirects,
    /// uploaded media): `HERALD_PUBLIC_URL`, else `http://<bound address>`.
    pub public_url: String,
}

impl AppState {
    /// Run store code on a blocking thread with a pooled connection.
    pub async fn db<T, F>(&self, f: F) -> ApiResult<T>
    where
        F: FnOnce(&mut DbConnection) -> ApiResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        web::block(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(ApiError::from)?
    }
}

/// Open the store and bring its schema up to date.
pub async fn open_store(settings: &Settings) -> anyhow::Result<DbPool> {
    let pool = db::pool(
        &settings.database_url,
        settings.pool_size,
        Duration::from_secs(10),
    )?;
    let migrate_pool = pool.clone();
    let applied = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        let mut conn = migrate_pool.get()?;
        db::run_migrations(&mut conn)
    })
    .await??;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, "database migrated");
    }
    Ok(pool)
}

/// The HTTP client every connector shares: bounded in time, pooled.
pub fn http_client(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(settings.dispatch.publish_timeout_s))
        .pool_max_idle_per_host(settings.dispatch.concurrency)
        .build()?)
}

/// A built application, listening, not yet serving.
pub struct Application {
    port: u16,
    server: Server,
    scheduler: Scheduler,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = open_store(&settings).await?;
        let (secret, created) = settings.secret_key()?;
        if let Some(path) = created {
            tracing::warn!(
                path = %path.display(),
                "HERALD_SECRET_KEY is not set: generated a credential key into this file (mode 0600); back it up, without it stored credentials cannot be read"
            );
        }
        let waker = Waker::default();
        let http = http_client(&settings)?;
        let listener = TcpListener::bind(&settings.bind)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let public_url = settings.networks.public_url.clone().unwrap_or_else(|| {
            let host = settings
                .bind
                .rsplit_once(':')
                .map_or("127.0.0.1", |(host, _)| host);
            let host = if host == "0.0.0.0" || host.is_empty() {
                "127.0.0.1"
            } else {
                host
            };
            format!("http://{host}:{port}")
        });
        let connectors =
            Connectors::new(http.clone(), Sandbox::new(pool.clone()), &settings.networks);
        let sessions = Sessions::new(pool.clone(), secret.clone());
        let dispatcher = if settings.dispatch.enabled {
            Some(Dispatcher::start(
                pool.clone(),
                sessions.clone(),
                connectors.clone(),
                settings.dispatch.clone(),
                waker.clone(),
                &public_url,
            ))
        } else {
            None
        };
        let lifecycle = Lifecycle::new(
            pool.clone(),
            sessions.clone(),
            connectors.clone(),
            settings.dispatch.publish_timeout_s,
        );
        let state = AppState {
            lifecycle: lifecycle.clone(),
            pool: pool.clone(),
            secret,
            backend: settings.database_url.backend(),
            waker,
            max_lateness_s: settings.dispatch.max_lateness_s,
            publish_timeout_s: settings.dispatch.publish_timeout_s,
            http,
            connectors,
            sessions,
            networks: std::sync::Arc::new(settings.networks.clone()),
            public_url,
        };
        let collector = Collector::new(
            pool.clone(),
            state.sessions.clone(),
            state.connectors.clone(),
            settings.replies.clone(),
            settings.dispatch.publish_timeout_s,
        );
        let periodic = Periodic {
            lifecycle,
            account_jobs_every: Duration::from_secs(settings.dispatch.account_jobs_s),
            collector,
            replies_every: Duration::from_secs(settings.replies.job_s),
            webhooks: std::sync::Arc::new(crate::webhooks::Sender::new(
                pool.clone(),
                state.secret.clone(),
                settings.webhooks.clone(),
            )?),
            webhooks_every: Duration::from_secs(settings.webhooks.job_s),
        };
        let scheduler = Scheduler::start(pool, dispatcher, periodic).await?;
        // Install the metrics recorder before anything records.
        http::metrics::handle();
        let data = web::Data::new(state);
        // The document is built once, from the same route table the workers mount.
        let api = http::openapi::document();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .wrap(actix_web::middleware::from_fn(http::metrics::record))
                .wrap(tracing_actix_web::TracingLogger::<http::logging::RootSpan>::new())
                .into_utoipa_app()
                .service(utoipa_actix_web::scope("/v1").configure(http::v1_routes))
                .configure(http::root_routes)
                .into_app()
                .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", api.clone()))
                .service(web::redirect("/docs", "/docs/"))
                .default_service(web::to(http::not_found))
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        tracing::info!(
            port,
            database = %settings.database_url.display(),
            "herald is serving the API and the scheduler"
        );
        Ok(Self {
            port,
            server,
            scheduler,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serve until the process is told to stop (SIGINT/SIGTERM), then stop the scheduler.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = self.server.await;
        self.scheduler.shutdown().await;
        result.map_err(Into::into)
    }
}
