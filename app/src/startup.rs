//! The app's HTTP server: health, and the accounts-and-access API; the analytics API, dashboard and queue
//! dashboard mount here as they arrive. `build` takes a listener, so tests bind port 0.

use crate::AppConfig;
use crate::analytics_store::AnalyticsStore;
use crate::auth::caller::AccessState;
use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use std::net::TcpListener;

pub struct AppServer {
    pub port: u16,
    pub server: Server,
    pub realtime: web::Data<crate::realtime::Feeds>,
}

pub fn build(config: &AppConfig, listener: TcpListener) -> anyhow::Result<AppServer> {
    let port = listener.local_addr()?.port();
    // Lazy: the app starts (and says so on /healthz) while PostgreSQL is down; requests that need it fail.
    let pool = tidemark_shared::postgres::connect_lazy(config.postgres_url.expose(), 8)?;
    let access = web::Data::new(AccessState {
        pool,
        lifetimes: config.session_lifetimes(),
        secure_cookies: config.secure_cookies(),
    });
    let endpoint =
        tidemark_shared::clickhouse::Endpoint::parse(config.clickhouse_url.expose(), &config.clickhouse_database)?;
    let analytics = web::Data::new(AnalyticsStore::new(endpoint));
    let control = crate::control::Control::new(config);
    let realtime = web::Data::new(crate::realtime::Feeds::new(analytics.clone().into_inner(), Default::default()));
    let feeds = realtime.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(access.clone())
            .app_data(analytics.clone())
            .app_data(feeds.clone())
            .route("/healthz", web::get().to(|| async { HttpResponse::Ok().body("ok") }))
            .route("/", web::get().to(index))
            .configure(crate::openapi::configure)
            .configure(crate::access_api::configure)
            .configure(crate::query_api::configure)
            .configure(crate::funnel_api::configure)
            .configure(crate::control::configure(control.clone()))
            .configure(crate::realtime::configure)
    })
    // A client closing its side means it left (browsers never half-close): drop its response at once, so a realtime
    // stream is freed when its reader goes rather than when a later write fails (up to two writes later).
    .h1_allow_half_closed(false)
    .listen(listener)?
    .run();
    Ok(AppServer { port, server, realtime })
}

async fn index() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(
        "Tidemark app\n\nThe analytics dashboard and the queue dashboard are not built yet.\n\
         Sign in through the API (POST /api/v1/login); projects, accounts and keys are also managed with the \
         `app` command (see README).\n",
    )
}
