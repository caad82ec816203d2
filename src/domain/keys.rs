//! The lifecycle of asymmetric signing keys.

/// Where a key is in its life. A key is published from `Next` until it is `Retired`, so a
/// verifier that fetched the key set before a rotation already holds the key that signs
/// after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    /// Signing (and published).
    Current,
    /// Published until every token it signed has expired; signs nothing.
    Previous,
    /// Neither published nor accepted.
    Retired,
}

impl KeyState {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Previous => "previous",
            Self::Retired => "retired",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Next, Self::Current, Self::Previous, Self::Retired]
            .into_iter()
            .find(|s| s.name() == name)
    }
}
