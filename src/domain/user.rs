use std::fmt;

use super::{PasswordHash, SessionId, Timestamp, UserId};

/// Longest email address accepted (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// An email address, trimmed and lower-cased, so `User@Example.COM ` and `user@example.com`
/// name the same account.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// The check for a login attempt: shape only, so an address that cannot exist simply fails
    /// to match like any unknown one.
    ///
    /// # Errors
    /// A message naming the rule that failed; it never echoes the input.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.len() > MAX_EMAIL_LEN {
            return Err("email must be between 1 and 254 characters");
        }
        if trimmed.chars().any(char::is_control) {
            return Err("email must not contain control characters");
        }
        match trimmed.split_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {}
            _ => return Err("email must look like name@domain"),
        }
        Ok(Self(trimmed.to_lowercase()))
    }

    /// The stricter check for a new account: one `@`, a dotted domain, no white space.
    ///
    /// # Errors
    /// A message naming the rule that failed; it never echoes the input.
    pub fn parse_new(raw: &str) -> Result<Self, &'static str> {
        let email = Self::parse(raw)?;
        let (local, domain) = email.0.split_once('@').unwrap_or_default();
        let plain = !email.0.chars().any(char::is_whitespace) && !domain.contains('@');
        let dotted = domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.');
        if !plain || !dotted || local.is_empty() {
            return Err("email must be a valid address such as name@example.com");
        }
        Ok(email)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub password_hash: PasswordHash,
    pub disabled: bool,
    pub created_at: Timestamp,
}

/// A login session: one family of refresh tokens with an absolute end that rotation never
/// extends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_variants_and_spaces_name_one_account() {
        // Checklist case 47.
        let a = Email::parse("  User@Example.COM ").unwrap();
        let b = Email::parse("user@example.com").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn malformed_emails_are_refused() {
        // Checklist case 55.
        let long = format!("{}@x.io", "a".repeat(10_000));
        for raw in [
            "",
            "   ",
            "no-at-sign",
            "@x.io",
            "a@",
            "a\u{0}b@x.io",
            "a\nb@x.io",
            &long,
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?}");
        }
        // An address that can match no account still parses, so it fails like an unknown one.
        assert!(Email::parse("' OR 1=1--@x.io").is_ok());
    }

    #[test]
    fn new_accounts_need_a_plain_dotted_address() {
        assert!(Email::parse_new("name@example.com").is_ok());
        for raw in ["' OR 1=1--@x.io", "a@b", "a@b@c.io", "a@.io", "a@io."] {
            assert!(Email::parse_new(raw).is_err(), "{raw:?}");
        }
    }
}
