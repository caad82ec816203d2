//! The `/auth/*` operations: parse the request into domain types, call one use case, map its
//! result onto the contract.

use std::sync::Arc;

use poem::web::Data;
use poem::Request;
use poem_openapi::param::Cookie;
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::bearer::{bearer_token, BearerAuth};
use super::dto::{LoginRequest, RegisterRequest, TokenBody, UserBody};
use super::errors::{
    BEARER_CHALLENGE, EMAIL_TAKEN, INVALID_CREDENTIALS, INVALID_REFRESH_TOKEN, INVALID_REQUEST,
    INVALID_TOKEN, NOT_FOUND, TOO_MANY_REQUESTS, UNSUPPORTED_MEDIA_TYPE,
};
use super::responses::{
    infra_failure, LogoutResponse, MeResponse, RegisterResponse, TokenResponse,
};
use super::{client_ip, cookie, AppState, Tag};
use crate::app::LoginCommand;
use crate::domain::{
    ClientAddress, Email, IssuedTokens, LoginError, LogoutError, MeError, Password, RefreshError,
    RegisterError,
};

/// The `/auth/*` operations. Stateless, so the spec can be produced without adapters; each
/// operation reads the `AppState` the edge middleware attaches to the request.
pub struct AuthApi;

fn cleared_cookie(state: &AppState) -> String {
    cookie::cleared(state.settings.cookie_secure)
}

fn token_ok(state: &AppState, tokens: IssuedTokens) -> TokenResponse {
    let max_age = state.clock.now().secs_until(tokens.session_expires_at);
    let cookie = cookie::set(&tokens.refresh_token, max_age, state.settings.cookie_secure);
    TokenResponse::Ok(
        Json(TokenBody {
            access_token: tokens.access_token.into_string(),
            token_type: "bearer".into(),
            expires_in: tokens.expires_in,
        }),
        cookie,
    )
}

fn client_address(state: &AppState, req: &Request) -> ClientAddress {
    let s = &state.settings;
    client_ip::client_address(req, s.trusted_proxy_header.as_deref(), s.trusted_proxy_hops)
}

/// A body-less cookie POST may carry no body or JSON; the CORS-simple types a cross-site form
/// could send are refused.
fn has_simple_content_type(req: &Request) -> bool {
    req.content_type()
        .is_some_and(|ct| !ct.trim_start().starts_with("application/json"))
}

