//! The refresh cookie: its name, how it is set and how it is cleared.

use poem_openapi::param::Cookie;

use crate::domain::RefreshToken;

/// Name of the refresh cookie (kept from the FastAPI project).
pub const REFRESH_COOKIE: &str = "refresh_token";

/// The presented refresh cookie, if it has the shape this service issues; anything else is
/// treated as no token at all.
pub fn presented(cookie: &Cookie<Option<String>>) -> Option<RefreshToken> {
    cookie.0.as_deref().and_then(RefreshToken::parse)
}

/// `Set-Cookie` for a new refresh token living `max_age` seconds.
pub fn set(token: &RefreshToken, max_age: u64, secure: bool) -> String {
    format!(
        "{REFRESH_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/auth; Max-Age={max_age}{}",
        token.as_str(),
        secure_attr(secure)
    )
}

/// `Set-Cookie` that makes the browser forget the refresh token.
pub fn cleared(secure: bool) -> String {
    format!(
        "{REFRESH_COOKIE}=; HttpOnly; SameSite=Strict; Path=/auth; Max-Age=0{}",
        secure_attr(secure)
    )
}

fn secure_attr(secure: bool) -> &'static str {
    if secure {
        "; Secure"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped_to_auth() {
        let token = RefreshToken::generate();
        assert_eq!(
            set(&token, 60, false),
            format!(
                "refresh_token={}; HttpOnly; SameSite=Strict; Path=/auth; Max-Age=60",
                token.as_str()
            )
        );
        assert!(set(&token, 60, true).ends_with("; Max-Age=60; Secure"));
        assert_eq!(
            cleared(false),
            "refresh_token=; HttpOnly; SameSite=Strict; Path=/auth; Max-Age=0"
        );
        assert!(cleared(true).ends_with("; Max-Age=0; Secure"));
    }

    #[test]
    fn only_a_well_formed_cookie_is_a_presented_token() {
        let token = RefreshToken::generate();
        assert_eq!(
            presented(&Cookie(Some(token.as_str().to_owned()))),
            Some(token)
        );
        for raw in [None, Some(""), Some("garbage"), Some(&*"x".repeat(4096))] {
            assert!(
                presented(&Cookie(raw.map(str::to_owned))).is_none(),
                "{raw:?}"
            );
        }
    }
}
