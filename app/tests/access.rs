//! Accounts and access against real PostgreSQL: roles, secret keys, sessions, the login throttle and the HTTP
//! endpoints that use them.

use tidemark_app::auth::keys;
use tidemark_app::auth::roles::{self, Action, Denied, Principal, Role, Scope};
use tidemark_app::users;
use tidemark_testkit::test_env;

#[tokio::test]
async fn a_key_of_one_project_cannot_reach_another() {
    let env = test_env().await;
    let (a, _) = env.project(&[]).await;
    let (b, _) = env.project(&[]).await;
    let created = keys::create(&env.pg, a, Scope::Read, "export script").await.unwrap();
    assert!(created.key.starts_with("tmk_"));
    let who = keys::verify(&env.pg, &created.key).await.unwrap().expect("a fresh key works");
    assert_eq!(who, Principal::Key { id: created.id, project: a, scope: Scope::Read });
    assert_eq!(roles::authorize(&env.pg, &who, a, Action::Read).await.unwrap(), Ok(()));
    assert_eq!(roles::authorize(&env.pg, &who, b, Action::Read).await.unwrap(), Err(Denied::NotFound));
    assert_eq!(roles::authorize(&env.pg, &who, a, Action::EditSettings).await.unwrap(), Err(Denied::Forbidden));
}

#[tokio::test]
async fn keys_are_stored_hashed_and_revocation_is_immediate() {
    let env = test_env().await;
    let (project, _) = env.project(&[]).await;
    let created = keys::create(&env.pg, project, Scope::Admin, "ci").await.unwrap();
    let (hash, prefix, used): (Vec<u8>, String, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT secret_hash, prefix, last_used_at FROM api_keys WHERE id = $1")
            .bind(created.id)
            .fetch_one(&env.pg)
            .await
            .unwrap();
    let secret = created.key.rsplit('_').next().unwrap();
    assert_eq!(hash.len(), 32);
    assert!(!hash.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret itself is not stored");
    assert!(created.key.contains(&prefix));
    assert!(used.is_none());

    assert!(keys::verify(&env.pg, &created.key).await.unwrap().is_some());
    let used: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE id = $1")
            .bind(created.id)
            .fetch_one(&env.pg)
            .await
            .unwrap();
    assert!(used.is_some(), "use is recorded");

    // The right prefix with a wrong secret fails.
    let mut forged = created.key.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });
    assert!(keys::verify(&env.pg, &forged).await.unwrap().is_none());

    assert!(keys::revoke(&env.pg, created.id).await.unwrap());
    assert!(keys::verify(&env.pg, &created.key).await.unwrap().is_none(), "revoked keys fail at once");
    assert!(!keys::revoke(&env.pg, created.id).await.unwrap());
    assert!(keys::create(&env.pg, uuid::Uuid::new_v4(), Scope::Read, "").await.is_err());
}

#[tokio::test]
async fn members_act_by_role_and_outsiders_see_nothing() {
    let env = test_env().await;
    let (project, _) = env.project(&[]).await;
    let mut who = Vec::new();
    for (email, admin) in
        [("owner@x.test", false), ("viewer@x.test", false), ("out@x.test", false), ("root@x.test", true)]
    {
        let id = users::create(&env.pg, email, "a long enough password", admin).await.unwrap();
        who.push(Principal::Account { id, is_admin: admin });
    }
    let id_of = |p: &Principal| match p {
        Principal::Account { id, .. } => *id,
        Principal::Key { .. } => unreachable!(),
    };
    roles::grant(&env.pg, project, id_of(&who[0]), Role::Owner).await.unwrap();
    roles::grant(&env.pg, project, id_of(&who[1]), Role::Viewer).await.unwrap();
    let check = |p: usize, action: Action| {
        let pool = env.pg.clone();
        let principal = who[p].clone();
        async move { roles::authorize(&pool, &principal, project, action).await.unwrap() }
    };
    assert_eq!(check(0, Action::DeleteProject).await, Ok(()));
    assert_eq!(check(1, Action::Read).await, Ok(()));
    assert_eq!(check(1, Action::EditSettings).await, Err(Denied::Forbidden), "a viewer cannot mutate");
    assert_eq!(check(2, Action::Read).await, Err(Denied::NotFound), "an outsider does not learn the project exists");
    assert_eq!(check(3, Action::ManageMembers).await, Ok(()), "instance admins act as owners");

    roles::grant(&env.pg, project, id_of(&who[1]), Role::Editor).await.unwrap();
    assert_eq!(check(1, Action::ManageGoals).await, Ok(()));
    assert_eq!(check(1, Action::ManageKeys).await, Err(Denied::Forbidden));
    assert!(roles::remove(&env.pg, project, id_of(&who[1])).await.unwrap());
    assert_eq!(check(1, Action::Read).await, Err(Denied::NotFound));

    sqlx::query("UPDATE projects SET deleted_at = now() WHERE id = $1").bind(project).execute(&env.pg).await.unwrap();
    assert_eq!(check(0, Action::Read).await, Err(Denied::NotFound), "deleted projects are gone for everyone");
    assert_eq!(check(3, Action::Read).await, Err(Denied::NotFound));
}

#[tokio::test]
async fn only_the_first_admin_comes_from_the_first_run_path() {
    let env = test_env().await;
    assert!(!users::any_admin(&env.pg).await.unwrap());
    users::create(&env.pg, "member@x.test", "a long enough password", false).await.unwrap();
    assert!(!users::any_admin(&env.pg).await.unwrap(), "a plain member is not an admin");
    let first = users::create_first_admin(&env.pg, "first@x.test", "a long enough password").await.unwrap();
    assert!(first.is_some());
    assert!(users::any_admin(&env.pg).await.unwrap());
    let second = users::create_first_admin(&env.pg, "second@x.test", "a long enough password").await.unwrap();
    assert_eq!(second, None, "the path closes once an admin exists");
    assert!(users::find_for_login(&env.pg, "second@x.test").await.unwrap().is_none());
}
