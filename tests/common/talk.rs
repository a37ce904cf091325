//! Proving that a caller and a console agent hear each other: a tone each way, counted in the
//! 100 ms windows `agent::tone_windows` detects. Shared by the transfer and scripted-day tests.

use std::time::{Duration, Instant};

use super::agent::{tone_pcm, tone_windows, Agent};
use super::Phone;

/// One second of a tone, in the 100 ms windows `tone_windows` counts.
pub const ONE_SECOND: usize = 10;

/// What the caller received since `since`, as µ-law.
pub fn caller_audio_since(phone: &Phone, since: Instant) -> Vec<u8> {
    phone
        .received()
        .iter()
        .filter(|p| p.at >= since && p.pt == 0)
        .flat_map(|p| p.payload.clone())
        .collect()
}

/// Plays `caller_hz` from the phone and `agent_hz` from the agent and waits (bounded) until each
/// side has heard a second of the other's tone and none of its own. `agent_heard_before` is how
/// much of the caller's tone the agent had already counted (their audio log is cumulative).
pub fn prove_audio_both_ways(
    phone: &mut Phone,
    agent: &Agent,
    caller_hz: f64,
    agent_hz: f64,
) -> Result<(), String> {
    let since = Instant::now();
    let before = tone_windows(&agent.received_audio(), caller_hz);
    agent.send_tone_pcmu(agent_hz);
    phone.queue_pcm(&tone_pcm(caller_hz, 8.0));
    let deadline = since + Duration::from_secs(8);
    loop {
        let at_agent = tone_windows(&agent.received_audio(), caller_hz).saturating_sub(before);
        let at_caller = tone_windows(&caller_audio_since(phone, since), agent_hz);
        if at_agent >= ONE_SECOND && at_caller >= ONE_SECOND {
            let echo = tone_windows(&caller_audio_since(phone, since), caller_hz);
            if echo > 0 {
                return Err(format!(
                    "the caller heard their own tone back ({echo} windows)"
                ));
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "after {:?}: {} heard {at_agent} windows of the caller's {caller_hz} Hz, the \
                 caller heard {at_caller} windows of the agent's {agent_hz} Hz",
                since.elapsed(),
                agent.id
            ));
        }
        // Waits while answering any SIP the server sends.
        phone.rtp_arriving_during(Duration::from_millis(100));
    }
}
