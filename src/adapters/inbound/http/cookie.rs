//! The refresh cookie: its name, how it is set and how it is cleared.

use poem::http::{header, HeaderMap};
use poem_openapi::param::Cookie;

use crate::domain::RefreshToken;

/// Name of the refresh cookie (kept from the FastAPI project).
pub const REFRESH_COOKIE: &str = "refresh_token";

/// The presented refresh cookie, if it has the shape this service issues and is the only
/// refresh cookie of the request; anything else is treated as no token at all. `cookie` is
/// the first one of the name (the one the framework keeps). A second one is refused rather
/// than one picked: a sibling subdomain can plant a cookie that browsers send first, which
/// would move the victim into the planter's session or make the victim's logout revoke it.
pub fn presented(headers: &HeaderMap, cookie: &Cookie<Option<String>>) -> Option<RefreshToken> {
    let count = refresh_cookies(headers);
    if count > 1 {
        tracing::info!(
            event = "refresh_cookie_ambiguous",
            count,
            "more than one refresh cookie; none used"
        );
        return None;
    }
    cookie.0.as_deref().and_then(RefreshToken::parse)
}

/// How many refresh cookies the request carries, across every `Cookie` header, parsed as the
/// framework's cookie jar parses them (names percent-decoded, non-UTF-8 headers skipped).
fn refresh_cookies(headers: &HeaderMap) -> usize {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| poem::web::cookie::Cookie::parse(pair.trim()).ok())
        .filter(|c| c.name() == REFRESH_COOKIE)
        .count()
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

    fn cookie_headers(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(header::COOKIE, line.parse().unwrap());
        }
        headers
    }

    #[test]
    fn only_a_well_formed_cookie_is_a_presented_token() {
        let token = RefreshToken::generate();
        let headers = cookie_headers(&[&format!("refresh_token={}", token.as_str())]);
        assert_eq!(
            presented(&headers, &Cookie(Some(token.as_str().to_owned()))),
            Some(token)
        );
        for raw in [None, Some(""), Some("garbage"), Some(&*"x".repeat(4096))] {
            assert!(
                presented(&HeaderMap::new(), &Cookie(raw.map(str::to_owned))).is_none(),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn two_refresh_cookies_are_no_token_in_one_header_or_across_headers() {
        let (a, b) = (RefreshToken::generate(), RefreshToken::generate());
        let (a, b) = (a.as_str(), b.as_str());
        let first = Cookie(Some(a.to_owned()));
        for lines in [
            vec![format!("refresh_token={a}; refresh_token={b}")],
            vec![
                format!("refresh_token={a}"),
                format!("x=1; refresh_token={b}"),
            ],
            // Percent-encoded names are decoded by the framework, so they count too.
            vec![format!("refresh_token={a}; refresh%5Ftoken={b}")],
            vec![format!("refresh_token={a}; refresh_token=")],
        ] {
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            assert!(
                presented(&cookie_headers(&lines), &first).is_none(),
                "{lines:?}"
            );
        }
        // Other cookies, and names that only look alike, do not count.
        let headers = cookie_headers(&[&format!(
            "other=1; refresh_token={a}; refresh_token_x=2; Refresh_Token=3"
        )]);
        assert!(presented(&headers, &first).is_some());
    }
}
