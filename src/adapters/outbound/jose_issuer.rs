//! `TokenIssuer` on josekit: access tokens (RFC 9068 `at+jwt`) signed with an HMAC secret or
//! with the current key of a `KeyRing` (EdDSA, ES256, RS256; each token names its `kid`).
//!
//! josekit checks format, `alg` and the MAC but validates no claim by itself, accepts a token
//! without `exp` or `aud`, and compares MACs with `!=`. So this adapter pins the algorithm,
//! computes and compares MACs itself (RustCrypto `hmac`, constant-time comparison, a keyed
//! state prepared once instead of OpenSSL's per-call key set-up), refuses header parameters
//! it never issues, and checks every claim itself from the raw JSON against the injected time
//! (never through josekit's `expires_at()`, which can overflow on an absurd `exp`).

use hmac::{Hmac, Mac};
use josekit::jws::alg::hmac::HmacJwsAlgorithm;
use josekit::jws::{JwsAlgorithm, JwsHeader, JwsSigner, JwsVerifier};
use josekit::jwt::{self, JwtPayload};
use josekit::JoseError;
use serde_json::Value;
use sha2::{Sha256, Sha384, Sha512};
use std::fmt;
use std::sync::Arc;

use crate::domain::{
    AccessClaims, AccessToken, SessionId, SigningAlgorithm as Algorithm, Timestamp, UserId,
};
use crate::ports::{KeyHealth, PublicKeys, TokenError, TokenIssuer};

use super::signing_keys::KeyRing;

/// The `typ` header of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Longest compact token looked at; ours are about 400 bytes.
const MAX_TOKEN_LEN: usize = 4096;
/// Header parameters this service issues under HMAC; any other one means the token is not ours.
const HMAC_HEADER_PARAMS: [&str; 2] = ["alg", "typ"];
/// Under a key ring every token also names its key.
const KEYED_HEADER_PARAMS: [&str; 3] = ["alg", "typ", "kid"];

fn jose_algorithm(algorithm: Algorithm) -> anyhow::Result<HmacJwsAlgorithm> {
    Ok(match algorithm {
        Algorithm::HS256 => HmacJwsAlgorithm::Hs256,
        Algorithm::HS384 => HmacJwsAlgorithm::Hs384,
        Algorithm::HS512 => HmacJwsAlgorithm::Hs512,
        other => anyhow::bail!("{} signs with a key pair, not a secret", other.name()),
    })
}

/// What tokens are issued for and checked against.
#[derive(Clone)]
pub struct IssuerConfig {
    pub algorithm: Algorithm,
    pub secret: Vec<u8>,
    /// A previous secret still accepted for verification during a key rotation overlap.
    pub previous_secret: Option<Vec<u8>>,
    pub issuer: String,
    pub audience: String,
    /// Allowed clock skew in seconds for `exp`, `nbf` and `iat`; zero by default.
    pub leeway_secs: u64,
}

