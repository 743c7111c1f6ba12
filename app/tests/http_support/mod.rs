//! The app over real HTTP against this test's own PostgreSQL, ClickHouse and Redis key prefix: accounts, signed-in
//! browsers (cookie and CSRF token) and requests made as a browser or with a secret key.

#![allow(dead_code)] // Each test binary uses its own part of this.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tidemark_app::AppConfig;
use tidemark_shared::secret::Secret;
use tidemark_testkit::{TestEnv, test_env};

pub const PASSWORD: &str = "a long enough password";

pub struct TestApp {
    pub env: TestEnv,
    pub base: String,
    pub http: reqwest::Client,
}

/// A signed-in browser: its cookie and CSRF token.
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

/// Who sends a request.
pub enum Who<'a> {
    Nobody,
    /// The cookie and the CSRF token, as the dashboard sends them.
    Browser(&'a Browser),
    /// The cookie alone, as a cross-site form would send it.
    CookieOnly(&'a Browser),
    Key(&'a str),
}

pub fn config_for(env: &TestEnv) -> AppConfig {
    AppConfig {
        postgres_url: Secret::new(env.postgres_url.clone()),
        clickhouse_url: Secret::new(env.clickhouse_url.clone()),
        redis_url: Secret::new(env.stores.redis_url.clone()),
        key_prefix: env.key_prefix.clone(),
        ..AppConfig::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut AppConfig)) -> TestApp {
    let env = test_env().await;
    let mut config = config_for(&env);
    tweak(&mut config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app = tidemark_app::startup::build(&config, listener).unwrap();
    tokio::spawn(app.server);
    TestApp { env, base: format!("http://127.0.0.1:{}", app.port), http: reqwest::Client::new() }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn account(&self, email: &str, admin: bool) -> uuid::Uuid {
        tidemark_app::users::create(&self.env.pg, email, PASSWORD, admin).await.unwrap()
    }

    pub async fn sign_in(&self, email: &str) -> Browser {
        let response = self
            .http
            .post(self.url("/api/v1/login"))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let body: Value = response.json().await.unwrap();
        Browser { cookie, csrf: body["csrf_token"].as_str().unwrap().to_owned() }
    }

    /// A new account with a browser signed in as it.
    pub async fn signed_in(&self, email: &str, admin: bool) -> (uuid::Uuid, Browser) {
        let id = self.account(email, admin).await;
        (id, self.sign_in(email).await)
    }

    pub async fn send(&self, method: Method, path: &str, who: Who<'_>, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.url(path));
        request = match who {
            Who::Nobody => request,
            Who::Browser(b) => request.header("Cookie", &b.cookie).header("X-CSRF-Token", &b.csrf),
            Who::CookieOnly(b) => request.header("Cookie", &b.cookie),
            Who::Key(key) => request.bearer_auth(key),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, who: Who<'_>) -> (StatusCode, Value) {
        self.send(Method::GET, path, who, None).await
    }

    pub async fn post(&self, path: &str, who: Who<'_>, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, who, Some(body)).await
    }

    pub async fn patch(&self, path: &str, who: Who<'_>, body: Value) -> (StatusCode, Value) {
        self.send(Method::PATCH, path, who, Some(body)).await
    }

    pub async fn delete(&self, path: &str, who: Who<'_>) -> (StatusCode, Value) {
        self.send(Method::DELETE, path, who, None).await
    }

    /// Creates a project over HTTP as `owner` and returns (id, ingest token).
    pub async fn project(&self, owner: &Browser, name: &str) -> (uuid::Uuid, String) {
        let (status, body) = self.post("/api/v1/projects", Who::Browser(owner), json!({ "name": name })).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (body["id"].as_str().unwrap().parse().unwrap(), body["token"].as_str().unwrap().to_owned())
    }

    /// Gives an existing account a role on a project.
    pub async fn grant(&self, project: uuid::Uuid, account: uuid::Uuid, role: tidemark_app::auth::roles::Role) {
        tidemark_app::auth::roles::grant(&self.env.pg, project, account, role).await.unwrap();
    }

    pub async fn key(&self, project: uuid::Uuid, scope: tidemark_app::auth::roles::Scope) -> String {
        tidemark_app::auth::keys::create(&self.env.pg, project, scope, "test").await.unwrap().key
    }
}
