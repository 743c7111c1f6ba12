//! `GET /api/openapi.json` from a real app server: an OpenAPI 3.x document whose references resolve, that lists
//! every route the app serves under `/api` with its method, and nothing it does not serve.
//!
//! The routes come from the code, not from a list kept here: each module's `api_routes!` table (which mounts
//! them), checked against the live server, plus every `/api` path literal that any `.route(` or `web::resource(`
//! call in `app/src` registers, so a route mounted later without the table and without documentation fails here.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeSet;
use tidemark_app::AppConfig;
use tidemark_app::openapi::MODULES;
use tidemark_shared::secret::Secret;
use tidemark_testkit::test_env;

struct TestApp {
    base: String,
    http: reqwest::Client,
    _env: tidemark_testkit::TestEnv,
}

async fn spawn_app() -> TestApp {
    let env = test_env().await;
    let config = AppConfig { postgres_url: Secret::new(env.postgres_url.clone()), ..AppConfig::default() };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app = tidemark_app::startup::build(&config, listener).unwrap();
    tokio::spawn(app.server);
    TestApp { base: format!("http://127.0.0.1:{}", app.port), http: reqwest::Client::new(), _env: env }
}

async fn fetch_document(app: &TestApp) -> Value {
    let response = app.http.get(format!("{}/api/openapi.json", app.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the document needs no authentication");
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    response.json().await.unwrap()
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// `(method, path)` of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for (key, _) in item.as_object().expect("a path item is an object") {
            if METHODS.contains(&key.as_str()) {
                out.insert((key.clone(), path.clone()));
            }
        }
    }
    out
}

fn served() -> BTreeSet<(String, String)> {
    MODULES.iter().flat_map(|m| m.routes).map(|r| (r.method.to_owned(), r.path.to_owned())).collect()
}

#[tokio::test]
async fn every_served_route_is_documented_with_its_method() {
    let app = spawn_app().await;
    let doc = fetch_document(&app).await;
    let documented = documented(&doc);
    let served = served();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(undocumented.is_empty(), "routes served but missing from /api/openapi.json: {undocumented:?}");
    let phantom: Vec<_> = documented.difference(&served).collect();
    assert!(phantom.is_empty(), "documented but not served: {phantom:?}");
    assert!(served.len() >= 29, "the route tables list {} routes", served.len());
}

/// The tables say what is mounted: each route answers as a route (the handler or its extractors: 2xx, 400, 401,
/// 403, 404 with a JSON body), never with the router's bare 404 or a 405.
#[tokio::test]
async fn every_route_in_the_tables_is_mounted() {
    let app = spawn_app().await;
    for (method, path) in served() {
        // Path parameters: a nil id; goals take an integer.
        let concrete = path
            .replace("{goal}", "1")
            .split('/')
            .map(|part| if part.starts_with('{') { "00000000-0000-0000-0000-000000000000" } else { part })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = app.http.request(method.clone(), format!("{}{concrete}", app.base)).send().await.unwrap();
        let status = response.status();
        let body = response.bytes().await.unwrap();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !(status == StatusCode::NOT_FOUND && body.is_empty()),
            "{method} {path}: the router does not know it (bare 404)"
        );
    }
}

