//! The bearer scheme: what the spec declares, and the strict reading of the raw header.

use poem::http::header;
use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;

use crate::domain::AccessToken;

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
pub fn bearer_token(req: &Request) -> Option<AccessToken> {
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value
            .to_str()
            .ok()
            .and_then(strict_bearer)
            .map(|token| AccessToken::new(token.to_owned())),
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

#[cfg(test)]
mod tests {
    use super::strict_bearer;

    #[test]
    fn bearer_parsing_is_strict_but_case_insensitive() {
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
