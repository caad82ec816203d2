use std::sync::Arc;

use crate::domain::{
    ClientAddress, Email, EventKind, Password, RegisterError, SecurityEvent, ThrottleDecision,
    User, UserId,
};
use crate::ports::{
    Clock, CreateUserError, LoginAttempts, PasswordHasher, SecurityEvents, UserRepo,
};

/// Creates an account. Used by `POST /auth/register`, the `user add` command and the dev seed.
pub struct Register {
    pub users: Arc<dyn UserRepo>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub clock: Arc<dyn Clock>,
    /// The sign-up rate per client, for requests from the network.
    pub throttle: Arc<dyn LoginAttempts>,
    pub events: Arc<dyn SecurityEvents>,
}

impl Register {
    /// A sign-up from the network: held to the per-client rate, counted before the password
    /// is hashed (hashing is the expensive part), then as `execute`.
    ///
    /// # Errors
    /// `Throttled` before any hashing past the rate; otherwise as `execute`.
    pub async fn execute_from(
        &self,
        client: &ClientAddress,
        email: Email,
        password: &Password,
    ) -> Result<User, RegisterError> {
        if let ThrottleDecision::Wait { retry_after_secs } =
            self.throttle.begin_registration(client).await?
        {
            tracing::info!(
                event = "register_throttled",
                client = %client,
                retry_after_secs,
                "sign-up throttled"
            );
            return Err(RegisterError::Throttled { retry_after_secs });
        }
        self.create(email, password, Some(client)).await
    }

    /// Unthrottled: for operators (the CLI) and the seed, and after `execute_from`'s check.
    ///
    /// # Errors
    /// `EmailTaken` when the email (in any letter case) has an account; `Infra` when the
    /// store is down or hashing fails.
    pub async fn execute(&self, email: Email, password: &Password) -> Result<User, RegisterError> {
        self.create(email, password, None).await
    }

    async fn create(
        &self,
        email: Email,
        password: &Password,
        client: Option<&ClientAddress>,
    ) -> Result<User, RegisterError> {
        let password_hash = self.hasher.hash(password).await?;
        // A sign-up from the network has yet to prove its address; an account an operator
        // adds (the CLI) or the dev seed counts as verified.
        let email_verified = client.is_none();
        let user = User {
            id: UserId::new_random(),
            email,
            password_hash,
            disabled: false,
            email_verified,
            created_at: self.clock.now(),
        };
        match self.users.create(user.clone()).await {
            Ok(()) => {
                let mut event =
                    SecurityEvent::new(EventKind::AccountCreated, user.created_at).user(user.id);
                if let Some(client) = client {
                    event = event.client(client.clone());
                }
                self.events.record(event);
                Ok(user)
            }
            Err(CreateUserError::EmailTaken) => Err(RegisterError::EmailTaken),
            Err(CreateUserError::Store(e)) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::test_support::*;
    use crate::domain::{InfraError, PasswordHash};
    use crate::ports::{
        HashError, MockLoginAttempts, MockPasswordHasher, MockUserRepo, StoreError,
    };

    fn build(users: MockUserRepo, hasher: MockPasswordHasher) -> Register {
        build_throttled(users, hasher, MockLoginAttempts::new())
    }

    fn build_throttled(
        users: MockUserRepo,
        hasher: MockPasswordHasher,
        throttle: MockLoginAttempts,
    ) -> Register {
        Register {
            users: Arc::new(users),
            hasher: Arc::new(hasher),
            clock: Arc::new(clock_at(NOW)),
            throttle: Arc::new(throttle),
            events: Arc::new(crate::ports::NoSecurityEvents),
        }
    }

    #[tokio::test]
    async fn a_throttled_sign_up_hashes_and_stores_nothing() {
        let (mut users, mut hasher) = (MockUserRepo::new(), MockPasswordHasher::new());
        hasher.expect_hash().never();
        users.expect_create().never();
        let mut throttle = MockLoginAttempts::new();
        throttle
            .expect_begin_registration()
            .withf(|c| c.as_str() == "192.0.2.1")
            .return_once(|_| {
                Ok(ThrottleDecision::Wait {
                    retry_after_secs: 7,
                })
            });
        let (e, p) = input();
        let client = ClientAddress::from_ip([192, 0, 2, 1].into());
        let got = build_throttled(users, hasher, throttle)
            .execute_from(&client, e, &p)
            .await;
        assert!(matches!(
            got,
            Err(RegisterError::Throttled {
                retry_after_secs: 7
            })
        ));
    }

    fn input() -> (Email, Password) {
        (
            Email::parse("new@x.io").unwrap(),
            Password::parse("long enough pw".into()).unwrap(),
        )
    }

    #[tokio::test]
    async fn stores_the_hash_never_the_password() {
        let (mut users, mut hasher) = (MockUserRepo::new(), MockPasswordHasher::new());
        hasher
            .expect_hash()
            .return_once(|_| Ok(PasswordHash::new("$2b$04$h".into())));
        users
            .expect_create()
            .withf(|u| {
                u.password_hash.as_str() == "$2b$04$h"
                    && !u.disabled
                    && u.email.as_str() == "new@x.io"
            })
            .times(1)
            .return_once(|_| Ok(()));
        let (e, p) = input();
        let user = build(users, hasher).execute(e, &p).await.unwrap();
        assert_eq!(user.created_at.unix(), NOW);
    }

    #[tokio::test]
    async fn each_create_error_maps() {
        type Make = fn() -> CreateUserError;
        let cases: [(Make, &str); 3] = [
            (|| CreateUserError::EmailTaken, "taken"),
            (|| CreateUserError::Store(down()), "unavailable"),
            (
                || CreateUserError::Store(StoreError::Unknown(anyhow::anyhow!("x"))),
                "unknown",
            ),
        ];
        for (make, want) in cases {
            let (mut users, mut hasher) = (MockUserRepo::new(), MockPasswordHasher::new());
            hasher
                .expect_hash()
                .return_once(|_| Ok(PasswordHash::new("h".into())));
            users.expect_create().return_once(move |_| Err(make()));
            let (e, p) = input();
            let got = match build(users, hasher).execute(e, &p).await.unwrap_err() {
                RegisterError::EmailTaken => "taken",
                RegisterError::Throttled { .. } => "throttled",
                RegisterError::Infra(InfraError::Unavailable(_)) => "unavailable",
                RegisterError::Infra(InfraError::Unknown(_)) => "unknown",
            };
            assert_eq!(got, want);
        }
    }

    #[tokio::test]
    async fn hasher_failure_stores_nothing() {
        let (mut users, mut hasher) = (MockUserRepo::new(), MockPasswordHasher::new());
        hasher
            .expect_hash()
            .return_once(|_| Err(HashError(anyhow::anyhow!("pool"))));
        users.expect_create().never();
        let (e, p) = input();
        assert!(matches!(
            build(users, hasher).execute(e, &p).await,
            Err(RegisterError::Infra(InfraError::Unknown(_)))
        ));
    }
}
