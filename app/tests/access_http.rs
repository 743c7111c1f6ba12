//! The accounts-and-access API through real HTTP against real PostgreSQL: setup, sign-in, sign-out, CSRF,
//! lockout, keys and roles.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tidemark_app::AppConfig;
use tidemark_app::auth::keys;
use tidemark_app::auth::roles::{self, Role, Scope};
use tidemark_app::users;
use tidemark_shared::secret::Secret;
use tidemark_testkit::{TestEnv, test_env};

const PASSWORD: &str = "a long enough password";

struct TestApp {
    env: TestEnv,
    base: String,
    http: reqwest::Client,
}

async fn spawn_app() -> TestApp {
    let env = test_env().await;
    let config = AppConfig {
        postgres_url: Secret::new(env.postgres_url.clone()),
        app_public_url: "https://analytics.example.com".into(),
        ..AppConfig::default()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app = tidemark_app::startup::build(&config, listener).unwrap();
    tokio::spawn(app.server);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    TestApp { env, base: format!("http://127.0.0.1:{}", app.port), http }
}

/// A signed-in browser: its cookie and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

impl TestApp {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.http
            .post(self.url("/api/v1/login"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap()
    }

    async fn sign_in(&self, email: &str) -> Browser {
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
        let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let body: Value = response.json().await.unwrap();
        Browser { cookie, csrf: body["csrf_token"].as_str().unwrap().to_owned() }
    }

    fn with_cookie(&self, method: reqwest::Method, path: &str, browser: &Browser) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).header("Cookie", &browser.cookie)
    }

    async fn account(&self, email: &str, admin: bool) -> uuid::Uuid {
        users::create(&self.env.pg, email, PASSWORD, admin).await.unwrap()
    }
}

#[tokio::test]
async fn login_sets_a_safe_cookie_and_logout_ends_the_session() {
    let app = spawn_app().await;
    app.account("me@x.test", false).await;
    let response = app.login("me@x.test", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    for part in ["tidemark_session=", "HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
        assert!(set_cookie.contains(part), "{part} missing from {set_cookie}");
    }
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["account"]["email"], "me@x.test");
    assert!(body["account"].get("password_hash").is_none());
    let browser = Browser {
        cookie: set_cookie.split(';').next().unwrap().to_owned(),
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    };

    let me = app.with_cookie(reqwest::Method::GET, "/api/v1/me", &browser).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["csrf_token"], browser.csrf.as_str());

    let logout = app
        .with_cookie(reqwest::Method::POST, "/api/v1/logout", &browser)
        .header("X-CSRF-Token", &browser.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert!(logout.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let after = app.with_cookie(reqwest::Method::GET, "/api/v1/me", &browser).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED, "the old cookie is dead on the server");
    assert_eq!(app.http.get(app.url("/api/v1/me")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn state_changes_with_the_cookie_need_the_csrf_token() {
    let app = spawn_app().await;
    let (project, _) = app.env.project(&[]).await;
    let owner = app.account("owner@x.test", false).await;
    roles::grant(&app.env.pg, project, owner, Role::Owner).await.unwrap();
    let browser = app.sign_in("owner@x.test").await;
    let path = format!("/api/v1/projects/{project}");
    let change = json!({ "name": "Renamed" });

    let missing = app.with_cookie(reqwest::Method::PATCH, &path, &browser).json(&change).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    let body: Value = missing.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("X-CSRF-Token"), "{body}");
    let wrong = app
        .with_cookie(reqwest::Method::PATCH, &path, &browser)
        .header("X-CSRF-Token", "0".repeat(64))
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let logout = app.with_cookie(reqwest::Method::POST, "/api/v1/logout", &browser).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::FORBIDDEN, "even sign-out needs the token");
    let name: String = sqlx::query_scalar("SELECT name FROM projects WHERE id = $1")
        .bind(project)
        .fetch_one(&app.env.pg)
        .await
        .unwrap();
    assert_eq!(name, "Test project", "nothing changed");

    let ok = app
        .with_cookie(reqwest::Method::PATCH, &path, &browser)
        .header("X-CSRF-Token", &browser.csrf)
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.json::<Value>().await.unwrap()["name"], "Renamed");
    // Reads need no token.
    let read = app.with_cookie(reqwest::Method::GET, &path, &browser).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
}

