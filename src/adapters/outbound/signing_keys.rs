//! Asymmetric signing keys on josekit (EdDSA/Ed25519, ES256/P-256, RS256) and the key ring
//! that the issuer signs and verifies with and that `/.well-known/jwks.json` publishes.
//!
//! A key's `kid` is its RFC 7638 JWK thumbprint, so the same key always has the same id on
//! every instance and no `kid` can name a key we do not hold. The ring is swapped whole when
//! the key lifecycle moves (rotation, retirement); a bumped generation tells caches of
//! verified tokens to forget what an older set verified.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jwk::{Jwk, KeyPair};
use josekit::jws::{EdDSA, JwsSigner, JwsVerifier, ES256, RS256};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::domain::{KeyState, SigningAlgorithm};
use crate::ports::{KeyHealth, PublicKeys};

/// Smallest RSA modulus accepted (NIST SP 800-131A).
const MIN_RSA_BITS: usize = 2048;
/// Modulus of generated RSA keys.
const GENERATED_RSA_BITS: u32 = 2048;

/// One asymmetric key pair: its signer, its verifier and its public JWK.
pub struct SigningKey {
    kid: String,
    algorithm: SigningAlgorithm,
    signer: Box<dyn JwsSigner>,
    verifier: Box<dyn JwsVerifier>,
    public_jwk: Map<String, Value>,
    /// PKCS#8 PEM of the private key, for storing it encrypted; never printed.
    private_pem: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

fn jose(e: josekit::JoseError) -> anyhow::Error {
    // josekit's messages name the problem, never key material.
    anyhow::anyhow!("{e}")
}

impl SigningKey {
    /// A fresh key pair for `algorithm` from the operating system's CSPRNG (through OpenSSL).
    ///
    /// # Errors
    /// For an HMAC algorithm, or when OpenSSL fails.
    pub fn generate(algorithm: SigningAlgorithm) -> anyhow::Result<Self> {
        let pem = match algorithm {
            SigningAlgorithm::EdDSA => EdDSA
                .generate_key_pair(EdCurve::Ed25519)
                .map_err(jose)?
                .to_pem_private_key(),
            SigningAlgorithm::ES256 => ES256
                .generate_key_pair()
                .map_err(jose)?
                .to_pem_private_key(),
            SigningAlgorithm::RS256 => RS256
                .generate_key_pair(GENERATED_RSA_BITS)
                .map_err(jose)?
                .to_pem_private_key(),
            other => anyhow::bail!("{} takes a secret, not a key pair", other.name()),
        };
        Self::from_pem(algorithm, &pem)
    }

