//! Accounts and access over HTTP: first-run setup, sign-in and sign-out, who am I, a project's secret keys and
//! members (the projects themselves are in `projects_api`). Every project endpoint goes through `roles::authorize`.

use crate::api_error::ApiError;
use crate::auth::caller::{AccessState, Caller, session_clear_cookie, session_set_cookie};
use crate::auth::login::{self, Outcome};
use crate::auth::roles::{self, Action, MembershipError, Principal, Role, Scope};
use crate::auth::throttle::Throttle;
use crate::auth::{keys, sessions};
use crate::control::Control;
use crate::openapi::schemas as doc;
use crate::projects_api::allow;
use crate::users;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use std::time::Instant;
use uuid::Uuid;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::JsonConfig::default().limit(16 * 1024).error_handler(|err, _| {
        let problem = err.to_string();
        ApiError::BadInput { field: field_named_in(&problem).unwrap_or("body").to_owned(), problem }.into()
    }))
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _| ApiError::BadInput { field: "path".into(), problem: format!("{err}") }.into()),
    );
    register(cfg);
}

crate::openapi::api_routes! {
    get "/api/v1/setup" => setup_status,
    post "/api/v1/setup" => setup,
    post "/api/v1/login" => login,
    post "/api/v1/logout" => logout,
    get "/api/v1/me" => me,
    get "/api/v1/projects/{id}/keys" => keys_list,
    post "/api/v1/projects/{id}/keys" => key_create,
    delete "/api/v1/projects/{id}/keys/{key}" => key_revoke,
    get "/api/v1/projects/{id}/members" => members_list,
    put "/api/v1/projects/{id}/members/{account}" => member_set,
    delete "/api/v1/projects/{id}/members/{account}" => member_remove,
    get "/api/v1/accounts" => accounts_list,
    post "/api/v1/accounts" => account_create,
    delete "/api/v1/accounts/{account}" => account_delete,
    post "/api/v1/me/password" => password_change,
}

/// The field serde names in "missing field `x`", "unknown field `x`" or "unknown variant ... for `x`".
fn field_named_in(problem: &str) -> Option<&str> {
    let (_, rest) = problem.split_once("field `")?;
    rest.split_once('`').map(|(field, _)| field)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Credentials {
    email: String,
    password: String,
}

fn check_credentials(email: &str, password: &str) -> Result<(), ApiError> {
    let email = email.trim();
    if !email.contains('@') || email.len() > 320 {
        return Err(ApiError::BadInput { field: "email".into(), problem: "not an e-mail address".into() });
    }
    let chars = password.chars().count();
    if !(users::MIN_PASSWORD..=users::MAX_PASSWORD).contains(&chars) {
        return Err(ApiError::BadInput {
            field: "password".into(),
            problem: format!("must be {} to {} characters", users::MIN_PASSWORD, users::MAX_PASSWORD),
        });
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = "/api/v1/setup",
    tag = "access",
    summary = "Whether first-run setup is still needed",
    responses(
        (status = 200, description = "OK", body = doc::SetupStatus)
    )
)]
async fn setup_status(state: web::Data<AccessState>) -> Result<HttpResponse, ApiError> {
    let needed = !users::any_admin(&state.pool).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "needed": needed })))
}

/// The first-run path: creates the very first admin, and answers 403 once any admin exists.
#[utoipa::path(
    post,
    path = "/api/v1/setup",
    tag = "access",
    summary = "Create the first admin (403 once any admin exists)",
    request_body = Credentials,
    responses(
        (status = 201, description = "The first admin", body = doc::Account),
        (status = 400, description = "Bad input, naming the field", body = doc::BadInputBody),
        (status = 403, description = "An admin exists already", body = doc::ErrorBody)
    )
)]
async fn setup(state: web::Data<AccessState>, body: web::Json<Credentials>) -> Result<HttpResponse, ApiError> {
    check_credentials(&body.email, &body.password)?;
    let email = body.email.trim();
    match users::create_first_admin(&state.pool, email, &body.password).await? {
        Some(id) => Ok(HttpResponse::Created().json(serde_json::json!({ "id": id, "email": email, "is_admin": true }))),
        None => Err(ApiError::Forbidden),
    }
}