/// Every `/api` path that a `.route(`, `web::resource(` or `web::scope(` call in the app's source mounts, with
/// whether it is a scope (a prefix of the paths it serves).
fn api_paths_mounted_in_source() -> BTreeSet<(bool, String)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut out = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for call in [".route(", "web::resource(", "web::scope("] {
            for (at, _) in text.match_indices(call) {
                // rustfmt may put the literal on the next line.
                let Some(rest) = text[at + call.len()..].trim_start().strip_prefix('"') else { continue };
                let literal = &rest[..rest.find('"').unwrap()];
                if literal.starts_with("/api") {
                    out.insert((call.starts_with("web::scope"), literal.to_owned()));
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn routes_mounted_outside_the_tables_are_documented_too() {
    let app = spawn_app().await;
    let doc = fetch_document(&app).await;
    let paths: BTreeSet<String> = documented(&doc).into_iter().map(|(_, path)| path).collect();
    let mounted = api_paths_mounted_in_source();
    assert!(mounted.contains(&(false, "/api/v2/query".to_owned())), "the source scan finds routes: {mounted:?}");
    assert!(mounted.contains(&(true, "/api/v2/realtime".to_owned())), "the source scan finds scopes: {mounted:?}");
    let missing: Vec<_> = mounted
        .iter()
        .filter(|(scope, path)| match scope {
            true => !paths.iter().any(|p| p.starts_with(&format!("{path}/"))),
            false => !paths.contains(path),
        })
        .collect();
    assert!(missing.is_empty(), "mounted in app/src but not in /api/openapi.json (use `api_routes!`): {missing:?}");
}

/// Resolves a local `$ref` (`#/components/schemas/X`) in the document.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

fn each_ref<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r);
            }
            map.values().for_each(|v| each_ref(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| each_ref(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_well_formed_openapi_3() {
    let app = spawn_app().await;
    let doc = fetch_document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "openapi: {}", doc["openapi"]);
    assert!(!doc["info"]["title"].as_str().unwrap().is_empty());
    assert!(doc["info"]["version"].is_string());
    let schemes = doc["components"]["securitySchemes"].as_object().expect("securitySchemes");
    for name in ["bearer", "session", "csrf"] {
        assert!(schemes.contains_key(name), "security scheme {name}");
    }
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(schemes["csrf"]["in"], "header");

    let mut refs = Vec::new();
    each_ref(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        assert!(resolve(&doc, r).is_some(), "unresolved $ref {r}");
    }

    let mut operation_ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with("/api/"), "{path}");
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{method} {path}");
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{what}: operationId"));
            assert!(operation_ids.insert(id.to_owned()), "{what}: operationId {id} is not unique");
            let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{what}: responses"));
            assert!(!responses.is_empty(), "{what}: no responses");
            for status in responses.keys() {
                assert!(status.len() == 3 && status.parse::<u16>().is_ok(), "{what}: response key {status}");
            }
            assert!(op["summary"].is_string() || op["description"].is_string(), "{what}: says nothing");
            // Every `{param}` of the template is a declared path parameter, and no other.
            let in_template: BTreeSet<&str> =
                path.split('/').filter_map(|p| p.strip_prefix('{')?.strip_suffix('}')).collect();
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect())
                .unwrap_or_default();
            assert_eq!(in_template, declared, "{what}: path parameters");
            // Security requirements name declared schemes; anything but the setup/sign-in/doc routes needs one.
            let public = ["/api/v1/setup", "/api/v1/login", "/api/openapi.json"].contains(&path.as_str());
            match op["security"].as_array() {
                Some(reqs) => {
                    assert!(!public, "{what}: public, yet has security");
                    for req in reqs {
                        for name in req.as_object().unwrap().keys() {
                            assert!(schemes.contains_key(name), "{what}: unknown scheme {name}");
                        }
                    }
                    if method != "get" {
                        let browser = reqs.iter().find(|r| r.get("session").is_some());
                        assert!(
                            browser.is_none_or(|r| r.get("csrf").is_some()),
                            "{what}: a browser's {method} needs the CSRF header"
                        );
                    }
                }
                None => assert!(public, "{what}: no security requirement"),
            }
        }
    }

    // The v2 query body lists the model's metrics.
    let query = &doc["paths"]["/api/v2/query"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    let query = query.get("$ref").and_then(|r| resolve(&doc, r.as_str().unwrap())).unwrap_or(query);
    let metrics: Vec<&str> = query["properties"]["metrics"]["items"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for metric in tidemark_app::query::model::Metric::ALL {
        assert!(metrics.contains(&metric.name()), "metric {} in the query schema", metric.name());
    }
}
