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
    /// When the session ends if it is not refreshed before (`REFRESH_IDLE_TIMEOUT_DAYS`);
    /// `None` when no idle timeout applied at its last login or refresh.
    pub session_idle_expires_at: Option<Timestamp>,
    pub session_revoked: bool,
    /// When the token was consumed; `None` while it is its session's current token.
    pub consumed_at: Option<Timestamp>,
    /// The token that replaced it is the session's current token and is the successor this
    /// request derived (`RefreshToken::successor`): only then may a replay be answered.
    pub successor_is_current: bool,
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
    /// A concurrent request of the same client already consumed it, moments ago: answer with
    /// the same successor (which the caller derives again), changing nothing.
    Replay,
    /// Refuse, changing nothing.
    Refuse(RotationRefusal),
    /// Revoke the session, then refuse.
    RevokeAndRefuse(RotationRefusal),
    /// Revoke every session of the session's user, then refuse.
    RevokeUserAndRefuse(RotationRefusal),
}

/// Whether a token still speaks for its session's holder at `now`: it is the current token
/// (`consumed_at` is `None`), or its immediate predecessor consumed less than
/// `reuse_grace_secs` ago while its successor is still current (a request that raced the
/// rotation). The grace window of `judge_rotation`, and the reach of a scoped logout.
pub fn speaks_for_session(
    consumed_at: Option<Timestamp>,
    successor_is_current: bool,
    now: Timestamp,
    reuse_grace_secs: u64,
) -> bool {
    consumed_at.is_none_or(|at| successor_is_current && now < at.plus_secs(reuse_grace_secs))
}

/// Unknown or revoked → `NotFound`; the session's absolute or idle end reached (at exactly
/// that second) → revoke, `Expired`; consumed → `Replay` when it was consumed less than
/// `reuse_grace_secs` ago and its successor is still current, else revoke, `Reused`; the user
/// disabled or gone → revoke all their sessions, `UserInactive`; else consume. `token` is
/// `None` for a token no session holds.
///
/// Only the immediate predecessor of the current token can be replayed: once its successor is
/// consumed in turn, the window is closed whatever the clock says. A window of 0 is strict
/// single use.
pub fn judge_rotation(
    token: Option<PresentedToken>,
    now: Timestamp,
    reuse_grace_secs: u64,
) -> RotationVerdict {
    use RotationRefusal::{Expired, NotFound, Reused, UserInactive};
    let Some(t) = token else {
        return RotationVerdict::Refuse(NotFound);
    };
    if t.session_revoked {
        return RotationVerdict::Refuse(NotFound);
    }
    let idle_ended = t.session_idle_expires_at.is_some_and(|end| now >= end);
    if now >= t.session_expires_at || idle_ended {
        return RotationVerdict::RevokeAndRefuse(Expired);
    }
    if !speaks_for_session(t.consumed_at, t.successor_is_current, now, reuse_grace_secs) {
        return RotationVerdict::RevokeAndRefuse(Reused);
    }
    if !t.user_active {
        return RotationVerdict::RevokeUserAndRefuse(UserInactive);
    }
    if t.consumed_at.is_some() {
        RotationVerdict::Replay
    } else {
        RotationVerdict::Consume
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RotationRefusal::{Expired, NotFound, Reused, UserInactive};

    const GRACE: u64 = 5;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix(secs)
    }

    fn current() -> PresentedToken {
        PresentedToken {
            session_expires_at: at(200),
            session_idle_expires_at: None,
            session_revoked: false,
            consumed_at: None,
            successor_is_current: false,
            user_active: true,
        }
    }

    fn consumed_at(secs: u64, successor_is_current: bool) -> PresentedToken {
        PresentedToken {
            consumed_at: Some(at(secs)),
            successor_is_current,
            ..current()
        }
    }

    fn judge(t: PresentedToken, now: u64) -> RotationVerdict {
        judge_rotation(Some(t), at(now), GRACE)
    }

    #[test]
    fn unknown_and_revoked_are_not_found_whatever_else_holds() {
        assert_eq!(
            judge_rotation(None, at(150), GRACE),
            RotationVerdict::Refuse(NotFound)
        );
        let revoked = PresentedToken {
            session_revoked: true,
            ..consumed_at(100, false)
        };
        assert_eq!(judge(revoked, 250), RotationVerdict::Refuse(NotFound));
    }

    #[test]
    fn the_absolute_and_the_idle_end_are_reached_at_their_second() {
        assert_eq!(judge(current(), 199), RotationVerdict::Consume);
        assert_eq!(
            judge(current(), 200),
            RotationVerdict::RevokeAndRefuse(Expired)
        );
        let idle = PresentedToken {
            session_idle_expires_at: Some(at(120)),
            ..current()
        };
        assert_eq!(judge(idle, 119), RotationVerdict::Consume);
        assert_eq!(judge(idle, 120), RotationVerdict::RevokeAndRefuse(Expired));
        // Expiry is checked before reuse: a stale cookie of an ended session is not a theft.
        assert_eq!(
            judge(consumed_at(100, false), 200),
            RotationVerdict::RevokeAndRefuse(Expired)
        );
    }

    #[test]
    fn a_replay_of_the_immediate_predecessor_inside_the_window_gets_the_same_successor() {
        assert_eq!(judge(consumed_at(100, true), 100), RotationVerdict::Replay);
        assert_eq!(judge(consumed_at(100, true), 104), RotationVerdict::Replay);
    }

    #[test]
    fn after_the_window_or_two_generations_old_a_replay_is_reuse() {
        // The window is half-open: 5 s after the consumption it is closed.
        assert_eq!(
            judge(consumed_at(100, true), 105),
            RotationVerdict::RevokeAndRefuse(Reused)
        );
        // The successor was consumed in turn (or is not the one derived): two generations old.
        assert_eq!(
            judge(consumed_at(100, false), 101),
            RotationVerdict::RevokeAndRefuse(Reused)
        );
    }

    #[test]
    fn a_window_of_zero_is_strict_single_use() {
        assert_eq!(
            judge_rotation(Some(consumed_at(100, true)), at(100), 0),
            RotationVerdict::RevokeAndRefuse(Reused)
        );
    }

    #[test]
    fn an_inactive_user_gets_nothing_not_even_a_replay() {
        let inactive = |t: PresentedToken| PresentedToken {
            user_active: false,
            ..t
        };
        assert_eq!(
            judge(inactive(current()), 150),
            RotationVerdict::RevokeUserAndRefuse(UserInactive)
        );
        assert_eq!(
            judge(inactive(consumed_at(150, true)), 151),
            RotationVerdict::RevokeUserAndRefuse(UserInactive)
        );
        // A theft is still a theft: reuse outside the window revokes the session first.
        assert_eq!(
            judge(inactive(consumed_at(100, true)), 150),
            RotationVerdict::RevokeAndRefuse(Reused)
        );
    }
}
