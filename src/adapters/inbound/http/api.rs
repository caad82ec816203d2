//! The operations of the contract.

use std::net::IpAddr;
use std::sync::Arc;

use poem::http::header;
use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::param::Cookie;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme, Tags};

use super::errors::{self, ErrorBody};
use super::AppState;
use crate::app::LoginCommand;
use crate::domain::{
    Email, IssuedTokens, LoginError, LogoutError, MeError, Password, RefreshError, RegisterError,
    User,
};

/// Name of the refresh cookie (kept from the FastAPI project).
pub const REFRESH_COOKIE: &str = "refresh_token";

#[derive(Tags)]
enum Tag {
    /// Login, refresh, logout and the current user.
    Auth,
    /// Liveness and readiness for orchestrators and load balancers.
    Health,
}

/// Credentials.
#[derive(Debug, Object)]
#[oai(example)]
pub struct LoginRequest {
    /// The account's email; letter case and surrounding spaces are ignored.
    #[oai(validator(
        max_length = 254,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*@[^\x00-\x1f\x7f-\x9f]*$"
    ))]
    pub email: String,
    /// The password, compared exactly as sent (no Unicode normalization).
    #[oai(validator(min_length = 1, max_length = 1024))]
    pub password: String,
}

/// A new account.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RegisterRequest {
    /// A plain address such as `name@example.com`; stored lower-cased.
    #[oai(validator(
        max_length = 254,
        pattern = r"^[^\s@\x00-\x1f\x7f-\x9f]+@[^\s@\x00-\x1f\x7f-\x9f]+\.[^\s@\x00-\x1f\x7f-\x9f]+$"
    ))]
    pub email: String,
    /// At least 8 and at most 1024 characters, any of them; every character counts.
    #[oai(validator(min_length = 8, max_length = 1024))]
    pub password: String,
}

impl Example for RegisterRequest {
    fn example() -> Self {
        Self {
            email: "new.user@example.com".into(),
            password: "a long passphrase".into(),
        }
    }
}

impl Example for LoginRequest {
    fn example() -> Self {
        Self {
            email: "jywan@test.com".into(),
            password: "test".into(),
        }
    }
}

/// A new access token. The refresh token is only ever in the `refresh_token` cookie.
#[derive(Debug, Object)]
pub struct TokenBody {
    /// A JWT (`typ: at+jwt`) to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// The authenticated user.
#[derive(Debug, Object)]
pub struct UserBody {
    pub id: String,
    pub email: String,
}

impl From<&User> for UserBody {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email.to_string(),
        }
    }
}

/// Liveness or readiness.
#[derive(Debug, Object)]
pub struct HealthBody {
    /// `ok`, or `unavailable` when a store does not answer.
    pub status: String,
}

// poem-openapi refuses a request without a usable `Authorization` header before the operation
// runs; the operation then re-reads the raw header strictly (`bearer_token`).
/// An access token from `/auth/login` or `/auth/refresh`, sent as `Authorization: Bearer
/// <token>`: one header, the scheme word in any letter case, exactly one space, then the token.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT")]
pub struct BearerAuth(
    #[allow(
        dead_code,
        reason = "the token is re-read strictly from the raw header"
    )]
    Bearer,
);

/// The token of the one `Authorization` header, if it is a strictly formed bearer credential.
fn bearer_token(req: &Request) -> Option<&str> {
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok().and_then(strict_bearer),
        _ => None,
    }
}

/// `Bearer <token>` with the scheme case-insensitive, one space, and a token without spaces.
fn strict_bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_at_checked(7)?;
    let ok = scheme.eq_ignore_ascii_case("bearer ")
        && !token.is_empty()
        && !token.bytes().any(|b| b.is_ascii_whitespace());
    ok.then_some(token)
}