    /// The key of a PEM private key (PKCS#8, or the traditional SEC1/PKCS#1 forms) for
    /// `algorithm`: an Ed25519 key for EdDSA, a P-256 key for ES256, an RSA key of at least
    /// 2048 bits for RS256.
    ///
    /// # Errors
    /// A key of another type, curve or size, or a PEM that does not parse; the message never
    /// contains key material.
    pub fn from_pem(algorithm: SigningAlgorithm, pem: &[u8]) -> anyhow::Result<Self> {
        let name = algorithm.name();
        let wrong = |_| anyhow::anyhow!("not a private key for {name}");
        let pair: Box<dyn KeyPair> = match algorithm {
            SigningAlgorithm::EdDSA => Box::new(EdDSA.key_pair_from_pem(pem).map_err(wrong)?),
            SigningAlgorithm::ES256 => Box::new(ES256.key_pair_from_pem(pem).map_err(wrong)?),
            SigningAlgorithm::RS256 => Box::new(RS256.key_pair_from_pem(pem).map_err(wrong)?),
            other => anyhow::bail!("{} takes a secret, not a key pair", other.name()),
        };
        let mut jwk = pair.to_jwk_public_key();
        check_shape(algorithm, &jwk)?;
        let kid = thumbprint(&jwk)?;
        jwk.set_key_id(&kid);
        jwk.set_algorithm(name);
        jwk.set_key_use("sig");
        let private_pem = pair.to_pem_private_key();
        let (signer, verifier): (Box<dyn JwsSigner>, Box<dyn JwsVerifier>) = match algorithm {
            SigningAlgorithm::EdDSA => {
                let mut s = EdDSA.signer_from_pem(&private_pem).map_err(jose)?;
                s.set_key_id(&kid);
                (
                    Box::new(s),
                    Box::new(EdDSA.verifier_from_jwk(&jwk).map_err(jose)?),
                )
            }
            SigningAlgorithm::ES256 => {
                let mut s = ES256.signer_from_pem(&private_pem).map_err(jose)?;
                s.set_key_id(&kid);
                (
                    Box::new(s),
                    Box::new(ES256.verifier_from_jwk(&jwk).map_err(jose)?),
                )
            }
            _ => {
                let mut s = RS256.signer_from_pem(&private_pem).map_err(jose)?;
                s.set_key_id(&kid);
                (
                    Box::new(s),
                    Box::new(RS256.verifier_from_jwk(&jwk).map_err(jose)?),
                )
            }
        };
        anyhow::ensure!(
            verifier.key_id() == Some(kid.as_str()),
            "the verifier of {kid} lost its key id"
        );
        Ok(Self {
            kid,
            algorithm,
            signer,
            verifier,
            public_jwk: jwk.as_ref().clone(),
            private_pem,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The public JWK: `kty`, `kid`, `alg`, `use` and the public parameters only.
    pub fn public_jwk(&self) -> &Map<String, Value> {
        &self.public_jwk
    }

    /// The private key as PKCS#8 PEM, to be encrypted before it is stored anywhere.
    pub fn private_pem(&self) -> &[u8] {
        &self.private_pem
    }

    pub fn signer(&self) -> &dyn JwsSigner {
        self.signer.as_ref()
    }

    pub fn verifier(&self) -> &dyn JwsVerifier {
        self.verifier.as_ref()
    }
}

/// Refuses the curves and sizes each algorithm does not name (josekit accepts Ed448 under
/// EdDSA and any RSA size).
fn check_shape(algorithm: SigningAlgorithm, jwk: &Jwk) -> anyhow::Result<()> {
    match algorithm {
        SigningAlgorithm::EdDSA => {
            anyhow::ensure!(jwk.curve() == Some("Ed25519"), "EdDSA keys must be Ed25519");
        }
        SigningAlgorithm::ES256 => {
            anyhow::ensure!(jwk.curve() == Some("P-256"), "ES256 keys must be on P-256");
        }
        _ => {
            let n = jwk
                .parameter("n")
                .and_then(Value::as_str)
                .and_then(|n| URL_SAFE_NO_PAD.decode(n).ok())
                .ok_or_else(|| anyhow::anyhow!("RS256 key without a modulus"))?;
            let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
            anyhow::ensure!(
                bits >= MIN_RSA_BITS,
                "RS256 keys must have at least {MIN_RSA_BITS} bits"
            );
        }
    }
    Ok(())
}

/// RFC 7638: SHA-256 over the required public members in lexicographic order, base64url.
fn thumbprint(jwk: &Jwk) -> anyhow::Result<String> {
    let members: &[&str] = match jwk.key_type() {
        "OKP" => &["crv", "kty", "x"],
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        other => anyhow::bail!("no thumbprint for key type {other}"),
    };
    let mut canonical = Map::new();
    for m in members {
        let value = jwk
            .parameter(m)
            .ok_or_else(|| anyhow::anyhow!("public key without {m}"))?;
        canonical.insert((*m).to_owned(), value.clone());
    }
    // serde_json's map is ordered by key and writes no whitespace: the canonical form.
    let json = serde_json::to_vec(&canonical)?;
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(json)))
}

/// The keys in force: the one that signs, and every published one with its state.
#[derive(Debug)]
pub struct KeySet {
    signing: Arc<SigningKey>,
    published: Vec<(KeyState, Arc<SigningKey>)>,
    by_kid: HashMap<String, Arc<SigningKey>>,
}

impl KeySet {
    /// `keys` must hold exactly one `Current` key (the signer); `Next` and `Previous` ones are
    /// published and verify; `Retired` ones are dropped.
    ///
    /// # Errors
    /// When there is no current key, more than one, or keys of several algorithms.
    pub fn new(keys: Vec<(KeyState, Arc<SigningKey>)>) -> anyhow::Result<Self> {
        let published: Vec<_> = keys
            .into_iter()
            .filter(|(s, _)| *s != KeyState::Retired)
            .collect();
        let mut current = published.iter().filter(|(s, _)| *s == KeyState::Current);
        let signing = match (current.next(), current.next()) {
            (Some((_, k)), None) => k.clone(),
            (None, _) => anyhow::bail!("no current signing key"),
            (Some(_), Some(_)) => anyhow::bail!("more than one current signing key"),
        };
        anyhow::ensure!(
            published
                .iter()
                .all(|(_, k)| k.algorithm() == signing.algorithm()),
            "every key must be for {}",
            signing.algorithm().name()
        );
        let by_kid = published
            .iter()
            .map(|(_, k)| (k.kid().to_owned(), k.clone()))
            .collect();
        Ok(Self {
            signing,
            published,
            by_kid,
        })
    }

