//! The lifecycle of generated signing keys: next → current → previous → retired, kept in a
//! `KeyStore` (shared by every instance on a database) with the private keys sealed under the
//! key-encryption key, and loaded into the `KeyRing` the issuer and the JWKS read.
//!
//! Every instance runs `tick` every `KEY_RELOAD_SECS`: it applies the steps that are due
//! (each a compare-and-set in the store, so racing instances agree) and reloads the ring from
//! the store. A next key is promoted only after `publish_lead_secs`, longer than one reload
//! plus the JWKS `max-age`, so no instance signs with a key that a verifier's cached JWKS
//! lacks, and every instance signs with the new key at most one reload after the promotion.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use hmac::{Hmac, Mac};
use josekit::jwe::{Dir, JweHeader};
use sha2::Sha256;

use crate::domain::{
    due_key_actions, EventKind, KeyAction, KeyPolicy, KeyState, SecurityEvent, SigningAlgorithm,
    StoredKey, Timestamp,
};
use crate::ports::{Clock, KeyStore, NoSecurityEvents, SecurityEvents};

use super::signing_keys::{KeyRing, KeySet, SigningKey};

/// How often each instance reloads its keys from the store.
pub const KEY_RELOAD_SECS: u64 = 10;

/// Seals private keys for storage: A256GCM (a compact JWE, `dir`) under a key derived from the
/// configured key-encryption key, with the `kid` in the authenticated header so a sealed key
/// cannot be moved to another row.
pub struct KeySealer {
    key: [u8; 32],
}

impl std::fmt::Debug for KeySealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySealer(<redacted>)")
    }
}

impl KeySealer {
    /// # Panics
    /// Never: HMAC takes a key of any length.
    pub fn new(key_encryption_key: &[u8]) -> Self {
        let mut mac = <Hmac<Sha256>>::new_from_slice(key_encryption_key).expect("any key length");
        mac.update(b"jwt-auth signing-key sealing v1");
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }

    /// # Errors
    /// When OpenSSL fails.
    pub fn seal(&self, kid: &str, private_pem: &[u8]) -> anyhow::Result<String> {
        let mut header = JweHeader::new();
        header.set_content_encryption("A256GCM");
        header.set_key_id(kid);
        let encrypter = Dir
            .encrypter_from_bytes(self.key)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        josekit::jwe::serialize_compact(private_pem, &header, &encrypter)
            .map_err(|e| anyhow::anyhow!("sealing key {kid}: {e}"))
    }

    /// # Errors
    /// A sealed key that this key-encryption key did not seal, or sealed for another kid.
    pub fn unseal(&self, kid: &str, sealed: &str) -> anyhow::Result<Vec<u8>> {
        let decrypter = Dir
            .decrypter_from_bytes(self.key)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let (pem, header) =
            josekit::jwe::deserialize_compact(sealed, &decrypter).map_err(|_| {
                anyhow::anyhow!(
                "signing key {kid} does not open with this JWT_KEY_ENCRYPTION_KEY (another key, \
                 or the row was altered)"
            )
            })?;
        anyhow::ensure!(
            header.key_id() == Some(kid),
            "signing key {kid} was sealed for another kid"
        );
        Ok(pem)
    }
}

/// Runs the lifecycle of one algorithm's keys over a store and a ring.
pub struct KeyLifecycle {
    store: Arc<dyn KeyStore>,
    sealer: KeySealer,
    ring: Arc<KeyRing>,
    algorithm: SigningAlgorithm,
    policy: KeyPolicy,
    clock: Arc<dyn Clock>,
    /// Unsealed keys by kid, with the sealed text they came from, so a reload parses only new
    /// ones and a row whose sealed key changed (a retired key's is wiped) is unsealed again.
    opened: Mutex<HashMap<String, (String, Arc<SigningKey>)>>,
    /// Hears `key_rotated` from the instance whose promotion won.
    events: Arc<dyn SecurityEvents>,
}

