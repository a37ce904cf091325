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
    /// `register: true`: keep a registration with the carrier (REGISTER, refreshed).
    #[serde(default)]
    pub register: bool,
    /// The expiry asked for, in seconds (the carrier may grant less).
    #[serde(default = "default_register_expires")]
    pub register_expires: u32,
    /// The user we register as; `username` by default.
    #[serde(default)]
    pub register_user: Option<String>,
    /// The registrar's domain (Request-URI and AOR host); the trunk `address` by default.
    #[serde(default)]
    pub register_domain: Option<String>,
}

fn default_register_expires() -> u32 {
    3600
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
            .field("register", &self.register)
            .field("register_expires", &self.register_expires)
            .field("register_user", &self.register_user)
            .field("register_domain", &self.register_domain)
            .finish()
    }
}

impl TrunkConfig {
    /// The trunk's address, resolved without DNS (an IP literal and port).
    pub fn socket_addr(&self) -> Option<core::net::SocketAddr> {
        self.address.parse().ok()
    }

    /// Where requests to the trunk go.
    pub fn peer(&self) -> Option<crate::sip::Peer> {
        let transport = match self.transport {
            TrunkTransport::Udp => crate::sip::Transport::Udp,
            TrunkTransport::Tcp => crate::sip::Transport::Tcp,
        };
        Some(crate::sip::Peer {
            transport,
            addr: self.socket_addr()?,
        })
    }

    /// The URI parameter our trunk URIs carry for the transport (`;transport=tcp` or nothing).
    pub fn uri_params(&self) -> &'static str {
        match self.transport {
            TrunkTransport::Udp => "",
            TrunkTransport::Tcp => ";transport=tcp",
        }
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

    /// `(user, domain)` to register as, when `register: true`.
    pub fn registration(&self) -> Option<(String, String)> {
        if !self.register {
            return None;
        }
        let user = self
            .register_user
            .clone()
            .or_else(|| self.username.clone())
            .unwrap_or_else(|| "switchboard".into());
        let domain = self
            .register_domain
            .clone()
            .unwrap_or_else(|| self.address.clone());
        Some((user, domain))
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
        if !(10..=86_400).contains(&self.register_expires) {
            out.push(format!(
                "trunk.register_expires: {} must be between 10 and 86400 seconds",
                self.register_expires
            ));
        }
        let token = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-._:[]".contains(c))
        };
        for (key, v) in [
            ("register_user", &self.register_user),
            ("register_domain", &self.register_domain),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !token(v)) {
                out.push(format!(
                    "trunk.{key}: `{v}` is not a plain SIP user or host"
                ));
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

    #[test]
    fn registration_is_off_by_default_and_defaults_to_the_trunk_user_and_address() {
        let t = trunk("address: 127.0.0.1:5070\nusername: acme\npassword: pw\n");
        assert_eq!(t.registration(), None);
        assert_eq!(t.register_expires, 3600);
        let t = trunk("address: 127.0.0.1:5070\nusername: acme\npassword: pw\nregister: true\nregister_expires: 600\n");
        assert_eq!(
            t.registration(),
            Some(("acme".into(), "127.0.0.1:5070".into()))
        );
        assert!(t.problems().is_empty(), "{:?}", t.problems());
        let t = trunk("address: 127.0.0.1:5070\nregister: true\nregister_expires: 5\nregister_user: \"a b\"\nregister_domain: sip.carrier.example\n");
        assert_eq!(
            t.registration().map(|r| r.1),
            Some("sip.carrier.example".into())
        );
        let p = t.problems().join("\n");
        assert!(
            p.contains("trunk.register_expires") && p.contains("trunk.register_user"),
            "{p}"
        );
    }
}
