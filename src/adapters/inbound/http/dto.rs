//! Request and response bodies. poem-openapi's validators take only literals, so the limits
//! below restate the domain's constants; a test holds the generated schema to them. Every
//! string field of a request body is a `JsonString`: a JSON string and nothing else.

use poem_openapi::types::Example;
use poem_openapi::{Enum, Object};

use super::json_string::{JsonString, LoginEmailField, NewEmailField, PasswordField};
use crate::domain::{LogoutScope, SessionId, SessionInfo, Timestamp, User};

/// Credentials.
#[derive(Debug, Object)]
#[oai(example)]
pub struct LoginRequest {
    /// The account's email, at most 254 characters; letter case and surrounding spaces are
    /// ignored.
    #[oai(validator(max_length = 254))]
    pub email: JsonString<LoginEmailField>,
    /// The password, 1 to 1024 characters, compared exactly as sent (no Unicode
    /// normalization).
    #[oai(validator(min_length = 1, max_length = 1024))]
    pub password: JsonString<PasswordField>,
}

/// A new account.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RegisterRequest {
    /// A plain address such as `name@example.com`, at most 254 characters; stored lower-cased.
    #[oai(validator(max_length = 254))]
    pub email: JsonString<NewEmailField>,
    /// At least 8 and at most 1024 characters, any of them; every character counts.
    #[oai(validator(min_length = 8, max_length = 1024))]
    pub password: JsonString<PasswordField>,
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
    /// Whether the address is proved (a verification link followed, or a password reset).
    pub email_verified: bool,
}

impl From<&User> for UserBody {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email.to_string(),
            email_verified: user.email_verified,
        }
    }
}

/// One live session of the caller. Times are Unix seconds (as JWT's `iat` and `exp`).
#[derive(Debug, Object)]
pub struct SessionBody {
    /// Pass to `DELETE /auth/sessions/{id}` to end it.
    pub id: String,
    /// The login that opened it.
    pub created_at: u64,
    /// The last login or refresh.
    pub last_used_at: u64,
    /// The absolute end: no refresh extends it.
    pub expires_at: u64,
    /// When it ends unless refreshed before (`REFRESH_IDLE_TIMEOUT_DAYS`); absent when no
    /// idle timeout applies.
    #[oai(skip_serializing_if_is_none)]
    pub idle_expires_at: Option<u64>,
    /// The `User-Agent` sent at login, as text (at most 256 characters); never interpreted.
    /// Absent when the login sent none.
    #[oai(skip_serializing_if_is_none)]
    pub user_agent: Option<String>,
    /// The client address seen at login (the one the login throttle counts).
    #[oai(skip_serializing_if_is_none)]
    pub client_address: Option<String>,
    /// `true` for the session of the access token that asked.
    pub current: bool,
}

impl SessionBody {
    pub fn new(info: SessionInfo, current: SessionId) -> Self {
        let s = info.session;
        Self {
            id: s.id.to_string(),
            created_at: s.created_at.unix(),
            last_used_at: info.last_used_at.unix(),
            expires_at: s.expires_at.unix(),
            idle_expires_at: s.idle_expires_at.map(Timestamp::unix),
            user_agent: info.user_agent,
            client_address: info.client_address,
            current: s.id == current,
        }
    }
}

/// The caller's live sessions, most recently used first.
#[derive(Debug, Object)]
pub struct SessionsBody {
    pub sessions: Vec<SessionBody>,
}

/// Which sessions `POST /auth/logout` ends.
#[derive(Debug, Clone, Copy, Default, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ScopeParam {
    /// This session (the cookie's).
    #[default]
    Local,
    /// Every other session of the user; this one stays, with its cookie.
    Others,
    /// Every session of the user.
    Global,
}

impl From<ScopeParam> for LogoutScope {
    fn from(scope: ScopeParam) -> Self {
        match scope {
            ScopeParam::Local => Self::Local,
            ScopeParam::Others => Self::Others,
            ScopeParam::Global => Self::Global,
        }
    }
}

/// Liveness or readiness.
#[derive(Debug, Object)]
pub struct HealthBody {
    /// `ok`, or `unavailable` when a store does not answer.
    pub status: String,
}

#[cfg(test)]
mod tests {
    use poem_openapi::registry::Registry;
    use poem_openapi::types::Type;
    use serde_json::Value;

    use super::*;
    use crate::domain::{
        LOGIN_EMAIL_PATTERN, MAX_EMAIL_CHARS, MAX_PASSWORD_CHARS, MIN_NEW_PASSWORD_CHARS,
        NEW_EMAIL_PATTERN,
    };

    fn properties<T: Type>(name: &str) -> Value {
        let mut registry = Registry::new();
        T::register(&mut registry);
        serde_json::to_value(&registry.schemas[name]).unwrap()["properties"].clone()
    }

    #[test]
    fn schema_limits_are_the_domain_constants() {
        let login = properties::<LoginRequest>("LoginRequest");
        assert_eq!(login["email"]["maxLength"], MAX_EMAIL_CHARS);
        assert_eq!(login["email"]["pattern"], LOGIN_EMAIL_PATTERN);
        assert_eq!(login["password"]["minLength"], 1);
        assert_eq!(login["password"]["maxLength"], MAX_PASSWORD_CHARS);

        let register = properties::<RegisterRequest>("RegisterRequest");
        assert_eq!(register["email"]["maxLength"], MAX_EMAIL_CHARS);
        assert_eq!(register["email"]["pattern"], NEW_EMAIL_PATTERN);
        assert_eq!(register["password"]["minLength"], MIN_NEW_PASSWORD_CHARS);
        assert_eq!(register["password"]["maxLength"], MAX_PASSWORD_CHARS);
        for field in [&login["email"], &login["password"], &register["email"]] {
            assert_eq!(field["type"], "string", "{field}");
        }
        assert_eq!(register["password"]["type"], "string");
    }

    #[test]
    fn descriptions_count_characters_never_bytes() {
        for (name, props) in [
            ("LoginRequest", properties::<LoginRequest>("LoginRequest")),
            (
                "RegisterRequest",
                properties::<RegisterRequest>("RegisterRequest"),
            ),
        ] {
            let text = props.to_string();
            assert!(!text.contains("byte"), "{name}: {text}");
        }
    }
}
