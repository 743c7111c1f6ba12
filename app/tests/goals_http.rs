//! Goals over real HTTP against real PostgreSQL: add, list, remove, the field errors of bad goals, and who may do
//! each (viewers and read keys read; editors, owners and admin keys manage).

mod http_support;

use http_support::{Who, spawn_app};
use reqwest::StatusCode;
use serde_json::json;
use tidemark_app::auth::roles::{Role, Scope};
use tidemark_app::goals::{GoalKind, store};

#[tokio::test]
async fn editors_add_and_remove_goals_and_viewers_read_them() {
    let app = spawn_app().await;
    let (_, owner) = app.signed_in("owner@x.test", false).await;
    let (editor_id, editor) = app.signed_in("editor@x.test", false).await;
    let (viewer_id, viewer) = app.signed_in("viewer@x.test", false).await;
    let (project, _) = app.project(&owner, "Shop").await;
    app.grant(project, editor_id, Role::Editor).await;
    app.grant(project, viewer_id, Role::Viewer).await;
    let path = format!("/api/v1/projects/{project}/goals");

    let (status, signup) = app.post(&path, Who::Browser(&editor), json!({ "event_name": "Signup" })).await;
    assert_eq!(status, StatusCode::CREATED, "{signup}");
    assert_eq!(signup["display_name"], "Signup");
    assert_eq!((&signup["goal_type"], &signup["event_name"]), (&json!("event"), &json!("Signup")));
    let (status, pricing) = app
        .post(&path, Who::Browser(&owner), json!({ "page_path": " /pricing/** ", "display_name": "Saw prices" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pricing}");
    let (status, blog) = app.post(&path, Who::Browser(&owner), json!({ "page_path": "/blog/*" })).await;
    assert_eq!(status, StatusCode::CREATED, "{blog}");
    assert_eq!(blog["display_name"], "Visit /blog/*", "Plausible's default name");

    let (status, listed) = app.get(&path, Who::Browser(&viewer)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed,
        json!([
            { "id": signup["id"], "display_name": "Signup", "goal_type": "event", "event_name": "Signup" },
            { "id": pricing["id"], "display_name": "Saw prices", "goal_type": "page", "page_path": "/pricing/**" },
            { "id": blog["id"], "display_name": "Visit /blog/*", "goal_type": "page", "page_path": "/blog/*" },
        ])
    );
    // What the query planner reads is what the API wrote.
    let stored = store::list(&app.env.pg, project).await.unwrap();
    assert_eq!(stored[1].kind, GoalKind::Page { page_path: "/pricing/**".into() });

    let (status, answer) =
        app.post(&path, Who::Browser(&editor), json!({ "event_name": "Other", "display_name": "Signup" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("display_name"), "{answer}");

    let goal = |id: &serde_json::Value| format!("{path}/{id}");
    assert_eq!(app.delete(&goal(&signup["id"]), Who::Browser(&viewer)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.delete(&goal(&signup["id"]), Who::CookieOnly(&editor)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.delete(&goal(&signup["id"]), Who::Browser(&editor)).await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.delete(&goal(&signup["id"]), Who::Browser(&editor)).await.0, StatusCode::NOT_FOUND);
    let (status, answer) = app.delete(&format!("{path}/not-a-number"), Who::Browser(&editor)).await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some("path")), "{answer}");
    let (_, listed) = app.get(&path, Who::Browser(&owner)).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_goals_get_a_400_naming_the_field() {
    let app = spawn_app().await;
    let (_, owner) = app.signed_in("owner@x.test", false).await;
    let (project, _) = app.project(&owner, "Shop").await;
    let path = format!("/api/v1/projects/{project}/goals");
    for (body, field) in [
        (json!({}), "event_name"),
        (json!({ "event_name": "Signup", "page_path": "/signup" }), "page_path"),
        (json!({ "page_path": "pricing" }), "page_path"),
        (json!({ "page_path": "/a b" }), "page_path"),
        (json!({ "event_name": "" }), "event_name"),
        (json!({ "event_name": "x".repeat(121) }), "event_name"),
        (json!({ "event_name": "Signup", "display_name": "  " }), "display_name"),
        (json!({ "page_path": format!("/{}", "p".repeat(200)) }), "display_name"),
        (json!({ "event_name": 7 }), "body"),
        (json!({ "event_name": "Signup", "colour": "red" }), "colour"),
    ] {
        let (status, answer) = app.post(&path, Who::Browser(&owner), body.clone()).await;
        assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{body}: {answer}");
    }
    assert_eq!(app.get(&path, Who::Browser(&owner)).await.1, json!([]), "no bad goal was stored");
}

#[tokio::test]
async fn keys_and_outsiders_get_what_their_scope_allows() {
    let app = spawn_app().await;
    let (_, owner) = app.signed_in("owner@x.test", false).await;
    let (_, outsider) = app.signed_in("outsider@x.test", false).await;
    let (project, _) = app.project(&owner, "Shop").await;
    let (other, _) = app.project(&owner, "Other").await;
    let path = format!("/api/v1/projects/{project}/goals");
    let read_key = app.key(project, Scope::Read).await;
    let admin_key = app.key(project, Scope::Admin).await;
    let other_key = app.key(other, Scope::Admin).await;

    let (status, created) = app.post(&path, Who::Key(&admin_key), json!({ "event_name": "Purchase" })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, listed) = app.get(&path, Who::Key(&read_key)).await;
    assert_eq!((status, listed.as_array().map(Vec::len)), (StatusCode::OK, Some(1)));
    assert_eq!(app.post(&path, Who::Key(&read_key), json!({ "event_name": "X" })).await.0, StatusCode::FORBIDDEN);
    let goal = format!("{path}/{}", created["id"]);
    assert_eq!(app.delete(&goal, Who::Key(&read_key)).await.0, StatusCode::FORBIDDEN);

    // Another project's key and a non-member cannot even see that the project exists.
    assert_eq!(app.get(&path, Who::Key(&other_key)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&goal, Who::Key(&other_key)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&path, Who::Browser(&outsider)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&path, Who::Nobody).await.0, StatusCode::UNAUTHORIZED);
    // A goal id is only found under its own project.
    assert_eq!(
        app.delete(&format!("/api/v1/projects/{other}/goals/{}", created["id"]), Who::Key(&other_key)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.delete(&goal, Who::Key(&admin_key)).await.0, StatusCode::NO_CONTENT);
}

/// Runs the `app` binary against this test's database.
fn app_cli(env: &tidemark_testkit::TestEnv, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_app"))
        .args(args)
        .env("TIDEMARK_POSTGRES_URL", &env.postgres_url)
        .env("TIDEMARK_CONFIG", "/dev/null")
        .env("RUST_LOG", "error")
        .output()
        .expect("the app binary runs")
}

#[tokio::test]
async fn the_cli_adds_and_lists_goals_as_json_lines() {
    let app = spawn_app().await;
    let (_, owner) = app.signed_in("owner@x.test", false).await;
    let (project, _) = app.project(&owner, "Shop").await;
    let id = project.to_string();

    let added = app_cli(&app.env, &["goal", "add", "--project", &id, "--event", "Signup"]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let line: serde_json::Value = serde_json::from_slice(&added.stdout).unwrap();
    assert_eq!((&line["goal_type"], &line["display_name"]), (&json!("event"), &json!("Signup")));
    let added = app_cli(&app.env, &["goal", "add", "--project", &id, "--page", "/pricing/**", "--name", "Pricing"]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));

    let bad = app_cli(&app.env, &["goal", "add", "--project", &id, "--page", "pricing"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("page_path"), "{}", String::from_utf8_lossy(&bad.stderr));
    let both = app_cli(&app.env, &["goal", "add", "--project", &id, "--page", "/a", "--event", "A"]);
    assert!(!both.status.success(), "clap refuses both kinds");

    let listed = app_cli(&app.env, &["goal", "list", "--project", &id]);
    assert!(listed.status.success());
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&listed.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[1],
        json!({ "id": lines[1]["id"], "display_name": "Pricing", "goal_type": "page",
                                 "page_path": "/pricing/**" })
    );
    // The CLI and the API show goals alike.
    let (_, api) = app.get(&format!("/api/v1/projects/{project}/goals"), Who::Browser(&owner)).await;
    assert_eq!(api, json!(lines));
}
