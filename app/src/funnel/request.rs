//! The funnel request's JSON, read into a typed [`Funnel`]. `site_id`, `date_range` and `filters` are read by the
//! query API's own parser (so they take the same forms and fail with the same words at the same pointers); only
//! `steps` and `window` are read here.

use serde_json::{Map, Value, json};

use crate::goals::input::{MAX_NAME, MAX_PAGE_PATH};
use crate::query::QueryError;
use crate::query::model::{DateRange, Filter};

pub const MIN_STEPS: usize = 2;
pub const MAX_STEPS: usize = 8;
/// The default window, in seconds: Plausible's visit ends after 30 idle minutes, so a funnel a visitor walks
/// through in one sitting fits, without depending on how sessions were stitched.
pub const DEFAULT_WINDOW: u64 = 1800;
/// The longest window, in seconds (a day).
pub const MAX_WINDOW: u64 = 86_400;

const KEYS: [&str; 5] = ["site_id", "date_range", "filters", "steps", "window"];

/// One step: what an event must be to complete it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A pageview whose path matches the pattern (`*` any characters but `/`, `**` any characters).
    Page(String),
    /// A custom event with exactly this name.
    Event(String),
    /// A goal of the project, by display name.
    Goal(String),
}

impl Step {
    pub fn label(&self) -> &str {
        match self {
            Step::Page(s) | Step::Event(s) | Step::Goal(s) => s,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Step::Page(s) => json!({ "page": s }),
            Step::Event(s) => json!({ "event": s }),
            Step::Goal(s) => json!({ "goal": s }),
        }
    }
}

/// How close together the steps must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Every step within this many seconds of the first.
    Seconds(u64),
    /// Every step within one visit (session).
    Session,
}

impl Window {
    pub fn to_json(self) -> Value {
        match self {
            Window::Seconds(n) => json!(n),
            Window::Session => json!("session"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Funnel {
    pub site_id: String,
    pub date_range: DateRange,
    pub filters: Vec<Filter>,
    /// The filters as sent, for the answer's echo.
    pub filters_json: Value,
    pub steps: Vec<Step>,
    pub window: Window,
}

fn at(pointer: &str, message: &str) -> QueryError {
    QueryError::new(format!("{pointer}: {message}"))
}

pub fn from_value(value: &Value) -> Result<Funnel, QueryError> {
    let Some(object) = value.as_object() else {
        return Err(at("#", "Expected an object."));
    };
    if let Some(key) = object.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(at(&format!("#/{key}"), "Schema does not allow additional properties."));
    }
    for key in ["site_id", "date_range", "steps"] {
        if !object.contains_key(key) {
            return Err(at("#", &format!("Required property {key} was not present.")));
        }
    }
    // The query API's parser reads the parts the two APIs share.
    let mut shared = Map::new();
    for key in ["site_id", "date_range", "filters"] {
        if let Some(v) = object.get(key) {
            shared.insert(key.to_owned(), v.clone());
        }
    }
    shared.insert("metrics".into(), json!(["visitors"]));
    let query = crate::query::parse_value(&Value::Object(shared))?;
    let steps = steps(&object["steps"])?;
    let window = window(object.get("window"))?;
    Ok(Funnel {
        site_id: query.site_id,
        date_range: query.date_range,
        filters: query.filters,
        filters_json: object.get("filters").cloned().unwrap_or_else(|| json!([])),
        steps,
        window,
    })
}

fn steps(value: &Value) -> Result<Vec<Step>, QueryError> {
    let Some(items) = value.as_array() else {
        return Err(at("#/steps", "Expected an array of steps."));
    };
    if !(MIN_STEPS..=MAX_STEPS).contains(&items.len()) {
        return Err(at("#/steps", &format!("Expected {MIN_STEPS} to {MAX_STEPS} steps but got {}.", items.len())));
    }
    items.iter().enumerate().map(|(i, item)| step(i, item)).collect()
}

fn step(i: usize, item: &Value) -> Result<Step, QueryError> {
    let here = format!("#/steps/{i}");
    let shape = "Expected exactly one of {\"page\": pattern}, {\"event\": name} or {\"goal\": display name}.";
    let Some(object) = item.as_object().filter(|o| o.len() == 1) else {
        return Err(at(&here, shape));
    };
    let (key, value) = object.iter().next().ok_or_else(|| at(&here, shape))?;
    let pointer = format!("{here}/{key}");
    let max = match key.as_str() {
        "page" => MAX_PAGE_PATH,
        "event" | "goal" => MAX_NAME,
        _ => return Err(at(&here, shape)),
    };
    let Some(text) = value.as_str() else {
        return Err(at(&pointer, "Expected a string."));
    };
    let chars = text.chars().count();
    if chars == 0 || chars > max {
        return Err(at(&pointer, &format!("Expected 1 to {max} characters.")));
    }
    if text.chars().any(char::is_control) {
        return Err(at(&pointer, "Must not contain control characters."));
    }
    Ok(match key.as_str() {
        "page" if !text.starts_with('/') => return Err(at(&pointer, "A page pattern is a path: it starts with `/`.")),
        "page" => Step::Page(text.to_owned()),
        "event" => Step::Event(text.to_owned()),
        _ => Step::Goal(text.to_owned()),
    })
}

fn window(value: Option<&Value>) -> Result<Window, QueryError> {
    match value {
        None => Ok(Window::Seconds(DEFAULT_WINDOW)),
        Some(Value::String(s)) if s == "session" => Ok(Window::Session),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_WINDOW).contains(&n) => Ok(Window::Seconds(n)),
            _ => Err(at(
                "#/window",
                &format!("Expected a number of seconds from 1 to {MAX_WINDOW}, or \"session\"; got {v}."),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: Value) -> String {
        from_value(&body).map(|_| ()).unwrap_err().message
    }

    #[test]
    fn errors_name_the_part() {
        let base = |steps: Value| json!({ "site_id": "a.example", "date_range": "7d", "steps": steps });
        assert!(err(base(json!([{ "page": "/" }]))).starts_with("#/steps: Expected 2 to 8"));
        assert!(err(base(json!([{ "page": "/" }, { "page": "pricing" }]))).starts_with("#/steps/1/page:"));
        assert!(err(base(json!([{ "page": "/" }, { "url": "/x" }]))).starts_with("#/steps/1:"));
        assert!(err(base(json!([{ "page": "/" }, { "event": 3 }]))).starts_with("#/steps/1/event:"));
        let mut b = base(json!([{ "page": "/" }, { "event": "E" }]));
        b["window"] = json!(0);
        assert!(err(b.clone()).starts_with("#/window:"));
        b["window"] = json!("day");
        assert!(err(b.clone()).starts_with("#/window:"));
        b["date_range"] = json!("yesterday");
        assert!(err(b).starts_with("#/date_range:"));
        let ok = from_value(&base(json!([{ "page": "/" }, { "goal": "Signup" }]))).unwrap();
        assert_eq!(ok.window, Window::Seconds(DEFAULT_WINDOW));
    }
}