/// Signs in under two limits: failures per client address (`address_limit`, checked first, so a locked-out
/// sprayer stops counting against e-mails) and failures per e-mail (`throttle`).
#[utoipa::path(
    post,
    path = "/api/v1/login",
    tag = "access",
    summary = "Sign in: sets the session cookie and returns the CSRF token",
    request_body = Credentials,
    responses(
        (status = 200, description = "Signed in; `Set-Cookie` carries the session", body = doc::SignedIn),
        (status = 400, description = "Bad input, naming the field", body = doc::BadInputBody),
        (status = 401, description = "Wrong e-mail or password", body = doc::ErrorBody),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = doc::ErrorBody)
    )
)]
async fn login(
    state: web::Data<AccessState>,
    control: web::Data<Control>,
    req: HttpRequest,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let limit = &control.sign_in_limit;
    let attempt = match req.peer_addr() {
        Some(peer) => Some(
            limit.begin(peer.ip(), Instant::now()).map_err(|retry_after| ApiError::AddressLocked { retry_after })?,
        ),
        None => None,
    };
    let outcome = login::login(&state.pool, &Throttle::default(), state.lifetimes, &body.email, &body.password).await?;
    if let Some(attempt) = attempt {
        match outcome {
            Outcome::SignedIn { .. } => limit.succeeded(attempt),
            Outcome::Refused | Outcome::Locked { .. } => limit.failed(attempt, Instant::now()),
        }
    }
    match outcome {
        Outcome::SignedIn { account, session } => Ok(HttpResponse::Ok()
            .insert_header(("Set-Cookie", session_set_cookie(&session.id, &state)))
            .insert_header(("Cache-Control", "no-store"))
            .json(serde_json::json!({ "account": account, "csrf_token": session.csrf }))),
        Outcome::Refused => Err(ApiError::LoginRefused),
        Outcome::Locked { retry_after } => Err(ApiError::Locked { retry_after }),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/logout",
    tag = "access",
    summary = "Sign out (sessions only)",
    responses(
        (status = 204, description = "Signed out; the cookie is cleared"),
        (status = 400, description = "An API key has no session", body = doc::BadInputBody),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody)
    ),
    security(("session" = [], "csrf" = []))
)]
async fn logout(state: web::Data<AccessState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let Some((id, _)) = caller.session else {
        return Err(ApiError::BadInput { field: "Authorization".into(), problem: "API keys have no session".into() });
    };
    sessions::close(&state.pool, &id).await?;
    Ok(HttpResponse::NoContent().insert_header(("Set-Cookie", session_clear_cookie(&state))).finish())
}