#[derive(ApiResponse)]
pub enum TokenResponse {
    /// Tokens issued; `Set-Cookie` carries the (new) refresh token.
    #[oai(status = 200)]
    Ok(Json<TokenBody>, #[oai(header = "Set-Cookie")] String),
    /// Malformed JSON, missing or mistyped fields, or a field over its limit.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `invalid_credentials` (login) or `invalid_refresh_token` (refresh; the cookie is cleared).
    #[oai(status = 401)]
    Unauthorized(
        Json<ErrorBody>,
        #[oai(header = "Set-Cookie")] Option<String>,
    ),
    /// `forbidden_origin`: a cross-site request.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// `payload_too_large`.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// `unsupported_media_type`: the body is not JSON.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// `too_many_requests`: wait `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// `internal_error`.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// `unavailable`: a backing store is down; nothing changed.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum LogoutResponse {
    /// Session revoked (if there was one) and cookie cleared.
    #[oai(status = 204)]
    NoContent(#[oai(header = "Set-Cookie")] String),
    /// `forbidden_origin`: a cross-site request.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// `payload_too_large`: a body over the limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// `unsupported_media_type`: a body that is not JSON.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// `internal_error`.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// `unavailable`: the session store is down.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum MeResponse {
    /// The user the access token was issued to.
    #[oai(status = 200)]
    Ok(Json<UserBody>),
    /// `invalid_token`, with `WWW-Authenticate: Bearer error="invalid_token"`.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// `payload_too_large`: a body over the limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// `internal_error`.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// `unavailable`.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum RegisterResponse {
    /// Account created.
    #[oai(status = 201)]
    Created(Json<UserBody>),
    /// Malformed body, invalid email, or a password that breaks the policy (the message says
    /// which rule).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `forbidden_origin`: a cross-site request.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// `not_found`: registration is turned off.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// `email_taken`.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// `payload_too_large`.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// `unsupported_media_type`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// `internal_error`.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// `unavailable`.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[derive(ApiResponse)]
pub enum HealthResponse {
    #[oai(status = 200)]
    Ok(Json<HealthBody>),
    #[oai(status = 503)]
    Unavailable(Json<HealthBody>),
}

/// The `/auth/*` operations.
pub struct AuthApi {
    state: Arc<AppState>,
}

impl AuthApi {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }

    fn refresh_cookie(&self, tokens: &IssuedTokens) -> String {
        let max_age = self.state.clock.now().secs_until(tokens.session_expires_at);
        format!(
            "{REFRESH_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/auth; Max-Age={max_age}{}",
            tokens.refresh_token.as_str(),
            self.secure_attr()
        )
    }

    fn cleared_cookie(&self) -> String {
        format!(
            "{REFRESH_COOKIE}=; HttpOnly; SameSite=Strict; Path=/auth; Max-Age=0{}",
            self.secure_attr()
        )
    }

    fn secure_attr(&self) -> &'static str {
        if self.state.settings.cookie_secure {
            "; Secure"
        } else {
            ""
        }
    }

    fn token_ok(&self, tokens: IssuedTokens) -> TokenResponse {
        let cookie = self.refresh_cookie(&tokens);
        TokenResponse::Ok(
            Json(TokenBody {
                access_token: tokens.access_token.into_string(),
                token_type: "bearer".into(),
                expires_in: tokens.expires_in,
            }),
            cookie,
        )
    }

    /// The client's address: the socket peer, or the rightmost entry of the trusted proxy
    /// header when one is configured.
    fn client_address(&self, req: &Request) -> String {
        if let Some(name) = &self.state.settings.trusted_proxy_header {
            let forwarded = req
                .headers()
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|v| v.trim().parse::<IpAddr>().ok())
                .next_back();
            if let Some(ip) = forwarded {
                return ip.to_string();
            }
        }
        req.remote_addr()
            .as_socket_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string())
    }
}

/// A body-less cookie POST may carry no body or JSON; the CORS-simple types a cross-site form
/// could send are refused.
fn has_simple_content_type(req: &Request) -> bool {
    req.content_type()
        .is_some_and(|ct| !ct.trim_start().starts_with("application/json"))
}

fn error(code: &str, message: &str) -> Json<ErrorBody> {
    ErrorBody::new(code, message)
}

fn unsupported() -> Json<ErrorBody> {
    let (code, message) = errors::for_status(poem::http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
    error(code, message)
}

fn unavailable() -> Json<ErrorBody> {
    let (code, message) = errors::for_status(poem::http::StatusCode::SERVICE_UNAVAILABLE);
    error(code, message)
}

fn internal() -> Json<ErrorBody> {
    let (code, message) = errors::for_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR);
    error(code, message)
}

