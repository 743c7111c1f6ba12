//! The token names the project; the request's origin must be one of the project's domains.

use super::IngestState;
use super::context::RequestContext;
use crate::error::IngestError;
use crate::tokens::Project;
use std::sync::Arc;

/// The `Authorization` header's token wins over one in the body.
pub(super) async fn authorize(
    state: &IngestState,
    ctx: &RequestContext<'_>,
    body_token: Option<String>,
) -> Result<Arc<Project>, IngestError> {
    let token = ctx.header_token.or(body_token.as_deref()).ok_or(IngestError::MissingToken)?;
    let project = state.tokens.resolve(token).await?;
    if let Some(origin) = ctx.origin
        && !project.allows_origin(origin)
    {
        return Err(IngestError::ForbiddenOrigin { origin: origin.chars().take(200).collect() });
    }
    Ok(project)
}