    /// One generated current key.
    ///
    /// # Errors
    /// As `SigningKey::generate`.
    pub fn generated(algorithm: SigningAlgorithm) -> anyhow::Result<Self> {
        Self::new(vec![(
            KeyState::Current,
            Arc::new(SigningKey::generate(algorithm)?),
        )])
    }

    pub fn signing(&self) -> &SigningKey {
        &self.signing
    }

    pub fn signing_key(&self) -> Arc<SigningKey> {
        self.signing.clone()
    }

    /// The published key `kid` names, if any; a retired or unknown kid is `None`.
    pub fn verifying(&self, kid: &str) -> Option<&SigningKey> {
        self.by_kid.get(kid).map(AsRef::as_ref)
    }

    pub fn published(&self) -> &[(KeyState, Arc<SigningKey>)] {
        &self.published
    }

    pub fn algorithm(&self) -> SigningAlgorithm {
        self.signing.algorithm()
    }
}

/// The key set in force, swapped whole by the key lifecycle; read on every signature and
/// verification.
#[derive(Debug)]
pub struct KeyRing {
    set: RwLock<Arc<KeySet>>,
    generation: AtomicU64,
    /// Stored keys the last reload skipped because they did not open.
    unopenable: AtomicUsize,
    /// The last reload found no key the store still lists to sign with.
    unavailable: AtomicBool,
}

impl KeyRing {
    pub fn new(set: KeySet) -> Self {
        Self {
            set: RwLock::new(Arc::new(set)),
            generation: AtomicU64::new(0),
            unopenable: AtomicUsize::new(0),
            unavailable: AtomicBool::new(false),
        }
    }

