//! What clients send, and the checks that turn it into a [`ValidEvent`]. Every rejection names the field, with
//! the event's index for batches (`[3].url`).

use crate::error::IngestError;
use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::marker::PhantomData;
use tidemark_shared::job::EventType;

const MAX_URL: usize = 2048;
const MAX_NAME: usize = 200;
const MAX_TITLE: usize = 512;
const MAX_ID: usize = 128;
const MAX_USER_ID: usize = 256;
const MAX_PROP_KEY: usize = 128;
const MAX_SCREEN_WIDTH: u32 = 32_768;

/// One event as a client sends it.
#[derive(Debug, Default, Deserialize)]
pub struct IncomingEvent {
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub name: Option<String>,
    pub url: Option<String>,
    pub referrer: Option<String>,
    pub title: Option<String>,
    pub props: Option<Map<String, Value>>,
    /// Client time, Unix milliseconds.
    pub ts: Option<i64>,
    pub id: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub duration_ms: Option<u64>,
    pub screen_width: Option<u32>,
    /// For `navigator.sendBeacon`, which cannot set an Authorization header.
    pub token: Option<String>,
}

/// `/v1/batch` takes a bare array or `{"token": "...", "events": [...]}`. Read without buffering the body into an
/// intermediate tree (which an untagged enum would do, losing the path of a wrong field on the way).
#[derive(Debug)]
pub struct IncomingBatch {
    pub token: Option<String>,
    pub events: Vec<IncomingEvent>,
    /// Where the events sit in the body, for field names: `""` for a bare array, `"events"` when wrapped.
    pub at: &'static str,
}

#[derive(Deserialize)]
struct WrappedBatch {
    token: Option<String>,
    events: Vec<Object<IncomingEvent>>,
}

impl<'de> Deserialize<'de> for IncomingBatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BatchVisitor;
        impl<'de> Visitor<'de> for BatchVisitor {
            type Value = IncomingBatch;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"an array of events or {"token": ..., "events": [...]}"#)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<IncomingBatch, A::Error> {
                let events = Vec::<Object<IncomingEvent>>::deserialize(SeqAccessDeserializer::new(seq))?;
                Ok(IncomingBatch { token: None, events: events.into_iter().map(|e| e.0).collect(), at: "" })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<IncomingBatch, A::Error> {
                let wrapped = WrappedBatch::deserialize(MapAccessDeserializer::new(map))?;
                let events = wrapped.events.into_iter().map(|e| e.0).collect();
                Ok(IncomingBatch { token: wrapped.token, events, at: "events" })
            }
        }
        deserializer.deserialize_any(BatchVisitor)
    }
}

/// A JSON object read as `T`. Serde's derived structs also take a JSON array, matching its items to the fields by
/// position: an accident of the library, not part of the API, so an array is refused as not an object.
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(ObjectVisitor(PhantomData)).map(Object)
    }
}

/// `/v1/identify`: links the visitor's current session to a user of the site.
#[derive(Debug, Default, Deserialize)]
pub struct IncomingIdentify {
    pub user_id: Option<String>,
    pub traits: Option<Map<String, Value>>,
    pub anonymous_id: Option<String>,
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidIdentify {
    pub user_id: String,
    pub traits: Vec<(String, String)>,
    pub anonymous_id: Option<String>,
}

pub fn validate_identify(identify: IncomingIdentify, limits: Limits) -> Result<ValidIdentify, IngestError> {
    let user_id = bounded(identify.user_id.map(|u| u.trim().to_owned()), MAX_USER_ID, FieldName::top("user_id"))?
        .ok_or_else(|| IngestError::field("user_id", "is required"))?;
    Ok(ValidIdentify {
        user_id,
        traits: flatten_props(identify.traits, limits, FieldName::top("traits"))?,
        anonymous_id: bounded(identify.anonymous_id, MAX_USER_ID, FieldName::top("anonymous_id"))?,
    })
}

/// Limits from the configuration that validation needs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_props_bytes: usize,
}

/// An event whose fields passed every check; enrichment adds what the server knows.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent {
    pub event_type: EventType,
    pub name: String,
    pub url: Option<url::Url>,
    pub referrer: Option<url::Url>,
    pub title: String,
    pub props: Vec<(String, String)>,
    pub ts_ms: Option<i64>,
    pub client_id: Option<String>,
    pub user_id: String,
    pub anonymous_id: Option<String>,
    pub duration_ms: u32,
    pub screen_width: u16,
}

