//! `Successors` as HMAC-SHA256 under a key of its own, derived from the server secret.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::RefreshToken;
use crate::ports::Successors;

type HmacSha256 = Hmac<Sha256>;

/// The successor of a token is HMAC-SHA256(key, token): 256 bits, encoded as a fresh token.
#[derive(Clone)]
pub struct HmacSuccessors {
    key: [u8; 32],
}

impl fmt::Debug for HmacSuccessors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacSuccessors(<redacted>)")
    }
}

impl HmacSuccessors {
    /// A key for this purpose only, derived from `secret` under a fixed label, so the
    /// secret's other use (signing access tokens) never MACs the same input with it.
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
        mac.update(b"jwt-auth refresh-token successor v1");
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }
}

impl Successors for HmacSuccessors {
    fn successor_of(&self, token: &RefreshToken) -> RefreshToken {
        let mut mac =
            HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(token.as_str().as_bytes());
        RefreshToken::from_bytes(mac.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_successor_is_a_well_formed_token_fixed_by_the_key_and_the_token() {
        let key = HmacSuccessors::from_secret(b"one server secret of some length");
        let other = HmacSuccessors::from_secret(b"another server secret, same size");
        let token = RefreshToken::generate();
        let next = key.successor_of(&token);
        assert_eq!(RefreshToken::parse(next.as_str()), Some(next.clone()));
        assert_eq!(key.successor_of(&token), next, "derived again, the same");
        assert_ne!(next, token);
        assert_ne!(other.successor_of(&token), next, "another key, another one");
        assert_ne!(key.successor_of(&RefreshToken::generate()), next);
        assert_eq!(format!("{key:?}"), "HmacSuccessors(<redacted>)");
    }
}
