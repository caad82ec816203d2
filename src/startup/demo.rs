//! The `dev` demo account (kept from the FastAPI project), and the rule that keeps it out of
//! `prod`: its password is public, so a database that once served `dev` must not let it in.

use crate::app::{Register, SetDisabled};
use crate::config::Profile;
use crate::domain::{Email, Password, RegisterError};

pub const DEMO_EMAIL: &str = "jywan@test.com";
pub const DEMO_PASSWORD: &str = "test";

pub fn email() -> Email {
    Email::parse(DEMO_EMAIL).expect("the demo email parses")
}

/// `dev`: creates the demo account unless it exists. `prod`: disables it if the database holds
/// it (from an earlier `dev` run), which also revokes its sessions, and says so.
///
/// # Errors
/// When a store or the hasher fails.
pub async fn prepare(
    profile: Profile,
    register: &Register,
    set_disabled: &SetDisabled,
) -> anyhow::Result<()> {
    match profile {
        Profile::Dev => {
            let password = Password::parse(DEMO_PASSWORD.into()).map_err(anyhow::Error::msg)?;
            match register.execute(email(), &password).await {
                Ok(_) | Err(RegisterError::EmailTaken) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Profile::Prod => {
            let users = &set_disabled.users;
            if users
                .find_by_email(&email())
                .await?
                .is_some_and(|u| !u.disabled)
            {
                let out = set_disabled.execute(&email(), true).await?;
                tracing::warn!(
                    event = "demo_account_disabled",
                    sessions_revoked = out.map_or(0, |o| o.sessions_revoked),
                    "the dev demo account was found in this database; disabled under prod"
                );
            }
            Ok(())
        }
    }
}
