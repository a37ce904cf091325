//! Supervisors: who may open `/dashboard` and read the live board and reports without the API
//! token. Declared in the server config as `supervisors: [{ id, name, password_hash }]`.

use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;

/// One supervisor. `password_hash` is an argon2 PHC string; Debug never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorConfig {
    pub id: String,
    pub name: String,
    pub password_hash: String,
}

impl fmt::Debug for SupervisorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorConfig")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// Every problem with the supervisors, as sentences for `switchboard check`; empty when all is
/// well. Messages never repeat a hash: a password pasted in its place would reach the logs.
pub fn validate(supervisors: &[SupervisorConfig]) -> Vec<String> {
    let mut out = Vec::new();
    let mut ids = BTreeSet::new();
    for s in supervisors {
        let id = &s.id;
        if id.trim().is_empty() {
            out.push(format!("supervisor `{}` has an empty id", s.name));
        } else if !ids.insert(id.as_str()) {
            out.push(format!("supervisor id `{id}` is used twice"));
        }
        if s.name.trim().is_empty() {
            out.push(format!("supervisor `{id}` has no name"));
        }
        if !is_argon2_phc(&s.password_hash) {
            out.push(format!(
                "supervisor `{id}`: password_hash is not an argon2 hash (make one with `switchboard password-hash`)"
            ));
        }
    }
    out
}

fn is_argon2_phc(s: &str) -> bool {
    argon2::password_hash::PasswordHash::new(s)
        .is_ok_and(|h| argon2::Algorithm::try_from(h.algorithm).is_ok() && h.hash.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$XdRSdwytpfVp2RT+xpn5iw$rm9sQw1qltLLpKnWkanJCprsEv9RfP0mNPEbWd1H1O4";

    fn sup(id: &str, hash: &str) -> SupervisorConfig {
        SupervisorConfig {
            id: id.into(),
            name: format!("Sup {id}"),
            password_hash: hash.into(),
        }
    }

    #[test]
    fn a_plain_password_or_a_duplicate_id_is_refused_without_echoing_the_secret() {
        assert!(validate(&[sup("mia", HASH)]).is_empty());
        let problems = validate(&[sup("mia", HASH), sup("mia", "hunter2-secret")]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("used twice"), "{problems:?}");
        assert!(problems[1].contains("not an argon2 hash"), "{problems:?}");
        assert!(!problems.join(" ").contains("hunter2"));
    }

    #[test]
    fn debug_never_shows_the_hash() {
        let text = format!("{:?}", sup("mia", HASH));
        assert!(text.contains("mia") && !text.contains("argon2id"), "{text}");
    }
}