#[tokio::test]
async fn lockout_answers_the_same_for_a_missing_account() {
    let app = spawn_app().await;
    app.account("real@x.test", false).await;
    let mut transcripts = Vec::new();
    for email in ["real@x.test", "ghost@x.test"] {
        let mut seen = Vec::new();
        for password in [
            "wrong 1 password",
            "wrong 2 password",
            "wrong 3 password",
            "wrong 4 password",
            "wrong 5 password",
            PASSWORD,
        ] {
            let response = app.login(email, password).await;
            let status = response.status();
            let retry = response.headers().get("retry-after").is_some();
            let cookie = response.headers().get("set-cookie").is_some();
            let body: Value = response.json().await.unwrap();
            seen.push((status, retry, cookie, body));
        }
        transcripts.push(seen);
    }
    assert_eq!(transcripts[0], transcripts[1], "an existing and a missing account look alike");
    let real = &transcripts[0];
    assert!(real[..4].iter().all(|(s, _, c, _)| *s == StatusCode::UNAUTHORIZED && !c), "{real:?}");
    assert!(real[4..].iter().all(|(s, r, c, _)| *s == StatusCode::TOO_MANY_REQUESTS && *r && !c), "{real:?}");
}

#[tokio::test]
async fn no_endpoint_tells_whether_an_email_exists() {
    let app = spawn_app().await;
    app.account("real@x.test", true).await;
    let answer =
        |response: reqwest::Response| async move { (response.status(), response.json::<Value>().await.unwrap()) };
    let real = answer(app.login("real@x.test", "wrong password!").await).await;
    let ghost = answer(app.login("ghost@x.test", "wrong password!").await).await;
    assert_eq!(real, ghost);
    assert_eq!(real.0, StatusCode::UNAUTHORIZED);
    // The first-run path is closed once an admin exists, whatever e-mail is sent.
    for email in ["real@x.test", "ghost@x.test"] {
        let response = app
            .http
            .post(app.url("/api/v1/setup"))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{email}");
    }
}

