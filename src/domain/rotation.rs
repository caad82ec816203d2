//! The rotation rule: what a store does with a presented refresh token, decided from what it
//! read about the token's family. Every `RefreshStore` asks this one function.

use super::Timestamp;

/// How many consumed tokens a session keeps besides its current one, so that a session costs
/// the same however often it rotates. Reuse detection needs only recent history: a thief who
/// races the owner presents a token one step behind (always caught), and a token more than
/// this many rotations old is forgotten, so its replay is merely unknown: refused, the
/// session unharmed, nothing issued. That is the trade-off for bounded storage.
pub const KEPT_CONSUMED_TOKENS: u64 = 4;

/// What a store read about a presented token, under whatever makes its rotation atomic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresentedToken {
    /// The end of the token's session; rotation never moves it.
    pub session_expires_at: Timestamp,
    pub session_revoked: bool,
    pub consumed: bool,
    /// The session's user exists and is not disabled.
    pub user_active: bool,
}

/// Why a rotation is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RotationRefusal {
    /// Never issued, forgotten, or its session was revoked or purged.
    #[error("unknown refresh token")]
    NotFound,
    /// The session's end is reached.
    #[error("session expired")]
    Expired,
    /// Already consumed: a stolen or replayed token.
    #[error("refresh token reused")]
    Reused,
    /// The session's user is disabled or gone.
    #[error("user disabled or deleted")]
    UserInactive,
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
    /// Revoke every session of the session's user, then refuse.
    RevokeUserAndRefuse(RotationRefusal),
}

/// Unknown or revoked → `NotFound`; the session's end reached (at exactly `expires_at`) →
/// revoke, `Expired`; consumed → revoke, `Reused`; the user disabled or gone → revoke all
/// their sessions, `UserInactive`; else consume. `token` is `None` for a token no session
/// holds.
pub fn judge_rotation(token: Option<PresentedToken>, now: Timestamp) -> RotationVerdict {
    use RotationRefusal::{Expired, NotFound, Reused, UserInactive};
    match token {
        None => RotationVerdict::Refuse(NotFound),
        Some(t) if t.session_revoked => RotationVerdict::Refuse(NotFound),
        Some(t) if now >= t.session_expires_at => RotationVerdict::RevokeAndRefuse(Expired),
        Some(t) if t.consumed => RotationVerdict::RevokeAndRefuse(Reused),
        Some(t) if !t.user_active => RotationVerdict::RevokeUserAndRefuse(UserInactive),
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
            user_active: true,
        })
    }

    #[test]
    fn revoked_then_expired_then_consumed_then_inactive_user() {
        use RotationRefusal::{Expired, NotFound, Reused, UserInactive};
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
        // A current token of a disabled or deleted user consumes nothing.
        let inactive = token(false, false).map(|t| PresentedToken {
            user_active: false,
            ..t
        });
        assert_eq!(
            judge_rotation(inactive, at(199)),
            RotationVerdict::RevokeUserAndRefuse(UserInactive)
        );
    }
}
