//! The app: control plane (admins, projects, tokens) and, in later waves, the analytics API, dashboard and the
//! operators' queue dashboard.

pub mod access_api;
pub mod analytics_store;
pub mod api_error;
pub mod auth;
pub mod config;
pub mod control;
pub mod funnel;
pub mod funnel_api;
pub mod goals;
pub mod goals_api;
pub mod openapi;
pub mod projects;
pub mod projects_api;
pub mod purge;
pub mod query;
pub mod query_api;
pub mod realtime;
pub mod setup;
pub mod site;
pub mod startup;
pub mod users;

pub use config::AppConfig;
