use std::fmt;

use super::{PasswordHash, SessionId, Timestamp, UserId};

/// Longest email address accepted, in characters (RFC 5321 path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

/// The login rule as a JSON-Schema pattern (the OpenAPI document states it): an `@` and no
/// control character.
pub const LOGIN_EMAIL_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]*@[^\x00-\x1f\x7f-\x9f]*$";
/// The rule for a new account as a JSON-Schema pattern: `local@domain.tld` without white
/// space, control characters or a second `@`.
pub const NEW_EMAIL_PATTERN: &str = r#"^[^\s@<>"(),;:\[\]\\\x00-\x1f\x7f-\x9f]+@[^\s@<>"(),;:\[\]\\\x00-\x1f\x7f-\x9f]+\.[^\s@<>"(),;:\[\]\\\x00-\x1f\x7f-\x9f]+$"#;

/// An email address, trimmed and lower-cased, so `User@Example.COM ` and `user@example.com`
/// name the same account.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// The check for a login attempt (`LOGIN_EMAIL_PATTERN`, at most 254 characters): shape
    /// only, so an address that cannot exist simply fails to match like any unknown one.
    ///
    /// The length is checked on the input and again on the normalized value: some characters
    /// lower-case to several (`İ` to `i̇`), and what is stored must parse again when read back.
    /// Normalizing is idempotent, so the stored value always does.
    ///
    /// # Errors
    /// A message naming the rule that failed; it never echoes the input.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        const TOO_LONG: &str = "email must have at most 254 characters";
        if too_long(raw) {
            return Err(TOO_LONG);
        }
        if raw.chars().any(char::is_control) {
            return Err("email must not contain control characters");
        }
        if !raw.contains('@') {
            return Err("email must look like name@domain");
        }
        let normalized = raw.trim().to_lowercase();
        if too_long(&normalized) {
            return Err(TOO_LONG);
        }
        Ok(Self(normalized))
    }

    /// The check for a new account (`NEW_EMAIL_PATTERN`, at most 254 characters).
    ///
    /// # Errors
    /// A message naming the rule that failed; it never echoes the input.
    pub fn parse_new(raw: &str) -> Result<Self, &'static str> {
        let email = Self::parse(raw)?;
        // No address syntax either (`<>"(),;:[]\`): `x<a@b.example>` would be one account's
        // name and another's mailbox once a mailer parses it.
        let plain = |part: &str| {
            !part.is_empty()
                && !part
                    .chars()
                    .any(|c| c.is_whitespace() || "@<>\"(),;:[]\\".contains(c))
        };
        let dotted = |domain: &str| {
            domain
                .char_indices()
                .any(|(i, c)| c == '.' && i > 0 && i + 1 < domain.len())
        };
        match raw.split_once('@') {
            Some((local, domain)) if plain(local) && plain(domain) && dotted(domain) => Ok(email),
            _ => Err("email must be a valid address such as name@example.com"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn too_long(s: &str) -> bool {
    s.chars().nth(MAX_EMAIL_CHARS).is_some()
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
    /// Whether the account proved it reads mail at its address (a verification link, or a
    /// password reset). Accounts older than verification, imported or added by an operator
    /// count as verified; only sign-ups from the network start unverified.
    pub email_verified: bool,
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
    /// The end it reaches if not refreshed before (`REFRESH_IDLE_TIMEOUT_DAYS`), set at login
    /// and moved by each refresh; never after `expires_at`. `None`: no idle timeout.
    pub idle_expires_at: Option<Timestamp>,
}

impl Session {
    /// The earlier of the two ends: what a cookie may promise.
    pub fn ends_at(&self) -> Timestamp {
        self.idle_expires_at
            .map_or(self.expires_at, |idle| idle.min(self.expires_at))
    }
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
            "a@b\u{85}",
            "a\u{0}b@x.io",
            "a\nb@x.io",
            &long,
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?}");
        }
        // An address that can match no account still parses, so it fails like an unknown one.
        assert!(Email::parse("' OR 1=1--@x.io").is_ok());
        assert!(Email::parse("@x.io").is_ok());
    }

    #[test]
    fn an_email_that_grows_when_lower_cased_is_measured_after_normalizing() {
        // 'İ' (2 bytes, 1 character) lower-cases to 'i' + U+0307: two characters.
        let raw = format!("{}@x.io", "\u{130}".repeat(200));
        assert_eq!(raw.chars().count(), 205);
        assert!(Email::parse(&raw).is_err());
        assert!(Email::parse_new(&raw).is_err());
        let fits = format!("{}@x.io", "\u{130}".repeat(124));
        let email = Email::parse_new(&fits).unwrap();
        assert_eq!(email.as_str().chars().count(), 253);
    }

    #[test]
    fn a_parsed_email_parses_again_to_itself() {
        let long = format!("{}@x.io", "\u{130}".repeat(124));
        for raw in [
            " User@Example.COM ",
            "\u{130}stanbul@example.com",
            "\u{3a3}\u{3a3}@example.com",
            "\u{1e9e}@example.com",
            "\u{212a}elvin@example.com",
            &long,
        ] {
            let once = Email::parse(raw).unwrap();
            assert_eq!(Email::parse(once.as_str()).unwrap(), once, "{raw:?}");
        }
    }

    #[test]
    fn new_accounts_need_a_plain_dotted_address() {
        assert!(Email::parse_new("name@example.com").is_ok());
        for raw in [
            "' OR 1=1--@x.io",
            "a@b",
            "a@b@c.io",
            "a@.io",
            "a@io.",
            " a@b.io",
            "@b.io",
            "victim<attacker@corp.example>",
            "a,b@x.io",
            "\"q\"@x.io",
            "a;b@x.io",
            "a@[127.0.0.1].io",
            "a\\b@x.io",
        ] {
            assert!(Email::parse_new(raw).is_err(), "{raw:?}");
        }
    }
}