impl std::fmt::Debug for KeyLifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLifecycle")
            .field("algorithm", &self.algorithm)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl KeyLifecycle {
    pub fn new(
        store: Arc<dyn KeyStore>,
        sealer: KeySealer,
        ring: Arc<KeyRing>,
        policy: KeyPolicy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let algorithm = ring.snapshot().algorithm();
        Self {
            store,
            sealer,
            ring,
            algorithm,
            policy,
            clock,
            opened: Mutex::default(),
            events: Arc::new(NoSecurityEvents),
        }
    }

    /// Reports promotions to `events`.
    #[must_use]
    pub fn with_events(mut self, events: Arc<dyn SecurityEvents>) -> Self {
        self.events = events;
        self
    }

    pub fn policy(&self) -> KeyPolicy {
        self.policy
    }

    /// Applies what is due and reloads the ring from the store. Returns the steps this
    /// instance applied (another instance may have applied them first: those are not counted).
    ///
    /// # Errors
    /// When the store cannot be reached or a stored key does not open; the ring keeps its keys.
    pub async fn tick(&self) -> anyhow::Result<Vec<KeyAction>> {
        let now = self.clock.now();
        let keys = self.store.list(self.algorithm).await?;
        let mut applied = Vec::new();
        for action in due_key_actions(&keys, now, self.policy) {
            let done = match &action {
                KeyAction::CreateCurrent => self.create(KeyState::Current, now, true).await?,
                KeyAction::CreateNext => self.create(KeyState::Next, now, false).await?,
                KeyAction::Promote(kid) => self.store.promote(kid, now).await?,
                KeyAction::Retire(kid) => self.store.retire(kid, now).await?,
            };
            if done {
                tracing::info!(event = "signing_key", action = ?action, "key lifecycle step");
                if let KeyAction::Promote(kid) = &action {
                    self.events
                        .record(SecurityEvent::new(EventKind::KeyRotated, now).detail(kid.clone()));
                }
                applied.push(action);
            }
        }
        self.reload().await?;
        Ok(applied)
    }

    /// Loads the store's keys into the ring. A stored key that does not open (altered row,
    /// another key-encryption key, garbage) is skipped, logged and counted, so one bad row
    /// does not freeze the reloads of every instance; readiness then says `degraded`.
    ///
    /// When the current key is the one that does not open, the instance keeps signing with
    /// the key it holds only while the store still lists that key (as current or previous:
    /// still published and verified everywhere); once the store lists it no more, the reload
    /// fails and readiness answers 503, so a stale key never signs for ever.
    ///
    /// # Errors
    /// When the store cannot be reached or no listed key is left to sign with.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let keys = self.store.list(self.algorithm).await?;
        let mut set = Vec::with_capacity(keys.len());
        let mut unopenable = 0;
        let mut current_error = None;
        for stored in &keys {
            match self.open(stored) {
                Ok(key) => set.push((stored.state, key)),
                Err(e) => {
                    unopenable += 1;
                    // The message names the kid and the reason, never key material.
                    tracing::error!(
                        event = "signing_key_unopenable",
                        kid = %stored.kid,
                        state = stored.state.name(),
                        error = %e,
                        "a stored signing key does not open: skipped"
                    );
                    if stored.state == KeyState::Current {
                        current_error = Some(e);
                    }
                }
            }
        }
        // Forget what is no longer listed (retired), so it is never served from here again.
        self.opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|kid, _| keys.iter().any(|k| &k.kid == kid));
        if let Some(e) = current_error {
            let held = self.ring.snapshot().signing_key();
            if !keys.iter().any(|k| k.kid == held.kid()) {
                self.ring.record_reload(unopenable, false);
                anyhow::bail!("{e}; and the key this instance holds is no longer listed");
            }
            match set.iter_mut().find(|(_, k)| k.kid() == held.kid()) {
                Some(entry) => entry.0 = KeyState::Current,
                None => set.push((KeyState::Current, held)),
            }
        }
        match KeySet::new(set) {
            Ok(set) => {
                self.ring.replace(set);
                self.ring.record_reload(unopenable, true);
                Ok(())
            }
            Err(e) => {
                self.ring.record_reload(unopenable, false);
                Err(e)
            }
        }
    }

    /// The store the keys live in.
    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    fn open(&self, stored: &StoredKey) -> anyhow::Result<Arc<SigningKey>> {
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((sealed, key)) = opened.get(&stored.kid) {
            if *sealed == stored.sealed {
                return Ok(key.clone());
            }
        }
        let pem = self.sealer.unseal(&stored.kid, &stored.sealed)?;
        let key = Arc::new(SigningKey::from_pem(stored.algorithm, &pem)?);
        anyhow::ensure!(
            key.kid() == stored.kid,
            "stored key {} is not the key its row names",
            stored.kid
        );
        opened.insert(stored.kid.clone(), (stored.sealed.clone(), key.clone()));
        Ok(key)
    }

    /// Stores a new key in `state`; the first current key reuses the ring's start-up key when
    /// the store has none, so tokens signed before the first reload stay valid.
    async fn create(&self, state: KeyState, now: Timestamp, first: bool) -> anyhow::Result<bool> {
        let key = if first {
            let set = self.ring.snapshot();
            Arc::new(SigningKey::from_pem(
                self.algorithm,
                set.signing().private_pem(),
            )?)
        } else {
            let algorithm = self.algorithm;
            // RSA generation takes a while: off the async executor.
            Arc::new(tokio::task::spawn_blocking(move || SigningKey::generate(algorithm)).await??)
        };
        let stored = StoredKey {
            kid: key.kid().to_owned(),
            algorithm: self.algorithm,
            state,
            created_at: now,
            activated_at: (state == KeyState::Current).then_some(now),
            deactivated_at: None,
            sealed: self.sealer.seal(key.kid(), key.private_pem())?,
        };
        let inserted = self.store.insert(&stored).await?;
        if inserted {
            self.opened
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(stored.kid.clone(), (stored.sealed.clone(), key));
        }
        Ok(inserted)
    }

    /// `jwt-auth keys rotate`: publishes a next key now (it signs once published for the lead
    /// time, promoted by the running instances); with a next key already published, says when
    /// it signs.
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub async fn rotate(&self) -> anyhow::Result<String> {
        let now = self.clock.now();
        let keys = self.store.list(self.algorithm).await?;
        if let Some(next) = keys.iter().find(|k| k.state == KeyState::Next) {
            let at = next.created_at.plus_secs(self.policy.publish_lead_secs);
            return Ok(format!(
                "next key {} is already published; it signs from {} (Unix {})",
                next.kid,
                crate::adapters::inbound::cli::utc(at),
                at.unix()
            ));
        }
        if !keys.iter().any(|k| k.state == KeyState::Current) {
            self.create(KeyState::Current, now, false).await?;
            return Ok("no key signed: created a current key".into());
        }
        if !self.create(KeyState::Next, now, false).await? {
            anyhow::bail!("another instance published a next key meanwhile; run `keys list`");
        }
        let keys = self.store.list(self.algorithm).await?;
        let next = keys
            .iter()
            .find(|k| k.state == KeyState::Next)
            .ok_or_else(|| anyhow::anyhow!("the next key vanished"))?;
        let at = now.plus_secs(self.policy.publish_lead_secs);
        Ok(format!(
            "published next key {}; the running instances make it current from {} (in {} s)",
            next.kid,
            crate::adapters::inbound::cli::utc(at),
            self.policy.publish_lead_secs
        ))
    }

    /// `jwt-auth keys retire --kid K`: withdraws a next or previous key at once (tokens it
    /// signed are refused from the next reload on). The current key cannot be retired: rotate
    /// first.
    ///
    /// # Errors
    /// When the store cannot be reached or `kid` is not a next or previous key.
    pub async fn retire(&self, kid: &str) -> anyhow::Result<String> {
        if self.store.retire(kid, self.clock.now()).await? {
            Ok(format!("retired {kid}"))
        } else {
            anyhow::bail!("{kid} is not a next or previous key (the current key cannot be retired: rotate first)")
        }
    }

    /// `jwt-auth keys list`: kid, algorithm, state, created, activated, deactivated.
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub async fn list(&self) -> anyhow::Result<String> {
        let utc = crate::adapters::inbound::cli::utc;
        let mut out = String::from("kid\talgorithm\tstate\tcreated\tactivated\tdeactivated\n");
        for k in self.store.list(self.algorithm).await? {
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                k.kid,
                k.algorithm.name(),
                k.state.name(),
                utc(k.created_at),
                k.activated_at.map_or_else(|| "-".into(), utc),
                k.deactivated_at.map_or_else(|| "-".into(), utc),
            ));
        }
        out.pop();
        Ok(out)
    }

    /// Reloads every `KEY_RELOAD_SECS` until the process ends; a failed run is logged and the
    /// ring keeps the keys it has (verification goes on through a store outage).
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(KEY_RELOAD_SECS));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = self.tick().await {
                    tracing::warn!(error = %e, "signing keys not reloaded");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_their_kek_and_kid() {
        let key = SigningKey::generate(SigningAlgorithm::EdDSA).unwrap();
        let sealer = KeySealer::new(b"kek-one-0123456789-0123456789-0123456789");
        let sealed = sealer.seal(key.kid(), key.private_pem()).unwrap();
        assert!(!sealed.contains("PRIVATE"));
        assert_eq!(
            sealer.unseal(key.kid(), &sealed).unwrap(),
            key.private_pem()
        );
        assert!(sealer.unseal("another-kid", &sealed).is_err());
        let other = KeySealer::new(b"kek-two-0123456789-0123456789-0123456789");
        let err = other.unseal(key.kid(), &sealed).unwrap_err().to_string();
        assert!(err.contains("JWT_KEY_ENCRYPTION_KEY"), "{err}");
        assert_eq!(format!("{sealer:?}"), "KeySealer(<redacted>)");
    }
}
