//! Cross-origin requests: the preflight, and the origin echoed on answers. Whether an origin may send events at
//! all is decided with the token, in [`super::authorize`].

use super::context::header_str;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

pub async fn preflight(req: HttpRequest) -> HttpResponse {
    // The preflight carries no token, so it cannot know the project: it allows the method and headers, and the
    // real request is then checked against the project's domains.
    let mut response = HttpResponse::NoContent();
    if let Some(origin) = header_str(req.headers(), header::ORIGIN) {
        response
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST, OPTIONS"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "authorization, content-type, content-encoding"))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
            .insert_header((header::VARY, "Origin"));
    }
    response.finish()
}

/// Lets the page that sent an accepted request read the answer.
pub(super) fn allow_origin(req: &HttpRequest, response: &mut HttpResponse) {
    if let Some(origin) = req.headers().get(header::ORIGIN).cloned() {
        response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        response.headers_mut().insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}
