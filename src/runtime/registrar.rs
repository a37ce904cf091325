//! The registrar for agents' SIP phones: answers REGISTER with the pure decisions of
//! [`crate::sip::registrar`] and keeps one SIP-agent task per registered user.
//!
//! Bindings live in memory only: after a restart phones are unknown until they re-register
//! (they do, at their refresh interval), and their agents are logged out meanwhile.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::sip::message;
use crate::sip::registrar::{self, Decision, Policy, Register};
use crate::sip::Peer;

use super::sip_agent::{self, AgentUpdate};
use super::sip_task::SipCmd;
use super::Shared;

pub struct Registrar {
    policy: Policy,
    secret: String,
    /// SIP user → (agent id, agent name, HA1).
    users: HashMap<String, (String, String, String)>,
    agents: HashMap<String, mpsc::UnboundedSender<AgentUpdate>>,
}

/// What to answer: status and extra headers.
pub type Reply = (u16, Vec<(&'static str, String)>);

fn expires_of(req: &rsip::Request) -> Option<u32> {
    let contact = message::header(req, "Contact");
    let from_contact = contact.as_deref().and_then(|c| {
        c.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("expires")
                .then(|| v.trim().parse().ok())?
        })
    });
    from_contact.or_else(|| message::header(req, "Expires").and_then(|e| e.trim().parse().ok()))
}

fn contact_uri(req: &rsip::Request) -> Option<(String, rsip::Uri)> {
    let value = message::header(req, "Contact")?;
    if value.trim() == "*" {
        return Some(("*".into(), req.uri.clone()));
    }
    let inner = match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => value.get(a + 1..b)?.to_string(),
        _ => value.split(';').next()?.trim().to_string(),
    };
    let uri = message::parse_uri(&inner)?;
    Some((inner, uri))
}

/// Where INVITEs for a binding go: the Contact's address when it is a literal IP (a softphone may
/// register from one port and listen on another), else where the REGISTER came from.
fn contact_peer(uri: &rsip::Uri, source: Peer) -> Peer {
    let hp = uri.host_with_port.to_string();
    let addr = hp
        .parse::<SocketAddr>()
        .ok()
        .or_else(|| format!("{hp}:5060").parse::<SocketAddr>().ok());
    match addr {
        Some(addr) => Peer {
            transport: source.transport,
            addr,
        },
        None => source,
    }
}

impl Registrar {
    pub fn new(shared: &Shared) -> Registrar {
        let users = shared
            .config
            .agents
            .iter()
            .filter_map(|a| {
                let s = a.sip.as_ref()?;
                Some((
                    s.user.clone(),
                    (a.id.clone(), a.name.clone(), s.ha1.to_ascii_lowercase()),
                ))
            })
            .collect();
        Registrar {
            policy: Policy::new(&shared.config.sip_realm),
            secret: format!("{:032x}", rand::random::<u128>()),
            users,
            agents: HashMap::new(),
        }
    }

    /// Whether any agent has a SIP phone; otherwise REGISTER keeps its plain 403.
    pub fn enabled(&self) -> bool {
        !self.users.is_empty()
    }

    pub fn register(
        &mut self,
        shared: &Arc<Shared>,
        sip: &mpsc::UnboundedSender<SipCmd>,
        local_sip: SocketAddr,
        req: &rsip::Request,
        peer: Peer,
    ) -> Reply {
        let to_user = message::to_user(req).unwrap_or_default();
        let auth = message::header(req, "Authorization");
        let decision = registrar::decide(
            &self.policy,
            &self.secret,
            shared.clock.now(),
            &Register {
                authorization: auth.as_deref(),
                expires: expires_of(req),
                to_user: &to_user,
            },
            |u| self.users.get(u).map(|(_, _, h)| h.clone()),
        );
        match decision {
            Decision::Challenge { nonce, stale } => (
                401,
                vec![(
                    "WWW-Authenticate",
                    registrar::www_authenticate(&self.policy.realm, &nonce, stale),
                )],
            ),
            Decision::Forbidden => {
                // A wrong password (or a malformed answer) counts towards the source's block,
                // like a wrong PIN: a REGISTER brute force from one address gets shut out.
                if auth.is_some()
                    && shared
                        .auth_limiter
                        .failed(peer.addr.ip(), shared.clock.now())
                {
                    tracing::warn!(source = %peer.addr.ip(), "REGISTER failures: source blocked");
                }
                (403, vec![])
            }
            Decision::TooBrief { min } => (423, vec![("Min-Expires", min.to_string())]),
            Decision::Unbind { user } => {
                if let Some(tx) = self.agents.remove(&user) {
                    let _ = tx.send(AgentUpdate::Unbind);
                }
                tracing::info!(user = %user, "SIP phone unregistered");
                (200, vec![])
            }
            Decision::Bind { user, expires } => {
                let Some((text, uri)) = contact_uri(req) else {
                    // A query: nothing to bind, report what is bound (we keep no Contact text).
                    return (200, vec![]);
                };
                if text == "*" {
                    return (400, vec![]);
                }
                let Some((agent_id, name, _)) = self.users.get(&user).cloned() else {
                    return (403, vec![]);
                };
                let update = AgentUpdate::Binding {
                    peer: contact_peer(&uri, peer),
                    contact: Box::new(uri),
                    expires: Duration::from_secs(expires.into()),
                };
                let live = self.agents.get(&user).filter(|tx| !tx.is_closed());
                match live {
                    Some(tx) => {
                        let _ = tx.send(update);
                    }
                    None => {
                        tracing::info!(user = %user, agent = %agent_id, "SIP phone registered");
                        let tx = sip_agent::spawn(
                            shared.clone(),
                            sip.clone(),
                            local_sip,
                            agent_id,
                            name,
                        );
                        let _ = tx.send(update);
                        self.agents.insert(user, tx);
                    }
                }
                (
                    200,
                    vec![
                        ("Contact", format!("<{text}>;expires={expires}")),
                        ("Expires", expires.to_string()),
                    ],
                )
            }
        }
    }
}
