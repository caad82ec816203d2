//! A `TokenIssuer` decorator that remembers tokens it has seen verified, with their claims.
//!
//! A client sends the same access token with every request for up to its lifetime; decoding it
//! again (two JSON documents, base64, the MAC) was a fifth of `/auth/me`'s CPU in a profile. An
//! entry is keyed by the whole compact token, signature included, so only a byte-identical
//! token hits; the time rules (`AccessClaims::check_time`) run again on every hit. Only tokens
//! the inner issuer verified enter, so invalid input cannot fill it; at its capacity it is
//! emptied and refills. When the inner issuer withdraws a key (its `key_generation` moves on),
//! the cache is emptied before the next look-up, so a retired key's tokens do not outlive it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::domain::{AccessClaims, AccessToken, Timestamp};
use crate::ports::{TokenError, TokenIssuer};

/// Default bound (about 600 bytes an entry).
pub const DEFAULT_ENTRIES: usize = 50_000;

pub struct VerifiedCache {
    inner: Arc<dyn TokenIssuer>,
    leeway_secs: u64,
    capacity: usize,
    map: RwLock<HashMap<Box<str>, AccessClaims>>,
    /// The inner issuer's key generation the entries were verified under.
    generation: AtomicU64,
}

impl VerifiedCache {
    /// `leeway_secs` must be the inner issuer's, so a hit is judged as a full check would be.
    pub fn new(inner: Arc<dyn TokenIssuer>, leeway_secs: u64, capacity: usize) -> Self {
        let inner_generation = inner.key_generation();
        Self {
            inner,
            leeway_secs,
            capacity,
            map: RwLock::default(),
            generation: AtomicU64::new(inner_generation),
        }
    }

    fn get(&self, token: &str) -> Option<AccessClaims> {
        let generation = self.inner.key_generation();
        if self.generation.load(Ordering::Acquire) != generation {
            // Taken under the write lock, so an insert verified under the old keys that
            // races with this cannot survive it unnoticed: it lands before the clear.
            let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
            map.clear();
            self.generation.store(generation, Ordering::Release);
            return None;
        }
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.get(token).cloned()
    }

    /// Caches what was verified under key generation `generation`, unless the cache has moved
    /// past it meanwhile (checked under the write lock the clearing takes too).
    fn insert(&self, token: &str, claims: &AccessClaims, generation: u64) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(token.into(), claims.clone());
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl TokenIssuer for VerifiedCache {
    fn issue_access(&self, claims: &AccessClaims) -> Result<AccessToken, TokenError> {
        self.inner.issue_access(claims)
    }

    fn verify_access(&self, token: &str, now: Timestamp) -> Result<AccessClaims, TokenError> {
        if let Some(claims) = self.get(token) {
            claims
                .check_time(now, self.leeway_secs)
                .map_err(|why| TokenError::Invalid(why.to_owned()))?;
            return Ok(claims);
        }
        let generation = self.inner.key_generation();
        let claims = self.inner.verify_access(token, now)?;
        self.insert(token, &claims, generation);
        Ok(claims)
    }

    fn key_generation(&self) -> u64 {
        self.inner.key_generation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::outbound::jose_issuer::{IssuerConfig, JoseTokenIssuer};
    use crate::domain::{SessionId, SigningAlgorithm, UserId};

    const NOW: u64 = 1_800_000_000;

    fn cached(capacity: usize) -> VerifiedCache {
        let inner = JoseTokenIssuer::new(IssuerConfig {
            algorithm: SigningAlgorithm::HS256,
            secret: b"unit-test-secret-0123456789-abcdefghijklmnop".to_vec(),
            previous_secret: None,
            issuer: "iss".into(),
            audience: "aud".into(),
            leeway_secs: 0,
        })
        .unwrap();
        VerifiedCache::new(Arc::new(inner), 0, capacity)
    }

    fn claims(nbf: Option<u64>) -> AccessClaims {
        AccessClaims {
            sub: UserId::new_random(),
            sid: SessionId::new_random(),
            iat: Timestamp::from_unix(NOW),
            exp: Timestamp::from_unix(NOW + 900),
            nbf: nbf.map(Timestamp::from_unix),
            jti: uuid::Uuid::new_v4(),
        }
    }

    #[test]
    fn a_cached_token_is_still_checked_against_the_clock() {
        let issuer = cached(DEFAULT_ENTRIES);
        let token = issuer.issue_access(&claims(None)).unwrap().into_string();
        let at = Timestamp::from_unix;
        assert!(issuer.verify_access(&token, at(NOW)).is_ok());
        assert!(issuer.get(&token).is_some(), "verified tokens are cached");
        assert!(issuer.verify_access(&token, at(NOW + 899)).is_ok());
        assert!(issuer.verify_access(&token, at(NOW + 900)).is_err());
        assert!(
            issuer.verify_access(&token, at(NOW - 1)).is_err(),
            "iat in the future"
        );
        // A byte changed after caching misses the cache and fails verification.
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(issuer.verify_access(&tampered, at(NOW)).is_err());
        assert!(
            issuer.get(&tampered).is_none(),
            "refused tokens are never cached"
        );
    }

    #[test]
    fn a_cached_not_before_is_checked_on_every_hit() {
        let issuer = cached(DEFAULT_ENTRIES);
        let token = issuer
            .issue_access(&claims(Some(NOW + 10)))
            .unwrap()
            .into_string();
        let at = Timestamp::from_unix;
        assert!(issuer.verify_access(&token, at(NOW + 10)).is_ok());
        assert_eq!(issuer.len(), 1);
        assert!(issuer.verify_access(&token, at(NOW + 9)).is_err());
    }

    #[test]
    fn the_cache_is_bounded() {
        let issuer = cached(100);
        for _ in 0..250 {
            let token = issuer.issue_access(&claims(None)).unwrap().into_string();
            issuer
                .verify_access(&token, Timestamp::from_unix(NOW))
                .unwrap();
            assert!(issuer.len() <= 100);
        }
        assert!(!issuer.is_empty());
    }
}