impl fmt::Debug for IssuerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerConfig")
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .field(
                "previous_secret",
                &self.previous_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

/// A keyed HMAC state, cloned for every signature so the key schedule runs once.
#[derive(Clone)]
enum KeyedMac {
    S256(Hmac<Sha256>),
    S384(Hmac<Sha384>),
    S512(Hmac<Sha512>),
}

/// One HMAC key: josekit's signer and verifier for it.
#[derive(Clone)]
struct HmacKey {
    algorithm: HmacJwsAlgorithm,
    mac: KeyedMac,
    /// Accepted only before this time (the previous secret's end date).
    until: Option<Timestamp>,
}

impl HmacKey {
    fn new(algorithm: Algorithm, secret: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            secret.len() >= algorithm.min_key_bytes(),
            "secret shorter than {} bytes",
            algorithm.min_key_bytes()
        );
        let mac = match algorithm {
            Algorithm::HS256 => KeyedMac::S256(Hmac::new_from_slice(secret)?),
            Algorithm::HS384 => KeyedMac::S384(Hmac::new_from_slice(secret)?),
            Algorithm::HS512 => KeyedMac::S512(Hmac::new_from_slice(secret)?),
            other => anyhow::bail!("{} signs with a key pair, not a secret", other.name()),
        };
        Ok(Self {
            algorithm: jose_algorithm(algorithm)?,
            mac,
            until: None,
        })
    }

    fn mac(&self, message: &[u8]) -> Vec<u8> {
        match self.mac.clone() {
            KeyedMac::S256(mut m) => {
                m.update(message);
                m.finalize().into_bytes().to_vec()
            }
            KeyedMac::S384(mut m) => {
                m.update(message);
                m.finalize().into_bytes().to_vec()
            }
            KeyedMac::S512(mut m) => {
                m.update(message);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    /// Constant-time comparison (`verify_slice` uses `subtle`).
    fn matches(&self, message: &[u8], signature: &[u8]) -> bool {
        match self.mac.clone() {
            KeyedMac::S256(mut m) => {
                m.update(message);
                m.verify_slice(signature).is_ok()
            }
            KeyedMac::S384(mut m) => {
                m.update(message);
                m.verify_slice(signature).is_ok()
            }
            KeyedMac::S512(mut m) => {
                m.update(message);
                m.verify_slice(signature).is_ok()
            }
        }
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HmacKey({}, <redacted>)", self.algorithm.name())
    }
}

impl JwsSigner for HmacKey {
    fn algorithm(&self) -> &dyn JwsAlgorithm {
        &self.algorithm
    }

    fn key_id(&self) -> Option<&str> {
        None
    }

    fn signature_len(&self) -> usize {
        match self.mac {
            KeyedMac::S256(_) => 32,
            KeyedMac::S384(_) => 48,
            KeyedMac::S512(_) => 64,
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JoseError> {
        Ok(self.mac(message))
    }

    fn box_clone(&self) -> Box<dyn JwsSigner> {
        Box::new(self.clone())
    }
}

impl JwsVerifier for HmacKey {
    fn algorithm(&self) -> &dyn JwsAlgorithm {
        &self.algorithm
    }

    fn key_id(&self) -> Option<&str> {
        None
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), JoseError> {
        if self.matches(message, signature) {
            Ok(())
        } else {
            Err(JoseError::InvalidSignature(anyhow::anyhow!("MAC mismatch")))
        }
    }

    fn box_clone(&self) -> Box<dyn JwsVerifier> {
        Box::new(self.clone())
    }
}

/// What tokens are signed and verified with.
enum Keys {
    /// The current secret first, then the previous one during a rotation; signing uses the
    /// first.
    Hmac(Vec<HmacKey>),
    /// The ring's current key signs; any key it publishes verifies the token whose `kid`
    /// names it.
    Ring(Arc<KeyRing>),
}

/// Issues and verifies access tokens.
pub struct JoseTokenIssuer {
    keys: Keys,
    issuer: String,
    audience: String,
    leeway_secs: u64,
}

impl fmt::Debug for JoseTokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (algorithm, keys) = match &self.keys {
            Keys::Hmac(keys) => (keys[0].algorithm.name().to_owned(), keys.len()),
            Keys::Ring(ring) => {
                let set = ring.snapshot();
                (set.algorithm().name().to_owned(), set.published().len())
            }
        };
        f.debug_struct("JoseTokenIssuer")
            .field("algorithm", &algorithm)
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

impl JoseTokenIssuer {
    /// An HMAC issuer.
    ///
    /// # Errors
    /// When a secret is shorter than the algorithm's hash output, or the algorithm is not HS*.
    pub fn new(config: IssuerConfig) -> anyhow::Result<Self> {
        let mut keys = vec![HmacKey::new(config.algorithm, &config.secret)?];
        if let Some(previous) = &config.previous_secret {
            keys.push(
                HmacKey::new(config.algorithm, previous)
                    .map_err(|e| anyhow::anyhow!("previous {e}"))?,
            );
        }
        Ok(Self {
            keys: Keys::Hmac(keys),
            issuer: config.issuer,
            audience: config.audience,
            leeway_secs: config.leeway_secs,
        })
    }

    /// An issuer that signs with the ring's current key and verifies with its published keys.
    pub fn with_ring(
        ring: Arc<KeyRing>,
        issuer: String,
        audience: String,
        leeway_secs: u64,
    ) -> Self {
        Self {
            keys: Keys::Ring(ring),
            issuer,
            audience,
            leeway_secs,
        }
    }

    /// The previous HMAC secret verifies only before `until`; tokens it verifies are treated
    /// as expiring then at the latest, so no cache keeps them longer.
    #[must_use]
    pub fn previous_secret_until(mut self, until: Timestamp) -> Self {
        if let Keys::Hmac(keys) = &mut self.keys {
            if let Some(previous) = keys.get_mut(1) {
                previous.until = Some(until);
            }
        }
        self
    }

    /// The payload and header of a token whose signature one of our keys verifies, with the
    /// end date of the key that verified it, if any.
    fn decode(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<(JwtPayload, JwsHeader, Option<Timestamp>), TokenError> {
        match &self.keys {
            Keys::Hmac(keys) => {
                let mut last = None;
                for key in keys {
                    if key.until.is_some_and(|until| now >= until) {
                        continue;
                    }
                    match jwt::decode_with_verifier(token, key) {
                        Ok((payload, header)) => return Ok((payload, header, key.until)),
                        Err(JoseError::InvalidSignature(_)) => last = Some("bad signature"),
                        Err(e) => return Err(invalid(jose_kind(&e))),
                    }
                }
                Err(invalid(last.unwrap_or("undecodable")))
            }
            Keys::Ring(ring) => {
                // Each published key in turn, never a key the token picks: josekit refuses a
                // key whose `kid` differs from the header's (or a header without one) and an
                // `alg` other than the key's before it checks any signature, so a token
                // naming no key of ours, or another algorithm, is refused by every one.
                let set = ring.snapshot();
                let mut last = "no key of ours";
                for (_, key) in set.published() {
                    match jwt::decode_with_verifier(token, key.verifier()) {
                        Ok((payload, header)) => return Ok((payload, header, None)),
                        Err(e) => last = jose_kind(&e),
                    }
                }
                Err(invalid(last))
            }
        }
    }

    fn allowed_header_params(&self) -> &'static [&'static str] {
        match self.keys {
            Keys::Hmac(_) => &HMAC_HEADER_PARAMS,
            Keys::Ring(_) => &KEYED_HEADER_PARAMS,
        }
    }

    fn check_claims(
        &self,
        payload: &JwtPayload,
        now: Timestamp,
    ) -> Result<AccessClaims, TokenError> {
        let nbf = match payload.claim("nbf") {
            Some(_) => Some(Timestamp::from_unix(numeric(payload, "nbf")?)),
            None => None,
        };
        let claims = AccessClaims {
            sub: uuid_claim(payload, "sub").map(UserId::from_uuid)?,
            sid: uuid_claim(payload, "sid").map(SessionId::from_uuid)?,
            iat: Timestamp::from_unix(numeric(payload, "iat")?),
            exp: Timestamp::from_unix(numeric(payload, "exp")?),
            nbf,
            jti: uuid_claim(payload, "jti")?,
        };
        claims.check_time(now, self.leeway_secs).map_err(invalid)?;
        if string(payload, "iss")? != self.issuer {
            return Err(invalid("wrong issuer"));
        }
        let audience_ok = match payload.claim("aud") {
            Some(Value::String(aud)) => *aud == self.audience,
            Some(Value::Array(auds)) => auds
                .iter()
                .any(|a| a.as_str() == Some(self.audience.as_str())),
            _ => false,
        };
        if !audience_ok {
            return Err(invalid("wrong or missing audience"));
        }
        Ok(claims)
    }
}

impl TokenIssuer for JoseTokenIssuer {
    fn issue_access(&self, claims: &AccessClaims) -> Result<AccessToken, TokenError> {
        let mut header = JwsHeader::new();
        header.set_token_type(ACCESS_TOKEN_TYP);
        let mut payload = JwtPayload::new();
        payload.set_issuer(&self.issuer);
        payload.set_audience(vec![self.audience.clone()]);
        payload.set_subject(claims.sub.to_string());
        payload.set_jwt_id(claims.jti.to_string());
        // Set as integers: josekit's `set_issued_at` may write a float, which strict verifiers
        // (ours included) refuse.
        let extra = [
            ("iat", Some(Value::from(claims.iat.unix()))),
            ("exp", Some(Value::from(claims.exp.unix()))),
            ("nbf", claims.nbf.map(|t| Value::from(t.unix()))),
            ("sid", Some(Value::String(claims.sid.to_string()))),
        ];
        for (name, value) in extra.into_iter().filter(|(_, v)| v.is_some()) {
            payload
                .set_claim(name, value)
                .map_err(|e| TokenError::Unknown(e.into()))?;
        }
        let signed = match &self.keys {
            Keys::Hmac(keys) => jwt::encode_with_signer(&payload, &header, &keys[0]),
            // josekit writes the signer's `kid` into the header.
            // A key the store no longer lists may be retired already: verifiers would refuse
            // what it signs, so nothing is signed until a reload finds a key in force.
            Keys::Ring(ring) if ring.key_health() == KeyHealth::Unavailable => {
                return Err(TokenError::NoSigningKey);
            }
            Keys::Ring(ring) => {
                jwt::encode_with_signer(&payload, &header, ring.snapshot().signing().signer())
            }
        };
        signed
            .map(AccessToken::new)
            .map_err(|e| TokenError::Unknown(e.into()))
    }

    fn verify_access(&self, token: &str, now: Timestamp) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(invalid("too long"));
        }
        let (payload, header, until) = self.decode(token, now)?;
        if header.token_type() != Some(ACCESS_TOKEN_TYP) {
            return Err(invalid("wrong typ"));
        }
        let allowed = self.allowed_header_params();
        if header
            .claims_set()
            .keys()
            .any(|k| !allowed.contains(&k.as_str()))
        {
            return Err(invalid("unexpected header parameter"));
        }
        let mut claims = self.check_claims(&payload, now)?;
        if let Some(until) = until {
            // Any later check of these claims (the verified-token cache) adds the leeway to
            // `exp`; an old secret's end is a hard one, so `exp` stops one leeway before it.
            let end = Timestamp::from_unix(until.unix().saturating_sub(self.leeway_secs));
            claims.exp = claims.exp.min(end);
        }
        Ok(claims)
    }

    fn key_generation(&self) -> u64 {
        match &self.keys {
            Keys::Hmac(_) => 0,
            Keys::Ring(ring) => ring.generation(),
        }
    }
}

fn invalid(why: &str) -> TokenError {
    TokenError::Invalid(why.to_owned())
}

/// The kind of a josekit error, without its message (which can embed claim values).
fn jose_kind(e: &JoseError) -> &'static str {
    match e {
        JoseError::InvalidJwtFormat(_) => "invalid JWT format",
        JoseError::InvalidJwsFormat(_) => "invalid JWS format or algorithm",
        JoseError::InvalidSignature(_) => "bad signature",
        JoseError::InvalidClaim(_) => "invalid claim",
        JoseError::InvalidKeyFormat(_) => "invalid key",
        _ => "undecodable",
    }
}

fn numeric(payload: &JwtPayload, name: &'static str) -> Result<u64, TokenError> {
    payload
        .claim(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| TokenError::Invalid(format!("{name} missing or not a number")))
}

fn string<'a>(payload: &'a JwtPayload, name: &'static str) -> Result<&'a str, TokenError> {
    payload
        .claim(name)
        .and_then(Value::as_str)
        .ok_or_else(|| TokenError::Invalid(format!("{name} missing or not a string")))
}

fn uuid_claim(payload: &JwtPayload, name: &'static str) -> Result<uuid::Uuid, TokenError> {
    string(payload, name)?
        .parse()
        .map_err(|_| TokenError::Invalid(format!("{name} is not an id")))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECRET: &[u8] = b"unit-test-secret-0123456789-abcdefghijklmnop";
    const NOW: u64 = 1_800_000_000;

    fn issuer() -> JoseTokenIssuer {
        JoseTokenIssuer::new(IssuerConfig {
            algorithm: Algorithm::HS256,
            secret: SECRET.to_vec(),
            previous_secret: None,
            issuer: "iss".into(),
            audience: "aud".into(),
            leeway_secs: 0,
        })
        .unwrap()
    }

    #[test]
    fn nothing_is_signed_while_no_key_the_store_lists_can_sign() {
        use crate::adapters::outbound::signing_keys::{KeyRing, KeySet};
        use crate::domain::SigningAlgorithm;
        let ring = Arc::new(KeyRing::new(
            KeySet::generated(SigningAlgorithm::EdDSA).unwrap(),
        ));
        let issuer = JoseTokenIssuer::with_ring(ring.clone(), "iss".into(), "aud".into(), 0);
        let c = claims(NOW, 60);
        assert!(issuer.issue_access(&c).is_ok());
        // A reload found the held key withdrawn from the store.
        ring.record_reload(0, false);
        assert!(matches!(
            issuer.issue_access(&c),
            Err(TokenError::NoSigningKey)
        ));
        assert!(matches!(
            crate::domain::InfraError::from(TokenError::NoSigningKey),
            crate::domain::InfraError::Unavailable(_)
        ));
        ring.record_reload(0, true);
        assert!(issuer.issue_access(&c).is_ok());
    }

    fn claims(iat: u64, ttl: u64) -> AccessClaims {
        AccessClaims {
            sub: UserId::new_random(),
            sid: SessionId::new_random(),
            iat: Timestamp::from_unix(iat),
            exp: Timestamp::from_unix(iat + ttl),
            nbf: None,
            jti: uuid::Uuid::new_v4(),
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        let mut config = IssuerConfig {
            algorithm: Algorithm::HS256,
            secret: vec![1; 31],
            previous_secret: None,
            issuer: "iss".into(),
            audience: "aud".into(),
            leeway_secs: 0,
        };
        assert!(JoseTokenIssuer::new(config.clone()).is_err());
        config.secret = vec![1; 32];
        config.algorithm = Algorithm::HS512;
        assert!(JoseTokenIssuer::new(config).is_err());
    }

    #[test]
    fn debug_shows_no_key() {
        let shown = format!("{:?}", issuer());
        assert!(!shown.contains("unit-test-secret"));
        let config = IssuerConfig {
            algorithm: Algorithm::HS256,
            secret: SECRET.to_vec(),
            previous_secret: Some(SECRET.to_vec()),
            issuer: "iss".into(),
            audience: "aud".into(),
            leeway_secs: 0,
        };
        assert!(!format!("{config:?}").contains("unit-test-secret"));
    }

    proptest! {
        /// Issue then verify returns the same claims at any time before `exp`, and fails from
        /// `exp` on.
        #[test]
        fn round_trip_until_exp(iat in 0u64..4_000_000_000, ttl in 1u64..100_000, at in 0u64..100_000) {
            let issuer = issuer();
            let c = claims(iat, ttl);
            let token = issuer.issue_access(&c).unwrap();
            let now = Timestamp::from_unix(iat + at);
            let verified = issuer.verify_access(token.as_str(), now);
            if at < ttl {
                prop_assert_eq!(verified.unwrap(), c);
            } else {
                prop_assert!(verified.is_err());
            }
        }

        /// Changing any single character of a valid token makes it invalid (never a panic).
        #[test]
        fn any_single_character_change_is_refused(pos in any::<prop::sample::Index>(), replacement in "[A-Za-z0-9_.=+/-]") {
            let issuer = issuer();
            let token = issuer.issue_access(&claims(NOW, 900)).unwrap().into_string();
            let i = pos.index(token.len());
            let mut changed = token.clone();
            changed.replace_range(i..=i, &replacement);
            prop_assume!(changed != token);
            // A change only in the unused low bits of the last base64url character can decode
            // to the same signature bytes; josekit rejects non-canonical encodings anyway.
            prop_assert!(issuer.verify_access(&changed, Timestamp::from_unix(NOW)).is_err());
        }

        /// Arbitrary input never panics and is never accepted.
        #[test]
        fn arbitrary_strings_are_refused(s in "\\PC{0,600}") {
            prop_assert!(issuer().verify_access(&s, Timestamp::from_unix(NOW)).is_err());
        }

        /// Three arbitrary base64url segments are refused.
        #[test]
        fn arbitrary_segments_are_refused(a in "[A-Za-z0-9_-]{0,80}", b in "[A-Za-z0-9_-]{0,200}", c in "[A-Za-z0-9_-]{0,90}") {
            let token = [a, b, c].join(".");
            prop_assert!(issuer().verify_access(&token, Timestamp::from_unix(NOW)).is_err());
        }
    }
}