/// Parses JSON into `T`, naming the offending field on a type error.
pub fn parse_json<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, IngestError> {
    // Tracking the path costs a third of the parse, and almost every body is valid: only a refused body is parsed
    // a second time, with the path, to name its field.
    serde_json::from_slice(body).map_err(|fast| explain::<T>(body).unwrap_or(IngestError::BadJson(fast.to_string())))
}

/// Why `body` is not a `T`, with the path of the offending field; None if it is one after all.
fn explain<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Option<IngestError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            Some(if inner.is_syntax() || inner.is_eof() {
                IngestError::BadJson(inner.to_string())
            } else if path == "." {
                IngestError::BadShape(strip_position(&inner.to_string()))
            } else {
                IngestError::field(path, strip_position(&inner.to_string()))
            })
        }
        Ok(_) => de.end().err().map(|e| IngestError::BadJson(e.to_string())),
    }
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Checks one event. `at` prefixes field names (`""` for single events, `"[3]."` in a batch).
pub fn validate(event: IncomingEvent, limits: Limits, at: &str) -> Result<ValidEvent, IngestError> {
    let field = |name| FieldName { at, name };
    let event_type = match event.event_type.as_deref() {
        Some("pageview") => EventType::Pageview,
        Some("pageleave") => EventType::Pageleave,
        Some("custom") => EventType::Custom,
        Some(other) => {
            return Err(IngestError::field(
                field("type"),
                format!("must be `pageview`, `pageleave` or `custom`, got `{}`", truncate(other, 40)),
            ));
        }
        None => return Err(IngestError::field(field("type"), "is required")),
    };

    let name = event.name.unwrap_or_default().trim().to_owned();
    if event_type == EventType::Custom && name.is_empty() {
        return Err(IngestError::field(field("name"), "is required for custom events"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(IngestError::field(field("name"), format!("must be at most {MAX_NAME} characters")));
    }

    let url = parse_web_url(event.url.as_deref(), field("url"))?;
    if url.is_none() && event_type != EventType::Custom {
        return Err(IngestError::field(field("url"), format!("is required for {} events", event_type.as_str())));
    }
    let referrer = parse_web_url(event.referrer.as_deref(), field("referrer"))?;

    let props = flatten_props(event.props, limits, field("props"))?;

    if let Some(ts) = event.ts
        && ts <= 0
    {
        return Err(IngestError::field(field("ts"), "must be Unix time in milliseconds"));
    }
    let client_id = bounded(event.id, MAX_ID, field("id"))?;
    let user_id = bounded(event.user_id, MAX_USER_ID, field("user_id"))?.unwrap_or_default();
    let anonymous_id = bounded(event.anonymous_id, MAX_USER_ID, field("anonymous_id"))?;
    let screen_width = match event.screen_width {
        Some(w) if w > MAX_SCREEN_WIDTH => {
            return Err(IngestError::field(field("screen_width"), format!("must be at most {MAX_SCREEN_WIDTH}")));
        }
        Some(w) => w as u16,
        None => 0,
    };
    // A page left open for days still reports a duration; cap it rather than reject the event.
    let duration_ms = event.duration_ms.unwrap_or(0).min(u64::from(u32::MAX)) as u32;

    Ok(ValidEvent {
        event_type,
        name,
        url,
        referrer,
        title: truncate(event.title.as_deref().unwrap_or("").trim(), MAX_TITLE).to_owned(),
        props,
        ts_ms: event.ts,
        client_id,
        user_id,
        anonymous_id,
        duration_ms,
        screen_width,
    })
}

/// A field's name as errors print it (`url`, `[3].url`), built only when there is an error to report.
#[derive(Clone, Copy)]
struct FieldName<'a> {
    at: &'a str,
    name: &'a str,
}

impl FieldName<'static> {
    fn top(name: &'static str) -> Self {
        Self { at: "", name }
    }
}

impl std::fmt::Display for FieldName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.at, self.name)
    }
}

impl From<FieldName<'_>> for String {
    fn from(field: FieldName<'_>) -> Self {
        field.to_string()
    }
}

