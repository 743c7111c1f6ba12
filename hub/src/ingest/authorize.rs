//! The token names the project; the request's origin must be one of the project's domains.

use super::IngestState;
use super::context::RequestContext;
use crate::error::IngestError;
use crate::tokens::Project;
use std::sync::Arc;

/// Checks a token sent in the `Authorization` header before the body is read: a request with a bad header token
/// costs neither the read nor the parse of its body. `None` when the token can only be in the body.
pub(super) async fn authorize_header(
    state: &IngestState,
    ctx: &RequestContext<'_>,
) -> Result<Option<Arc<Project>>, IngestError> {
    match ctx.header_token {
        Some(token) => authorize_token(state, ctx, token).await.map(Some),
        None => Ok(None),
    }
}

/// The project of a request: the one its header token named, or else the one of the token in its body. The
/// header's token wins over one in the body.
pub(super) async fn authorize(
    state: &IngestState,
    ctx: &RequestContext<'_>,
    by_header: Option<Arc<Project>>,
    body_token: Option<String>,
) -> Result<Arc<Project>, IngestError> {
    match by_header {
        Some(project) => Ok(project),
        None => authorize_token(state, ctx, body_token.as_deref().ok_or(IngestError::MissingToken)?).await,
    }
}

async fn authorize_token(
    state: &IngestState,
    ctx: &RequestContext<'_>,
    token: &str,
) -> Result<Arc<Project>, IngestError> {
    let project = state.tokens.resolve(token).await?;
    if let Some(origin) = ctx.origin
        && !project.allows_origin(origin)
    {
        return Err(IngestError::ForbiddenOrigin { origin: origin.chars().take(200).collect() });
    }
    Ok(project)
}
