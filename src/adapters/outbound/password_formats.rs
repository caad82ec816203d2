//! The stored password-hash formats, as PHC strings (`$id$v=..$params$salt$digest`, through
//! the `password-hash` crate) that name their algorithm and parameters, so the policy can
//! change without a flag day. Pure and synchronous: the hasher runs these on its threads.
//!
//! - `$bcrypt-hmac-sha256$v=1$r=N$<salt>$<digest>`: bcrypt over the HMAC-SHA256 pre-hash of
//!   the password (every byte counts, see `prehash`). The default for new hashes.
//! - `$argon2id$v=19$m=..,t=..,p=..$<salt>$<digest>`: Argon2id (the `argon2` crate).
//! - `$bcrypt$r=N$<salt>$<digest>`: plain bcrypt of the password itself, as passlib and most
//!   bcrypt libraries write it (`$2a$`/`$2b$`/`$2y$`), converted by `user import` so that it
//!   can never be taken for the pre-hashed kind. Verifies as it was made (bcrypt reads the
//!   first 72 bytes), and is replaced at the next login.
//! - A bare `$2b$NN$...` found in the users table is this service's earlier format: the
//!   pre-hashed kind before it named itself. It verifies with the pre-hash and always needs
//!   a rehash, which rewrites it in the PHC form at the next login.
//!
//! Salts and digests are base64 without padding (the PHC alphabet); bcrypt's own alphabet
//! appears only in the `$2b$` strings handed to the bcrypt crate.
//!
//! Stored parameters are checked against `Limits` before any work: an imported or tampered
//! hash with `r=31` or `m=4GiB` is refused (a mismatch), never computed.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::alphabet::BCRYPT;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use password_hash::{Output, PasswordVerifier, SaltString};
use sha2::Sha256;

/// Fixed, public key of the pre-hash: domain separation, not a secret pepper.
const PREHASH_KEY: &[u8] = b"jwt-auth/bcrypt-prehash/v1";

/// PHC identifiers.
const ID_PREHASHED: &str = "bcrypt-hmac-sha256";
const ID_PLAIN_BCRYPT: &str = "bcrypt";
const ID_ARGON2ID: &str = "argon2id";
/// The version of the pre-hashed format (the pre-hash key and encoding above).
const PREHASHED_VERSION: u32 = 1;

/// Highest bcrypt cost verified or configured: 2^16 rounds already take several seconds.
pub const MAX_BCRYPT_COST: u32 = 16;
/// Lowest bcrypt cost the bcrypt crate computes.
pub const MIN_BCRYPT_COST: u32 = 4;
/// Highest Argon2 memory (KiB, 256 MiB), passes and lanes verified or configured.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 262_144;
pub const MAX_ARGON2_ITERATIONS: u32 = 10;
pub const MAX_ARGON2_PARALLELISM: u32 = 16;

/// bcrypt's radix-64 alphabet; decoding tolerates the unused low bits of the last character,
/// which some writers leave set (bcrypt itself ignores them).
const BCRYPT_B64: GeneralPurpose = GeneralPurpose::new(
    &BCRYPT,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

const BCRYPT_SALT_LEN: usize = 16;
const BCRYPT_DIGEST_LEN: usize = 23;
/// Bytes of a password plain bcrypt reads; the rest is ignored.
const BCRYPT_MAX_INPUT: usize = 72;

/// How new hashes are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// bcrypt over the pre-hash, at this cost.
    Bcrypt { cost: u32 },
    /// Argon2id v19 with memory in KiB, passes and lanes.
    Argon2id {
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    },
}

impl Policy {
    /// # Errors
    /// When the parameters are outside what this service verifies (`MAX_*`) or computes.
    pub fn check(&self) -> Result<(), String> {
        match *self {
            Self::Bcrypt { cost } => bcrypt_cost_ok(cost).then_some(()).ok_or_else(|| {
                format!("bcrypt cost must be between {MIN_BCRYPT_COST} and {MAX_BCRYPT_COST}")
            }),
            Self::Argon2id {
                memory_kib,
                iterations,
                parallelism,
            } => argon2_params(memory_kib, iterations, parallelism).map(drop),
        }
    }
}

/// Why a stored or imported hash is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a recognised password hash format")]
    Unrecognised,
    /// The parameters would cost more than this service computes for one login.
    #[error("hash parameters beyond the limits ({0})")]
    OverCost(String),
}

