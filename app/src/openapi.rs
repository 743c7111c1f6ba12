//! `GET /api/openapi.json`: the OpenAPI 3.1 document of every `/api` endpoint, generated from the handlers'
//! `#[utoipa::path]` annotations.
//!
//! Each API module declares its routes once with [`api_routes!`]: the same table mounts them (`register`), lists
//! them ([`Route`]s, which the test compares with the document) and names the handlers whose annotations make the
//! module's part of the document (`ApiDoc`). A route without an annotation does not compile; an annotation whose
//! path or method differs from the route fails `tests/openapi.rs`. A new module adds one line to [`MODULES`].
//!
//! The types here describe answers the handlers build with `serde_json::json!` or with types of modules that know
//! nothing of OpenAPI; they are documentation only.

use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// One route actix serves: its method (lowercase, as `actix_web::web::get`) and path as the router spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
}

/// An API module: the routes it mounts and its part of the document.
pub struct ApiModule {
    pub name: &'static str,
    pub routes: &'static [Route],
    pub doc: fn() -> utoipa::openapi::OpenApi,
}

/// Every module that serves routes under `/api`. Adding one here is what puts it in the document and the test.
pub const MODULES: &[ApiModule] = &[
    ApiModule { name: "openapi", routes: ROUTES, doc: <ApiDoc as OpenApi>::openapi },
    ApiModule {
        name: "access_api",
        routes: crate::access_api::ROUTES,
        doc: <crate::access_api::ApiDoc as OpenApi>::openapi,
    },
    ApiModule {
        name: "projects_api",
        routes: crate::projects_api::ROUTES,
        doc: <crate::projects_api::ApiDoc as OpenApi>::openapi,
    },
    ApiModule {
        name: "goals_api",
        routes: crate::goals_api::ROUTES,
        doc: <crate::goals_api::ApiDoc as OpenApi>::openapi,
    },
    ApiModule {
        name: "query_api",
        routes: crate::query_api::ROUTES,
        doc: <crate::query_api::ApiDoc as OpenApi>::openapi,
    },
    ApiModule { name: "realtime", routes: crate::realtime::ROUTES, doc: <crate::realtime::ApiDoc as OpenApi>::openapi },
    ApiModule {
        name: "funnel_api",
        routes: crate::funnel_api::ROUTES,
        doc: <crate::funnel_api::ApiDoc as OpenApi>::openapi,
    },
];

/// Declares a module's routes once. `method "path" => handler` per route; the handler carries `#[utoipa::path]`.
/// Generates `ROUTES`, `ApiDoc` and (unless the first token is `mounted_by_configure;`, for modules whose routes
/// need per-resource settings) `fn register(cfg)`.
macro_rules! api_routes {
    (mounted_by_configure; $($method:ident $path:literal => $handler:ident),+ $(,)?) => {
        /// This module's routes, as its `configure` mounts them.
        pub const ROUTES: &[$crate::openapi::Route] =
            &[$($crate::openapi::Route { method: stringify!($method), path: $path }),+];

        /// This module's part of `/api/openapi.json`.
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($handler),+))]
        pub struct ApiDoc;
    };
    ($($method:ident $path:literal => $handler:ident),+ $(,)?) => {
        $crate::openapi::api_routes!(mounted_by_configure; $($method $path => $handler),+);

        fn register(cfg: &mut actix_web::web::ServiceConfig) {
            $(cfg.route($path, actix_web::web::$method().to($handler));)+
        }
    };
}
pub(crate) use api_routes;

api_routes! {
    get "/api/openapi.json" => openapi_json,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    register(cfg);
}

/// The whole document: the root (info, security schemes) merged with every module's part.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Root::openapi();
    for module in MODULES {
        doc.merge((module.doc)());
    }
    doc
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tidemark",
        description = "Tidemark's app API: accounts and access, projects, goals, the Stats API v2 query \
                       (Plausible-compatible, see docs/API-v2.md) and realtime. Generated from the code."
    ),
    components(schemas(ErrorBody, BadInputBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "access", description = "First-run setup, sign-in, accounts, a project's keys and members"),
        (name = "projects", description = "Projects, their settings and ingest token"),
        (name = "goals", description = "A project's conversion goals"),
        (name = "stats", description = "Plausible Stats API v2 and realtime"),
        (name = "meta", description = "This document")
    )
)]
struct Root;

/// `bearer`: a secret API key (`Authorization: Bearer …`). `session`: a signed-in browser's cookie; with it,
/// state-changing methods also need `csrf` (the `X-CSRF-Token` header, from the sign-in answer or `GET /api/v1/me`).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("tmk_…").build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::auth::sessions::COOKIE))),
        );
        components
            .add_security_scheme("csrf", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-CSRF-Token"))));
    }
}

/// This document (OpenAPI 3.1), generated from the code. No authentication.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

