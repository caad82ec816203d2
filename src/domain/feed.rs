//! Positions in the revocation feed and their wire form, the `cursor`.
//!
//! The feed is ordered by (revoked time, session id). A position is a second and how many of
//! that second's entries were already read: whole seconds alone cannot page through a second
//! holding more entries than one page (a logout flood, a mass disable), the cursor would
//! not move. On the wire it stays one JSON integer under 2^53: plain Unix seconds (below
//! 10^12) mean "from the start of that second", which keeps every earlier cursor valid;
//! `second * 10^6 + skip` means "that second, after its first `skip` entries".

/// Seconds times this, plus the entries already read in that second.
pub const CURSOR_SCALE: u64 = 1_000_000;
/// Cursors below this are plain Unix seconds (until the year 33658).
pub const PLAIN_SECONDS_BELOW: u64 = 1_000_000_000_000;

/// Where a read of the feed begins: the entries of `second` after its first `skip` (in
/// session-id order), then every later second's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct FeedPosition {
    pub second: u64,
    pub skip: u64,
}

impl FeedPosition {
    /// The start of `second`.
    pub fn at(second: u64) -> Self {
        Self { second, skip: 0 }
    }

    /// Reads a cursor; every integer is a position, none is refused.
    pub fn from_cursor(cursor: u64) -> Self {
        if cursor < PLAIN_SECONDS_BELOW {
            Self::at(cursor)
        } else {
            Self {
                second: cursor / CURSOR_SCALE,
                skip: cursor % CURSOR_SCALE,
            }
        }
    }

    /// The cursor for this position: plain seconds when nothing of the second was read.
    /// A second with a million entries or more read cannot be written, nor one before
    /// 1970-01-12 (its positions would read as plain seconds): the position moves to the
    /// next second (the caller logs the first) rather than stand still.
    pub fn cursor(self) -> u64 {
        if self.skip == 0 {
            self.second
        } else if self.skip >= CURSOR_SCALE || self.second < PLAIN_SECONDS_BELOW / CURSOR_SCALE {
            self.second.saturating_add(1)
        } else {
            self.second
                .saturating_mul(CURSOR_SCALE)
                .saturating_add(self.skip)
        }
    }

    /// The position after reading `revoked_at` (entries come in feed order).
    #[must_use]
    pub fn after(self, revoked_at: u64) -> Self {
        if revoked_at == self.second {
            Self {
                second: revoked_at,
                skip: self.skip + 1,
            }
        } else {
            Self {
                second: revoked_at,
                skip: 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_seconds_and_positions_round_trip() {
        let now = 1_764_000_000;
        assert_eq!(FeedPosition::from_cursor(now), FeedPosition::at(now));
        assert_eq!(FeedPosition::at(now).cursor(), now);
        let p = FeedPosition {
            second: now,
            skip: 10_000,
        };
        assert_eq!(p.cursor(), now * CURSOR_SCALE + 10_000);
        assert!(
            p.cursor() < 1 << 53,
            "a JSON number reader holds it exactly"
        );
        assert_eq!(FeedPosition::from_cursor(p.cursor()), p);
        assert_eq!(
            p.after(now),
            FeedPosition {
                second: now,
                skip: 10_001
            }
        );
        assert_eq!(
            p.after(now + 1),
            FeedPosition {
                second: now + 1,
                skip: 1
            }
        );
        let full = FeedPosition {
            second: now,
            skip: CURSOR_SCALE,
        };
        assert_eq!(full.cursor(), now + 1, "moves on rather than stand still");
        assert_eq!(
            FeedPosition::from_cursor((1 << 53) - 1).second,
            9_007_199_254
        );
    }
}
