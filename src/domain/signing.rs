/// The algorithm access tokens are signed with (`JWT_ALGORITHM`); verification accepts only
/// this one. HS* share one secret between signer and verifiers; the others sign with a private
/// key and publish the public one (`/.well-known/jwks.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum SigningAlgorithm {
    HS256,
    HS384,
    HS512,
    /// Ed25519 (RFC 8037).
    EdDSA,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, for older verifiers; keys of at least 2048 bits.
    RS256,
}

impl SigningAlgorithm {
    /// Every algorithm, for tests and docs.
    pub const ALL: [Self; 6] = [
        Self::HS256,
        Self::HS384,
        Self::HS512,
        Self::EdDSA,
        Self::ES256,
        Self::RS256,
    ];

    /// Shortest HMAC key accepted: the hash output length (RFC 7518 §3.2); 0 for the
    /// asymmetric algorithms, which take no secret.
    pub const fn min_key_bytes(self) -> usize {
        match self {
            Self::HS256 => 32,
            Self::HS384 => 48,
            Self::HS512 => 64,
            Self::EdDSA | Self::ES256 | Self::RS256 => 0,
        }
    }

    /// Whether tokens are signed with a private key whose public half is published.
    pub const fn is_asymmetric(self) -> bool {
        matches!(self, Self::EdDSA | Self::ES256 | Self::RS256)
    }

    /// The JOSE `alg` name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }

    /// The algorithm named `name` exactly (case-sensitive, as JOSE compares them).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}
