//! The media core, sans-IO: RTP packets, G.711, RFC 4733 and in-band DTMF, WAV prompts paced at
//! 20 ms and recording buffers.
//!
//! Nothing here owns a socket or reads a clock. The runtime feeds datagrams in with
//! [`session::RtpSession::on_datagram`], asks [`session::RtpSession::poll_transmit`] for what to
//! send and sleeps until [`session::RtpSession::poll_timeout`], the way quinn drives a connection.
//! Tests drive the same code with virtual time.

pub mod dtmf;
pub mod dtmf_send;
pub mod g711;
pub mod goertzel;
pub mod player;
pub mod recorder;
pub mod rtp;
pub mod session;
pub mod wav;

#[cfg(test)]
mod testutil;

/// The only rate the media path runs at: G.711 and telephone-event/8000.
pub const SAMPLE_RATE: u32 = 8000;
/// Samples in one 20 ms packet at [`SAMPLE_RATE`].
pub const FRAME_SAMPLES: usize = 160;

pub use g711::Law;
pub use player::Samples;
pub use session::{DigitSource, MediaEvent, RtpSession, SessionConfig, SessionStats, Transmit};
