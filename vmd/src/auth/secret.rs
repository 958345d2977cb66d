//! Secrets: bearer tokens and passwords.
//!
//! A token reads `vmd_<id>_<64 hex digits>`: the id finds the row, and the whole string's
//! SHA-256 digest is compared in constant time with the stored one. Only the digest is stored,
//! so a copy of the database gives no usable token. Passwords are stored as argon2id PHC
//! strings (the argon2 crate's defaults: 19 MiB, 2 passes); checks run on blocking threads.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vm_proto::types::{PASSWORD_MAX_BYTES, PASSWORD_MIN_CHARS};

/// Prefix of every token (lets secret scanners and people recognise one).
const PREFIX: &str = "vmd_";

/// Random bytes in a token.
const SECRET_BYTES: usize = 32;

/// A freshly made token: the string handed out once, and its digest.
pub struct NewSecret {
    /// `vmd_<id>_<hex>`.
    pub token: String,
    /// SHA-256 of `token`.
    pub digest: Vec<u8>,
}

/// Random hex for a token; the id is known only after the row exists, so the secret part is
/// drawn first and joined by [`token_for`].
pub fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The token string for row `id` and secret `hex`, with its digest.
pub fn token_for(id: i64, hex: &str) -> NewSecret {
    let token = format!("{PREFIX}{id}_{hex}");
    let digest = digest(&token);
    NewSecret { token, digest }
}

/// SHA-256 of a token string.
pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The row id a token string names, if it has the token shape.
pub fn token_id(token: &str) -> Option<i64> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, hex) = rest.split_once('_')?;
    let well_formed = hex.len() == SECRET_BYTES * 2 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then(|| id.parse().ok()).flatten()
}

/// Whether `token` matches the stored `digest`, in constant time.
pub fn matches(token: &str, stored: &[u8]) -> bool {
    digest(token).ct_eq(stored).into()
}

/// Password rules, checked before hashing.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(format!(
            "a password needs at least {PASSWORD_MIN_CHARS} characters"
        ));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(format!(
            "a password may have at most {PASSWORD_MAX_BYTES} bytes"
        ));
    }
    Ok(())
}

/// The argon2id PHC string of `password` (blocking: tens of milliseconds).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|_| argon2::password_hash::Error::Crypto)?;
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches the PHC string `stored` (blocking). With no stored hash, a
/// dummy one is checked so that an unknown account takes as long as a wrong password.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    let dummy = dummy_hash();
    let (phc, real) = match stored {
        Some(s) => (s, true),
        None => (dummy.as_str(), false),
    };
    let ok = PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false);
    ok && real
}

/// A valid hash of nothing anyone knows, made once.
fn dummy_hash() -> &'static String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let secret = random_hex().unwrap_or_else(|_| "x".repeat(64));
        hash_password(&secret).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_compare_by_digest() {
        let hex = random_hex().expect("random");
        let made = token_for(42, &hex);
        assert_eq!(token_id(&made.token), Some(42));
        assert!(matches(&made.token, &made.digest));
        let other = token_for(42, &random_hex().expect("random"));
        assert!(!matches(&other.token, &made.digest));
        for bad in [
            "",
            "vmd_42",
            "vmd_x_00",
            "bearer",
            &made.token[..made.token.len() - 1],
        ] {
            assert_eq!(token_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn passwords_hash_as_argon2id_and_verify() {
        let phc = hash_password("correct horse").expect("hash");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_password("correct horse", Some(&phc)));
        assert!(!verify_password("wrong horse!", Some(&phc)));
        assert!(!verify_password("correct horse", None));
        assert!(!verify_password("x", Some("not a phc string")));
        assert!(check_password("short").is_err() && check_password("long enough").is_ok());
    }
}
