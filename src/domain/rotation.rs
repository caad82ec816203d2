//! The rotation rule: what a store does with a presented refresh token, decided from what it
//! read about the token's family. Every `RefreshStore` asks this one function.

use super::Timestamp;

/// What a store read about a presented token, under whatever makes its rotation atomic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresentedToken {
    /// The end of the token's session; rotation never moves it.
    pub session_expires_at: Timestamp,
    pub session_revoked: bool,
    pub consumed: bool,
}

/// Why a rotation is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationRefusal {
    /// Never issued, or its session was revoked or purged.
    NotFound,
    /// The session's end is reached.
    Expired,
    /// Already consumed: a stolen or replayed token.
    Reused,
}

/// What a store does with a presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationVerdict {
    /// Consume it and issue the successor.
    Consume,
    /// Refuse, changing nothing.
    Refuse(RotationRefusal),
    /// Revoke the session, then refuse.
    RevokeAndRefuse(RotationRefusal),
}

/// Unknown or revoked → `NotFound`; the session's end reached (at exactly `expires_at`) →
/// revoke, `Expired`; consumed → revoke, `Reused`; else consume. `token` is `None` for a
/// token no session holds.
pub fn judge_rotation(token: Option<PresentedToken>, now: Timestamp) -> RotationVerdict {
    use RotationRefusal::{Expired, NotFound, Reused};
    match token {
        None => RotationVerdict::Refuse(NotFound),
        Some(t) if t.session_revoked => RotationVerdict::Refuse(NotFound),
        Some(t) if now >= t.session_expires_at => RotationVerdict::RevokeAndRefuse(Expired),
        Some(t) if t.consumed => RotationVerdict::RevokeAndRefuse(Reused),
        Some(_) => RotationVerdict::Consume,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(revoked: bool, consumed: bool) -> Option<PresentedToken> {
        Some(PresentedToken {
            session_expires_at: Timestamp::from_unix(200),
            session_revoked: revoked,
            consumed,
        })
    }

    #[test]
    fn revoked_then_expired_then_consumed() {
        use RotationRefusal::{Expired, NotFound, Reused};
        let at = Timestamp::from_unix;
        assert_eq!(
            judge_rotation(None, at(150)),
            RotationVerdict::Refuse(NotFound)
        );
        // Revoked wins over everything: the family is gone.
        assert_eq!(
            judge_rotation(token(true, true), at(250)),
            RotationVerdict::Refuse(NotFound)
        );
        // Expired is checked before consumed, and is reached at exactly expires_at.
        assert_eq!(
            judge_rotation(token(false, true), at(200)),
            RotationVerdict::RevokeAndRefuse(Expired)
        );
        assert_eq!(
            judge_rotation(token(false, true), at(199)),
            RotationVerdict::RevokeAndRefuse(Reused)
        );
        assert_eq!(
            judge_rotation(token(false, false), at(199)),
            RotationVerdict::Consume
        );
    }
}
