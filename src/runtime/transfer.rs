//! A flow's `transfer` step, dialled: a number goes out through the trunk (its caller id rules
//! and digest credentials), a SIP URI straight to its host when that is an IP address. The call
//! task bridges the answered leg like an agent's phone.

use std::path::PathBuf;
use std::sync::Arc;

use crate::ivr::values::{transfer_target, TransferTarget};
use crate::sip::uac::LegEvent;
use crate::sip::{Peer, Transport};

use super::outbound::{LegMedia, OutboundLeg, OutboundRequest};
use super::Shared;

/// The target's leg as the call task holds it: events until it ends, media once answered.
pub struct TransferSide {
    pub leg: OutboundLeg,
    pub media: Option<LegMedia>,
    /// Audio is relayed (the controller said BridgeTransfer).
    pub bridged: bool,
}

impl TransferSide {
    /// What the target's leg did next: an event, or a PCMU frame once answered (`Frame(None)`:
    /// its audio closed; the end comes as an event). Pends forever without a leg.
    pub async fn next(side: &mut Option<TransferSide>) -> TransferIn {
        let Some(s) = side.as_mut() else {
            return std::future::pending().await;
        };
        match s.media.as_mut() {
            Some(m) => tokio::select! {
                ev = s.leg.events.recv() => TransferIn::Event(ev),
                frame = m.audio_in.recv() => TransferIn::Frame(frame),
            },
            None => TransferIn::Event(s.leg.events.recv().await),
        }
    }

    pub fn send_pcmu(&self, frame: &[u8]) {
        if let Some(m) = self.media.as_ref().filter(|_| self.bridged) {
            m.send_pcmu(frame);
        }
    }

    /// A key the caller pressed (RFC 4733) while bridged: passed on to the far end, as RFC 4733
    /// when it took telephone-event, else as the key's tones.
    pub fn dtmf(&self, digit: char) {
        if let Some(m) = self.media.as_ref().filter(|_| self.bridged) {
            let _ = m.ctl.send(super::outbound::LegCtl::Dtmf(digit));
        }
    }

    pub fn hangup(self) {
        let _ = self.leg.ctl.send(super::outbound::LegCtl::Hangup);
    }
}

pub enum TransferIn {
    Event(Option<LegEvent>),
    Frame(Option<Vec<u8>>),
}

/// What the caller hears while the target rings: the queues' default music on hold.
pub fn ringing_music(shared: &Shared) -> Option<PathBuf> {
    let p = shared
        .config
        .sounds_dir
        .join(format!("{}.wav", crate::acd::DEFAULT_MUSIC));
    p.is_file().then_some(p)
}

/// Places the call to `target` for the caller `caller`. `Err` says why it cannot be dialled.
/// How long looking up a transfer target's host may take.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Looks up the host of a `sip:` target named by a host name (A/AAAA, port 5060 unless given),
/// preferring the address family of our own SIP address; `None` when there is nothing to look
/// up (a number, an IP literal). Runs off the call's task.
pub async fn resolve(
    target: &str,
    local: Option<std::net::SocketAddr>,
) -> Result<Option<std::net::SocketAddr>, String> {
    let Ok(TransferTarget::Uri {
        addr: None,
        hostport,
        uri,
        ..
    }) = transfer_target(target)
    else {
        return Ok(None);
    };
    let query = if hostport.contains(':') {
        hostport.clone()
    } else {
        format!("{hostport}:5060")
    };
    let found: Vec<std::net::SocketAddr> =
        match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host(query)).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => return Err(format!("`{uri}`: cannot look up {hostport}: {e}")),
            Err(_) => return Err(format!("`{uri}`: looking up {hostport} timed out")),
        };
    let v4 = local.is_none_or(|l| l.is_ipv4());
    found
        .iter()
        .find(|a| a.is_ipv4() == v4)
        .or(found.first())
        .copied()
        .map(Some)
        .ok_or_else(|| format!("`{uri}`: {hostport} has no address"))
}

/// Places the transfer leg; `resolved` is what [`resolve`] found for a host name.
pub fn dial(
    shared: &Arc<Shared>,
    target: &str,
    caller: &str,
    resolved: Option<std::net::SocketAddr>,
) -> Result<OutboundLeg, String> {
    let (sip, local_sip) = shared
        .sip_out
        .get()
        .cloned()
        .ok_or("the SIP task is not running")?;
    let trunk = shared.config.trunk.as_ref();
    let (uri, peer, from_user, credentials) = match transfer_target(target)? {
        TransferTarget::Number(number) => {
            let trunk = trunk.ok_or("no SIP trunk is configured (`trunk:`) to dial numbers")?;
            let peer = trunk.peer().ok_or("trunk.address is not an IP:port")?;
            let uri = format!("sip:{number}@{}{}", peer.addr, trunk.uri_params());
            let from = trunk.caller_id_for(&number).unwrap_or("anonymous");
            (uri, peer, from.to_string(), trunk.credentials())
        }
        TransferTarget::Uri { uri, addr, tcp, .. } => {
            let addr = addr
                .or(resolved)
                .ok_or_else(|| format!("`{uri}`: its host was not looked up"))?;
            let peer = Peer {
                addr,
                transport: if tcp { Transport::Tcp } else { Transport::Udp },
            };
            // The trunk's own address is answered with its credentials; others get none.
            let credentials = trunk
                .filter(|t| t.socket_addr() == Some(addr))
                .and_then(|t| t.credentials());
            (uri, peer, caller.to_string(), credentials)
        }
    };
    let target_uri =
        rsip::Uri::try_from(uri.as_str()).map_err(|_| format!("`{uri}` is not a SIP URI"))?;
    let req = OutboundRequest {
        target: target_uri,
        peer,
        from_user,
        from_display: None,
        credentials,
        ring_timeout: super::callback_task::RING_TIMEOUT,
        extra_headers: Vec::new(),
    };
    OutboundLeg::place(shared.clone(), sip, local_sip, req)
        .map_err(|e| format!("no RTP port for the transfer: {e}"))
}
