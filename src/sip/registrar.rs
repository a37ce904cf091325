//! The registrar's decisions (RFC 3261 §10.3) for agents' SIP phones, with digest verification
//! (RFC 2617) against a stored HA1 so the password itself is never kept.
//!
//! Nonces are stateless: `<issued-ms hex>.<mac>` where the mac is keyed by a server secret, so any
//! nonce we issued can be checked and aged without a table. Pure: the secret and `now` come in.

use crate::time::Instant;

use super::digest::challenge_params;
use super::md5;

/// Header values longer than this are refused unread.
const MAX_AUTH_HEADER: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrarError {
    #[error("the Authorization header is not a usable Digest")]
    BadAuthorization,
}

/// `md5(user:realm:password)`: what the config stores for an agent's phone.
pub fn ha1(user: &str, realm: &str, password: &str) -> String {
    md5::hex(format!("{user}:{realm}:{password}").as_bytes())
}

/// Registration limits and the realm.
#[derive(Clone, Debug)]
pub struct Policy {
    pub realm: String,
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    /// A nonce older than this gets a fresh challenge with `stale=true`.
    pub nonce_lifetime: std::time::Duration,
}

impl Policy {
    pub fn new(realm: &str) -> Policy {
        Policy {
            realm: realm.to_string(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            nonce_lifetime: std::time::Duration::from_secs(300),
        }
    }
}

/// What to answer a REGISTER.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// 401 with `WWW-Authenticate` carrying `nonce`.
    Challenge { nonce: String, stale: bool },
    /// 403: wrong credentials, unknown user (after the same challenge), or a user mismatch.
    Forbidden,
    /// 423 with `Min-Expires`.
    TooBrief { min: u32 },
    /// 200: bind `user`'s Contact for `expires` seconds.
    Bind { user: String, expires: u32 },
    /// 200: remove `user`'s binding (Expires: 0).
    Unbind { user: String },
}

/// A REGISTER as the registrar sees it.
pub struct Register<'a> {
    /// `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// From `Expires` or the Contact's `expires` parameter.
    pub expires: Option<u32>,
    /// The To user: whose binding this is.
    pub to_user: &'a str,
}

fn mac(secret: &str, issued: &str) -> String {
    let full = md5::hex(format!("{secret}:{issued}").as_bytes());
    full.get(..16).unwrap_or_default().to_string()
}

/// A nonce issued at `now`.
pub fn nonce(secret: &str, now: Instant) -> String {
    let issued = format!("{:x}", now.as_micros() / 1000);
    format!("{issued}.{}", mac(secret, &issued))
}

#[derive(Debug, PartialEq, Eq)]
enum NonceState {
    Fresh,
    Stale,
    Forged,
}

fn check_nonce(
    secret: &str,
    nonce: &str,
    now: Instant,
    lifetime: std::time::Duration,
) -> NonceState {
    let Some((issued, m)) = nonce.split_once('.') else {
        return NonceState::Forged;
    };
    if !constant_time_eq(m.as_bytes(), mac(secret, issued).as_bytes()) {
        return NonceState::Forged;
    }
    let Ok(ms) = u64::from_str_radix(issued, 16) else {
        return NonceState::Forged;
    };
    let age = now.saturating_since(Instant::from_millis(ms));
    if age > lifetime || Instant::from_millis(ms) > now {
        NonceState::Stale
    } else {
        NonceState::Fresh
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The parts of an `Authorization: Digest …` header verification needs.
#[derive(Clone, PartialEq, Eq)]
pub struct Authorization {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    response: String,
    qop: Option<(String, String)>,
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorization")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

pub fn parse_authorization(value: &str) -> Result<Authorization, RegistrarError> {
    if value.len() > MAX_AUTH_HEADER {
        return Err(RegistrarError::BadAuthorization);
    }
    let params = challenge_params(value).ok_or(RegistrarError::BadAuthorization)?;
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.to_string())
    };
    if let Some(a) = get("algorithm") {
        if !a.eq_ignore_ascii_case("MD5") {
            return Err(RegistrarError::BadAuthorization);
        }
    }
    let qop = match get("qop") {
        None => None,
        Some(q) if q.eq_ignore_ascii_case("auth") => Some((
            get("nc").ok_or(RegistrarError::BadAuthorization)?,
            get("cnonce").ok_or(RegistrarError::BadAuthorization)?,
        )),
        Some(_) => return Err(RegistrarError::BadAuthorization),
    };
    Ok(Authorization {
        username: get("username").ok_or(RegistrarError::BadAuthorization)?,
        realm: get("realm").ok_or(RegistrarError::BadAuthorization)?,
        nonce: get("nonce").ok_or(RegistrarError::BadAuthorization)?,
        uri: get("uri").ok_or(RegistrarError::BadAuthorization)?,
        response: get("response").ok_or(RegistrarError::BadAuthorization)?,
        qop,
    })
}

/// Whether `auth` proves knowledge of the password behind `ha1` for `method`.
pub fn verify(auth: &Authorization, method: &str, ha1: &str) -> bool {
    let ha2 = md5::hex(format!("{method}:{}", auth.uri).as_bytes());
    let expected = match &auth.qop {
        Some((nc, cnonce)) => {
            md5::hex(format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", auth.nonce).as_bytes())
        }
        None => md5::hex(format!("{ha1}:{}:{ha2}", auth.nonce).as_bytes()),
    };
    constant_time_eq(
        expected.as_bytes(),
        auth.response.to_ascii_lowercase().as_bytes(),
    )
}

/// Decides a REGISTER. `ha1_of(user)` gives the stored HA1 of a known agent's phone. Unknown users
/// get exactly what a known user with a wrong password gets, so users cannot be enumerated.
pub fn decide(
    policy: &Policy,
    secret: &str,
    now: Instant,
    req: &Register<'_>,
    ha1_of: impl Fn(&str) -> Option<String>,
) -> Decision {
    let challenge = |stale| Decision::Challenge {
        nonce: nonce(secret, now),
        stale,
    };
    let Some(value) = req.authorization else {
        return challenge(false);
    };
    let Ok(auth) = parse_authorization(value) else {
        return Decision::Forbidden;
    };
    if auth.realm != policy.realm {
        return challenge(false);
    }
    match check_nonce(secret, &auth.nonce, now, policy.nonce_lifetime) {
        NonceState::Forged => return challenge(false),
        NonceState::Stale => return challenge(true),
        NonceState::Fresh => {}
    }
    let ok = match ha1_of(&auth.username) {
        Some(h) => verify(&auth, "REGISTER", &h),
        None => {
            // Same work as a known user, then refuse.
            let _ = verify(&auth, "REGISTER", &"0".repeat(32));
            false
        }
    };
    if !ok || auth.username != req.to_user {
        return Decision::Forbidden;
    }
    match req.expires.unwrap_or(policy.default_expires) {
        0 => Decision::Unbind {
            user: auth.username,
        },
        e if e < policy.min_expires => Decision::TooBrief {
            min: policy.min_expires,
        },
        e => Decision::Bind {
            user: auth.username,
            expires: e.min(policy.max_expires),
        },
    }
}

/// The `WWW-Authenticate` value for a challenge.
pub fn www_authenticate(realm: &str, nonce: &str, stale: bool) -> String {
    let stale = if stale { ", stale=true" } else { "" };
    format!("Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"{stale}")
}

#[cfg(test)]
#[path = "registrar_tests.rs"]
mod tests;