#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "access",
    summary = "The signed-in account and its CSRF token, or the key in use",
    responses(
        (status = 200, description = "OK", body = doc::Me),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn me(state: web::Data<AccessState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    match (&caller.principal, &caller.session) {
        (Principal::Account { id, .. }, Some((_, csrf))) => {
            let account = users::get(&state.pool, *id).await?.ok_or(ApiError::Unauthenticated)?;
            Ok(HttpResponse::Ok()
                .insert_header(("Cache-Control", "no-store"))
                .json(serde_json::json!({ "account": account, "csrf_token": csrf })))
        }
        (Principal::Key { id, project, scope }, _) => {
            Ok(HttpResponse::Ok().json(serde_json::json!({ "key": { "id": id, "project": project, "scope": scope } })))
        }
        (Principal::Account { .. }, None) => Err(ApiError::Unauthenticated),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/keys",
    tag = "access",
    summary = "A project's secret keys (never the keys themselves)",
    params(("id" = Uuid, Path, description = "Project id")),
    responses(
        (status = 200, description = "OK", body = Vec<doc::KeyInfo>),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody),
        (status = 404, description = "No such project (or not visible to the caller)", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn keys_list(
    state: web::Data<AccessState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let project = path.into_inner();
    allow(&state, &caller, project, Action::ManageKeys).await?;
    Ok(HttpResponse::Ok().json(keys::list(&state.pool, project).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKey {
    #[schema(value_type = doc::KeyScope)]
    scope: Scope,
    #[serde(default)]
    name: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/projects/{id}/keys",
    tag = "access",
    summary = "Create a secret key (shown once)",
    params(("id" = Uuid, Path, description = "Project id")),
    request_body = NewKey,
    responses(
        (status = 201, description = "Created", body = doc::CreatedKey),
        (status = 400, description = "Bad input, naming the field", body = doc::BadInputBody),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody),
        (status = 404, description = "No such project (or not visible to the caller)", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = [], "csrf" = []))
)]
async fn key_create(
    state: web::Data<AccessState>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: web::Json<NewKey>,
) -> Result<HttpResponse, ApiError> {
    let project = path.into_inner();
    allow(&state, &caller, project, Action::ManageKeys).await?;
    if body.name.trim().len() > 200 {
        return Err(ApiError::BadInput { field: "name".into(), problem: "must be at most 200 characters".into() });
    }
    let created = keys::create(&state.pool, project, body.scope, &body.name).await?;
    Ok(HttpResponse::Created().insert_header(("Cache-Control", "no-store")).json(created))
}

#[utoipa::path(
    delete,
    path = "/api/v1/projects/{id}/keys/{key}",
    tag = "access",
    summary = "Revoke a secret key",
    params(("id" = Uuid, Path, description = "Project id"), ("key" = Uuid, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody),
        (status = 404, description = "No such project or key", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = [], "csrf" = []))
)]
async fn key_revoke(
    state: web::Data<AccessState>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (project, key) = path.into_inner();
    allow(&state, &caller, project, Action::ManageKeys).await?;
    if !keys::revoke_in_project(&state.pool, project, key).await? {
        return Err(ApiError::NotFound);
    }
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{id}/members",
    tag = "access",
    summary = "A project's members and their roles",
    params(("id" = Uuid, Path, description = "Project id")),
    responses(
        (status = 200, description = "OK", body = Vec<doc::Member>),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody),
        (status = 404, description = "No such project (or not visible to the caller)", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn members_list(
    state: web::Data<AccessState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let project = path.into_inner();
    allow(&state, &caller, project, Action::ManageMembers).await?;
    Ok(HttpResponse::Ok().json(roles::members(&state.pool, project).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    #[schema(value_type = doc::MemberRole)]
    role: Role,
}

fn membership_error(e: MembershipError) -> ApiError {
    match e {
        MembershipError::NoAccount => ApiError::NotFound,
        MembershipError::LastOwner => ApiError::Conflict(e.to_string()),
        MembershipError::Other(e) => ApiError::Internal(e),
    }
}

/// Members are named by account id, not e-mail, so that an owner cannot learn which e-mails have accounts.
#[utoipa::path(
    put,
    path = "/api/v1/projects/{id}/members/{account}",
    tag = "access",
    summary = "Add a member or change its role",
    params(("id" = Uuid, Path, description = "Project id"), ("account" = Uuid, Path, description = "Account id")),
    request_body = RoleChange,
    responses(
        (status = 200, description = "OK", body = doc::Membership),
        (status = 400, description = "Bad input, naming the field", body = doc::BadInputBody),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody),
        (status = 404, description = "No such project or account", body = doc::ErrorBody),
        (status = 409, description = "The last owner cannot be demoted", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = [], "csrf" = []))
)]
async fn member_set(
    state: web::Data<AccessState>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<RoleChange>,
) -> Result<HttpResponse, ApiError> {
    let (project, account) = path.into_inner();
    allow(&state, &caller, project, Action::ManageMembers).await?;
    roles::change_member(&state.pool, project, account, Some(body.role)).await.map_err(membership_error)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "project": project, "account": account, "role": body.role })))
}

#[utoipa::path(
    delete,
    path = "/api/v1/projects/{id}/members/{account}",
    tag = "access",
    summary = "Remove a member",
    params(("id" = Uuid, Path, description = "Project id"), ("account" = Uuid, Path, description = "Account id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody),
        (status = 404, description = "No such project or member", body = doc::ErrorBody),
        (status = 409, description = "The last owner cannot be removed", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = [], "csrf" = []))
)]
async fn member_remove(
    state: web::Data<AccessState>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (project, account) = path.into_inner();
    allow(&state, &caller, project, Action::ManageMembers).await?;
    if !roles::change_member(&state.pool, project, account, None).await.map_err(membership_error)? {
        return Err(ApiError::NotFound);
    }
    Ok(HttpResponse::NoContent().finish())
}

fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    match caller.principal {
        Principal::Account { is_admin: true, .. } => Ok(()),
        _ => Err(ApiError::Forbidden),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/accounts",
    tag = "access",
    summary = "Every account (instance admins)",
    responses(
        (status = 200, description = "OK", body = Vec<doc::Account>),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn accounts_list(state: web::Data<AccessState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    require_admin(&caller)?;
    Ok(HttpResponse::Ok().json(users::list(&state.pool).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    email: String,
    password: String,
    #[serde(default)]
    is_admin: bool,
}

/// Instance admins create accounts (they can list them all, so a 409 for a taken e-mail tells them nothing new).
#[utoipa::path(
    post,
    path = "/api/v1/accounts",
    tag = "access",
    summary = "Create an account (instance admins)",
    request_body = NewAccount,
    responses(
        (status = 201, description = "Created", body = doc::Account),
        (status = 400, description = "Bad input, naming the field", body = doc::BadInputBody),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody),
        (status = 409, description = "An account with this e-mail exists", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = [], "csrf" = []))
)]
async fn account_create(
    state: web::Data<AccessState>,
    caller: Caller,
    body: web::Json<NewAccount>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&caller)?;
    check_credentials(&body.email, &body.password)?;
    if users::find_for_login(&state.pool, &body.email).await?.is_some() {
        return Err(ApiError::Conflict("an account with this e-mail exists".into()));
    }
    let id = users::create(&state.pool, &body.email, &body.password, body.is_admin).await?;
    Ok(HttpResponse::Created()
        .json(serde_json::json!({ "id": id, "email": body.email.trim(), "is_admin": body.is_admin })))
}

#[utoipa::path(
    delete,
    path = "/api/v1/accounts/{account}",
    tag = "access",
    summary = "Delete an account (instance admins)",
    params(("account" = Uuid, Path, description = "Account id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody),
        (status = 404, description = "No such account", body = doc::ErrorBody),
        (status = 409, description = "The last admin cannot be deleted", body = doc::ErrorBody)
    ),
    security(("bearer" = []), ("session" = [], "csrf" = []))
)]
async fn account_delete(
    state: web::Data<AccessState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&caller)?;
    match users::delete(&state.pool, path.into_inner()).await? {
        Ok(true) => Ok(HttpResponse::NoContent().finish()),
        Ok(false) => Err(ApiError::NotFound),
        Err(last) => Err(ApiError::Conflict(last.to_string())),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes the signed-in account's password and ends its other sessions. The current password is checked under
/// the same throttle as sign-in, so a stolen session cannot be used to guess it.
#[utoipa::path(
    post,
    path = "/api/v1/me/password",
    tag = "access",
    summary = "Change the signed-in account's password; ends its other sessions",
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "Bad input, naming the field", body = doc::BadInputBody),
        (status = 401, description = "Not signed in and no valid key", body = doc::ErrorBody),
        (status = 403, description = "Not allowed (or a missing X-CSRF-Token)", body = doc::ErrorBody),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = doc::ErrorBody)
    ),
    security(("session" = [], "csrf" = []))
)]
async fn password_change(
    state: web::Data<AccessState>,
    caller: Caller,
    body: web::Json<PasswordChange>,
) -> Result<HttpResponse, ApiError> {
    let (Principal::Account { id, .. }, Some((session, _))) = (&caller.principal, &caller.session) else {
        return Err(ApiError::BadInput {
            field: "Authorization".into(),
            problem: "sign in to change a password".into(),
        });
    };
    let chars = body.new_password.chars().count();
    if !(users::MIN_PASSWORD..=users::MAX_PASSWORD).contains(&chars) {
        return Err(ApiError::BadInput {
            field: "new_password".into(),
            problem: format!("must be {} to {} characters", users::MIN_PASSWORD, users::MAX_PASSWORD),
        });
    }
    let account = users::get(&state.pool, *id).await?.ok_or(ApiError::Unauthenticated)?;
    match login::check_password(&state.pool, &Throttle::default(), &account.email, &body.current_password).await? {
        login::Check::Matches => {}
        login::Check::Wrong => {
            return Err(ApiError::BadInput { field: "current_password".into(), problem: "wrong password".into() });
        }
        login::Check::Locked { retry_after } => return Err(ApiError::Locked { retry_after }),
    }
    users::set_password(&state.pool, *id, &body.new_password).await?;
    sessions::close_others(&state.pool, *id, session).await?;
    Ok(HttpResponse::NoContent().finish())
}
