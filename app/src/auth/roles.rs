//! Who may do what on a project: roles of members, scopes of API keys, and the one check every endpoint uses.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// A member's role on one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Editor,
    Owner,
}

/// The scope of a secret API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Admin,
}

/// Everything a request can do to a project; endpoints name one of these, never a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stats, settings, goals, funnels: anything that changes nothing.
    Read,
    EditSettings,
    ManageGoals,
    ManageFunnels,
    ManageMembers,
    ManageKeys,
    DeleteProject,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Owner => "owner",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        match raw {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    pub fn allows(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::Owner => true,
            Role::Editor => matches!(action, Read | EditSettings | ManageGoals | ManageFunnels),
            Role::Viewer => action == Read,
        }
    }
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Scope> {
        match raw {
            "read" => Some(Scope::Read),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    /// An admin key configures the project like an editor; it cannot mint keys, change members or delete the
    /// project, so a leaked key can neither keep itself alive after revocation nor destroy the project.
    pub fn allows(self, action: Action) -> bool {
        match self {
            Scope::Read => action == Action::Read,
            Scope::Admin => Role::Editor.allows(action),
        }
    }
}

/// Who is asking: a signed-in account or a secret key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Account { id: Uuid, is_admin: bool },
    Key { id: Uuid, project: Uuid, scope: Scope },
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The project does not exist or the principal may not even see it: the same answer, so that nobody learns
    /// which project ids exist.
    #[error("no such project")]
    NotFound,
    /// The principal sees the project but may not do this.
    #[error("not allowed")]
    Forbidden,
}

/// The role an account holds on a live project, if any (instance admins act as owners everywhere).
pub async fn role_of(pool: &PgPool, account: Uuid, is_admin: bool, project: Uuid) -> anyhow::Result<Option<Role>> {
    let row: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT m.role FROM projects p LEFT JOIN memberships m ON m.project_id = p.id AND m.account_id = $2 \
         WHERE p.id = $1 AND p.deleted_at IS NULL",
    )
    .bind(project)
    .bind(account)
    .fetch_optional(pool)
    .await
    .context("reading the membership")?;
    Ok(match row {
        None => None,
        Some(_) if is_admin => Some(Role::Owner),
        Some((role,)) => role.as_deref().and_then(Role::parse),
    })
}

/// The one access check: may `who` do `action` on `project`?
pub async fn authorize(
    pool: &PgPool,
    who: &Principal,
    project: Uuid,
    action: Action,
) -> anyhow::Result<Result<(), Denied>> {
    match who {
        Principal::Key { project: own, scope, .. } => {
            if *own != project {
                return Ok(Err(Denied::NotFound));
            }
            Ok(if scope.allows(action) { Ok(()) } else { Err(Denied::Forbidden) })
        }
        Principal::Account { id, is_admin } => Ok(match role_of(pool, *id, *is_admin, project).await? {
            None => Err(Denied::NotFound),
            Some(role) if role.allows(action) => Ok(()),
            Some(_) => Err(Denied::Forbidden),
        }),
    }
}

/// Gives an account a role on a project (replacing its previous role there).
pub async fn grant(pool: &PgPool, project: Uuid, account: Uuid, role: Role) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO memberships (project_id, account_id, role) VALUES ($1, $2, $3) \
         ON CONFLICT (project_id, account_id) DO UPDATE SET role = EXCLUDED.role",
    )
    .bind(project)
    .bind(account)
    .bind(role.as_str())
    .execute(pool)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            anyhow::anyhow!("no project {project} or no account {account}")
        }
        other => anyhow::Error::from(other).context("granting the role"),
    })?;
    Ok(())
}

/// Removes an account from a project; returns whether it was a member.
pub async fn remove(pool: &PgPool, project: Uuid, account: Uuid) -> anyhow::Result<bool> {
    let done = sqlx::query("DELETE FROM memberships WHERE project_id = $1 AND account_id = $2")
        .bind(project)
        .bind(account)
        .execute(pool)
        .await
        .context("removing the member")?;
    Ok(done.rows_affected() == 1)
}

