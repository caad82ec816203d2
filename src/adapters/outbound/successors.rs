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
    /// From the previous secret, during a secret rotation.
    previous: Option<[u8; 32]>,
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
        Self {
            key: derive(secret),
            previous: None,
        }
    }

    /// Also derives under the previous secret, so a replay answered by an instance still on
    /// it is recognized during a rotation.
    #[must_use]
    pub fn with_previous(self, previous: Option<&[u8]>) -> Self {
        Self {
            previous: previous.map(derive),
            ..self
        }
    }
}

fn derive(secret: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(b"jwt-auth refresh-token successor v1");
    mac.finalize().into_bytes().into()
}

fn successor_under(key: &[u8; 32], token: &RefreshToken) -> RefreshToken {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(token.as_str().as_bytes());
    RefreshToken::from_bytes(mac.finalize().into_bytes().into())
}

impl Successors for HmacSuccessors {
    fn successor_of(&self, token: &RefreshToken) -> RefreshToken {
        successor_under(&self.key, token)
    }

    fn previous_successor_of(&self, token: &RefreshToken) -> Option<RefreshToken> {
        self.previous
            .as_ref()
            .map(|key| successor_under(key, token))
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
        assert_eq!(key.previous_successor_of(&token), None);
        let rotating = HmacSuccessors::from_secret(b"another server secret, same size")
            .with_previous(Some(b"one server secret of some length"));
        assert_eq!(rotating.previous_successor_of(&token), Some(next));
    }
}
