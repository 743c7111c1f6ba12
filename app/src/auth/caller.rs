//! The `Caller` extractor: authenticates a request by `Authorization: Bearer <secret key>` or by the session
//! cookie, and for the cookie requires `X-CSRF-Token` on every state-changing method (a cross-site page can make
//! the browser send the cookie, but cannot read the token).

use super::roles::Principal;
use super::sessions::{self, Lifetimes};
use crate::api_error::ApiError;
use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{FromRequest, HttpRequest, web};
use sqlx::PgPool;
use std::future::Future;
use std::pin::Pin;

/// What the access layer needs from the app's state.
#[derive(Clone)]
pub struct AccessState {
    pub pool: PgPool,
    pub lifetimes: Lifetimes,
    pub secure_cookies: bool,
}

#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The cookie's session id and its CSRF token, when the caller came with a cookie.
    pub session: Option<(String, String)>,
}

/// The value of the session cookie in a request, if any (actix-web's cookie feature is not compiled in).
pub fn session_cookie(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == sessions::COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn authenticate(req: HttpRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AccessState>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("AccessState is not registered")))?;
    if let Some(auth) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let presented = auth.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
        let principal = match presented {
            Some(key) => super::keys::verify(&state.pool, key).await?,
            None => None,
        };
        return principal.map(|principal| Caller { principal, session: None }).ok_or(ApiError::Unauthenticated);
    }
    let id = session_cookie(&req).ok_or(ApiError::Unauthenticated)?;
    let live = sessions::find(&state.pool, &id, state.lifetimes).await?.ok_or(ApiError::Unauthenticated)?;
    if changes_state(req.method()) {
        let presented = req.headers().get("X-CSRF-Token").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !live.csrf_matches(presented) {
            return Err(ApiError::Csrf);
        }
    }
    Ok(Caller {
        principal: Principal::Account { id: live.account, is_admin: live.is_admin },
        session: Some((id, live.csrf)),
    })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

/// `Set-Cookie` for a new session: `HttpOnly` (scripts never see it), `SameSite=Lax`, `Secure` behind HTTPS.
pub fn session_set_cookie(id: &str, state: &AccessState) -> String {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    format!(
        "{}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        sessions::COOKIE,
        state.lifetimes.absolute.as_secs()
    )
}

/// `Set-Cookie` that makes the browser forget the session.
pub fn session_clear_cookie(state: &AccessState) -> String {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    format!("{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}", sessions::COOKIE)
}
