//! The lifecycle of asymmetric signing keys.

/// Where a key is in its life. A key is published from `Next` until it is `Retired`, so a
/// verifier that fetched the key set before a rotation already holds the key that signs
/// after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    /// Signing (and published).
    Current,
    /// Published until every token it signed has expired; signs nothing.
    Previous,
    /// Neither published nor accepted.
    Retired,
}

impl KeyState {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Previous => "previous",
            Self::Retired => "retired",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Next, Self::Current, Self::Previous, Self::Retired]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

use std::fmt;

use super::{SigningAlgorithm, Timestamp};

/// How long verifiers may cache the published keys (`Cache-Control: max-age` of the JWKS); a
/// next key is published longer than this before it signs.
pub const JWKS_MAX_AGE_SECS: u64 = 300;

/// A stored signing key: its lifecycle facts and its private key sealed under the
/// key-encryption key (never in clear outside the process, never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub state: KeyState,
    pub created_at: Timestamp,
    /// When it began signing.
    pub activated_at: Option<Timestamp>,
    /// When it stopped signing.
    pub deactivated_at: Option<Timestamp>,
    /// The sealed private key (a compact JWE).
    pub sealed: String,
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .field("activated_at", &self.activated_at)
            .field("deactivated_at", &self.deactivated_at)
            .field("sealed", &"<redacted>")
            .finish()
    }
}

/// The timing rules of the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPolicy {
    /// A next key is published at least this long before it signs: every instance has
    /// reloaded its keys and every verifier's cached JWKS has expired by then.
    pub publish_lead_secs: u64,
    /// A previous key stays published this long after it stopped signing: the longest an
    /// instance may still sign with it (one reload) plus an access token's lifetime and leeway.
    pub previous_kept_secs: u64,
    /// Rotate the current key after this long (`JWT_KEY_ROTATION_DAYS`); `None`: only when
    /// asked (`jwt-auth keys rotate`).
    pub rotation_secs: Option<u64>,
}

/// One step the lifecycle takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAction {
    /// No key signs: make the first one current at once (no token exists to verify yet).
    CreateCurrent,
    /// Publish a new key ahead of its use.
    CreateNext,
    /// The next key has been published long enough: it signs, the current becomes previous.
    Promote(String),
    /// A previous key's tokens have all expired.
    Retire(String),
}

/// What is due at `now` for the keys of one algorithm (retired ones may be among them). A
/// next key is promoted once published for `publish_lead_secs`, whoever created it (the
/// schedule or `keys rotate`).
pub fn due_key_actions(keys: &[StoredKey], now: Timestamp, policy: KeyPolicy) -> Vec<KeyAction> {
    let mut actions = Vec::new();
    let current = keys.iter().find(|k| k.state == KeyState::Current);
    let next = keys.iter().find(|k| k.state == KeyState::Next);
    match (current, next) {
        (None, None) => actions.push(KeyAction::CreateCurrent),
        // A next key with no current (the current retired by hand): promote it at once
        // rather than sign with nothing.
        (None, Some(n)) => actions.push(KeyAction::Promote(n.kid.clone())),
        (Some(_), Some(n)) => {
            if n.created_at.plus_secs(policy.publish_lead_secs) <= now {
                actions.push(KeyAction::Promote(n.kid.clone()));
            }
        }
        (Some(c), None) => {
            if let Some(period) = policy.rotation_secs {
                let since = c.activated_at.unwrap_or(c.created_at);
                // Publish early enough that the promotion lands on the period.
                let publish_at = since.plus_secs(period.saturating_sub(policy.publish_lead_secs));
                if publish_at <= now {
                    actions.push(KeyAction::CreateNext);
                }
            }
        }
    }
    for k in keys.iter().filter(|k| k.state == KeyState::Previous) {
        let since = k.deactivated_at.unwrap_or(k.created_at);
        if since.plus_secs(policy.previous_kept_secs) <= now {
            actions.push(KeyAction::Retire(k.kid.clone()));
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: KeyPolicy = KeyPolicy {
        publish_lead_secs: 320,
        previous_kept_secs: 1_000,
        rotation_secs: Some(86_400),
    };

    fn key(kid: &str, state: KeyState, created: u64) -> StoredKey {
        StoredKey {
            kid: kid.into(),
            algorithm: SigningAlgorithm::EdDSA,
            state,
            created_at: Timestamp::from_unix(created),
            activated_at: (state == KeyState::Current).then(|| Timestamp::from_unix(created)),
            deactivated_at: (state == KeyState::Previous).then(|| Timestamp::from_unix(created)),
            sealed: "sealed".into(),
        }
    }

    fn at(t: u64) -> Timestamp {
        Timestamp::from_unix(t)
    }

    #[test]
    fn the_first_key_signs_at_once_and_a_next_one_only_after_the_lead() {
        assert_eq!(
            due_key_actions(&[], at(0), POLICY),
            [KeyAction::CreateCurrent]
        );
        let keys = [
            key("a", KeyState::Current, 0),
            key("b", KeyState::Next, 1_000),
        ];
        assert!(due_key_actions(&keys, at(1_319), POLICY).is_empty());
        assert_eq!(
            due_key_actions(&keys, at(1_320), POLICY),
            [KeyAction::Promote("b".into())]
        );
    }

    #[test]
    fn the_schedule_publishes_ahead_of_the_period_and_previous_keys_retire() {
        let keys = [key("a", KeyState::Current, 0)];
        assert!(due_key_actions(&keys, at(86_400 - 321), POLICY).is_empty());
        assert_eq!(
            due_key_actions(&keys, at(86_400 - 320), POLICY),
            [KeyAction::CreateNext]
        );
        let manual = KeyPolicy {
            rotation_secs: None,
            ..POLICY
        };
        assert!(due_key_actions(&keys, at(10 * 86_400), manual).is_empty());
        let keys = [
            key("a", KeyState::Previous, 0),
            key("b", KeyState::Current, 0),
        ];
        assert!(due_key_actions(&keys, at(999), manual).is_empty());
        assert_eq!(
            due_key_actions(&keys, at(1_000), manual),
            [KeyAction::Retire("a".into())]
        );
    }

    #[test]
    fn debug_hides_the_sealed_key() {
        let shown = format!("{:?}", key("a", KeyState::Current, 0));
        assert!(!shown.contains("\"sealed\""), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
