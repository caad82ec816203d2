//! `PasswordUpgrades` as a background task on the runtime: hash the password again under the
//! current policy and store it if the account still has the old hash.
//!
//! One upgrade per account at a time, so a burst of logins with a stale hash costs one extra
//! hashing, not one per login; the hasher's bounded queue refuses it when the service is busy,
//! and the next login tries again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use super::password_formats;
use crate::domain::{Password, PasswordHash, UserId};
use crate::ports::{PasswordHasher, PasswordUpgrades, UserRepo};

pub struct BackgroundUpgrades {
    hasher: Arc<dyn PasswordHasher>,
    users: Arc<dyn UserRepo>,
    in_flight: Arc<Mutex<HashSet<UserId>>>,
}

impl BackgroundUpgrades {
    pub fn new(hasher: Arc<dyn PasswordHasher>, users: Arc<dyn UserRepo>) -> Self {
        Self {
            hasher,
            users,
            in_flight: Arc::default(),
        }
    }
}

/// Takes the account out of `in_flight` however the task ends.
struct Done(Arc<Mutex<HashSet<UserId>>>, UserId);

impl Drop for Done {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.1);
    }
}

impl PasswordUpgrades for BackgroundUpgrades {
    fn schedule(&self, user: UserId, current: PasswordHash, password: Password) {
        // Outside a runtime (never the case in the service) there is nothing to run it on.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !password_formats::upgrade_keeps_meaning(current.as_str(), password.expose().as_bytes())
        {
            tracing::info!(
                event = "password_upgrade_skipped",
                %user,
                "a plain bcrypt hash checked only the first 72 bytes of this password;                  kept until the password is changed"
            );
            return;
        }
        let fresh = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(user);
        if !fresh {
            return;
        }
        let done = Done(self.in_flight.clone(), user);
        let (hasher, users) = (self.hasher.clone(), self.users.clone());
        runtime.spawn(async move {
            let _done = done;
            let outcome = match hasher.hash(&password).await {
                Ok(new) => users
                    .replace_password_hash(user, &current, &new)
                    .await
                    .map_err(anyhow::Error::from),
                Err(e) => Err(e.0),
            };
            match outcome {
                Ok(true) => {
                    tracing::info!(event = "password_rehashed", %user, "password hash upgraded")
                }
                Ok(false) => tracing::debug!(%user, "password changed meanwhile; no upgrade"),
                Err(e) => tracing::warn!(%user, error = %e, "password hash upgrade skipped"),
            }
        });
    }
}