#[tokio::test]
async fn the_first_admin_comes_from_setup_and_only_once() {
    let app = spawn_app().await;
    let status: Value = app.http.get(app.url("/api/v1/setup")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["needed"], true);
    let bad = app
        .http
        .post(app.url("/api/v1/setup"))
        .json(&json!({ "email": "first@x.test", "password": "short" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bad.json::<Value>().await.unwrap()["field"], "password");
    let created = app
        .http
        .post(app.url("/api/v1/setup"))
        .json(&json!({ "email": "first@x.test", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let again = app
        .http
        .post(app.url("/api/v1/setup"))
        .json(&json!({ "email": "second@x.test", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::FORBIDDEN);
    let status: Value = app.http.get(app.url("/api/v1/setup")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["needed"], false);
    let browser = app.sign_in("first@x.test").await;
    let me: Value =
        app.with_cookie(reqwest::Method::GET, "/api/v1/me", &browser).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["account"]["is_admin"], true);
}

#[tokio::test]
async fn keys_reach_their_own_project_only_and_die_when_revoked() {
    let app = spawn_app().await;
    let (a, _) = app.env.project(&[]).await;
    let (b, _) = app.env.project(&[]).await;
    let key = keys::create(&app.env.pg, a, Scope::Read, "script").await.unwrap();
    let get = |project: uuid::Uuid, key: String| {
        let request = app.http.get(app.url(&format!("/api/v1/projects/{project}"))).bearer_auth(key);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(get(a, key.key.clone()).await, StatusCode::OK);
    assert_eq!(get(b, key.key.clone()).await, StatusCode::NOT_FOUND, "project A's key cannot read project B");
    assert_eq!(get(uuid::Uuid::new_v4(), key.key.clone()).await, StatusCode::NOT_FOUND);
    let patch = app
        .http
        .patch(app.url(&format!("/api/v1/projects/{a}")))
        .bearer_auth(&key.key)
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), StatusCode::FORBIDDEN, "a read key cannot mutate");
    assert_eq!(get(a, format!("{}x", key.key)).await, StatusCode::UNAUTHORIZED);

    // An owner revokes it through the API; the very next request fails.
    let owner = app.account("owner@x.test", false).await;
    roles::grant(&app.env.pg, a, owner, Role::Owner).await.unwrap();
    let browser = app.sign_in("owner@x.test").await;
    let revoke = app
        .with_cookie(reqwest::Method::DELETE, &format!("/api/v1/projects/{a}/keys/{}", key.id), &browser)
        .header("X-CSRF-Token", &browser.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    assert_eq!(get(a, key.key.clone()).await, StatusCode::UNAUTHORIZED, "a revoked key fails at once");
}

#[tokio::test]
async fn a_viewer_reads_but_cannot_mutate() {
    let app = spawn_app().await;
    let (project, _) = app.env.project(&[]).await;
    let (other, _) = app.env.project(&[]).await;
    let viewer = app.account("viewer@x.test", false).await;
    roles::grant(&app.env.pg, project, viewer, Role::Viewer).await.unwrap();
    let browser = app.sign_in("viewer@x.test").await;
    let path = format!("/api/v1/projects/{project}");
    let read = app.with_cookie(reqwest::Method::GET, &path, &browser).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    for (method, path, body) in [
        (reqwest::Method::PATCH, path.clone(), json!({ "name": "Mine now" })),
        (reqwest::Method::POST, format!("{path}/keys"), json!({ "scope": "read" })),
    ] {
        let response = app
            .with_cookie(method.clone(), &path, &browser)
            .header("X-CSRF-Token", &browser.csrf)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method} {path}");
    }
    let elsewhere =
        app.with_cookie(reqwest::Method::GET, &format!("/api/v1/projects/{other}"), &browser).send().await.unwrap();
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND, "a project the account is not in does not exist for it");
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys").fetch_one(&app.env.pg).await.unwrap();
    assert_eq!(keys, 0);
}

#[tokio::test]
async fn owners_create_keys_shown_once_and_bad_input_names_the_field() {
    let app = spawn_app().await;
    let (project, _) = app.env.project(&[]).await;
    let owner = app.account("owner@x.test", false).await;
    roles::grant(&app.env.pg, project, owner, Role::Owner).await.unwrap();
    let browser = app.sign_in("owner@x.test").await;
    let path = format!("/api/v1/projects/{project}/keys");
    let created = app
        .with_cookie(reqwest::Method::POST, &path, &browser)
        .header("X-CSRF-Token", &browser.csrf)
        .json(&json!({ "scope": "read", "name": "export" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let listed: Value =
        app.with_cookie(reqwest::Method::GET, &path, &browser).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(key.rsplit('_').next().unwrap()), "listing never shows the secret");
    let me: Value = app.http.get(app.url("/api/v1/me")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["key"]["scope"], "read");

    let bad_scope = app
        .with_cookie(reqwest::Method::POST, &path, &browser)
        .header("X-CSRF-Token", &browser.csrf)
        .json(&json!({ "scope": "write" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_scope.status(), StatusCode::BAD_REQUEST);
    let bad_zone = app
        .with_cookie(reqwest::Method::PATCH, &format!("/api/v1/projects/{project}"), &browser)
        .header("X-CSRF-Token", &browser.csrf)
        .json(&json!({ "timezone": "Mars/Olympus" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_zone.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bad_zone.json::<Value>().await.unwrap()["field"], "timezone");
    let no_password =
        app.http.post(app.url("/api/v1/login")).json(&json!({ "email": "owner@x.test" })).send().await.unwrap();
    assert_eq!(no_password.status(), StatusCode::BAD_REQUEST);
    assert_eq!(no_password.json::<Value>().await.unwrap()["field"], "password");
}

#[tokio::test]
async fn owners_manage_members_but_never_remove_the_last_owner() {
    let app = spawn_app().await;
    let (project, _) = app.env.project(&[]).await;
    let owner = app.account("owner@x.test", false).await;
    let colleague = app.account("colleague@x.test", false).await;
    roles::grant(&app.env.pg, project, owner, Role::Owner).await.unwrap();
    let browser = app.sign_in("owner@x.test").await;
    let member = |account: uuid::Uuid, method: reqwest::Method, body: Option<Value>| {
        let mut request = app
            .with_cookie(method, &format!("/api/v1/projects/{project}/members/{account}"), &browser)
            .header("X-CSRF-Token", &browser.csrf);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(member(colleague, reqwest::Method::PUT, Some(json!({ "role": "viewer" }))).await, StatusCode::OK);
    let colleague_browser = app.sign_in("colleague@x.test").await;
    let read = app
        .with_cookie(reqwest::Method::GET, &format!("/api/v1/projects/{project}"), &colleague_browser)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK, "the new viewer reads");
    assert_eq!(
        member(uuid::Uuid::new_v4(), reqwest::Method::PUT, Some(json!({ "role": "viewer" }))).await,
        StatusCode::NOT_FOUND
    );

    assert_eq!(member(owner, reqwest::Method::PUT, Some(json!({ "role": "editor" }))).await, StatusCode::CONFLICT);
    assert_eq!(member(owner, reqwest::Method::DELETE, None).await, StatusCode::CONFLICT);
    let listed: Value = app
        .with_cookie(reqwest::Method::GET, &format!("/api/v1/projects/{project}/members"), &browser)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let roles_now: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles_now,
        vec![("colleague@x.test", "viewer"), ("owner@x.test", "owner")],
        "the refused changes left no trace"
    );

    // With a second owner, the first may step down.
    assert_eq!(member(colleague, reqwest::Method::PUT, Some(json!({ "role": "owner" }))).await, StatusCode::OK);
    assert_eq!(member(owner, reqwest::Method::DELETE, None).await, StatusCode::NO_CONTENT);

    // Keys never manage members, whatever their scope.
    let key = keys::create(&app.env.pg, project, Scope::Admin, "").await.unwrap();
    let by_key = app
        .http
        .put(app.url(&format!("/api/v1/projects/{project}/members/{owner}")))
        .bearer_auth(&key.key)
        .json(&json!({ "role": "owner" }))
        .send()
        .await
        .unwrap();
    assert_eq!(by_key.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn only_instance_admins_manage_accounts() {
    let app = spawn_app().await;
    app.account("root@x.test", true).await;
    app.account("plain@x.test", false).await;
    let plain = app.sign_in("plain@x.test").await;
    let listed = app.with_cookie(reqwest::Method::GET, "/api/v1/accounts", &plain).send().await.unwrap();
    assert_eq!(listed.status(), StatusCode::FORBIDDEN);
    let create = |browser: &Browser, email: &str| {
        app.with_cookie(reqwest::Method::POST, "/api/v1/accounts", browser)
            .header("X-CSRF-Token", &browser.csrf)
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
    };
    assert_eq!(create(&plain, "new@x.test").await.unwrap().status(), StatusCode::FORBIDDEN);
    let root = app.sign_in("root@x.test").await;
    assert_eq!(create(&root, "new@x.test").await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(create(&root, "NEW@x.test").await.unwrap().status(), StatusCode::CONFLICT);
    let listed: Value =
        app.with_cookie(reqwest::Method::GET, "/api/v1/accounts", &root).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);
    app.sign_in("new@x.test").await;
}

#[tokio::test]
async fn a_password_change_needs_the_old_one_and_ends_other_sessions() {
    let app = spawn_app().await;
    app.account("me@x.test", false).await;
    let here = app.sign_in("me@x.test").await;
    let elsewhere = app.sign_in("me@x.test").await;
    let change = |current: &str, new: &str| {
        app.with_cookie(reqwest::Method::POST, "/api/v1/me/password", &here)
            .header("X-CSRF-Token", &here.csrf)
            .json(&json!({ "current_password": current, "new_password": new }))
            .send()
    };
    let wrong = change("not my password", "a brand new password").await.unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert_eq!(wrong.json::<Value>().await.unwrap()["field"], "current_password");
    assert_eq!(change(PASSWORD, "a brand new password").await.unwrap().status(), StatusCode::NO_CONTENT);
    let me = |browser: &Browser| app.with_cookie(reqwest::Method::GET, "/api/v1/me", browser).send();
    assert_eq!(me(&here).await.unwrap().status(), StatusCode::OK, "the session that changed it stays");
    assert_eq!(me(&elsewhere).await.unwrap().status(), StatusCode::UNAUTHORIZED, "every other session ends");
    assert_eq!(app.login("me@x.test", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.login("me@x.test", "a brand new password").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn admins_delete_accounts_but_not_the_last_admin() {
    let app = spawn_app().await;
    let root = app.account("root@x.test", true).await;
    let plain = app.account("plain@x.test", false).await;
    let admin = app.sign_in("root@x.test").await;
    let plain_browser = app.sign_in("plain@x.test").await;
    let delete = |account: uuid::Uuid| {
        app.with_cookie(reqwest::Method::DELETE, &format!("/api/v1/accounts/{account}"), &admin)
            .header("X-CSRF-Token", &admin.csrf)
            .send()
    };
    assert_eq!(delete(plain).await.unwrap().status(), StatusCode::NO_CONTENT);
    let after = app.with_cookie(reqwest::Method::GET, "/api/v1/me", &plain_browser).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED, "a deleted account's sessions end with it");
    assert_eq!(delete(plain).await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(delete(root).await.unwrap().status(), StatusCode::CONFLICT, "the last admin stays");
    assert!(users::any_admin(&app.env.pg).await.unwrap());
}

#[tokio::test]
async fn one_address_spraying_many_emails_is_stopped_with_retry_after() {
    let app = spawn_app().await;
    app.account("real@x.test", false).await;
    // One guess per e-mail: no e-mail comes near its own limit of 5.
    for i in 0..20 {
        let response = app.login(&format!("guess{i}@x.test"), "a wrong but long password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    // The 21st attempt from this address is refused before any password is checked, even the right one.
    let response = app.login("real@x.test", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=15 * 60).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("address"), "{body}");
    let attempts: i32 = sqlx::query_scalar("SELECT coalesce(sum(attempts), 0)::int4 FROM login_throttle")
        .fetch_one(&app.env.pg)
        .await
        .unwrap();
    assert_eq!(attempts, 20, "refused attempts did not even count against an e-mail");
}