/// A parsed stored hash.
#[derive(Clone, PartialEq, Eq)]
enum Stored {
    /// Bcrypt over the pre-hash: `legacy` for the bare `$2b$` form of earlier versions.
    Prehashed { bcrypt: BcryptParts, legacy: bool },
    /// Plain bcrypt of the password (imported).
    Plain(BcryptParts),
    /// An Argon2id PHC string, kept whole for the verifier.
    Argon2id {
        phc: String,
        version: u32,
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    },
}

#[derive(Clone, PartialEq, Eq)]
struct BcryptParts {
    cost: u32,
    salt: [u8; BCRYPT_SALT_LEN],
    digest: [u8; BCRYPT_DIGEST_LEN],
}

impl BcryptParts {
    /// The modular-crypt form the bcrypt crate reads.
    fn modular(&self) -> String {
        format!(
            "$2b${:02}${}{}",
            self.cost,
            BCRYPT_B64.encode(self.salt),
            BCRYPT_B64.encode(self.digest)
        )
    }

    fn phc(&self, id: &str, version: Option<u32>) -> String {
        let version = version.map(|v| format!("$v={v}")).unwrap_or_default();
        format!(
            "${id}{version}$r={}${}${}",
            self.cost,
            b64(&self.salt),
            b64(&self.digest)
        )
    }
}

/// PHC base64: the standard alphabet without padding.
fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes).trim_end_matches('=').to_owned()
}

fn bcrypt_cost_ok(cost: u32) -> bool {
    (MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&cost)
}