#[OpenApi(prefix_path = "/auth", tag = "Tag::Auth")]
impl AuthApi {
    /// Log in
    ///
    /// Checks the email and password, opens a new session and returns an access token; the
    /// refresh token is set in the `refresh_token` cookie (HttpOnly, SameSite=Strict,
    /// Path=/auth). Unknown email and wrong password answer exactly the same.
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(&self, req: &Request, body: Json<LoginRequest>) -> TokenResponse {
        let (email, password) = match (Email::parse(&body.email), Password::parse(body.0.password))
        {
            (Ok(e), Ok(p)) => (e, p),
            (Err(why), _) | (_, Err(why)) => {
                return TokenResponse::BadRequest(error("invalid_request", why))
            }
        };
        let cmd = LoginCommand {
            email,
            password,
            client: self.client_address(req),
        };
        match self.state.login.execute(cmd).await {
            Ok(tokens) => self.token_ok(tokens),
            Err(LoginError::InvalidCredentials) => TokenResponse::Unauthorized(
                error("invalid_credentials", "Invalid email or password."),
                None,
            ),
            Err(LoginError::Throttled { retry_after_secs }) => TokenResponse::TooManyRequests(
                error("too_many_requests", "Too many login attempts; retry later."),
                retry_after_secs,
            ),
            Err(LoginError::Unavailable(e)) => {
                tracing::warn!(error = %e, "store unavailable during login");
                TokenResponse::Unavailable(unavailable())
            }
            Err(LoginError::Unknown(e)) => {
                tracing::error!(error = %e, "login failed");
                TokenResponse::Internal(internal())
            }
        }
    }

    /// Refresh the access token
    ///
    /// Consumes the `refresh_token` cookie and returns a new access token with a rotated
    /// cookie. A token can be used once; replaying a used one revokes its whole session.
    #[oai(path = "/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        req: &Request,
        #[oai(name = "refresh_token")] cookie: Cookie<Option<String>>,
    ) -> TokenResponse {
        if has_simple_content_type(req) {
            return TokenResponse::UnsupportedMediaType(unsupported());
        }
        match self.state.refresh.execute(cookie.0.as_deref()).await {
            Ok(tokens) => self.token_ok(tokens),
            Err(RefreshError::InvalidRefreshToken(reason)) => {
                tracing::info!(event = "refresh_refused", reason, "refresh refused");
                TokenResponse::Unauthorized(
                    error(
                        "invalid_refresh_token",
                        "The refresh token is missing, expired or revoked.",
                    ),
                    Some(self.cleared_cookie()),
                )
            }
            Err(RefreshError::Unavailable(e)) => {
                tracing::warn!(error = %e, "store unavailable during refresh");
                TokenResponse::Unavailable(unavailable())
            }
            Err(RefreshError::Unknown(e)) => {
                tracing::error!(error = %e, "refresh failed");
                TokenResponse::Internal(internal())
            }
        }
    }

    /// Log out
    ///
    /// Revokes the session of the `refresh_token` cookie, if any, and clears the cookie.
    /// Idempotent: without a cookie or with an unknown one it still answers 204.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        req: &Request,
        #[oai(name = "refresh_token")] cookie: Cookie<Option<String>>,
    ) -> LogoutResponse {
        if has_simple_content_type(req) {
            return LogoutResponse::UnsupportedMediaType(unsupported());
        }
        match self.state.logout.execute(cookie.0.as_deref()).await {
            Ok(()) => LogoutResponse::NoContent(self.cleared_cookie()),
            Err(LogoutError::Unavailable(e)) => {
                tracing::warn!(error = %e, "store unavailable during logout");
                LogoutResponse::Unavailable(unavailable())
            }
            Err(LogoutError::Unknown(e)) => {
                tracing::error!(error = %e, "logout failed");
                LogoutResponse::Internal(internal())
            }
        }
    }

    /// The current user
    ///
    /// Returns the user of the bearer access token. The token must be valid, unexpired, and
    /// its session still live (logout cuts access at once).
    #[oai(path = "/me", method = "get", operation_id = "me")]
    async fn me(&self, req: &Request, _scheme: BearerAuth) -> MeResponse {
        let refused = || {
            let (code, message) = errors::for_status(poem::http::StatusCode::UNAUTHORIZED);
            MeResponse::Unauthorized(error(code, message), errors::BEARER_CHALLENGE.to_owned())
        };
        let Some(token) = bearer_token(req) else {
            tracing::info!(
                event = "bearer_refused",
                reason = "malformed Authorization header"
            );
            return refused();
        };
        match self.state.me.execute(token).await {
            Ok(user) => MeResponse::Ok(Json(UserBody::from(&user))),
            Err(MeError::InvalidToken(reason)) => {
                tracing::info!(event = "bearer_refused", reason = %reason);
                refused()
            }
            Err(MeError::Unavailable(e)) => {
                tracing::warn!(error = %e, "store unavailable");
                MeResponse::Unavailable(unavailable())
            }
            Err(MeError::Unknown(e)) => {
                tracing::error!(error = %e, "me failed");
                MeResponse::Internal(internal())
            }
        }
    }

    /// Register
    ///
    /// Creates an account (on by default in `dev`, off in `prod`; see REGISTRATION_ENABLED).
    /// Passwords need at least 8 characters and at most 1024 bytes.
    #[oai(path = "/register", method = "post", operation_id = "register")]
    async fn register(&self, body: Json<RegisterRequest>) -> RegisterResponse {
        if !self.state.settings.registration_enabled {
            let (code, message) = errors::for_status(poem::http::StatusCode::NOT_FOUND);
            return RegisterResponse::NotFound(error(code, message));
        }
        let email = match Email::parse_new(&body.email) {
            Ok(e) => e,
            Err(why) => return RegisterResponse::BadRequest(error("invalid_request", why)),
        };
        let password = match Password::parse_new(body.0.password) {
            Ok(p) => p,
            Err(why) => return RegisterResponse::BadRequest(error("invalid_request", why)),
        };
        match self.state.register.execute(email, &password).await {
            Ok(user) => {
                tracing::info!(event = "user_registered", user = %user.id);
                RegisterResponse::Created(Json(UserBody::from(&user)))
            }
            Err(RegisterError::EmailTaken) => RegisterResponse::Conflict(error(
                "email_taken",
                "An account with this email already exists.",
            )),
            Err(RegisterError::Unavailable(e)) => {
                tracing::warn!(error = %e, "store unavailable during register");
                RegisterResponse::Unavailable(unavailable())
            }
            Err(RegisterError::Unknown(e)) => {
                tracing::error!(error = %e, "register failed");
                RegisterResponse::Internal(internal())
            }
        }
    }
}