#[OpenApi(prefix_path = "/auth", tag = "Tag::Auth")]
impl AuthApi {
    /// Log in
    ///
    /// Checks the email and password, opens a new session and returns an access token; the
    /// refresh token is set in the `refresh_token` cookie (HttpOnly, SameSite=Strict,
    /// Path=/auth). Unknown email and wrong password answer exactly the same.
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        Data(state): Data<&Arc<AppState>>,
        req: &Request,
        body: Json<LoginRequest>,
    ) -> TokenResponse {
        let (email, password) = match (
            Email::parse(body.email.as_str()),
            Password::parse(body.0.password.into_inner()),
        ) {
            (Ok(e), Ok(p)) => (e, p),
            (Err(why), _) | (_, Err(why)) => {
                return TokenResponse::BadRequest(INVALID_REQUEST.body_with(why))
            }
        };
        let cmd = LoginCommand {
            email,
            password,
            client: client_address(state, req),
        };
        match state.login.execute(cmd).await {
            Ok(tokens) => token_ok(state, tokens),
            Err(LoginError::InvalidCredentials) => {
                TokenResponse::Unauthorized(INVALID_CREDENTIALS.body(), None)
            }
            Err(LoginError::Throttled { retry_after_secs }) => {
                TokenResponse::TooManyRequests(TOO_MANY_REQUESTS.body(), retry_after_secs)
            }
            Err(LoginError::Infra(e)) => infra_failure("login", e),
        }
    }

    /// Refresh the access token
    ///
    /// Consumes the `refresh_token` cookie and returns a new access token with a rotated
    /// cookie. A token can be used once; replaying a used one revokes its whole session.
    /// A request with more than one `refresh_token` cookie is refused (401) and uses neither.
    #[oai(path = "/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        Data(state): Data<&Arc<AppState>>,
        req: &Request,
        #[oai(name = "refresh_token")] cookie: Cookie<Option<String>>,
    ) -> TokenResponse {
        if has_simple_content_type(req) {
            return TokenResponse::UnsupportedMediaType(UNSUPPORTED_MEDIA_TYPE.body());
        }
        let client = client_address(state, req);
        match state
            .refresh
            .execute(cookie::presented(req.headers(), &cookie), &client)
            .await
        {
            Ok(tokens) => token_ok(state, tokens),
            Err(RefreshError::InvalidRefreshToken(reason)) => {
                tracing::info!(event = "refresh_refused", reason, "refresh refused");
                TokenResponse::Unauthorized(
                    INVALID_REFRESH_TOKEN.body(),
                    Some(cleared_cookie(state)),
                )
            }
            Err(RefreshError::Infra(e)) => infra_failure("refresh", e),
        }
    }

    /// Log out
    ///
    /// Revokes the session of the `refresh_token` cookie, if any, and clears the cookie.
    /// Idempotent: without a cookie or with an unknown one it still answers 204. With more
    /// than one `refresh_token` cookie it revokes nothing.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        Data(state): Data<&Arc<AppState>>,
        req: &Request,
        #[oai(name = "refresh_token")] cookie: Cookie<Option<String>>,
    ) -> LogoutResponse {
        if has_simple_content_type(req) {
            return LogoutResponse::UnsupportedMediaType(UNSUPPORTED_MEDIA_TYPE.body());
        }
        match state
            .logout
            .execute(cookie::presented(req.headers(), &cookie))
            .await
        {
            Ok(()) => LogoutResponse::NoContent(cleared_cookie(state)),
            Err(LogoutError::Infra(e)) => infra_failure("logout", e),
        }
    }

    /// The current user
    ///
    /// Returns the user of the bearer access token. The token must be valid, unexpired, and
    /// its session still live (logout cuts access at once).
    #[oai(path = "/me", method = "get", operation_id = "me")]
    async fn me(
        &self,
        Data(state): Data<&Arc<AppState>>,
        req: &Request,
        _scheme: BearerAuth,
    ) -> MeResponse {
        let refused =
            || MeResponse::Unauthorized(INVALID_TOKEN.body(), BEARER_CHALLENGE.to_owned());
        let Some(token) = bearer_token(req) else {
            tracing::info!(
                event = "bearer_refused",
                reason = "malformed Authorization header"
            );
            return refused();
        };
        match state.me.execute(&token).await {
            Ok(user) => MeResponse::Ok(Json(UserBody::from(&user))),
            Err(MeError::InvalidToken(reason)) => {
                tracing::info!(event = "bearer_refused", reason = %reason);
                refused()
            }
            Err(MeError::Infra(e)) => infra_failure("me", e),
        }
    }

    /// Register
    ///
    /// Creates an account (on by default in `dev`, off in `prod`; see REGISTRATION_ENABLED).
    /// Passwords need at least 8 and at most 1024 characters. Each client address may sign
    /// up a limited number of times a minute (REGISTER_CLIENT_MAX_PER_MINUTE).
    #[oai(path = "/register", method = "post", operation_id = "register")]
    async fn register(
        &self,
        Data(state): Data<&Arc<AppState>>,
        req: &Request,
        body: Json<RegisterRequest>,
    ) -> RegisterResponse {
        if !state.settings.registration_enabled {
            return RegisterResponse::NotFound(NOT_FOUND.body());
        }
        let email = match Email::parse_new(body.email.as_str()) {
            Ok(e) => e,
            Err(why) => return RegisterResponse::BadRequest(INVALID_REQUEST.body_with(why)),
        };
        let password = match Password::parse_new(body.0.password.into_inner()) {
            Ok(p) => p,
            Err(why) => return RegisterResponse::BadRequest(INVALID_REQUEST.body_with(why)),
        };
        let client = client_address(state, req);
        match state.register.execute_from(&client, email, &password).await {
            Ok(user) => {
                tracing::info!(event = "user_registered", user = %user.id);
                RegisterResponse::Created(Json(UserBody::from(&user)))
            }
            Err(RegisterError::EmailTaken) => RegisterResponse::Conflict(EMAIL_TAKEN.body()),
            Err(RegisterError::Throttled { retry_after_secs }) => {
                RegisterResponse::TooManyRequests(TOO_MANY_REQUESTS.body(), retry_after_secs)
            }
            Err(RegisterError::Infra(e)) => infra_failure("register", e),
        }
    }
}
