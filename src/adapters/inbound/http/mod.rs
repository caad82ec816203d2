//! The poem-openapi edge: parses requests into domain commands, calls the use cases and maps
//! their results onto the contract in `shared/API.md`. Holds no business rule.

mod auth;
mod bearer;
mod client_ip;
mod cookie;
mod demo;
mod dto;
mod errors;
mod guards;
mod health;
mod host;
mod json_string;
mod metrics;
mod password;
mod reset;
mod responses;
mod revocation_stream;
mod revocations;
mod unique_keys;
mod verify;
mod well_known;

pub use auth::AuthApi;
pub use health::HealthApi;
pub use host::AllowedHosts;
pub use metrics::{instrument, metrics_app, HttpMetrics};
pub use password::PasswordApi;
pub use reset::ResetApi;
pub use revocation_stream::{RevocationHub, RevocationStreamApi, STREAMS_PER_SITE};
pub use revocations::{RevocationsApi, CURSOR_OVERLAP_SECS, MAX_ENTRIES};
pub use verify::VerifyApi;
pub use well_known::{WellKnownApi, JWKS_MAX_AGE_SECS};

use std::sync::Arc;

use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::{OpenApiService, Tags};

use crate::app::{ChangePassword, Login, Logout, Me, Refresh, Register, Sessions};
use crate::ports::{Clock, PublicKeys, RefreshStore, RevocationFeed, UserRepo};

#[derive(Tags)]
enum Tag {
    /// Login, refresh, logout and the current user.
    Auth,
    /// Liveness and readiness for orchestrators and load balancers.
    Health,
    /// Public signing keys and discovery metadata, for services that verify access tokens.
    Keys,
}

/// Edge settings that are not use-case policy.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub cookie_secure: bool,
    pub allowed_origins: Vec<String>,
    /// The public base URL, if configured: the spec's server and an accepted `Origin`.
    pub public_url: Option<String>,
    pub max_body_bytes: usize,
    /// A declared body must arrive within this time, or the answer is 408.
    pub body_read_timeout: std::time::Duration,
    /// Take the client address from this header instead of the socket (see `client_ip`).
    pub trusted_proxy_header: Option<String>,
    /// Our proxies in front of the service: the header entry this far from the right counts.
    pub trusted_proxy_hops: usize,
    pub registration_enabled: bool,
    /// Swagger UI at `/docs` (1.6 MB a page load: off in `prod` unless asked for).
    pub docs_enabled: bool,
    /// The example browser client at `/demo` (off in `prod` unless asked for).
    pub demo_page_enabled: bool,
    /// The `Host` names answered; any other gets 421 on every path.
    pub allowed_hosts: AllowedHosts,
    /// The tokens' `iss`, as discovery publishes it.
    pub jwt_issuer: String,
    /// The tokens' `alg`.
    pub jwt_algorithm: &'static str,
    /// How far back the revocation feed reaches (an access token's lifetime plus leeway).
    pub revocation_window_secs: u64,
}

/// Everything a request may need.
pub struct AppState {
    pub login: Login,
    pub refresh: Refresh,
    pub logout: Logout,
    pub me: Me,
    /// The caller's own sessions (`/auth/sessions`).
    pub my_sessions: Sessions,
    pub register: Register,
    /// `POST /auth/password`.
    pub change_password: ChangePassword,
    pub forgot_password: crate::app::ForgotPassword,
    pub reset_password: crate::app::ResetPassword,
    pub email_verification: crate::app::EmailVerification,
    /// For readiness.
    pub users: Arc<dyn UserRepo>,
    pub sessions: Arc<dyn RefreshStore>,
    pub clock: Arc<dyn Clock>,
    pub settings: HttpSettings,
    /// For `/.well-known/jwks.json`.
    pub public_keys: Arc<dyn PublicKeys>,
    /// For `/revocations`.
    pub revocations: Arc<dyn RevocationFeed>,
    /// For `/revocations/stream`.
    pub revocation_stream: Arc<RevocationHub>,
}

/// The API title and version shown in the spec.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Every operation group the service serves.
pub type Apis = (
    AuthApi,
    PasswordApi,
    ResetApi,
    VerifyApi,
    HealthApi,
    WellKnownApi,
    RevocationsApi,
    RevocationStreamApi,
);

/// The OpenAPI service; the servers entry is relative unless a public URL is configured.
pub fn openapi_service(public_url: Option<&str>) -> OpenApiService<Apis, ()> {
    let service = OpenApiService::new(
        (
            AuthApi,
            PasswordApi,
            ResetApi,
            VerifyApi,
            HealthApi,
            WellKnownApi,
            RevocationsApi,
            RevocationStreamApi,
        ),
        "jwt-auth",
        API_VERSION,
    )
    .description(
        "Issues short-lived JWT access tokens and rotating refresh tokens in an HttpOnly \
         cookie. Log in, then use Authorize with the access token for /auth/me.",
    );
    match public_url {
        Some(url) => service.server(url.trim_end_matches('/')),
        None => service.server("/"),
    }
}

/// The whole HTTP application: API, spec, Swagger UI, the demo page and the guards around them.
pub fn build_app(state: Arc<AppState>) -> impl Endpoint {
    let service = openapi_service(state.settings.public_url.as_deref());
    let allowed = Arc::new(errors::AllowedMethods::from_spec(&service.spec()));
    let docs = state.settings.docs_enabled.then(|| service.swagger_ui());
    let json = service.spec_endpoint();
    let yaml = service.spec_endpoint_yaml();
    let mut routes = Route::new().nest("/", service);
    if let Some(docs) = docs {
        routes = routes.nest("/docs", docs);
    }
    if state.settings.demo_page_enabled {
        routes = demo::routes(routes);
    }
    routes
        .at("/openapi.json", json)
        .at("/openapi.yaml", yaml)
        .around(move |next, req| {
            let (state, allowed) = (state.clone(), allowed.clone());
            async move { guards::edge(next, req, &state, &allowed).await }
        })
}