/// Why a membership change was refused.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("no such account")]
    NoAccount,
    #[error("a project keeps at least one owner")]
    LastOwner,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Sets (`Some`) or removes (`None`) an account's role on a live project, refusing any change that leaves the
/// project without an owner. Returns whether a membership row changed.
pub async fn change_member(
    pool: &PgPool,
    project: Uuid,
    account: Uuid,
    role: Option<Role>,
) -> Result<bool, MembershipError> {
    let mut tx = pool.begin().await.context("starting the membership change")?;
    // Serializes changes to one project's members, so two owners cannot demote each other at once.
    sqlx::query("SELECT 1 FROM projects WHERE id = $1 FOR UPDATE")
        .bind(project)
        .execute(&mut *tx)
        .await
        .context("locking the project")?;
    let was_owner: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM memberships WHERE project_id = $1 AND account_id = $2 AND role = 'owner')",
    )
    .bind(project)
    .bind(account)
    .fetch_one(&mut *tx)
    .await
    .context("reading the previous role")?;
    let changed = match role {
        Some(role) => sqlx::query(
            "INSERT INTO memberships (project_id, account_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (project_id, account_id) DO UPDATE SET role = EXCLUDED.role",
        )
        .bind(project)
        .bind(account)
        .bind(role.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => MembershipError::NoAccount,
            other => MembershipError::Other(anyhow::Error::from(other).context("setting the role")),
        })?,
        None => sqlx::query("DELETE FROM memberships WHERE project_id = $1 AND account_id = $2")
            .bind(project)
            .bind(account)
            .execute(&mut *tx)
            .await
            .context("removing the member")?,
    };
    if was_owner && role != Some(Role::Owner) {
        let owners: i64 =
            sqlx::query_scalar("SELECT count(*) FROM memberships WHERE project_id = $1 AND role = 'owner'")
                .bind(project)
                .fetch_one(&mut *tx)
                .await
                .context("counting the owners")?;
        if owners == 0 {
            // Dropping the transaction rolls the change back.
            return Err(MembershipError::LastOwner);
        }
    }
    tx.commit().await.context("committing the membership change")?;
    Ok(changed.rows_affected() > 0)
}

/// A project's members, for its owners.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Member {
    pub account: Uuid,
    pub email: String,
    pub role: String,
}

pub async fn members(pool: &PgPool, project: Uuid) -> anyhow::Result<Vec<Member>> {
    sqlx::query_as(
        "SELECT a.id AS account, a.email, m.role FROM memberships m JOIN accounts a ON a.id = m.account_id \
         WHERE m.project_id = $1 ORDER BY a.email",
    )
    .bind(project)
    .fetch_all(pool)
    .await
    .context("listing the members")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Action; 7] = [
        Action::Read,
        Action::EditSettings,
        Action::ManageGoals,
        Action::ManageFunnels,
        Action::ManageMembers,
        Action::ManageKeys,
        Action::DeleteProject,
    ];

    fn allowed(check: impl Fn(Action) -> bool) -> Vec<Action> {
        ALL.into_iter().filter(|a| check(*a)).collect()
    }

    #[test]
    fn each_role_may_do_exactly_its_part() {
        assert_eq!(allowed(|a| Role::Owner.allows(a)), ALL.to_vec());
        assert_eq!(
            allowed(|a| Role::Editor.allows(a)),
            vec![Action::Read, Action::EditSettings, Action::ManageGoals, Action::ManageFunnels]
        );
        assert_eq!(allowed(|a| Role::Viewer.allows(a)), vec![Action::Read]);
    }

    #[test]
    fn keys_never_manage_keys_members_or_deletion() {
        assert_eq!(allowed(|a| Scope::Read.allows(a)), vec![Action::Read]);
        let admin = allowed(|a| Scope::Admin.allows(a));
        assert!(admin.contains(&Action::EditSettings));
        for a in [Action::ManageKeys, Action::ManageMembers, Action::DeleteProject] {
            assert!(!admin.contains(&a), "{a:?}");
        }
    }

    #[test]
    fn names_round_trip() {
        for r in [Role::Viewer, Role::Editor, Role::Owner] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        for s in [Scope::Read, Scope::Admin] {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Role::parse("Owner"), None);
    }
}
