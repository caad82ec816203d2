//! `KeyStore` in process memory: the in-memory default's keys, gone with the process.

use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::domain::{KeyState, SigningAlgorithm, StoredKey, Timestamp};
use crate::ports::{KeyStore, StoreError};

#[derive(Debug, Default)]
pub struct InMemoryKeyStore {
    keys: Mutex<Vec<StoredKey>>,
}

impl InMemoryKeyStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl KeyStore for InMemoryKeyStore {
    async fn list(&self, algorithm: SigningAlgorithm) -> Result<Vec<StoredKey>, StoreError> {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(keys
            .iter()
            .filter(|k| k.algorithm == algorithm && k.state != KeyState::Retired)
            .cloned()
            .collect())
    }

    async fn insert(&self, key: &StoredKey) -> Result<bool, StoreError> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let taken = keys.iter().any(|k| {
            k.kid == key.kid
                || (k.algorithm == key.algorithm
                    && k.state == key.state
                    && matches!(k.state, KeyState::Current | KeyState::Next))
        });
        if !taken {
            keys.push(key.clone());
        }
        Ok(!taken)
    }

    async fn promote(&self, kid: &str, now: Timestamp) -> Result<bool, StoreError> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(algorithm) = keys
            .iter()
            .find(|k| k.kid == kid && k.state == KeyState::Next)
            .map(|k| k.algorithm)
        else {
            return Ok(false);
        };
        for k in keys.iter_mut().filter(|k| k.algorithm == algorithm) {
            if k.state == KeyState::Current {
                k.state = KeyState::Previous;
                k.deactivated_at = Some(now);
            } else if k.kid == kid {
                k.state = KeyState::Current;
                k.activated_at = Some(now);
            }
        }
        Ok(true)
    }

    async fn retire(&self, kid: &str, now: Timestamp) -> Result<bool, StoreError> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        match keys
            .iter_mut()
            .find(|k| k.kid == kid && matches!(k.state, KeyState::Next | KeyState::Previous))
        {
            Some(k) => {
                k.state = KeyState::Retired;
                k.deactivated_at.get_or_insert(now);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
