//! `trunk:` — the SIP trunk callbacks are dialled through. The password is stored in the
//! configuration file (digest needs the clear secret); it never reaches Debug or logs.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TrunkTransport {
    #[default]
    Udp,
    Tcp,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// `host:port` of the carrier's SIP proxy.
    pub address: String,
    #[serde(default)]
    pub transport: TrunkTransport,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Country prefix (`+55`) → the centre's number shown to callers there.
    #[serde(default)]
    pub caller_ids: BTreeMap<String, String>,
    #[serde(default)]
    pub default_caller_id: Option<String>,
}

impl std::fmt::Debug for TrunkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkConfig")
            .field("address", &self.address)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("caller_ids", &self.caller_ids)
            .field("default_caller_id", &self.default_caller_id)
            .finish()
    }
}

impl TrunkConfig {
    /// The trunk's address, resolved without DNS (an IP literal and port).
    pub fn socket_addr(&self) -> Option<core::net::SocketAddr> {
        self.address.parse().ok()
    }

    /// `(user, password)` for a 401/407 challenge.
    pub fn credentials(&self) -> Option<(String, String)> {
        Some((self.username.clone()?, self.password.clone()?))
    }

    /// The caller id for `number`: the longest matching country prefix wins.
    pub fn caller_id_for(&self, number: &str) -> Option<&str> {
        self.caller_ids
            .iter()
            .filter(|(prefix, _)| number.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, id)| id.as_str())
            .or(self.default_caller_id.as_deref())
    }

    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.socket_addr().is_none() {
            out.push(format!(
                "trunk.address: `{}` is not an IP:port",
                self.address
            ));
        }
        if self.username.is_some() != self.password.is_some() {
            out.push("trunk: username and password go together".to_string());
        }
        let valid = |n: &str| {
            n.len() <= 32
                && n.starts_with('+')
                && n.len() > 1
                && n.chars().skip(1).all(|c| c.is_ascii_digit())
        };
        for (prefix, id) in &self.caller_ids {
            if !valid(prefix) || !valid(id) {
                out.push(format!(
                    "trunk.caller_ids: `{prefix}: {id}` must both be +digits"
                ));
            }
        }
        if let Some(id) = &self.default_caller_id {
            if !valid(id) {
                out.push(format!("trunk.default_caller_id: `{id}` must be +digits"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(yaml: &str) -> TrunkConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn caller_id_follows_the_destination_country_and_falls_back_to_default() {
        let t = trunk(
            "address: 127.0.0.1:5070\ncaller_ids: { \"+55\": \"+551130000000\", \"+351\": \"+351210000000\", \"+5521\": \"+552130000000\" }\ndefault_caller_id: \"+15550000000\"\n",
        );
        assert_eq!(t.caller_id_for("+5511987654321"), Some("+551130000000"));
        assert_eq!(t.caller_id_for("+5521987654321"), Some("+552130000000"));
        assert_eq!(t.caller_id_for("+351912345678"), Some("+351210000000"));
        assert_eq!(t.caller_id_for("+4420123"), Some("+15550000000"));
        assert!(t.problems().is_empty(), "{:?}", t.problems());
    }

    #[test]
    fn the_password_never_shows_in_debug_and_bad_entries_are_reported() {
        let t = trunk("address: carrier.example:5060\nusername: acme\npassword: s3cr3t-pw\ncaller_ids: { \"55\": \"+551130000000\" }\n");
        assert!(!format!("{t:?}").contains("s3cr3t-pw"));
        assert_eq!(t.credentials(), Some(("acme".into(), "s3cr3t-pw".into())));
        let p = t.problems().join("\n");
        assert!(p.contains("trunk.address"), "{p}");
        assert!(p.contains("trunk.caller_ids"), "{p}");
    }
}
