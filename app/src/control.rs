//! What the control plane's handlers share beyond `AccessState`: where to tell the hubs that ingest tokens
//! changed, and the per-address sign-in limit. Built once per app (not per worker thread), so every worker counts
//! into the same limit.

use crate::AppConfig;
use crate::auth::address_limit::AddressLimit;
use actix_web::web;
use tidemark_shared::secret::Secret;

pub struct Control {
    pub redis_url: Secret<String>,
    pub key_prefix: String,
    pub sign_in_limit: AddressLimit,
}

impl Control {
    pub fn new(config: &AppConfig) -> web::Data<Control> {
        web::Data::new(Control {
            redis_url: config.redis_url.clone(),
            key_prefix: config.key_prefix.clone(),
            sign_in_limit: AddressLimit::default(),
        })
    }

    /// Tells running hubs to forget these tokens (see `projects::announce_token_changes`).
    pub async fn announce(&self, tokens: &[String]) {
        crate::projects::announce_token_changes(self.redis_url.expose(), &self.key_prefix, tokens).await;
    }
}

/// Registers the shared state and the project and goal endpoints.
pub fn configure(control: web::Data<Control>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(control);
        crate::projects_api::routes(cfg);
        crate::goals_api::routes(cfg);
    }
}
