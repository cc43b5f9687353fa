//! The authenticated caller, as extractors: [`User`] (any valid token), [`Admin`]
//! (the admin claim) and [`MaybeUser`] (anonymous when no token is given).
//!
//! [`User`] and [`Admin`] read the token from `Authorization: Bearer …` only: a token in
//! a URL ends up in proxies' logs, browser history and `Referer` headers. Only
//! [`MaybeUser`], the extractor of Hasura's authentication hook (which forwards the
//! client's query), also reads the `access_token` query parameter.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use auth::Caller;
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;

use crate::ApiState;
use crate::error::ApiError;

/// A caller with a valid user token.
#[derive(Debug, Clone)]
pub struct User(pub Caller);

/// A caller whose token's admin claim (`ADMIN_CLAIM`) holds `admin`.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

/// A caller with a valid token, or `None` when the request carries no token at all.
/// A token that is present but invalid is still refused.
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<Caller>);

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

/// The token of the `Authorization: Bearer …` header, if the request has that header.
fn bearer(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header".to_owned()))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(ApiError::Unauthorized(
            "the Authorization header must be \"Bearer <token>\"".to_owned(),
        )),
    }
}

/// The `access_token` query parameter, if the request has one.
fn query_token(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let query = web::Query::<TokenQuery>::from_query(req.query_string())
        .map_err(|_| ApiError::BadRequest("malformed query string".to_owned()))?;
    Ok(query.into_inner().access_token)
}

/// The user token the request carries, if any: the Bearer header, else `access_token`.
fn token_from_header_or_query(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    match bearer(req)? {
        Some(token) => Ok(Some(token.to_owned())),
        None => query_token(req),
    }
}

/// The Bearer token a user route needs; a token only in the query is refused, saying
/// where it belongs.
fn required_token(req: &HttpRequest) -> Result<String, ApiError> {
    if let Some(token) = bearer(req)? {
        return Ok(token.to_owned());
    }
    let in_query = query_token(req).unwrap_or(None).is_some();
    Err(ApiError::Unauthorized(if in_query {
        "send the access token as \"Authorization: Bearer <token>\"; the access_token query \
         parameter is accepted only by GET /hasura/auth"
            .to_owned()
    } else {
        "missing access token".to_owned()
    }))
}

/// The state every route is registered with.
#[derive(Debug, thiserror::Error)]
#[error("ApiState is not registered")]
struct NoState;

async fn verify(state: Option<web::Data<ApiState>>, token: String) -> Result<Caller, ApiError> {
    let state = state.ok_or_else(|| ApiError::Internal(Box::new(NoState)))?;
    Ok(state.verifier.verify(&token).await?)
}

impl FromRequest for MaybeUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = token_from_header_or_query(req);
        let state = req.app_data::<web::Data<ApiState>>().cloned();
        Box::pin(async move {
            match token? {
                None => Ok(Self(None)),
                Some(token) => Ok(Self(Some(verify(state, token).await?))),
            }
        })
    }
}

impl FromRequest for User {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = required_token(req);
        let state = req.app_data::<web::Data<ApiState>>().cloned();
        Box::pin(async move { Ok(Self(verify(state, token?).await?)) })
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = User::from_request(req, payload);
        Box::pin(async move {
            let User(caller) = user.await?;
            if caller.is_admin() {
                Ok(Self(caller))
            } else {
                Err(ApiError::Forbidden("this route is for admins".to_owned()))
            }
        })
    }
}

/// Lets a handler take `ApiState` directly.
impl FromRequest for ApiState {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.app_data::<web::Data<ApiState>>()
                .map(|data| data.get_ref().clone())
                .ok_or_else(|| ApiError::Internal(Box::new(NoState))),
        )
    }
}

/// A host agent's credential (a `host_…` token), as the digest stored for it. Whether
/// it names an instance is checked by the operation itself, in the same statement.
#[derive(Debug, Clone)]
pub struct HostAgent {
    pub host_token_sha256: String,
}

impl FromRequest for HostAgent {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let digest = bearer(req).map(|token| token.and_then(auth::host::host_token_digest));
        // An unknown credential is refused by the host service, after the body is read:
        // answering before it would close the connection (its unread body), and the
        // reconnections would cost more than the body (measured by the chaos flood).
        ready(match digest {
            Ok(Some(host_token_sha256)) => Ok(Self { host_token_sha256 }),
            Ok(None) => Err(ApiError::Unauthorized(
                "a host credential is required".to_owned(),
            )),
            Err(err) => Err(err),
        })
    }
}
