//! Access: who is asking (sessions, secret keys), what they may do (roles, scopes), and the login throttle.

pub mod address_limit;
pub mod caller;
pub mod keys;
pub mod login;
pub mod roles;
pub mod sessions;
pub mod throttle;