fn parse_web_url(raw: Option<&str>, field: FieldName<'_>) -> Result<Option<url::Url>, IngestError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else { return Ok(None) };
    if raw.len() > MAX_URL {
        return Err(IngestError::field(field, format!("must be at most {MAX_URL} bytes")));
    }
    let url = url::Url::parse(raw).map_err(|e| IngestError::field(field, format!("is not an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(IngestError::field(field, "must be an http or https URL with a host"));
    }
    Ok(Some(url))
}

fn bounded(value: Option<String>, max: usize, field: FieldName<'_>) -> Result<Option<String>, IngestError> {
    match value {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if v.len() > max => Err(IngestError::field(field, format!("must be at most {max} bytes"))),
        Some(v) => Ok(Some(v)),
    }
}

/// Props must be a flat object; values become strings so one ClickHouse column pair holds them all.
fn flatten_props(
    props: Option<Map<String, Value>>,
    limits: Limits,
    field: FieldName<'_>,
) -> Result<Vec<(String, String)>, IngestError> {
    let Some(props) = props else { return Ok(Vec::new()) };
    let mut out = Vec::with_capacity(props.len());
    let mut size = 2;
    for (key, value) in props {
        if key.is_empty() || key.len() > MAX_PROP_KEY {
            return Err(IngestError::field(field, format!("keys must be 1 to {MAX_PROP_KEY} bytes")));
        }
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Array(_) | Value::Object(_) => {
                return Err(IngestError::field(
                    format!("{field}.{key}"),
                    "must be a string, number, boolean or null (props are flat)",
                ));
            }
        };
        size += key.len() + text.len() + 6;
        if size > limits.max_props_bytes {
            return Err(IngestError::TooLarge { what: field.to_string(), limit: limits.max_props_bytes });
        }
        out.push((key, text));
    }
    Ok(out)
}

fn truncate(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_props_bytes: 8192 };

    fn field_of(result: Result<ValidEvent, IngestError>) -> String {
        match result.unwrap_err() {
            IngestError::BadField { field, .. } => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    fn parse(json: &str) -> IncomingEvent {
        parse_json::<Object<IncomingEvent>>(json.as_bytes()).unwrap().0
    }

    fn error_of<'de, T: Deserialize<'de>>(json: &'de str) -> IngestError {
        match parse_json::<T>(json.as_bytes()) {
            Ok(_) => panic!("{json} parsed"),
            Err(e) => e,
        }
    }

    #[test]
    fn accepts_a_pageview() {
        let e = validate(parse(r#"{"type":"pageview","url":"https://a.com/x?utm_source=n"}"#), LIMITS, "").unwrap();
        assert_eq!(e.event_type, EventType::Pageview);
        assert_eq!(e.url.unwrap().path(), "/x");
    }

    #[test]
    fn names_the_bad_field() {
        assert_eq!(field_of(validate(parse(r#"{"url":"https://a.com"}"#), LIMITS, "")), "type");
        assert_eq!(field_of(validate(parse(r#"{"type":"click"}"#), LIMITS, "")), "type");
        assert_eq!(field_of(validate(parse(r#"{"type":"pageview"}"#), LIMITS, "[2].")), "[2].url");
        assert_eq!(field_of(validate(parse(r#"{"type":"custom"}"#), LIMITS, "")), "name");
        assert_eq!(field_of(validate(parse(r#"{"type":"pageview","url":"/rel"}"#), LIMITS, "")), "url");
        assert_eq!(field_of(validate(parse(r#"{"type":"pageview","url":"ftp://a/"}"#), LIMITS, "")), "url");
        let nested = r#"{"type":"custom","name":"x","props":{"a":{"b":1}}}"#;
        assert_eq!(field_of(validate(parse(nested), LIMITS, "")), "props.a");
    }

    #[test]
    fn type_errors_carry_the_path() {
        match parse_json::<IncomingEvent>(br#"{"type":"pageview","ts":"yesterday"}"#).unwrap_err() {
            IngestError::BadField { field, problem } => {
                assert_eq!(field, "ts");
                assert!(!problem.contains("line"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_json::<IncomingEvent>(b"{nope"), Err(IngestError::BadJson(_))));
        assert!(matches!(parse_json::<IncomingEvent>(b"{} {}"), Err(IngestError::BadJson(_))));
    }

    #[test]
    fn bodies_are_objects_not_positional_arrays() {
        // Derived structs take `[type, name, url, ...]` by position: the API never promised that form.
        let positional = r#"["pageview", null, "https://a.com/"]"#;
        let err = error_of::<Object<IncomingEvent>>(positional);
        assert!(matches!(&err, IngestError::BadShape(m) if m.contains("a JSON object")), "{err:?}");
        assert!(matches!(error_of::<Object<IncomingIdentify>>(r#"["u-1"]"#), IngestError::BadShape(_)));
        assert!(matches!(error_of::<Object<IncomingEvent>>("null"), IngestError::BadShape(_)));
        let in_batch = error_of::<IncomingBatch>(r#"[{"type":"pageview"}, ["pageview"]]"#);
        assert!(matches!(&in_batch, IngestError::BadField { field, .. } if field == "[1]"), "{in_batch:?}");
    }

    #[test]
    fn batches_come_bare_or_wrapped_and_name_a_wrong_field() {
        let bare = parse_json::<IncomingBatch>(br#"[{"type":"pageview"},{"type":"custom"}]"#).unwrap();
        assert_eq!((bare.events.len(), bare.token, bare.at), (2, None, ""));
        let wrapped = parse_json::<IncomingBatch>(br#"{"token":"tm_x","events":[{"type":"pageview"}]}"#).unwrap();
        assert_eq!((wrapped.events.len(), wrapped.token.as_deref(), wrapped.at), (1, Some("tm_x"), "events"));
        for (json, expected) in [
            (r#"[{"type":"pageview"},{"type":"pageview","ts":"x"}]"#, "[1].ts"),
            (r#"{"events":[{"type":"pageview","screen_width":-1}]}"#, "events[0].screen_width"),
            (r#"{"events":{}}"#, "events"),
            (r#"{"token":7,"events":[]}"#, "token"),
        ] {
            let err = error_of::<IncomingBatch>(json);
            assert!(matches!(&err, IngestError::BadField { field, .. } if field == expected), "{json}: {err:?}");
        }
        assert!(matches!(error_of::<IncomingBatch>(r#""events""#), IngestError::BadShape(_)));
        assert!(matches!(error_of::<IncomingBatch>(r#"{"token":"t"}"#), IngestError::BadShape(_)));
    }

    #[test]
    fn oversized_props_are_413() {
        let big = "x".repeat(9000);
        let json = format!(r#"{{"type":"custom","name":"n","props":{{"k":"{big}"}}}}"#);
        assert!(matches!(validate(parse(&json), LIMITS, ""), Err(IngestError::TooLarge { .. })));
    }

    #[test]
    fn props_are_flattened_to_strings() {
        let json = r#"{"type":"custom","name":"n","props":{"n":1.5,"b":true,"s":"x","z":null}}"#;
        let e = validate(parse(json), LIMITS, "").unwrap();
        assert_eq!(e.props, vec![("n".into(), "1.5".into()), ("b".into(), "true".into()), ("s".into(), "x".into())]);
    }

    use proptest::prelude::*;

    /// Any JSON value, nested a little: what a field may hold when a client gets it wrong.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            "\\PC{0,40}".prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A value for `field` that is usually of the right kind and sometimes anything at all.
    fn field_value(field: &'static str) -> BoxedStrategy<Value> {
        let right: BoxedStrategy<Value> = match field {
            "type" => prop_oneof![Just("pageview"), Just("pageleave"), Just("custom"), Just("click")]
                .prop_map(Value::from)
                .boxed(),
            "url" | "referrer" => prop_oneof![
                "(https?|ftp)://[a-z]{1,8}\\.[a-z]{2,3}(/[a-z0-9%?=&#._-]{0,20}){0,3}".prop_map(Value::from),
                "/[a-z]{0,10}".prop_map(Value::from),
            ]
            .boxed(),
            "props" => proptest::collection::btree_map("\\PC{0,12}", any_json(), 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
                .boxed(),
            "ts" => (-10i64..2_000_000_000_000).prop_map(Value::from).boxed(),
            "duration_ms" | "screen_width" => (-5i64..100_000).prop_map(Value::from).boxed(),
            _ => "\\PC{0,300}".prop_map(Value::from).boxed(),
        };
        prop_oneof![9 => right, 1 => any_json()].boxed()
    }

    const FIELDS: [&str; 12] = [
        "type",
        "name",
        "url",
        "referrer",
        "title",
        "props",
        "ts",
        "id",
        "user_id",
        "anonymous_id",
        "duration_ms",
        "screen_width",
    ];

    /// JSON objects shaped like events: most of the real fields, with values of the right kind most of the time,
    /// so most of them get past the parse and exercise the checks themselves.
    fn event_objects() -> impl Strategy<Value = Map<String, Value>> {
        let fields: Vec<_> = FIELDS.iter().map(|f| proptest::option::weighted(0.7, field_value(f))).collect();
        (fields, proptest::option::of(("[a-z]{1,6}", any_json()))).prop_map(|(values, extra)| {
            let mut object: Map<String, Value> =
                FIELDS.iter().zip(values).filter_map(|(f, v)| v.map(|v| ((*f).to_owned(), v))).collect();
            if let Some((key, value)) = extra {
                object.entry(key).or_insert(value);
            }
            object
        })
    }

    proptest::proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        #[test]
        fn event_objects_are_accepted_or_refused_by_name(object in event_objects()) {
            let json = Value::Object(object.clone()).to_string();
            // A field error names a field of this event: the parse names its path, validation adds the index.
            let named = |field: &str, prefix: &str| {
                let name = field.strip_prefix(prefix).unwrap_or_else(|| panic!("{field} lacks {prefix:?}"));
                FIELDS.contains(&name.split(['.', '[']).next().unwrap_or_default())
            };
            let event = match parse_json::<Object<IncomingEvent>>(json.as_bytes()) {
                Ok(Object(event)) => event,
                Err(IngestError::BadField { field, .. }) => {
                    prop_assert!(named(&field, ""), "{} is not a field of {}", field, json);
                    // Only a value of the wrong JSON kind is refused by the parse: a string where a string is
                    // taken always gets through to validation.
                    let top = field.split(['.', '[']).next().unwrap_or_default();
                    let takes_text = !matches!(top, "props" | "ts" | "duration_ms" | "screen_width");
                    prop_assert!(!(takes_text && object[top].is_string()), "{json}");
                    return Ok(());
                }
                Err(other) => {
                    prop_assert!(false, "unexpected parse refusal {:?} of {}", other, json);
                    unreachable!()
                }
            };
            match validate(event, LIMITS, "[7].") {
                Ok(valid) => {
                    // What passed holds to every rule downstream code relies on.
                    prop_assert!(object.contains_key("type"));
                    if let Some(url) = &valid.url {
                        prop_assert!(matches!(url.scheme(), "http" | "https"));
                        prop_assert!(url.as_str().len() <= MAX_URL);
                    } else {
                        prop_assert_eq!(valid.event_type, EventType::Custom);
                    }
                    prop_assert!(valid.name.chars().count() <= MAX_NAME);
                    prop_assert!(valid.title.chars().count() <= MAX_TITLE);
                    let props: usize = valid.props.iter().map(|(k, v)| k.len() + v.len()).sum();
                    prop_assert!(props <= LIMITS.max_props_bytes);
                    prop_assert!(u32::from(valid.screen_width) <= MAX_SCREEN_WIDTH);
                }
                Err(IngestError::BadField { field, .. }) => prop_assert!(named(&field, "[7]."), "{} in {}", field, json),
                Err(IngestError::TooLarge { what, .. }) => prop_assert!(what.contains("props"), "{} in {}", what, json),
                Err(other) => prop_assert!(false, "unexpected refusal {:?} of {}", other, json),
            }
        }

        #[test]
        fn validation_never_panics(json in "\\PC{0,300}") {
            if let Ok(event) = parse_json::<IncomingEvent>(json.as_bytes()) {
                let _ = validate(event, LIMITS, "");
            }
        }

        #[test]
        fn any_http_url_is_a_valid_pageview_url(path in "[a-z0-9/]{0,30}", host in "[a-z]{1,10}\\.[a-z]{2,5}") {
            let json = serde_json::json!({"type": "pageview", "url": format!("https://{host}/{path}")}).to_string();
            let url = validate(parse(&json), LIMITS, "").unwrap().url.unwrap();
            proptest::prop_assert_eq!(url.host_str(), Some(host.as_str()));
        }
    }

    #[test]
    fn identify_needs_a_user() {
        let ok = parse_json::<IncomingIdentify>(br#"{"user_id":" u-1 ","traits":{"plan":"pro"}}"#).unwrap();
        let valid = validate_identify(ok, LIMITS).unwrap();
        assert_eq!((valid.user_id.as_str(), valid.traits.len()), ("u-1", 1));
        let missing = parse_json::<IncomingIdentify>(br#"{"traits":{}}"#).unwrap();
        assert!(
            matches!(validate_identify(missing, LIMITS), Err(IngestError::BadField { field, .. }) if field == "user_id")
        );
        let nested = parse_json::<IncomingIdentify>(br#"{"user_id":"u","traits":{"a":[1]}}"#).unwrap();
        assert!(
            matches!(validate_identify(nested, LIMITS), Err(IngestError::BadField { field, .. }) if field == "traits.a")
        );
    }
}
