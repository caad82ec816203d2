//! Secrets of the domain. None of them prints its value through `Debug`, so a stray
//! `{:?}` or a `tracing` field never leaks one.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Bytes of CSPRNG output in a refresh token (256 bits).
const REFRESH_TOKEN_BYTES: usize = 32;
/// Length of a refresh token once base64url-encoded without padding.
pub const REFRESH_TOKEN_LEN: usize = 43;
/// Longest password accepted, in characters; checked before any hashing so a huge body burns
/// no CPU.
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// Shortest password a new account may have.
pub const MIN_NEW_PASSWORD_CHARS: usize = 8;

macro_rules! redacted_debug {
    ($name:ident) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

/// A password as the user typed it: at least one and at most `MAX_PASSWORD_CHARS` characters,
/// compared exactly as received (no Unicode normalization).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);
redacted_debug!(Password);

impl Password {
    /// # Errors
    /// A message naming the rule that failed; it never contains the password.
    pub fn parse(raw: String) -> Result<Self, &'static str> {
        if raw.is_empty() {
            return Err("password must not be empty");
        }
        if raw.chars().nth(MAX_PASSWORD_CHARS).is_some() {
            return Err("password must have at most 1024 characters");
        }
        Ok(Self(raw))
    }

    /// The stricter check for a new account's password, used by `/auth/register` and
    /// `jwt-auth user add`: at least `MIN_NEW_PASSWORD_CHARS` characters, then as `parse`.
    ///
    /// # Errors
    /// A message naming the rule that failed; it never contains the password.
    pub fn parse_new(raw: String) -> Result<Self, &'static str> {
        if raw.chars().count() < MIN_NEW_PASSWORD_CHARS {
            return Err("password must have at least 8 characters");
        }
        Self::parse(raw)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A stored password hash: a PHC string (see `adapters::outbound::password_formats`), or
/// the bare `$2b$` of earlier versions.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);
redacted_debug!(PasswordHash);

impl PasswordHash {
    pub fn new(encoded: String) -> Self {
        Self(encoded)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A signed access token (a compact JWT).
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);
redacted_debug!(AccessToken);

impl AccessToken {
    pub fn new(token: String) -> Self {
        Self(token)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// An opaque refresh token: 256 bits from the operating system's CSPRNG, base64url.
/// Only its SHA-256 hash is ever stored.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);
redacted_debug!(RefreshToken);

impl RefreshToken {
    /// # Panics
    /// Only if the operating system's random source fails, which leaves no safe way on.
    pub fn generate() -> Self {
        let mut bytes = [0u8; REFRESH_TOKEN_BYTES];
        getrandom::fill(&mut bytes).expect("the operating system CSPRNG is unavailable");
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The token these 256 bits encode (a derived successor, see `ports::Successors`).
    pub fn from_bytes(bytes: [u8; REFRESH_TOKEN_BYTES]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts only the shape this service issues; anything else is not a refresh token.
    pub fn parse(raw: &str) -> Option<Self> {
        let well_formed = raw.len() == REFRESH_TOKEN_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(raw.to_owned()))
    }

    pub fn hash(&self) -> RefreshTokenHash {
        RefreshTokenHash(Sha256::digest(self.0.as_bytes()).into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 of a refresh token: what the stores keep and look up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RefreshTokenHash([u8; 32]);

impl RefreshTokenHash {
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for RefreshTokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to correlate log lines and useless for a lookup.
        write!(
            f,
            "RefreshTokenHash({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back_and_differ() {
        let a = RefreshToken::generate();
        let b = RefreshToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), REFRESH_TOKEN_LEN);
        assert_eq!(RefreshToken::parse(a.as_str()), Some(a.clone()));
        assert_eq!(a.hash(), a.clone().hash());
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn malformed_refresh_tokens_are_refused() {
        for raw in [
            "",
            "short",
            &"a".repeat(42),
            &"a".repeat(44),
            &"a".repeat(4096),
        ] {
            assert!(RefreshToken::parse(raw).is_none(), "{raw:?}");
        }
        let with_bad_char = format!("{}=", "a".repeat(42));
        assert!(RefreshToken::parse(&with_bad_char).is_none());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let token = RefreshToken::generate();
        let password = Password::parse("hunter2-canary".into()).unwrap();
        let shown = format!(
            "{token:?} {password:?} {:?}",
            AccessToken::new("eyJ.x.y".into())
        );
        assert!(!shown.contains(token.as_str()));
        assert!(!shown.contains("hunter2-canary"));
        assert!(!shown.contains("eyJ"));
    }

    #[test]
    fn password_length_is_capped_before_hashing() {
        assert!(Password::parse(String::new()).is_err());
        assert!(Password::parse("é".repeat(MAX_PASSWORD_CHARS)).is_ok());
        assert!(Password::parse("x".repeat(MAX_PASSWORD_CHARS + 1)).is_err());
    }
}
