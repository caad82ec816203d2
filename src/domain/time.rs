use std::fmt;

/// Seconds since the Unix epoch. Every time in the domain is one of these, read from the
/// `Clock` port, so tests move a manual clock instead of sleeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    pub const fn from_unix(secs: u64) -> Self {
        Self(secs)
    }

    pub const fn unix(self) -> u64 {
        self.0
    }

    pub const fn plus_secs(self, secs: u64) -> Self {
        Self(self.0.saturating_add(secs))
    }

    /// Seconds from `self` until `later`, zero if `later` is not after `self`.
    pub const fn secs_until(self, later: Timestamp) -> u64 {
        later.0.saturating_sub(self.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
