//! Building and running the hub: `build` binds nothing itself, it takes a listener, so tests bind port 0.

use crate::HubConfig;
use crate::classifier::UaClassifier;
use crate::client_ip::TrustedProxies;
use crate::config::split_list;
use crate::error::IngestError;
use crate::geo::GeoDb;
use crate::identity::{Salts, midnight_grace};
use crate::ingest::{self, IngestState};
use crate::payload::Limits;
use crate::queue::Queue;
use crate::rate_limit::RateLimiter;
use crate::referrers::Referrers;
use crate::tokens::TokenStore;
use actix_web::dev::Server;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use tidemark_shared::keys::Keys;
use tidemark_shared::outage::StoreHealth;

pub struct Hub {
    pub port: u16,
    /// The port of `/metrics`, when `hub_metrics_listen` is set.
    pub metrics_port: Option<u16>,
    pub server: Server,
}

pub async fn build(config: HubConfig, listener: TcpListener) -> anyhow::Result<Hub> {
    let port = listener.local_addr()?.port();
    // Lazy: with PostgreSQL down at start the hub still starts, answers 503 to what needs the database and serves
    // from its caches once they are filled.
    let pg = tidemark_shared::postgres::connect_lazy(config.postgres_url.expose(), 16)?;
    let keys = Keys::new(config.key_prefix.clone(), config.stream_shards);
    // The recorder first: the stores' gauges register with it.
    crate::metrics::handle();
    let alert_after = Duration::from_secs(config.store_alert_secs);
    let redis_health = Arc::new(StoreHealth::new("hub", "redis", alert_after));
    let postgres_health = Arc::new(StoreHealth::new("hub", "postgres", alert_after));
    let state = web::Data::new(IngestState {
        tokens: TokenStore::new(
            pg.clone(),
            Duration::from_secs(config.token_cache_ttl_secs),
            config.token_lookups_per_sec,
        )
        .reporting_to(postgres_health.clone()),
        salts: Salts::new(pg, midnight_grace(Duration::from_secs(config.session_timeout_secs)))
            .reporting_to(postgres_health),
        queue: Queue::connect(
            config.redis_url.expose(),
            keys,
            config.max_stream_bytes,
            config.session_timeout_secs * 1000,
        )
        .context("setting up the Redis queue")?
        .reporting_to(redis_health),
        limiter: RateLimiter::new(config.rate_limit_per_sec, config.rate_limit_burst),
        agents: UaClassifier::new(),
        geo: GeoDb::open_configured(&config.geo_database),
        referrers: Referrers::new(),
        proxies: TrustedProxies::parse(&split_list(&config.trusted_proxies)).map_err(anyhow::Error::msg)?,
        excluded: TrustedProxies::parse(&split_list(&config.excluded_cidrs)).map_err(anyhow::Error::msg)?,
        limits: Limits { max_props_bytes: config.max_props_bytes },
        max_body_bytes: config.max_body_bytes,
        max_batch: config.max_batch,
        max_event_age_ms: (config.max_event_age_secs * 1000) as i64,
        query_allowlist: crate::url_parts::QueryAllowList::parse(&config.url_query_allowlist),
        metrics: crate::metrics::Hot::register(),
    });
    let metrics = crate::metrics::handle();
    // Metrics get their own listener: the ingest port faces the internet, and what a scrape shows (traffic per
    // cause, drop reasons, queue health) is for operators only.
    let metrics_listener = match config.hub_metrics_listen.as_str() {
        "" => None,
        addr => Some(TcpListener::bind(addr).with_context(|| format!("binding hub_metrics_listen {addr}"))?),
    };
    let metrics_port = metrics_listener.as_ref().map(|l| l.local_addr()).transpose()?.map(|a| a.port());
    tokio::spawn(tidemark_shared::telemetry::metrics_upkeep(metrics));
    tokio::spawn(crate::identity::keep_prepared(state.clone().into_inner()));
    tokio::spawn(watch_stores(state.clone().into_inner()));
    let redis = tidemark_shared::redis::client(config.redis_url.expose())?;
    tokio::spawn(async move {
        if let Ok(mut conn) = tidemark_shared::redis::connect(&redis).await {
            tidemark_shared::redis::warn_about_durability(&mut conn).await;
        }
    });
    tokio::spawn(crate::tokens::follow_invalidations(
        config.redis_url.expose().clone(),
        config.key_prefix.clone(),
        state.clone().into_inner(),
    ));

    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .service(ingest_endpoint("/v1/event", ingest::post_event))
            .service(ingest_endpoint("/v1/batch", ingest::post_batch))
            .service(ingest_endpoint("/v1/identify", ingest::post_identify))
            .route("/healthz", web::get().to(|| async { HttpResponse::Ok().body("ok") }))
            .route("/readyz", web::get().to(readyz))
            .route(
                "/metrics",
                web::get().to(move |req: HttpRequest| async move {
                    if Some(req.app_config().local_addr().port()) != metrics_port {
                        return Err(IngestError::NoRoute { method: "GET".into(), path: "/metrics".into() });
                    }
                    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(metrics.render()))
                }),
            )
            .default_service(web::to(|req: HttpRequest| async move {
                let path = req.path().chars().take(200).collect();
                Err::<HttpResponse, _>(IngestError::NoRoute { method: req.method().to_string(), path })
            }))
    })
    .listen(listener)?
    .shutdown_timeout(10);
    if let Some(metrics_listener) = metrics_listener {
        server = server.listen(metrics_listener)?;
    }
    if config.hub_threads > 0 {
        server = server.workers(config.hub_threads);
    }
    Ok(Hub { port, metrics_port, server: server.run() })
}

