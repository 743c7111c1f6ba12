//! What a new goal may be, checked once for the API and the CLI: exactly one kind, a page pattern that is a path,
//! and lengths PostgreSQL's checks (0004_goals.sql) accept, so bad input is a 400 naming the field, never a 500.

use super::{Goal, GoalKind};

/// Longest event name and display name, in characters (as the table's checks count them).
pub const MAX_NAME: usize = 120;
/// Longest page pattern, in characters.
pub const MAX_PAGE_PATH: usize = 2000;

/// Bad input: the field at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub problem: String,
}

fn invalid(field: &'static str, problem: impl Into<String>) -> Invalid {
    Invalid { field, problem: problem.into() }
}

fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), Invalid> {
    let chars = value.chars().count();
    if chars == 0 || chars > max {
        return Err(invalid(field, format!("must be 1 to {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// A goal to create: its kind and the display name it will carry (Plausible's default when none is given).
pub fn new_goal(
    event_name: Option<&str>,
    page_path: Option<&str>,
    display_name: Option<&str>,
) -> Result<(GoalKind, String), Invalid> {
    let kind = match (event_name, page_path) {
        (Some(event_name), None) => {
            let event_name = event_name.trim();
            check_text("event_name", event_name, MAX_NAME)?;
            GoalKind::Event { event_name: event_name.to_owned() }
        }
        (None, Some(page_path)) => {
            let page_path = page_path.trim();
            check_text("page_path", page_path, MAX_PAGE_PATH)?;
            if !page_path.starts_with('/') {
                return Err(invalid("page_path", "must start with `/` (for example /pricing or /blog/**)"));
            }
            if page_path.chars().any(char::is_whitespace) {
                return Err(invalid("page_path", "must not contain spaces"));
            }
            GoalKind::Page { page_path: page_path.to_owned() }
        }
        (Some(_), Some(_)) => return Err(invalid("page_path", "give either event_name or page_path, not both")),
        (None, None) => return Err(invalid("event_name", "give either event_name or page_path")),
    };
    let display_name = match display_name {
        Some(name) => {
            let name = name.trim();
            check_text("display_name", name, MAX_NAME)?;
            name.to_owned()
        }
        None => {
            let name = Goal::default_display_name(&kind);
            if name.chars().count() > MAX_NAME {
                return Err(invalid(
                    "display_name",
                    format!("the default name is longer than {MAX_NAME} characters; give a shorter display_name"),
                ));
            }
            name
        }
    };
    Ok((kind, display_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_kind() {
        assert_eq!(new_goal(None, None, None).unwrap_err().field, "event_name");
        assert_eq!(new_goal(Some("Signup"), Some("/x"), None).unwrap_err().field, "page_path");
        assert_eq!(
            new_goal(Some(" Signup "), None, None).unwrap(),
            (GoalKind::Event { event_name: "Signup".into() }, "Signup".into())
        );
        assert_eq!(
            new_goal(None, Some("/pricing/**"), Some("Pricing")).unwrap(),
            (GoalKind::Page { page_path: "/pricing/**".into() }, "Pricing".into())
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        assert_eq!(new_goal(None, Some("pricing"), None).unwrap_err().field, "page_path");
        assert_eq!(new_goal(None, Some("/a b"), None).unwrap_err().field, "page_path");
        assert_eq!(new_goal(Some(""), None, None).unwrap_err().field, "event_name");
        assert_eq!(new_goal(Some(&"x".repeat(121)), None, None).unwrap_err().field, "event_name");
        assert_eq!(new_goal(Some("a\u{0}b"), None, None).unwrap_err().field, "event_name");
        assert_eq!(new_goal(Some("Signup"), None, Some(" ")).unwrap_err().field, "display_name");
        let long_path = format!("/{}", "p".repeat(200));
        assert_eq!(new_goal(None, Some(&long_path), None).unwrap_err().field, "display_name");
        assert!(new_goal(None, Some(&long_path), Some("Long page")).is_ok());
        assert!(new_goal(Some(&"é".repeat(120)), None, None).is_ok(), "characters, not bytes");
    }
}