fn argon2_params(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Params, String> {
    if memory_kib > MAX_ARGON2_MEMORY_KIB
        || iterations > MAX_ARGON2_ITERATIONS
        || parallelism > MAX_ARGON2_PARALLELISM
    {
        return Err(format!(
            "argon2 m={memory_kib},t={iterations},p={parallelism}: at most \
             m={MAX_ARGON2_MEMORY_KIB},t={MAX_ARGON2_ITERATIONS},p={MAX_ARGON2_PARALLELISM}"
        ));
    }
    Params::new(memory_kib, iterations, parallelism, None).map_err(|e| format!("argon2: {e}"))
}

/// The 44 ASCII bytes bcrypt sees for `password`: base64 of HMAC-SHA256 under a fixed key.
pub fn prehash(password: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(PREHASH_KEY).expect("HMAC takes any key length");
    mac.update(password);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// `$2a$`, `$2b$` or `$2y$`, two digits of cost, 22 characters of salt and 31 of digest.
fn parse_modular(hash: &str) -> Result<BcryptParts, FormatError> {
    let rest = ["$2a$", "$2b$", "$2y$"]
        .iter()
        .find_map(|p| hash.strip_prefix(p))
        .ok_or(FormatError::Unrecognised)?;
    let (cost, tail) = rest.split_once('$').ok_or(FormatError::Unrecognised)?;
    if cost.len() != 2 || !cost.bytes().all(|b| b.is_ascii_digit()) || tail.len() != 53 {
        return Err(FormatError::Unrecognised);
    }
    let cost: u32 = cost.parse().map_err(|_| FormatError::Unrecognised)?;
    let (salt, digest) = tail.split_at_checked(22).ok_or(FormatError::Unrecognised)?;
    let parts = BcryptParts {
        cost,
        salt: decode_exact(&BCRYPT_B64, salt)?,
        digest: decode_exact(&BCRYPT_B64, digest)?,
    };
    bcrypt_within_limits(parts)
}

fn bcrypt_within_limits(parts: BcryptParts) -> Result<BcryptParts, FormatError> {
    if parts.cost > MAX_BCRYPT_COST {
        return Err(FormatError::OverCost(format!("bcrypt r={}", parts.cost)));
    }
    if parts.cost < MIN_BCRYPT_COST {
        return Err(FormatError::Unrecognised);
    }
    Ok(parts)
}

fn decode_exact<const N: usize>(
    engine: &GeneralPurpose,
    text: &str,
) -> Result<[u8; N], FormatError> {
    engine
        .decode(text)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(FormatError::Unrecognised)
}

fn parse(hash: &str) -> Result<Stored, FormatError> {
    if !hash.starts_with("$2") {
        return parse_phc(hash);
    }
    // Only the `$2b$` this service wrote is the legacy pre-hashed kind; a bare `$2a$`/`$2y$`
    // was never written here, so it is not guessed at.
    if !hash.starts_with("$2b$") {
        return Err(FormatError::Unrecognised);
    }
    parse_modular(hash).map(|bcrypt| Stored::Prehashed {
        bcrypt,
        legacy: true,
    })
}

fn parse_phc(hash: &str) -> Result<Stored, FormatError> {
    let phc = password_hash::PasswordHash::new(hash).map_err(|_| FormatError::Unrecognised)?;
    match phc.algorithm.as_str() {
        ID_PREHASHED => {
            if phc.version != Some(PREHASHED_VERSION) {
                return Err(FormatError::Unrecognised);
            }
            Ok(Stored::Prehashed {
                bcrypt: phc_bcrypt(&phc)?,
                legacy: false,
            })
        }
        ID_PLAIN_BCRYPT => {
            if phc.version.is_some() {
                return Err(FormatError::Unrecognised);
            }
            phc_bcrypt(&phc).map(Stored::Plain)
        }
        ID_ARGON2ID => {
            let version = phc.version.unwrap_or(0x10);
            Version::try_from(version).map_err(|_| FormatError::Unrecognised)?;
            if phc.salt.is_none() || phc.hash.is_none() {
                return Err(FormatError::Unrecognised);
            }
            let decimal = |name: &str| phc.params.get_decimal(name);
            let (Some(m), Some(t), Some(p)) = (decimal("m"), decimal("t"), decimal("p")) else {
                return Err(FormatError::Unrecognised);
            };
            // Checked before the argon2 crate sees them: its own bounds reach 4 TiB.
            if m > MAX_ARGON2_MEMORY_KIB || t > MAX_ARGON2_ITERATIONS || p > MAX_ARGON2_PARALLELISM
            {
                return Err(FormatError::OverCost(format!("argon2 m={m},t={t},p={p}")));
            }
            // Every parameter (keyid, data, output length) as the crate would take them.
            Params::try_from(&phc).map_err(|_| FormatError::Unrecognised)?;
            Ok(Stored::Argon2id {
                phc: hash.to_owned(),
                version,
                memory_kib: m,
                iterations: t,
                parallelism: p,
            })
        }
        _ => Err(FormatError::Unrecognised),
    }
}

/// `r=N` and nothing else, a 16-byte salt and a 23-byte digest.
fn phc_bcrypt(phc: &password_hash::PasswordHash<'_>) -> Result<BcryptParts, FormatError> {
    let mut params = phc.params.iter();
    let cost = match (params.next(), params.next()) {
        (Some((name, value)), None) if name.as_str() == "r" => {
            value.decimal().map_err(|_| FormatError::Unrecognised)?
        }
        _ => return Err(FormatError::Unrecognised),
    };
    let mut salt = [0u8; BCRYPT_SALT_LEN];
    let decoded = phc
        .salt
        .ok_or(FormatError::Unrecognised)?
        .decode_b64(&mut salt)
        .map_err(|_| FormatError::Unrecognised)?;
    if decoded.len() != BCRYPT_SALT_LEN {
        return Err(FormatError::Unrecognised);
    }
    let digest: [u8; BCRYPT_DIGEST_LEN] = phc
        .hash
        .as_ref()
        .map(Output::as_bytes)
        .and_then(|d| d.try_into().ok())
        .ok_or(FormatError::Unrecognised)?;
    bcrypt_within_limits(BcryptParts { cost, salt, digest })
}

/// Whether `hash` is a format this service verifies, within the cost limits.
pub fn readable(hash: &str) -> bool {
    parse(hash).is_ok()
}

/// Whether `password` matches `hash`. Unrecognised or over-cost hashes are a mismatch (the
/// latter with a warning that never shows the hash): a bad row never fails a login loudly.
pub fn verify(password: &[u8], hash: &str) -> bool {
    let stored = match parse(hash) {
        Ok(stored) => stored,
        Err(FormatError::OverCost(why)) => {
            tracing::warn!(
                event = "password_hash_over_cost",
                params = %why,
                "a stored password hash is beyond the cost limits; refused without computing"
            );
            return false;
        }
        Err(FormatError::Unrecognised) => return false,
    };
    match stored {
        Stored::Prehashed { bcrypt, .. } => {
            bcrypt::non_truncating_verify(prehash(password), &bcrypt.modular()).unwrap_or(false)
        }
        // As its writer did: bcrypt of the first 72 bytes.
        Stored::Plain(bcrypt) => bcrypt::verify(password, &bcrypt.modular()).unwrap_or(false),
        Stored::Argon2id { phc, .. } => password_hash::PasswordHash::new(&phc)
            .is_ok_and(|parsed| Argon2::default().verify_password(password, &parsed).is_ok()),
    }
}

/// A new hash of `password` under `policy`.
///
/// # Errors
/// When the policy's parameters are unusable (checked at start-up) or randomness fails.
pub fn hash(policy: Policy, password: &[u8]) -> anyhow::Result<String> {
    let mut salt = [0u8; BCRYPT_SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no randomness for a salt: {e}"))?;
    match policy {
        Policy::Bcrypt { cost } => {
            anyhow::ensure!(bcrypt_cost_ok(cost), "bcrypt cost {cost} out of range");
            let modular =
                bcrypt::non_truncating_hash_with_salt(prehash(password), cost, salt)?.to_string();
            let parts = parse_modular(&modular).map_err(anyhow::Error::new)?;
            Ok(parts.phc(ID_PREHASHED, Some(PREHASHED_VERSION)))
        }
        Policy::Argon2id {
            memory_kib,
            iterations,
            parallelism,
        } => {
            let params =
                argon2_params(memory_kib, iterations, parallelism).map_err(anyhow::Error::msg)?;
            let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
            let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
            let phc = password_hash::PasswordHasher::hash_password(&hasher, password, &salt)
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
            Ok(phc.to_string())
        }
    }
}

/// Whether `hash` is in `policy`'s format with its parameters; anything else (the legacy
/// `$2b$`, imported plain bcrypt, another algorithm or cost, garbage) should be replaced.
pub fn matches_policy(hash: &str, policy: Policy) -> bool {
    match (parse(hash), policy) {
        (
            Ok(Stored::Prehashed {
                bcrypt,
                legacy: false,
            }),
            Policy::Bcrypt { cost },
        ) => bcrypt.cost == cost,
        (
            Ok(Stored::Argon2id {
                version,
                memory_kib,
                iterations,
                parallelism,
                ..
            }),
            Policy::Argon2id {
                memory_kib: m,
                iterations: t,
                parallelism: p,
            },
        ) => version == 0x13 && (memory_kib, iterations, parallelism) == (m, t, p),
        _ => false,
    }
}

/// Whether a password that verified against `hash` may replace it: not when `hash` is plain
/// bcrypt and the password is longer than the 72 bytes bcrypt reads. Its tail was never
/// checked, so storing it would make the owner's real password (which may end otherwise) stop
/// working, a lockout anyone who knew the first 72 bytes could cause.
pub fn upgrade_keeps_meaning(hash: &str, password: &[u8]) -> bool {
    !(matches!(parse(hash), Ok(Stored::Plain(_))) && password.len() > BCRYPT_MAX_INPUT)
}

/// The stored form of a hash from an import file: a plain `$2a$`/`$2b$`/`$2y$` (passlib's
/// bcrypt, no pre-hash) becomes `$bcrypt$r=N$...`; a PHC string this service reads is kept.
///
/// # Errors
/// Unrecognised formats and parameters beyond the limits.
pub fn import(hash: &str) -> Result<String, FormatError> {
    if hash.starts_with("$2") {
        return parse_modular(hash).map(|parts| parts.phc(ID_PLAIN_BCRYPT, None));
    }
    parse_phc(hash)?;
    Ok(hash.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BCRYPT4: Policy = Policy::Bcrypt { cost: 4 };
    const ARGON_SMALL: Policy = Policy::Argon2id {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };

    /// `passlib.hash.bcrypt.using(rounds=4).hash("correct horse battery staple")` (passlib
    /// 1.7.4, bcrypt 4.0.1): a plain `$2b$` as the FastAPI project stores them.
    pub(crate) const PASSLIB_2B: &str =
        "$2b$04$1XD4f8Lx2noy4jmAjNtQReMiD5aEKH6GMwPH42zh7GN6U4ss.N5le";

    #[test]
    fn prehashed_bcrypt_round_trips_as_phc() {
        let h = hash(BCRYPT4, b"correct horse").unwrap();
        assert!(h.starts_with("$bcrypt-hmac-sha256$v=1$r=4$"), "{h}");
        assert!(password_hash::PasswordHash::new(&h).is_ok(), "a PHC string");
        assert!(verify(b"correct horse", &h));
        assert!(!verify(b"correct horsE", &h));
        assert!(matches_policy(&h, BCRYPT4));
        assert!(!matches_policy(&h, Policy::Bcrypt { cost: 5 }));
        assert!(!matches_policy(&h, ARGON_SMALL));
    }

    #[test]
    fn every_byte_of_a_long_password_counts_in_the_prehashed_format() {
        let long = format!("{}{}", "a".repeat(72), "tail-one");
        let h = hash(BCRYPT4, long.as_bytes()).unwrap();
        assert!(!verify(
            format!("{}tail-two", "a".repeat(72)).as_bytes(),
            &h
        ));
        assert!(!verify("a".repeat(72).as_bytes(), &h));
        assert!(verify(long.as_bytes(), &h));
    }

    #[test]
    fn argon2id_round_trips_with_its_parameters() {
        let h = hash(ARGON_SMALL, b"correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{h}");
        assert!(verify(b"correct horse", &h));
        assert!(!verify(b"correct horsE", &h));
        assert!(matches_policy(&h, ARGON_SMALL));
        assert!(!matches_policy(
            &h,
            Policy::Argon2id {
                memory_kib: 2048,
                iterations: 1,
                parallelism: 1
            }
        ));
        assert!(!matches_policy(&h, BCRYPT4));
    }

    #[test]
    fn the_legacy_bare_2b_verifies_with_the_prehash_and_always_needs_a_rehash() {
        // What earlier versions stored: bcrypt's own string over the pre-hash.
        let legacy = bcrypt::non_truncating_hash(prehash(b"correct horse"), 4).unwrap();
        assert!(legacy.starts_with("$2b$04$"));
        assert!(verify(b"correct horse", &legacy));
        assert!(!verify(b"correct horsE", &legacy));
        assert!(!matches_policy(&legacy, BCRYPT4), "rewritten as PHC");
        // Never the plain kind: the password itself does not verify against it.
        assert!(!verify(
            prehash(b"correct horse").as_bytes(),
            &hash(BCRYPT4, b"x").unwrap()
        ));
    }

    #[test]
    fn a_passlib_hash_imports_as_plain_bcrypt_and_verifies_as_made() {
        let stored = import(PASSLIB_2B).unwrap();
        assert!(stored.starts_with("$bcrypt$r=4$"), "{stored}");
        assert!(verify(b"correct horse battery staple", &stored));
        assert!(!verify(b"correct horse battery stapler", &stored));
        assert!(
            !matches_policy(&stored, BCRYPT4),
            "upgraded at the next login"
        );
        // As a bare `$2b$` in the table it would be the pre-hashed kind: no match.
        assert!(!verify(b"correct horse battery staple", PASSLIB_2B));
        // $2a$ and $2y$ are the same function.
        for ident in ["$2a$", "$2y$"] {
            let other = PASSLIB_2B.replacen("$2b$", ident, 1);
            assert_eq!(import(&other).unwrap(), stored);
        }
        // Importing the stored form again keeps it.
        assert_eq!(import(&stored).unwrap(), stored);
    }

    #[test]
    fn plain_bcrypt_reads_the_first_72_bytes_as_its_writer_did() {
        let long = "p".repeat(80);
        let modular = bcrypt::hash(&long, 4).unwrap();
        let stored = import(&modular).unwrap();
        assert!(verify(long.as_bytes(), &stored));
        assert!(verify("p".repeat(72).as_bytes(), &stored));
        assert!(!verify("p".repeat(71).as_bytes(), &stored));
    }

    #[test]
    fn tampered_parameters_fail_to_verify() {
        let h = hash(BCRYPT4, b"pw").unwrap();
        assert!(!verify(b"pw", &h.replacen("r=4", "r=5", 1)));
        assert!(!verify(b"pw", &h.replacen("$v=1", "$v=2", 1)));
        assert!(!verify(
            b"pw",
            &h.replacen("bcrypt-hmac-sha256", "bcrypt", 1)
                .replacen("$v=1", "", 1)
        ));
        assert!(!verify(b"pw", &h.replacen("$r=4", "$r=4,x=1", 1)));
        let a = hash(ARGON_SMALL, b"pw").unwrap();
        assert!(!verify(b"pw", &a.replacen("t=1", "t=2", 1)));
        assert!(!verify(b"pw", &a.replacen("argon2id", "argon2i", 1)));
        let plain = import(PASSLIB_2B).unwrap();
        assert!(!verify(
            b"correct horse battery staple",
            &plain.replacen("r=4", "r=5", 1)
        ));
    }

    #[test]
    fn over_cost_parameters_are_refused_without_computing() {
        let started = std::time::Instant::now();
        let h = hash(BCRYPT4, b"pw").unwrap();
        let big = h.replacen("r=4", "r=31", 1);
        assert!(!verify(b"pw", &big));
        assert!(matches!(import(&big), Err(FormatError::OverCost(_))));
        let legacy = bcrypt::non_truncating_hash(prehash(b"pw"), 4)
            .unwrap()
            .replacen("$04$", "$31$", 1);
        assert!(!verify(b"pw", &legacy));
        assert!(matches!(
            import(&PASSLIB_2B.replacen("$04$", "$17$", 1)),
            Err(FormatError::OverCost(_))
        ));
        let a = hash(ARGON_SMALL, b"pw").unwrap();
        for (from, to) in [("m=1024", "m=4194304"), ("t=1", "t=11"), ("p=1", "p=17")] {
            let tampered = a.replacen(from, to, 1);
            assert!(!verify(b"pw", &tampered), "{to}");
            assert!(
                matches!(import(&tampered), Err(FormatError::OverCost(_))),
                "{to}"
            );
        }
        // A 4 GiB Argon2 or 2^31 bcrypt rounds would take far longer than this.
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn garbage_never_verifies_nor_panics() {
        let h = hash(BCRYPT4, b"pw").unwrap();
        let mut cases: Vec<String> = [
            "",
            "$",
            "$$$$",
            "not a hash",
            "$2b$",
            "$2b$04$",
            "$2b$xx$1XD4f8Lx2noy4jmAjNtQReMiD5aEKH6GMwPH42zh7GN6U4ss.N5le",
            "$2b$4$1XD4f8Lx2noy4jmAjNtQReMiD5aEKH6GMwPH42zh7GN6U4ss.N5leq",
            "$2x$04$1XD4f8Lx2noy4jmAjNtQReMiD5aEKH6GMwPH42zh7GN6U4ss.N5le",
            "$2b$03$1XD4f8Lx2noy4jmAjNtQReMiD5aEKH6GMwPH42zh7GN6U4ss.N5le",
            "$bcrypt$r=4",
            "$bcrypt$r=4$c2FsdA",
            "$bcrypt$r=99999999999999999999$c2FsdHNhbHRzYWx0c2FsdA$AAAA",
            "$argon2id$v=19$m=1024,t=1,p=1",
            "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ",
            "$argon2id$v=19$m=0,t=0,p=0$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=7$m=1024,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
            "$scrypt$ln=4,r=8,p=1$c2FsdA$AAAAAAAAAAAAAAAA",
            "\u{0}\u{1}$2b$",
            "$2b$04$ééééééééééééééééééééééééééééééééééééééééééééééééé",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // Every truncation and one-character change of a real hash.
        for end in 0..h.len() {
            cases.push(h[..end].to_owned());
        }
        for at in 0..h.len() {
            let mut bytes = h.clone().into_bytes();
            bytes[at] = if bytes[at] == b'$' { b'A' } else { b'$' };
            cases.push(String::from_utf8(bytes).unwrap());
        }
        for case in &cases {
            assert!(!verify(b"pw", case), "{case:?}");
            assert!(!matches_policy(case, BCRYPT4) || case == &h, "{case:?}");
            let _ = import(case);
        }
    }

    #[test]
    fn policies_beyond_the_limits_are_refused() {
        assert!(Policy::Bcrypt { cost: 17 }.check().is_err());
        assert!(Policy::Bcrypt { cost: 3 }.check().is_err());
        assert!(BCRYPT4.check().is_ok());
        let argon = |m, t, p| Policy::Argon2id {
            memory_kib: m,
            iterations: t,
            parallelism: p,
        };
        assert!(argon(19_456, 2, 1).check().is_ok());
        assert!(argon(262_145, 2, 1).check().is_err());
        assert!(argon(19_456, 11, 1).check().is_err());
        assert!(argon(19_456, 2, 17).check().is_err());
        assert!(argon(19_456, 0, 1).check().is_err());
        assert!(argon(4, 1, 1).check().is_err(), "below argon2's minimum");
    }
}
