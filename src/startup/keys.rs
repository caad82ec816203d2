//! Where the signing keys come from: the HMAC secrets, PEM files the operator manages, or keys
//! the service generates.

use std::path::Path;
use std::sync::Arc;

use crate::adapters::outbound::signing_keys::{KeySet, SigningKey};
use crate::config::Settings;
use crate::domain::KeyState;

/// In a key folder, a file whose name ends so is published but does not sign yet.
pub const NEXT_SUFFIX: &str = ".next.pem";

/// The keys of `JWT_PRIVATE_KEY_FILE`: one PEM file is the current key; a folder holds
/// `*.pem` files, of which those named `*.next.pem` are published ahead of use, the last of the
/// others by file name signs and the rest stay published for the tokens they signed.
///
/// # Errors
/// A file that cannot be read or is not a private key for the algorithm (named, never
/// printed), or a folder without a signing key.
pub fn key_files(settings: &Settings, path: &Path) -> anyhow::Result<KeySet> {
    let algorithm = settings.jwt_algorithm;
    let read = |file: &Path| -> anyhow::Result<Arc<SigningKey>> {
        let pem = std::fs::read(file).map_err(|e| {
            anyhow::anyhow!("JWT_PRIVATE_KEY_FILE: cannot read {}: {e}", file.display())
        })?;
        SigningKey::from_pem(algorithm, &pem)
            .map(Arc::new)
            .map_err(|e| anyhow::anyhow!("JWT_PRIVATE_KEY_FILE: {}: {e}", file.display()))
    };
    if !path.is_dir() {
        return KeySet::new(vec![(KeyState::Current, read(path)?)]);
    }
    let mut files: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| anyhow::anyhow!("JWT_PRIVATE_KEY_FILE: cannot list {}: {e}", path.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "pem"))
        .collect();
    files.sort();
    let is_next = |p: &Path| p.to_string_lossy().ends_with(NEXT_SUFFIX);
    let current = files.iter().rposition(|p| !is_next(p)).ok_or_else(|| {
        anyhow::anyhow!(
            "JWT_PRIVATE_KEY_FILE: {} holds no *.pem key that is not *{NEXT_SUFFIX}",
            path.display()
        )
    })?;
    let mut keys = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        let state = if i == current {
            KeyState::Current
        } else if is_next(file) {
            KeyState::Next
        } else {
            KeyState::Previous
        };
        keys.push((state, read(file)?));
    }
    KeySet::new(keys)
}
