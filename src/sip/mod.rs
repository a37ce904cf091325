//! The SIP core, sans-IO: bytes and `now` in, transmits, events and the next deadline out.
//!
//! * [`message`] — parsing (rsip underneath, compact names expanded first), TCP framing, accessors.
//! * [`transaction`] — RFC 3261 §17 transactions (+ RFC 6026), timers as data.
//! * [`dialog`] — RFC 3261 §12 dialogs: in-dialog requests, CSeq ordering, route sets.
//! * [`digest`] — answering a trunk's 401/407 challenge (RFC 2617 / RFC 8760 digest).
//! * [`register_client`] — registering with the trunk's registrar: refresh, back-off, unregister.
//! * [`sdp`] — RFC 4566 descriptions and RFC 3264 offer/answer for G.711 + telephone-event.

pub mod allowlist;
pub mod dialog;
pub mod digest;
pub mod md5;
pub mod message;
pub mod ratelimit;
pub mod register_client;
pub mod registrar;
pub mod sdp;
mod syntax;
pub mod transaction;
pub mod uac;

#[cfg(test)]
mod fixtures;

/// The transport a message arrived on or must leave by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The other end of a message: where it came from, or where a transmit goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: core::net::SocketAddr,
}