/// `/health/*`.
pub struct HealthApi {
    state: Arc<AppState>,
}

impl HealthApi {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

#[OpenApi(prefix_path = "/health", tag = "Tag::Health")]
impl HealthApi {
    /// Liveness
    ///
    /// The process is up and serving.
    #[oai(path = "/live", method = "get", operation_id = "health_live")]
    async fn live(&self) -> HealthResponse {
        HealthResponse::Ok(Json(HealthBody {
            status: "ok".into(),
        }))
    }

    /// Readiness
    ///
    /// The session store answers; 503 otherwise.
    #[oai(path = "/ready", method = "get", operation_id = "health_ready")]
    async fn ready(&self) -> HealthResponse {
        let probe = crate::domain::SessionId::new_random();
        match self
            .state
            .sessions
            .is_active(probe, self.state.clock.now())
            .await
        {
            Ok(_) => HealthResponse::Ok(Json(HealthBody {
                status: "ok".into(),
            })),
            Err(e) => {
                tracing::warn!(error = %e, "readiness probe failed");
                HealthResponse::Unavailable(Json(HealthBody {
                    status: "unavailable".into(),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::strict_bearer;

    #[test]
    fn bearer_parsing_is_strict_but_case_insensitive() {
        // Checklist case 56.
        assert_eq!(strict_bearer("Bearer abc"), Some("abc"));
        assert_eq!(strict_bearer("bearer abc"), Some("abc"));
        assert_eq!(strict_bearer("BEARER abc"), Some("abc"));
        for bad in [
            "Bearer  abc",
            "Bearer",
            "Bearer ",
            "Basic abc",
            "Bearer a b",
            "Bearerabc",
            "Bearer abc ",
        ] {
            assert_eq!(strict_bearer(bad), None, "{bad:?}");
        }
        assert_eq!(strict_bearer("Bé"), None);
    }
}
