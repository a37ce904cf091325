//! PIN hashing: argon2id PHC strings, the only form a PIN is ever stored in.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params};
use rand::TryRngCore;

use super::AuthError;

pub const PIN_MIN_DIGITS: usize = 4;
pub const PIN_MAX_DIGITS: usize = 12;

/// Ceilings on the cost a stored hash may ask for: the accounts file is edited by hand, and one
/// line asking for gigabytes of memory must not take the server down on the first call.
const MAX_M_COST_KIB: u32 = 256 * 1024;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 8;

/// A hash of a throwaway PIN (its result is ignored anyway), with the default parameters, so an unknown account costs the
/// same time as a wrong PIN. A test checks its parameters still match `Params::default()`.
pub(super) const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$XdRSdwytpfVp2RT+xpn5iw$rm9sQw1qltLLpKnWkanJCprsEv9RfP0mNPEbWd1H1O4";

fn well_formed(pin: &str) -> bool {
    (PIN_MIN_DIGITS..=PIN_MAX_DIGITS).contains(&pin.len())
        && pin.bytes().all(|b| b.is_ascii_digit())
}

/// Hashes a PIN for the accounts file (`switchboard pin-hash`): argon2id, default parameters,
/// a fresh 16-byte salt from the OS. Only 4 to 12 digits are accepted.
pub fn hash_pin(pin: &str) -> Result<String, AuthError> {
    if !well_formed(pin) {
        return Err(AuthError::PinFormat);
    }
    let mut salt = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut salt)
        .map_err(|_| AuthError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| AuthError::Hash)?;
    Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AuthError::Hash)
}

/// True when `pin` matches `phc`. False for anything [`hash_pin`] would refuse, for a string
/// that is not an argon2 hash, and for a hash whose cost is beyond sane limits.
pub fn verify_pin(phc: &str, pin: &str) -> bool {
    if !well_formed(pin) {
        return false;
    }
    let Some(hash) = parse_phc(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(pin.as_bytes(), &hash)
        .is_ok()
}

/// Hashes an agent's or supervisor's password (any text of 8 to 256 bytes) like a PIN.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.len() < 8 || password.len() > 256 {
        return Err(AuthError::PinFormat);
    }
    let mut salt = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut salt)
        .map_err(|_| AuthError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| AuthError::Hash)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AuthError::Hash)
}

/// True when `password` matches `phc` (same cost ceilings as PINs). An unknown user should still
/// be checked against [`DUMMY_HASH`] by the caller so both take the same time.
pub fn verify_password(phc: &str, password: &str) -> bool {
    if password.is_empty() || password.len() > 256 {
        return false;
    }
    let Some(hash) = parse_phc(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

/// For a login with an unknown name: burn the same time as a real check, then fail.
pub fn verify_unknown_user(password: &str) {
    let _ = verify_password(DUMMY_HASH, password);
}

/// Parses an argon2 (i, d or id) PHC string within the cost ceilings.
pub(super) fn parse_phc(phc: &str) -> Option<PasswordHash<'_>> {
    let hash = PasswordHash::new(phc).ok()?;
    Algorithm::try_from(hash.algorithm).ok()?;
    hash.hash?;
    let params = Params::try_from(&hash).ok()?;
    let sane = params.m_cost() <= MAX_M_COST_KIB
        && params.t_cost() <= MAX_T_COST
        && params.p_cost() <= MAX_P_COST;
    sane.then_some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_pin_verifies_and_others_do_not() {
        let phc = hash_pin("4321").unwrap_or_default();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("4321"));
        assert!(verify_pin(&phc, "4321"));
        assert!(!verify_pin(&phc, "4322"));
        assert!(!verify_pin(&phc, "43210"));
        // Fresh salt: the same PIN never hashes the same way twice.
        let again = hash_pin("4321").unwrap_or_default();
        assert_ne!(phc, again);
    }

    #[test]
    fn pin_format_is_enforced_without_echoing_it() {
        for bad in ["", "123", "1234567890123", "12a4", "12 34", "١٢٣٤"] {
            let err = hash_pin(bad).err();
            assert!(matches!(err, Some(AuthError::PinFormat)), "{bad:?}");
            let text = format!(
                "{err:?} {}",
                err.as_ref().map(|e| e.to_string()).unwrap_or_default()
            );
            assert!(bad.is_empty() || !text.contains(bad), "{text}");
        }
        assert!(!verify_pin(DUMMY_HASH, "12a4"));
    }

    #[test]
    fn garbage_or_ruinously_expensive_hashes_never_verify() {
        assert!(!verify_pin("", "1234"));
        assert!(!verify_pin("not a hash", "1234"));
        assert!(!verify_pin("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA", "1234"));
        let greedy = "$argon2id$v=19$m=4194304,t=2,p=1$c3dpdGNoYm9hcmQtZHVtbXk$BojHvuLTQuOsxSc3Iw4o0DZ0rQNzqnMrpQ6fV+wdcBw";
        assert!(parse_phc(greedy).is_none());
        assert!(parse_phc(DUMMY_HASH).is_some());
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let dummy = parse_phc(DUMMY_HASH).and_then(|h| Params::try_from(&h).ok());
        let fresh = hash_pin("0000").unwrap_or_default();
        let real = parse_phc(&fresh).and_then(|h| Params::try_from(&h).ok());
        let cost = |p: &Option<Params>| p.as_ref().map(|p| (p.m_cost(), p.t_cost(), p.p_cost()));
        assert!(cost(&dummy).is_some());
        assert_eq!(cost(&dummy), cost(&real));
    }
}
