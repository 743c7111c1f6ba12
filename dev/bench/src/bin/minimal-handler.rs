//! The yardstick for `just bench hub`: an actix-web server that only parses the same JSON body and answers 202.
//! Whatever the hub does beyond this (token, bots, user agent, geo, visitor id, session, Redis) is its overhead.

use actix_web::{App, HttpResponse, HttpServer, web};

async fn event(body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(_) => HttpResponse::Accepted().json(serde_json::json!({ "accepted": 1 })),
        Err(_) => HttpResponse::BadRequest().finish(),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:17090".into());
    HttpServer::new(|| {
        App::new().app_data(web::PayloadConfig::new(512 * 1024)).route("/v1/event", web::post().to(event))
    })
    .bind(listen)?
    .run()
    .await
}