    pub fn snapshot(&self) -> Arc<KeySet> {
        self.set
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `set` in force. When it withdraws a key the older set held, the generation moves
    /// on, so caches of verified tokens start over.
    pub fn replace(&self, set: KeySet) {
        let mut held = self.set.write().unwrap_or_else(PoisonError::into_inner);
        let withdrawn = held
            .published()
            .iter()
            .any(|(_, k)| set.verifying(k.kid()).is_none());
        *held = Arc::new(set);
        if withdrawn {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// What the last reload found: how many stored keys did not open, and whether a key the
    /// store still lists was left to sign with.
    pub fn record_reload(&self, unopenable: usize, can_sign: bool) {
        self.unopenable.store(unopenable, Ordering::SeqCst);
        self.unavailable.store(!can_sign, Ordering::SeqCst);
    }

    /// Stored keys the last reload skipped.
    pub fn unopenable(&self) -> usize {
        self.unopenable.load(Ordering::SeqCst)
    }
}

impl PublicKeys for KeyRing {
    fn public_jwks(&self) -> Vec<Map<String, Value>> {
        self.snapshot()
            .published()
            .iter()
            .map(|(_, k)| k.public_jwk().clone())
            .collect()
    }

    fn key_health(&self) -> KeyHealth {
        if self.unavailable.load(Ordering::SeqCst) {
            KeyHealth::Unavailable
        } else if self.unopenable() > 0 {
            KeyHealth::Degraded
        } else {
            KeyHealth::Ok
        }
    }
}

/// The JWKS of an HMAC configuration: nothing to publish.
#[derive(Debug, Default)]
pub struct NoPublicKeys;

impl PublicKeys for NoPublicKeys {
    fn public_jwks(&self) -> Vec<Map<String, Value>> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASYMMETRIC: [SigningAlgorithm; 3] = [
        SigningAlgorithm::EdDSA,
        SigningAlgorithm::ES256,
        SigningAlgorithm::RS256,
    ];

    #[test]
    fn public_jwks_carry_no_private_parameter_and_a_stable_thumbprint() {
        for alg in ASYMMETRIC {
            let key = SigningKey::generate(alg).unwrap();
            let jwk = key.public_jwk();
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
                assert!(!jwk.contains_key(private), "{alg:?} publishes {private}");
            }
            assert_eq!(jwk["kid"], key.kid());
            assert_eq!(jwk["alg"], alg.name());
            assert_eq!(jwk["use"], "sig");
            let again = SigningKey::from_pem(alg, key.private_pem()).unwrap();
            assert_eq!(again.kid(), key.kid(), "the kid is the key's thumbprint");
            let shown = format!("{key:?}");
            assert!(!shown.contains("PRIVATE"), "{shown}");
        }
    }

    #[test]
    fn keys_of_another_type_or_curve_are_refused() {
        let ed = SigningKey::generate(SigningAlgorithm::EdDSA).unwrap();
        let es = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
        assert!(SigningKey::from_pem(SigningAlgorithm::ES256, ed.private_pem()).is_err());
        assert!(SigningKey::from_pem(SigningAlgorithm::RS256, es.private_pem()).is_err());
        assert!(SigningKey::from_pem(SigningAlgorithm::EdDSA, es.private_pem()).is_err());
        let ed448 = EdDSA
            .generate_key_pair(EdCurve::Ed448)
            .unwrap()
            .to_pem_private_key();
        assert!(SigningKey::from_pem(SigningAlgorithm::EdDSA, &ed448).is_err());
        // (josekit itself refuses to generate an RSA key under 2048 bits; `check_shape`
        // refuses one loaded from a file.)
        assert!(SigningKey::from_pem(SigningAlgorithm::HS256, b"x").is_err());
        let err = SigningKey::from_pem(SigningAlgorithm::ES256, b"-----BEGIN garbage")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ES256"), "{err}");
    }

    #[test]
    fn a_set_needs_exactly_one_current_key_and_retiring_one_moves_the_generation() {
        let alg = SigningAlgorithm::ES256;
        let a = Arc::new(SigningKey::generate(alg).unwrap());
        let b = Arc::new(SigningKey::generate(alg).unwrap());
        assert!(KeySet::new(vec![(KeyState::Next, a.clone())]).is_err());
        assert!(KeySet::new(vec![
            (KeyState::Current, a.clone()),
            (KeyState::Current, b.clone())
        ])
        .is_err());
        let ring = KeyRing::new(
            KeySet::new(vec![
                (KeyState::Current, a.clone()),
                (KeyState::Next, b.clone()),
            ])
            .unwrap(),
        );
        assert_eq!(ring.public_jwks().len(), 2);
        ring.replace(
            KeySet::new(vec![
                (KeyState::Previous, a.clone()),
                (KeyState::Current, b.clone()),
            ])
            .unwrap(),
        );
        assert_eq!(ring.generation(), 0, "nothing withdrawn");
        ring.replace(
            KeySet::new(vec![(KeyState::Retired, a), (KeyState::Current, b.clone())]).unwrap(),
        );
        assert_eq!(ring.generation(), 1);
        assert_eq!(ring.public_jwks().len(), 1);
        assert_eq!(ring.snapshot().signing().kid(), b.kid());
    }
}
