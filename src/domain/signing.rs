/// The algorithm access tokens are signed with (`JWT_ALGORITHM`); verification accepts only
/// this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum SigningAlgorithm {
    HS256,
    HS384,
    HS512,
}

impl SigningAlgorithm {
    /// Shortest key accepted: the hash output length (RFC 7518 §3.2).
    pub const fn min_key_bytes(self) -> usize {
        match self {
            Self::HS256 => 32,
            Self::HS384 => 48,
            Self::HS512 => 64,
        }
    }
}