pub use schemas::*;

/// Documentation-only shapes of answers (and of the enums of modules that do not derive `ToSchema`).
pub mod schemas {
    use serde_json::{Value, json};
    use utoipa::ToSchema;
    use utoipa::openapi::schema::{ArrayBuilder, ArrayItems, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
    use utoipa::openapi::{RefOr, schema};
    use uuid::Uuid;

    use crate::query::model::{FilterOp, Metric};

    /// Every error: `{"error": …}`; a 500 also carries `request_id`, the id of its log line.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct ErrorBody {
        pub error: String,
        pub request_id: Option<Uuid>,
    }

    /// Bad input (400): the problem and the field it is about.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct BadInputBody {
        pub error: String,
        pub field: String,
    }

    /// A secret key's scope.
    #[derive(ToSchema)]
    #[schema(rename_all = "lowercase")]
    #[allow(dead_code)]
    pub enum KeyScope {
        Read,
        Admin,
    }

    /// A member's role in a project.
    #[derive(ToSchema)]
    #[schema(rename_all = "lowercase")]
    #[allow(dead_code)]
    pub enum MemberRole {
        Viewer,
        Editor,
        Owner,
    }

    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct SetupStatus {
        /// True until the first admin exists.
        pub needed: bool,
    }

    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct Account {
        pub id: Uuid,
        pub email: String,
        pub is_admin: bool,
    }

    /// A signed-in browser: its account and the token to send as `X-CSRF-Token`.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct SignedIn {
        pub account: Account,
        pub csrf_token: String,
    }

    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct KeyIdentity {
        pub id: Uuid,
        pub project: Uuid,
        pub scope: KeyScope,
    }

    /// `GET /api/v1/me`: a signed-in browser gets `account` and `csrf_token`, a key gets `key`.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct Me {
        pub account: Option<Account>,
        pub csrf_token: Option<String>,
        pub key: Option<KeyIdentity>,
    }

    /// A new key: `key` is shown this once.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct CreatedKey {
        pub id: Uuid,
        pub key: String,
        pub project: Uuid,
        pub scope: KeyScope,
        pub name: String,
    }

    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct KeyInfo {
        pub id: Uuid,
        pub name: String,
        /// The key's first characters, to recognise it.
        pub prefix: String,
        pub scopes: Vec<String>,
        pub created_at: chrono::DateTime<chrono::Utc>,
        pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
        pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    }

    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct Member {
        pub account: Uuid,
        pub email: String,
        pub role: MemberRole,
    }

    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct Membership {
        pub project: Uuid,
        pub account: Uuid,
        pub role: MemberRole,
    }

    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct ProjectSettings {
        pub id: Uuid,
        pub name: String,
        /// Origins allowed to send events; empty allows every origin.
        pub domains: Vec<String>,
        /// IANA time zone.
        pub timezone: String,
    }

    /// A project as listed: its settings, with the account's role or the key's scope.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct ListedProject {
        pub id: Uuid,
        pub name: String,
        pub domains: Vec<String>,
        pub timezone: String,
        pub role: Option<MemberRole>,
        pub scope: Option<KeyScope>,
    }

    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct CreatedProject {
        pub id: Uuid,
        pub name: String,
        pub domains: Vec<String>,
        pub timezone: String,
        /// The ingest token for the tracker snippet.
        pub token: String,
        pub role: MemberRole,
    }

    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct ProjectToken {
        pub project: Uuid,
        pub token: Option<String>,
    }

    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct RotatedToken {
        pub project: Uuid,
        pub token: String,
        /// How many old tokens were revoked.
        pub revoked: u64,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "lowercase")]
    #[allow(dead_code)]
    pub enum PurgeState {
        Started,
        Pending,
    }

    /// A deletion: PostgreSQL is done; ClickHouse rows go by asynchronous mutations (`pending`: retried later).
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct ProjectDeleted {
        pub id: Uuid,
        pub deleted: bool,
        pub purge: PurgeState,
    }

    /// A goal: a custom event name or a page path pattern, under a display name.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct ShownGoal {
        pub id: i64,
        pub display_name: String,
        #[schema(inline)]
        pub goal_type: GoalType,
        /// Set when `goal_type` is `event`.
        pub event_name: Option<String>,
        /// Set when `goal_type` is `page`: `*` is any characters but `/`, `**` any characters.
        pub page_path: Option<String>,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "lowercase")]
    #[allow(dead_code)]
    pub enum GoalType {
        Event,
        Page,
    }

    /// `GET /api/v2/realtime/visitors`.
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct RealtimeVisitors {
        /// Distinct visitors with an event that arrived in the last `window_seconds`.
        pub visitors: u64,
        pub window_seconds: u32,
        /// Always `received_at`: arrival time is the clock.
        pub clock: String,
        /// RFC 3339, seconds.
        pub as_of: String,
    }

    /// The Stats API v2 answer (Plausible's shape; docs/API-v2.md).
    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct QueryAnswer {
        pub results: Vec<QueryRow>,
        /// Plausible's `meta` (e.g. `imports_included`, `time_labels`, `total_rows`).
        pub meta: Object,
        /// The query as understood, with defaults filled in and the range resolved.
        pub query: Object,
    }

    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct QueryRow {
        /// One value per requested metric, in order (`null` where a metric has no value).
        pub metrics: Vec<Value>,
        /// One value per requested dimension, in order.
        pub dimensions: Vec<String>,
        pub comparison: Option<ComparisonRow>,
    }

    #[derive(ToSchema)]
    #[allow(dead_code)]
    pub struct ComparisonRow {
        pub dimensions: Vec<String>,
        pub metrics: Vec<Value>,
        pub change: Vec<Value>,
    }

    /// Any JSON object.
    pub type Object = std::collections::BTreeMap<String, Value>;

    /// The body of `POST /api/v2/query`. Its names come from the query model, so the list here is the parser's;
    /// the parser (not this schema) is the authority on what is valid, and answers 400 naming the part.
    pub struct QueryRequest;

    impl utoipa::PartialSchema for QueryRequest {
        fn schema() -> RefOr<Schema> {
            let text = || ObjectBuilder::new().schema_type(SchemaType::new(Type::String));
            let metrics: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
            let operators: Vec<&str> = FilterOp::ALL.iter().map(|op| op.name()).collect();
            let list_of = |item: ArrayItems| ArrayBuilder::new().items(item);
            let any = ObjectBuilder::new;
            let date_range = OneOfBuilder::new()
                .item(
                    text()
                        .description(Some(
                            "`day`, `7d`, `28d`, `30d`, `91d`, `Nd` (1 to 5000), `month`, `6mo`, `12mo`, `Nmo`, \
                             `year`, `all`",
                        ))
                        .build(),
                )
                .item(
                    ArrayBuilder::new()
                        .items(text().description(Some("ISO 8601 date or date-time")).build())
                        .min_items(Some(2))
                        .max_items(Some(2))
                        .build(),
                );
            ObjectBuilder::new()
                .description(Some(
                    "A Stats API v2 query (Plausible's schema; docs/API-v2.md lists what each part accepts).",
                ))
                .property("site_id", text().description(Some("A project id or one of its domains")))
                .required("site_id")
                .property("metrics", list_of(text().enum_values(Some(metrics)).into()).min_items(Some(1)))
                .required("metrics")
                .property("date_range", date_range)
                .required("date_range")
                .property(
                    "dimensions",
                    list_of(
                        text()
                            .description(Some(
                                "`event:page`, `event:hostname`, `event:name`, `event:goal`, `event:props:<key>`, \
                                 `visit:*` (entry_page, exit_page, source, referrer, channel, utm_*, country, \
                                 region, city, device, browser, browser_version, os, os_version), `time`, \
                                 `time:hour`, `time:day`, `time:week`, `time:month`",
                            ))
                            .into(),
                    ),
                )
                .property(
                    "filters",
                    list_of(
                        ArrayBuilder::new()
                            .items(any())
                            .description(Some(format!(
                                "`[operator, dimension, [values], {{\"case_sensitive\": bool}}?]` with operator \
                                 one of {}; or `[\"and\"|\"or\", [filters]]`, `[\"not\", filter]`",
                                operators.join(", ")
                            )))
                            .into(),
                    ),
                )
                .property(
                    "order_by",
                    list_of(
                        ArrayBuilder::new()
                            .items(any())
                            .description(Some("`[metric or dimension, \"asc\"|\"desc\"]`"))
                            .into(),
                    ),
                )
                .property(
                    "include",
                    ObjectBuilder::new()
                        .description(Some("`imports`, `time_labels`, `total_rows`, `comparisons`"))
                        .additional_properties(Some(schema::AdditionalProperties::FreeForm(true))),
                )
                .property(
                    "pagination",
                    ObjectBuilder::new()
                        .property("limit", ObjectBuilder::new().schema_type(SchemaType::new(Type::Integer)))
                        .property("offset", ObjectBuilder::new().schema_type(SchemaType::new(Type::Integer))),
                )
                .property("date", text().description(Some("The day relative ranges end on (YYYY-MM-DD)")))
                .additional_properties(Some(schema::AdditionalProperties::FreeForm(false)))
                .examples([json!({
                    "site_id": "example.com",
                    "metrics": ["visitors", "pageviews"],
                    "date_range": "7d",
                    "dimensions": ["visit:source"]
                })])
                .into()
        }
    }

    impl ToSchema for QueryRequest {}
}
