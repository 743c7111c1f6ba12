//! The app's HTTP server. This wave serves health only; the analytics API, dashboard and queue dashboard arrive
//! with their issues and mount here.

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use std::net::TcpListener;

pub struct AppServer {
    pub port: u16,
    pub server: Server,
}

pub fn build(listener: TcpListener) -> anyhow::Result<AppServer> {
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(|| {
        App::new()
            .route("/healthz", web::get().to(|| async { HttpResponse::Ok().body("ok") }))
            .route("/", web::get().to(index))
    })
    .listen(listener)?
    .run();
    Ok(AppServer { port, server })
}

async fn index() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(
        "Tidemark app\n\nThe analytics dashboard and the queue dashboard are not built yet.\n\
         Projects and admins are managed with the `app` command (see README).\n",
    )
}
