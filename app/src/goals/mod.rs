//! Conversion goals of a project: what `event:goal`, `conversion_rate` and funnels count.
//!
//! The type lives here, shared by the control plane (which stores goals in PostgreSQL and manages them over HTTP)
//! and the query planner (which turns a goal into a condition on `events`). Names follow Plausible's goals: a goal
//! is either a custom event name or a page path pattern, and answers name it by its display name.

pub mod input;
pub mod store;

/// One goal as the planner and the API see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Goal {
    pub id: i64,
    /// What answers call the goal (`event:goal` values): by default the event name, or `Visit <pattern>`.
    pub display_name: String,
    pub kind: GoalKind,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "goal_type")]
pub enum GoalKind {
    /// A custom event with exactly this name.
    Event { event_name: String },
    /// A pageview whose path matches the pattern: `*` stands for any characters except `/`, `**` for any characters.
    Page { page_path: String },
}

impl Goal {
    /// Plausible's default display name: the event name, or `Visit ` and the page pattern.
    pub fn default_display_name(kind: &GoalKind) -> String {
        match kind {
            GoalKind::Event { event_name } => event_name.clone(),
            GoalKind::Page { page_path } => format!("Visit {page_path}"),
        }
    }
}

/// The page pattern as an anchored RE2 regular expression (ClickHouse's `match`): `**` any characters, `*` any
/// characters but `/`, everything else literal.
pub fn page_pattern_regex(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    out.push('^');
    let mut chars = pattern.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(".*");
            }
            '*' => out.push_str("[^/]*"),
            c if "\\.+?()[]{}|^$".contains(c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('$');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_patterns_become_anchored_regexes() {
        assert_eq!(page_pattern_regex("/pricing"), "^/pricing$");
        assert_eq!(page_pattern_regex("/blog/*"), "^/blog/[^/]*$");
        assert_eq!(page_pattern_regex("/docs/**"), "^/docs/.*$");
        assert_eq!(page_pattern_regex("/a.b?c"), "^/a\\.b\\?c$");
    }

    #[test]
    fn default_display_names_follow_plausible() {
        assert_eq!(Goal::default_display_name(&GoalKind::Event { event_name: "Signup".into() }), "Signup");
        assert_eq!(Goal::default_display_name(&GoalKind::Page { page_path: "/pricing".into() }), "Visit /pricing");
    }
}
