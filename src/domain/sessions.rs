//! What a session records about where it was opened, and the reach of a logout.

use super::{ClientAddress, Session, Timestamp};

/// Longest user agent kept, in characters: enough to tell browsers and devices apart, and a
/// bounded cost per session whatever a client sends.
pub const MAX_USER_AGENT_CHARS: usize = 256;

/// A client's `User-Agent`, as text for the owner to read in their sessions list: never
/// parsed or acted on. Cut to `MAX_USER_AGENT_CHARS`; control characters and the invisible
/// ones that reorder or hide text (bidi controls, zero-width characters, line and paragraph
/// separators) become U+FFFD, so it can neither break a log line or a terminal nor pass for
/// another device in a sessions list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAgent(String);

impl UserAgent {
    /// `None` for an empty or all-blank value.
    pub fn parse(raw: &str) -> Option<Self> {
        let cleaned: String = raw
            .trim()
            .chars()
            .take(MAX_USER_AGENT_CHARS)
            .map(|c| if shown_as_is(c) { c } else { '\u{fffd}' })
            .collect();
        (!cleaned.is_empty()).then_some(Self(cleaned))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn shown_as_is(c: char) -> bool {
    !(c.is_control()
        || matches!(c,
            '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'))
}

/// Where a session was opened, recorded at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOrigin {
    pub user_agent: Option<UserAgent>,
    /// The address the login throttle counted the attempt under.
    pub client: ClientAddress,
}

/// A live session as its owner sees it in the sessions list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub session: Session,
    /// The last login or refresh.
    pub last_used_at: Timestamp,
    pub user_agent: Option<String>,
    pub client_address: Option<String>,
}

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogoutScope {
    /// The session of the presented refresh token.
    #[default]
    Local,
    /// Every other session of its user: "sign out my other devices".
    Others,
    /// Every session of its user.
    Global,
}

impl LogoutScope {
    /// The query parameter's value, and the `logout` event's detail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Others => "others",
            Self::Global => "global",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_bounded_trimmed_and_cannot_carry_control_characters() {
        assert_eq!(UserAgent::parse("   "), None);
        assert_eq!(UserAgent::parse(""), None);
        let ua = UserAgent::parse(" Mozilla/5.0\n\u{1b}[31m ").unwrap();
        assert_eq!(ua.as_str(), "Mozilla/5.0\u{fffd}\u{fffd}[31m");
        let spoof = UserAgent::parse("Phone\u{202e}\u{200b}x\u{2028}y").unwrap();
        assert_eq!(spoof.as_str(), "Phone\u{fffd}\u{fffd}x\u{fffd}y");
        let long = "é".repeat(10_000);
        let ua = UserAgent::parse(&long).unwrap();
        assert_eq!(ua.as_str().chars().count(), MAX_USER_AGENT_CHARS);
    }
}