/// A POST endpoint with its CORS preflight; any other method is answered 405 with `Allow`.
fn ingest_endpoint<F, Args>(path: &str, post: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::post().to(post))
        .route(web::method(actix_web::http::Method::OPTIONS).to(ingest::preflight))
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(IngestError::WrongMethod { allowed: "POST, OPTIONS" })
        }))
}

/// Longest a readiness check waits for a store: a probe that hangs is as good as a store that is down.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// `{"redis": bool, "postgres": bool}`, 200 when both answer now, else 503: a load balancer sends no traffic to a
/// hub that would answer it 503, and an operator sees which store is missing. (With PostgreSQL down the hub still
/// accepts events of cached tokens; it is unready because new tokens and a new day's salt cannot be had.)
async fn readyz(state: web::Data<IngestState>) -> HttpResponse {
    let (redis, postgres) = check_stores(&state).await;
    let (ready, body) = tidemark_shared::outage::readiness(&[("redis", redis), ("postgres", postgres)]);
    let mut response = if ready { HttpResponse::Ok() } else { HttpResponse::ServiceUnavailable() };
    response.content_type("application/json").body(body)
}

/// Pings Redis and PostgreSQL at once, each within [`READY_TIMEOUT`], and records the answers in their health.
async fn check_stores(state: &IngestState) -> (bool, bool) {
    tokio::join!(
        answers_in_time(state.queue.ping(), state.queue.health()),
        answers_in_time(state.tokens.ping(), state.tokens.health()),
    )
}

/// A ping's answer, or false (recorded as a failure) when it takes longer than [`READY_TIMEOUT`].
async fn answers_in_time(ping: impl Future<Output = bool>, health: &StoreHealth) -> bool {
    match tokio::time::timeout(READY_TIMEOUT, ping).await {
        Ok(up) => up,
        Err(_) => {
            health.failed(&format!("no answer within {READY_TIMEOUT:?}"));
            false
        }
    }
}

/// How often [`watch_stores`] looks at a store that is failing.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Checks a failing store every [`WATCH_EVERY`] even when no request needs it (every token cached, no traffic), so
/// its recovery is logged and its gauge set within seconds, and an outage past the alert time is logged as an
/// ERROR on time. Stores that work cost nothing here: requests report their failures.
async fn watch_stores(state: Arc<IngestState>) {
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let (redis, postgres) = (state.queue.health(), state.tokens.health());
        if !redis.is_up() || !postgres.is_up() {
            check_stores(&state).await;
            redis.check_alert();
            postgres.check_alert();
        }
    }
}
