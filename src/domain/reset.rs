//! Password-reset tokens: the secret mailed to an account's address.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

const RESET_TOKEN_BYTES: usize = 32;
/// base64url without padding of 32 bytes.
const RESET_TOKEN_LEN: usize = 43;

/// A reset token: 256 bits from the operating system's CSPRNG, base64url. Only its SHA-256
/// is stored; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ResetToken(String);

impl fmt::Debug for ResetToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResetToken(<redacted>)")
    }
}

impl ResetToken {
    /// # Panics
    /// Only if the operating system's random source fails, which leaves no safe way on.
    pub fn generate() -> Self {
        let mut bytes = [0u8; RESET_TOKEN_BYTES];
        getrandom::fill(&mut bytes).expect("the operating system CSPRNG is unavailable");
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts only the shape this service issues (so an oversize or non-base64url value is
    /// refused before any lookup).
    pub fn parse(raw: &str) -> Option<Self> {
        let well_formed = raw.len() == RESET_TOKEN_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(raw.to_owned()))
    }

    pub fn hash(&self) -> ResetTokenHash {
        ResetTokenHash(Sha256::digest(self.0.as_bytes()).into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SHA-256 of a reset token: what the stores keep and look up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResetTokenHash([u8; 32]);

impl ResetTokenHash {
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ResetTokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResetTokenHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back_differ_and_stay_out_of_debug() {
        let a = ResetToken::generate();
        let b = ResetToken::generate();
        assert_ne!(a, b);
        assert_eq!(ResetToken::parse(a.as_str()), Some(a.clone()));
        assert!(!format!("{a:?}{:?}", a.hash()).contains(a.as_str()));
        assert_eq!(ResetToken::parse(&"A".repeat(44)), None);
        assert_eq!(ResetToken::parse(&format!("{}=", &a.as_str()[..42])), None);
        assert_eq!(ResetToken::parse(""), None);
    }
}
