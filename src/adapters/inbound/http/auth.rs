//! The `/auth/*` operations: parse the request into domain types, call one use case, map its
//! result onto the contract.

use std::sync::Arc;

use poem::http::header;
use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Cookie, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::bearer::{bearer_token, BearerAuth};
use super::dto::{
    LoginRequest, RegisterRequest, ScopeParam, SessionBody, SessionsBody, TokenBody, UserBody,
};
use super::errors::{
    BEARER_CHALLENGE, EMAIL_NOT_VERIFIED, EMAIL_TAKEN, INVALID_CREDENTIALS, INVALID_REFRESH_TOKEN,
    INVALID_REQUEST, INVALID_TOKEN, NOT_FOUND, TOO_MANY_REQUESTS, UNSUPPORTED_MEDIA_TYPE,
};
use super::responses::{
    infra_failure, EndSessionResponse, LogoutResponse, MeResponse, RegisterResponse,
    SessionsResponse, TokenResponse,
};
use super::{client_ip, cookie, AppState, Tag};
use crate::app::LoginCommand;
use crate::domain::{
    AccessToken, ClientAddress, Email, IssuedTokens, LoginError, LogoutError, LogoutScope, MeError,
    Password, RefreshError, RegisterError, SessionId, UserAgent,
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

pub(super) fn client_address(state: &AppState, req: &Request) -> ClientAddress {
    let s = &state.settings;
    client_ip::client_address(req, s.trusted_proxy_header.as_deref(), s.trusted_proxy_hops)
}

/// The `User-Agent`, as text to show its owner (bytes that are not UTF-8 become U+FFFD).
pub(super) fn user_agent(req: &Request) -> Option<UserAgent> {
    let raw = req.headers().get(header::USER_AGENT)?;
    UserAgent::parse(&String::from_utf8_lossy(raw.as_bytes()))
}

/// The bearer token, or the refusal every Bearer operation gives without one.
pub(super) fn bearer_or_refusal(req: &Request) -> Option<AccessToken> {
    let token = bearer_token(req);
    if token.is_none() {
        tracing::info!(
            event = "bearer_refused",
            reason = "malformed Authorization header"
        );
    }
    token
}

pub(super) fn bearer_refused(reason: &str) {
    tracing::info!(event = "bearer_refused", reason = %reason);
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
    /// Path=/auth). Unknown email and wrong password answer exactly the same. With
    /// `REQUIRE_EMAIL_VERIFICATION` on, the right password of an account whose email is not
    /// verified answers 403 `email_not_verified` (a wrong one stays 401 `invalid_credentials`).
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
            user_agent: user_agent(req),
        };
        match state.login.execute(cmd).await {
            Ok(tokens) => token_ok(state, tokens),
            Err(LoginError::InvalidCredentials) => {
                TokenResponse::Unauthorized(INVALID_CREDENTIALS.body(), None)
            }
            Err(LoginError::EmailNotVerified) => {
                TokenResponse::Forbidden(EMAIL_NOT_VERIFIED.body())
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
    /// Ends sessions by the `refresh_token` cookie. `scope=local` (the default): its own
    /// session, and the cookie is cleared. `scope=others`: every other session of the user
    /// ("sign out my other devices"); this one stays, with its cookie. `scope=global`: every
    /// session of the user, and the cookie is cleared. Ended sessions' refresh tokens are
    /// refused and their access tokens stop at `/auth/me` at once. `others` and `global` need
    /// the session's current cookie (or one rotated within the grace window): an older one
    /// ends only its own session. Idempotent: without a cookie or with an unknown one it
    /// still answers 204. With more than one `refresh_token` cookie it revokes nothing.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        Data(state): Data<&Arc<AppState>>,
        req: &Request,
        #[oai(name = "refresh_token")] cookie: Cookie<Option<String>>,
        /// `local` (default), `others` or `global`.
        scope: Query<Option<ScopeParam>>,
    ) -> LogoutResponse {
        if has_simple_content_type(req) {
            return LogoutResponse::UnsupportedMediaType(UNSUPPORTED_MEDIA_TYPE.body());
        }
        // Which of two scopes counts is not guessed at: a proxy or a log may read the other.
        // Keys are counted decoded, as the framework reads them (`%73cope` is `scope`).
        let scopes = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .filter(|(key, _)| key == "scope")
            .count();
        if scopes > 1 {
            return LogoutResponse::BadRequest(INVALID_REQUEST.body_with("scope is given twice"));
        }
        let scope = LogoutScope::from(scope.0.unwrap_or_default());
        let client = client_address(state, req);
        match state
            .logout
            .execute(cookie::presented(req.headers(), &cookie), scope, &client)
            .await
        {
            Ok(_) if scope == LogoutScope::Others => LogoutResponse::NoContent(None),
            Ok(_) => LogoutResponse::NoContent(Some(cleared_cookie(state))),
            Err(LogoutError::Infra(e)) => infra_failure("logout", e),
        }
    }

    /// Where am I signed in
    ///
    /// The caller's live sessions (not ended, neither lifetime reached), most recently used
    /// first, each with where it was opened; `current` marks the one of this access token.
    #[oai(path = "/sessions", method = "get", operation_id = "listSessions")]
    async fn list_sessions(
        &self,
        Data(state): Data<&Arc<AppState>>,
        req: &Request,
        _scheme: BearerAuth,
    ) -> SessionsResponse {
        let refused =
            || SessionsResponse::Unauthorized(INVALID_TOKEN.body(), BEARER_CHALLENGE.to_owned());
        let Some(token) = bearer_or_refusal(req) else {
            return refused();
        };
        match state.my_sessions.list(&token).await {
            Ok(list) => SessionsResponse::Ok(Json(SessionsBody {
                sessions: list
                    .sessions
                    .into_iter()
                    .map(|s| SessionBody::new(s, list.current))
                    .collect(),
            })),
            Err(MeError::InvalidToken(reason)) => {
                bearer_refused(&reason);
                refused()
            }
            Err(MeError::Infra(e)) => infra_failure("list sessions", e),
        }
    }

    /// End one of my sessions
    ///
    /// Ends a live session of the caller (this one included): its refresh token is refused
    /// from now on and its access tokens stop at `/auth/me` at once. Someone else's session,
    /// an ended one and an unknown id all answer the same 404.
    #[oai(path = "/sessions/:id", method = "delete", operation_id = "endSession")]
    async fn end_session(
        &self,
        Data(state): Data<&Arc<AppState>>,
        req: &Request,
        _scheme: BearerAuth,
        /// A session `id` from `GET /auth/sessions`.
        id: Path<String>,
    ) -> EndSessionResponse {
        let refused =
            || EndSessionResponse::Unauthorized(INVALID_TOKEN.body(), BEARER_CHALLENGE.to_owned());
        let Some(token) = bearer_or_refusal(req) else {
            return refused();
        };
        // Authenticated first, so an unauthenticated caller learns nothing, not even which
        // ids are well formed.
        let session = id.0.parse::<SessionId>().ok();
        let outcome = match session {
            Some(session) => state.my_sessions.end(&token, session).await,
            None => state.me.execute(&token).await.map(|_| false),
        };
        match outcome {
            Ok(true) => EndSessionResponse::NoContent,
            Ok(false) => EndSessionResponse::NotFound(NOT_FOUND.body()),
            Err(MeError::InvalidToken(reason)) => {
                bearer_refused(&reason);
                refused()
            }
            Err(MeError::Infra(e)) => infra_failure("end session", e),
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
                // Not awaited: the 201 neither waits for the mail nor depends on it.
                let _ = state.email_verification.mail_new_account(&user, &client);
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
