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

mod sessions_and_login {
    use std::time::Duration;
    use tidemark_app::auth::login::{Outcome, login};
    use tidemark_app::auth::sessions::{self, Lifetimes};
    use tidemark_app::auth::throttle::Throttle;
    use tidemark_app::users;
    use tidemark_testkit::test_env;

    const PASSWORD: &str = "a long enough password";

    /// Moves a session's times into the past, as if that much time had gone by.
    async fn age_session(pool: &sqlx::PgPool, created_secs: f64, seen_secs: f64) {
        sqlx::query(
            "UPDATE sessions SET created_at = now() - make_interval(secs => $1), \
             last_seen_at = now() - make_interval(secs => $2)",
        )
        .bind(created_secs)
        .bind(seen_secs)
        .execute(pool)
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn sessions_end_when_idle_or_too_old_and_store_no_usable_id() {
        let env = test_env().await;
        let account = users::create(&env.pg, "s@x.test", PASSWORD, false).await.unwrap();
        let life = Lifetimes { idle: Duration::from_secs(600), absolute: Duration::from_secs(3600) };
        let session = sessions::open(&env.pg, account, life).await.unwrap();
        let live = sessions::find(&env.pg, &session.id, life).await.unwrap().expect("fresh session");
        assert_eq!(live.account, account);
        assert!(live.csrf_matches(&session.csrf) && !live.csrf_matches("") && !live.csrf_matches("x"));
        let stored: Vec<u8> = sqlx::query_scalar("SELECT id_hash FROM sessions").fetch_one(&env.pg).await.unwrap();
        assert_ne!(stored, session.id.as_bytes(), "only a hash of the cookie is stored");
        assert!(sessions::find(&env.pg, "not-a-session", life).await.unwrap().is_none());

        age_session(&env.pg, 900.0, 500.0).await;
        assert!(sessions::find(&env.pg, &session.id, life).await.unwrap().is_some(), "used within the idle time");
        let seen: f64 = sqlx::query_scalar("SELECT extract(epoch FROM now() - last_seen_at)::float8 FROM sessions")
            .fetch_one(&env.pg)
            .await
            .unwrap();
        assert!(seen < 5.0, "a use pushes the idle expiry back");

        age_session(&env.pg, 900.0, 601.0).await;
        assert!(sessions::find(&env.pg, &session.id, life).await.unwrap().is_none(), "idle expiry");

        let session = sessions::open(&env.pg, account, life).await.unwrap();
        age_session(&env.pg, 3601.0, 1.0).await;
        assert!(sessions::find(&env.pg, &session.id, life).await.unwrap().is_none(), "absolute expiry");

        let session = sessions::open(&env.pg, account, life).await.unwrap();
        assert!(sessions::close(&env.pg, &session.id).await.unwrap());
        assert!(sessions::find(&env.pg, &session.id, life).await.unwrap().is_none(), "closed at once");
    }

    #[tokio::test]
    async fn five_failures_lock_an_email_whether_or_not_it_has_an_account() {
        let env = test_env().await;
        users::create(&env.pg, "real@x.test", PASSWORD, false).await.unwrap();
        let throttle = Throttle::default();
        let life = Lifetimes::default();
        for email in ["real@x.test", "ghost@x.test"] {
            let mut answers = Vec::new();
            for _ in 0..5 {
                answers.push(login(&env.pg, &throttle, life, email, "wrong password!").await.unwrap());
            }
            assert!(answers[..4].iter().all(|o| matches!(o, Outcome::Refused)), "{email}: {answers:?}");
            assert!(matches!(answers[4], Outcome::Locked { .. }), "{email}: the fifth failure locks");
            // Locked: even the right password is refused, with the same answer as for a missing account.
            match login(&env.pg, &throttle, life, email, PASSWORD).await.unwrap() {
                Outcome::Locked { retry_after } => {
                    assert!(retry_after > Duration::from_secs(14 * 60) && retry_after <= Duration::from_secs(15 * 60))
                }
                other => panic!("{email}: {other:?}"),
            }
        }
        // Another e-mail is not affected, and differently written addresses are one throttle.
        users::create(&env.pg, "other@x.test", PASSWORD, false).await.unwrap();
        assert!(matches!(
            login(&env.pg, &throttle, life, " Other@X.test", PASSWORD).await.unwrap(),
            Outcome::SignedIn { .. }
        ));
        assert!(matches!(
            login(&env.pg, &throttle, life, "REAL@x.test ", PASSWORD).await.unwrap(),
            Outcome::Locked { .. }
        ));
        // Fifteen minutes later the lock is gone and the right password works.
        sqlx::query("UPDATE login_throttle SET locked_until = now() - interval '1 second'")
            .execute(&env.pg)
            .await
            .unwrap();
        assert!(matches!(
            login(&env.pg, &throttle, life, "real@x.test", PASSWORD).await.unwrap(),
            Outcome::SignedIn { .. }
        ));
    }

    #[tokio::test]
    async fn failures_outside_the_window_do_not_add_up_and_success_resets() {
        let env = test_env().await;
        users::create(&env.pg, "w@x.test", PASSWORD, false).await.unwrap();
        let throttle = Throttle { max_failures: 3, window: Duration::from_secs(60), lock: Duration::from_secs(60) };
        let life = Lifetimes::default();
        for _ in 0..2 {
            assert!(matches!(
                login(&env.pg, &throttle, life, "w@x.test", "wrong password!").await.unwrap(),
                Outcome::Refused
            ));
        }
        sqlx::query("UPDATE login_throttle SET window_started_at = now() - interval '61 seconds'")
            .execute(&env.pg)
            .await
            .unwrap();
        for _ in 0..2 {
            assert!(matches!(
                login(&env.pg, &throttle, life, "w@x.test", "wrong password!").await.unwrap(),
                Outcome::Refused
            ));
        }
        assert!(matches!(
            login(&env.pg, &throttle, life, "w@x.test", PASSWORD).await.unwrap(),
            Outcome::SignedIn { .. }
        ));
        for _ in 0..2 {
            assert!(matches!(
                login(&env.pg, &throttle, life, "w@x.test", "wrong password!").await.unwrap(),
                Outcome::Refused
            ));
        }
        assert!(matches!(
            login(&env.pg, &throttle, life, "w@x.test", "wrong password!").await.unwrap(),
            Outcome::Locked { .. }
        ));
    }

    #[tokio::test]
    async fn parallel_guesses_cannot_pass_the_limit() {
        let env = test_env().await;
        users::create(&env.pg, "p@x.test", PASSWORD, false).await.unwrap();
        let throttle = Throttle::default();
        let guesses = (0..12).map(|i| {
            let pool = env.pg.clone();
            // One of the guesses is right: with the limit enforced before checking, it may or may not be among
            // the five that get checked, but never more than five are.
            let password = if i == 11 { PASSWORD.to_owned() } else { format!("wrong password {i}") };
            tokio::spawn(
                async move { login(&pool, &throttle, Lifetimes::default(), "p@x.test", &password).await.unwrap() },
            )
        });
        let mut locked = 0;
        for guess in guesses.collect::<Vec<_>>() {
            if matches!(guess.await.unwrap(), Outcome::Locked { .. }) {
                locked += 1;
            }
        }
        assert!(locked >= 7, "at most five passwords were checked, {locked} locked answers");
    }

    #[tokio::test]
    async fn unknown_emails_cost_about_as_much_as_wrong_passwords() {
        let env = test_env().await;
        users::create(&env.pg, "t@x.test", PASSWORD, false).await.unwrap();
        let throttle = Throttle { max_failures: 100, ..Throttle::default() };
        let life = Lifetimes::default();
        // Warm up (the dummy hash is computed once).
        login(&env.pg, &throttle, life, "nobody@x.test", "wrong password!").await.unwrap();
        // Alternate the two so that load from other tests falls on both alike.
        let (mut known, mut unknown) = (0.0, 0.0);
        for _ in 0..4 {
            for (email, total) in [("t@x.test", &mut known), ("nobody@x.test", &mut unknown)] {
                let start = std::time::Instant::now();
                let outcome = login(&env.pg, &throttle, life, email, "wrong password!").await.unwrap();
                *total += start.elapsed().as_secs_f64();
                assert!(matches!(outcome, Outcome::Refused), "{email}: {outcome:?}");
            }
        }
        let ratio = known / unknown;
        assert!((0.5..2.0).contains(&ratio), "known {known:.3}s, unknown {unknown:.3}s");
    }
}
