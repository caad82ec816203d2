//! `/.well-known/*`: the public signing keys (RFC 7517) and the metadata that resource-server
//! libraries read to find them (RFC 8414, OpenID Connect Discovery). Public and cacheable.

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::{Map, Value};

use super::errors::ErrorBody;
use super::{AppState, Tag};

/// How long verifiers may cache the key set and the metadata. A rotation publishes the next
/// key longer than this before it signs (see the key lifecycle), so a cached copy always holds
/// the key of any token it meets.
pub use crate::domain::JWKS_MAX_AGE_SECS;

fn cache_control() -> String {
    format!("public, max-age={JWKS_MAX_AGE_SECS}")
}

/// `/.well-known/*`; stateless like `AuthApi`.
pub struct WellKnownApi;

/// A public key (RFC 7517). Only these members are ever written, so no private parameter can
/// be published whatever the key holds.
#[derive(Debug, Object)]
pub struct Jwk {
    /// Key type: `OKP` (Ed25519), `EC` (P-256) or `RSA`.
    pub kty: String,
    /// Key id: the key's RFC 7638 thumbprint; tokens name it in their header.
    pub kid: String,
    /// The one algorithm the key signs with.
    pub alg: String,
    /// Always `sig`.
    #[oai(rename = "use")]
    pub use_: String,
    /// Curve (`Ed25519`, `P-256`).
    #[oai(skip_serializing_if_is_none)]
    pub crv: Option<String>,
    /// Public point (OKP, EC), base64url.
    #[oai(skip_serializing_if_is_none)]
    pub x: Option<String>,
    /// Public point's y (EC), base64url.
    #[oai(skip_serializing_if_is_none)]
    pub y: Option<String>,
    /// Modulus (RSA), base64url.
    #[oai(skip_serializing_if_is_none)]
    pub n: Option<String>,
    /// Public exponent (RSA), base64url.
    #[oai(skip_serializing_if_is_none)]
    pub e: Option<String>,
}

impl Jwk {
    fn from_map(map: &Map<String, Value>) -> Self {
        let get = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_owned);
        Self {
            kty: get("kty").unwrap_or_default(),
            kid: get("kid").unwrap_or_default(),
            alg: get("alg").unwrap_or_default(),
            use_: "sig".into(),
            crv: get("crv"),
            x: get("x"),
            y: get("y"),
            n: get("n"),
            e: get("e"),
        }
    }
}

/// A JWK Set.
#[derive(Debug, Object)]
pub struct JwkSet {
    /// The keys a valid token may name: the signing key, the next one and those whose tokens
    /// may still be unexpired. Empty under HS256/HS384/HS512 (a shared secret is never
    /// published).
    pub keys: Vec<Jwk>,
}

/// Authorization server metadata (RFC 8414), also served as OpenID Connect discovery.
#[derive(Debug, Object)]
pub struct ServerMetadata {
    /// Equal to the `iss` of every access token (`JWT_ISSUER`).
    pub issuer: String,
    /// Absolute URL of the JWK Set: under `PUBLIC_URL`, else the request's own origin.
    pub jwks_uri: String,
    /// The access tokens' signing algorithm, the only one verification accepts.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Also the access tokens' algorithm (the name some resource-server libraries read).
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// `public`: `sub` is the account id.
    pub subject_types_supported: Vec<String>,
    /// Empty: there is no OAuth authorization endpoint; tokens come from `/auth/login`.
    pub response_types_supported: Vec<String>,
}

#[derive(ApiResponse)]
pub enum JwksResponse {
    /// The key set; cacheable for `max-age` seconds.
    #[oai(status = 200)]
    Ok(Json<JwkSet>, #[oai(header = "Cache-Control")] String),
    /// `misdirected_request`: the `Host` is not one of this service's names.
    #[oai(status = 421)]
    Misdirected(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum MetadataResponse {
    /// The metadata; cacheable for `max-age` seconds.
    #[oai(status = 200)]
    Ok(
        Json<ServerMetadata>,
        #[oai(header = "Cache-Control")] String,
    ),
    /// `misdirected_request`: the `Host` is not one of this service's names.
    #[oai(status = 421)]
    Misdirected(Json<ErrorBody>),
}

/// `PUBLIC_URL`, or the origin the request was sent to (its `Host` passed the host check).
fn origin(state: &AppState, req: &Request) -> String {
    if let Some(url) = &state.settings.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = req
        .headers()
        .get(poem::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| req.local_addr().to_string());
    format!("http://{host}")
}

fn metadata(state: &AppState, req: &Request) -> MetadataResponse {
    let alg = state.settings.jwt_algorithm.to_owned();
    MetadataResponse::Ok(
        Json(ServerMetadata {
            issuer: state.settings.jwt_issuer.clone(),
            jwks_uri: format!("{}/.well-known/jwks.json", origin(state, req)),
            id_token_signing_alg_values_supported: vec![alg.clone()],
            token_endpoint_auth_signing_alg_values_supported: vec![alg],
            subject_types_supported: vec!["public".into()],
            response_types_supported: Vec::new(),
        }),
        cache_control(),
    )
}

#[OpenApi(prefix_path = "/.well-known", tag = "Tag::Keys")]
impl WellKnownApi {
    /// The public signing keys
    ///
    /// The JWK Set (RFC 7517) of every key a valid access token may name in its `kid`: public
    /// parameters only. Resource servers verify tokens with it and need no secret. Empty
    /// (`{"keys":[]}`) under HS256/HS384/HS512.
    #[oai(path = "/jwks.json", method = "get", operation_id = "jwks")]
    async fn jwks(&self, Data(state): Data<&Arc<AppState>>) -> JwksResponse {
        let keys = state
            .public_keys
            .public_jwks()
            .iter()
            .map(Jwk::from_map)
            .collect();
        JwksResponse::Ok(Json(JwkSet { keys }), cache_control())
    }

    /// Authorization server metadata
    ///
    /// RFC 8414 metadata: `issuer` (the tokens' `iss`) and the absolute `jwks_uri`.
    #[oai(
        path = "/oauth-authorization-server",
        method = "get",
        operation_id = "oauth_authorization_server"
    )]
    async fn oauth_metadata(
        &self,
        Data(state): Data<&Arc<AppState>>,
        req: &Request,
    ) -> MetadataResponse {
        metadata(state, req)
    }

    /// OpenID Connect discovery
    ///
    /// The same metadata at the path OpenID Connect libraries look up from an issuer URL.
    #[oai(
        path = "/openid-configuration",
        method = "get",
        operation_id = "openid_configuration"
    )]
    async fn openid_configuration(
        &self,
        Data(state): Data<&Arc<AppState>>,
        req: &Request,
    ) -> MetadataResponse {
        metadata(state, req)
    }
}
