//! `switchboard simulate`: walks a flow with the real interpreter on virtual time.
//!
//! Each input string is typed (all its keys) when the flow next listens for the caller; once
//! inputs run out the caller is silent, so timeouts fire. Prompts last as long as their WAV
//! file (zero when unknown). PIN checks and CRM lookups are answered by [`Services`].

use super::interp::*;
use super::model::{Flow, StepKind};
use super::prompts::PromptIndex;
use super::values::format_duration;
use crate::time::Instant;
use chrono::{DateTime, FixedOffset, Utc};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

const MAX_ITERATIONS: usize = 100_000;
const MAX_VIRTUAL_TIME: Duration = Duration::from_secs(24 * 3600);
/// What a simulated recording is called in the report and in `recording`.
pub const SIMULATED_RECORDING: &str = "simulated-recording.wav";

/// What the simulator asks the outside world.
pub trait Services {
    fn verify_pin(&mut self, key: &AccountKey, pin: &str) -> PinOutcome;
    fn lookup(
        &mut self,
        method: &str,
        url: &str,
        body: Option<&str>,
    ) -> Result<serde_json::Value, String>;
}

/// Services with nothing behind them: every PIN is wrong and every lookup fails.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoServices;

impl Services for NoServices {
    fn verify_pin(&mut self, _key: &AccountKey, _pin: &str) -> PinOutcome {
        PinOutcome::Invalid
    }
    fn lookup(&mut self, _: &str, _: &str, _: Option<&str>) -> Result<serde_json::Value, String> {
        Err("no CRM is configured for the simulation".to_string())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Queue {
        name: String,
        priority: i64,
        skills: BTreeMap<String, u8>,
        timeout: Option<Duration>,
    },
    /// A callback was registered and the call then ended.
    Callback {
        queue: String,
    },
    Transfer {
        target: String,
    },
    Hangup(EndReason),
    /// The simulation stopped while the flow still waited (it should not happen).
    Stuck(String),
}

impl Outcome {
    /// Whether a test's `outcome:` word describes this outcome.
    pub fn matches(&self, word: &str) -> bool {
        match self {
            Outcome::Queue { .. } => word == "queue",
            Outcome::Callback { .. } => word == "callback",
            Outcome::Transfer { .. } => word == "transfer",
            Outcome::Hangup(r) => word == "hangup" || word == r.as_str(),
            Outcome::Stuck(_) => false,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Queue {
                name,
                priority,
                skills,
                timeout,
            } => {
                write!(f, "queued in `{name}` with priority {priority}")?;
                if !skills.is_empty() {
                    let s: Vec<String> = skills.iter().map(|(k, v)| format!("{k} ≥ {v}")).collect();
                    write!(f, ", skills {}", s.join(", "))?;
                }
                if let Some(t) = timeout {
                    write!(f, ", timeout {}", format_duration(*t))?;
                }
                Ok(())
            }
            Outcome::Callback { queue } => {
                write!(f, "callback registered in `{queue}`, then hung up")
            }
            Outcome::Transfer { target } => write!(f, "transferred to {target}"),
            Outcome::Hangup(EndReason::Error(e)) => write!(f, "hung up with an error: {e}"),
            Outcome::Hangup(r) => write!(f, "hung up ({})", r.as_str()),
            Outcome::Stuck(why) => write!(f, "stopped: {why}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimStep {
    pub name: String,
    /// Virtual time since the call started.
    pub at: Duration,
    /// What happened in the step, in plain words.
    pub events: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimReport {
    pub flow: String,
    pub caller: String,
    pub at: DateTime<FixedOffset>,
    pub steps: Vec<SimStep>,
    /// Prompt names played, in order.
    pub prompts: Vec<String>,
    pub vars: BTreeMap<String, String>,
    pub path: Vec<String>,
    pub auth: AuthState,
    pub account_id: Option<String>,
    pub outcome: Outcome,
    /// The queue the call reached when the flow went on after the agent (`after_agent`).
    pub queued: Option<Outcome>,
    pub unused_input: Vec<String>,
    pub duration: Duration,
}

fn clock(d: Duration) -> String {
    let ms = d.as_millis();
    format!("{}:{:02}.{:03}", ms / 60_000, (ms / 1000) % 60, ms % 1000)
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Flow `{}`, caller {}, at {}",
            self.flow,
            self.caller,
            self.at.to_rfc3339()
        )?;
        let width = self
            .steps
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0);
        for s in &self.steps {
            let what = if s.events.is_empty() {
                String::new()
            } else {
                s.events.join("; ")
            };
            writeln!(f, "  {}  {:<width$}  {}", clock(s.at), s.name, what)?;
        }
        writeln!(f, "Outcome: {}", self.outcome)?;
        writeln!(f, "Path: {}", self.path.join(" → "))?;
        match &self.account_id {
            Some(id) => writeln!(f, "Auth: {} (account {id})", self.auth.as_str())?,
            None => writeln!(f, "Auth: {}", self.auth.as_str())?,
        }
        if self.prompts.is_empty() {
            writeln!(f, "Prompts: none")?;
        } else {
            writeln!(f, "Prompts: {}", self.prompts.join(", "))?;
        }
        writeln!(f, "Variables:")?;
        for (k, v) in &self.vars {
            writeln!(f, "  {k} = {v}")?;
        }
        if !self.unused_input.is_empty() {
            writeln!(f, "Input never used: {}", self.unused_input.join(", "))?;
        }
        write!(f, "Call length: {}", clock(self.duration))
    }
}

/// Walks `flow` as a caller from `caller` at `at` typing `inputs`.
pub fn simulate(
    flow: Arc<Flow>,
    prompts: Arc<PromptIndex>,
    caller: &str,
    at: DateTime<FixedOffset>,
    inputs: &[String],
    services: &mut dyn Services,
) -> SimReport {
    simulate_with(
        &flow,
        &prompts,
        caller,
        at,
        inputs,
        services,
        &BTreeMap::new(),
    )
}

type LookupStubs = BTreeMap<String, Result<serde_json::Value, String>>;

struct Sim<'a> {
    interp: Interpreter,
    prompts: &'a PromptIndex,
    services: &'a mut dyn Services,
    stubs: &'a LookupStubs,
    now: Instant,
    playing: Option<(u64, Instant)>,
    replies: VecDeque<Event>,
    steps: Vec<SimStep>,
    played: Vec<String>,
    callback: Option<String>,
    outcome: Option<Outcome>,
    queued: Option<Outcome>,
    /// Reached a queue step with `after_agent`, not yet decided.
    parked: Option<Outcome>,
}

impl Sim<'_> {
    fn note(&mut self, text: String) {
        let at = self.now.saturating_since(Instant::ZERO);
        match self.steps.last_mut() {
            Some(step) => step.events.push(text),
            None => self.steps.push(SimStep {
                name: String::new(),
                at,
                events: vec![text],
            }),
        }
    }

    fn is_pin_step(&self, name: &str) -> bool {
        let flow = self.interp.flow();
        flow.steps
            .get(name)
            .is_some_and(|s| matches!(s.kind, StepKind::Pin(_)))
    }

    /// Carries out every pending action, answering service calls at once.
    fn pump(&mut self) {
        loop {
            while let Some(action) = self.interp.poll_action() {
                self.act(action);
            }
            match self.replies.pop_front() {
                Some(ev) => self.interp.handle(self.now, ev),
                None => return,
            }
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::StepEntered { step } => {
                let flow = Arc::clone(self.interp.flow());
                self.steps.push(SimStep {
                    name: step.clone(),
                    at: self.now.saturating_since(Instant::ZERO),
                    events: Vec::new(),
                });
                if let Some(StepKind::Hours { hours, .. }) = flow.steps.get(&step).map(|s| &s.kind)
                {
                    let wall = self.interp.wall_time(self.now);
                    let state = if hours.is_open(wall) {
                        "open"
                    } else {
                        "closed"
                    };
                    self.note(format!("{state} at {}", hours.describe_local(wall)));
                }
            }
            Action::Play { id, prompts, .. } => {
                let lang = self
                    .interp
                    .vars()
                    .get("language")
                    .cloned()
                    .unwrap_or_default();
                let mut total = Duration::ZERO;
                let mut names = Vec::new();
                for p in prompts {
                    total += self
                        .prompts
                        .resolve(&lang, &p.name)
                        .map(|f| f.duration())
                        .unwrap_or_default();
                    if p.path.as_os_str().is_empty() {
                        names.push(format!("{} (no sound file)", p.name));
                    } else {
                        names.push(p.name.clone());
                    }
                    self.played.push(p.name);
                }
                self.note(format!(
                    "plays {} ({})",
                    names.join(", "),
                    format_duration(total)
                ));
                self.playing = Some((id, self.now + total));
            }
            Action::StopPlayback => {
                self.playing = None;
                self.note("the key press stops the prompt".to_string());
            }
            Action::VerifyPin { id, key, pin } => {
                let outcome = self.services.verify_pin(&key, pin.expose());
                let who = match &key {
                    AccountKey::Phone(p) => format!("phone {p}"),
                    AccountKey::Id(i) => format!("account {i}"),
                };
                self.note(match &outcome {
                    PinOutcome::Ok { account_id, .. } => {
                        format!("PIN for {who} accepted: account {account_id}")
                    }
                    PinOutcome::Invalid => format!("PIN for {who} rejected"),
                    PinOutcome::Locked => format!("{who} is locked after too many wrong PINs"),
                });
                self.replies.push_back(Event::PinChecked { id, outcome });
            }
            Action::Lookup {
                id,
                method,
                url,
                body,
                ..
            } => {
                let step = self.interp.current_step().unwrap_or_default().to_string();
                let result = match self.stubs.get(&step) {
                    Some(stub) => stub.clone(),
                    None => self.services.lookup(&method, &url, body.as_deref()),
                };
                self.note(match &result {
                    Ok(_) => format!("{method} {url} answered"),
                    Err(e) => format!("{method} {url} failed: {e}"),
                });
                self.replies.push_back(Event::LookupDone { id, result });
            }
            Action::Record { id, max, beep } => {
                let beep = if beep { "after a beep, " } else { "" };
                self.note(format!(
                    "records a message ({beep}up to {})",
                    format_duration(max)
                ));
                self.replies.push_back(Event::RecordingDone {
                    id,
                    file: Some(SIMULATED_RECORDING.to_string()),
                });
            }
            Action::StopRecording => self.note("# ends the recording".to_string()),
            Action::Queue {
                name,
                priority,
                skills,
                timeout,
                ..
            } => {
                let o = Outcome::Queue {
                    name,
                    priority,
                    skills,
                    timeout,
                };
                self.note(o.to_string());
                if self.interp.continues_after_agent() {
                    // Decided by the main loop: with input left, an agent answers and hangs up.
                    self.parked = Some(o);
                } else {
                    self.outcome = Some(o);
                }
            }
            Action::Survey { score, bad, .. } => {
                self.note(format!(
                    "survey score {score}{}",
                    if bad { " (bad: raises survey.bad)" } else { "" }
                ));
            }
            Action::Callback { queue, .. } => {
                self.note(format!("registers a callback in `{queue}`"));
                self.callback = Some(queue);
                self.replies
                    .push_back(Event::QueueResult { timed_out: false });
            }
            Action::Transfer { target, .. } => {
                let o = Outcome::Transfer { target };
                self.note(o.to_string());
                self.outcome = Some(o);
            }
            Action::Hangup { reason } => {
                self.note(match &reason {
                    EndReason::Error(e) => format!("the call ends with an error: {e}"),
                    r => format!("the call ends ({})", r.as_str()),
                });
                self.outcome = Some(match self.callback.take() {
                    Some(queue) => Outcome::Callback { queue },
                    None => Outcome::Hangup(reason),
                });
            }
        }
    }

    fn type_input(&mut self, input: &str) {
        // The note goes where typing began, ahead of what the keys cause; it is written
        // afterwards because keys that reach a PIN step must not be shown.
        let slot = self
            .steps
            .len()
            .checked_sub(1)
            .map(|i| (i, self.steps.get(i).map_or(0, |s| s.events.len())));
        let path_before = self.interp.path().len().saturating_sub(1);
        for c in input.chars() {
            self.interp.handle(self.now, Event::Digit(c));
            self.pump();
            if self.outcome.is_some() {
                break;
            }
        }
        let touched_pin = self
            .interp
            .path()
            .get(path_before..)
            .unwrap_or_default()
            .iter()
            .any(|s| self.is_pin_step(s));
        let text = if touched_pin {
            format!("caller types a PIN ({} keys)", input.chars().count())
        } else {
            format!("caller types {input}")
        };
        match slot.and_then(|(i, at)| self.steps.get_mut(i).map(|s| (s, at))) {
            Some((step, at)) => step.events.insert(at.min(step.events.len()), text),
            None => self.note(text),
        }
    }
}

pub(crate) fn simulate_with(
    flow: &Arc<Flow>,
    prompts: &Arc<PromptIndex>,
    caller: &str,
    at: DateTime<FixedOffset>,
    inputs: &[String],
    services: &mut dyn Services,
    stubs: &LookupStubs,
) -> SimReport {
    let info = CallInfo {
        call_id: "simulated".to_string(),
        caller: caller.to_string(),
        dialed: flow.numbers.first().cloned().unwrap_or_default(),
        started_wall: at.with_timezone(&Utc),
        started: Instant::ZERO,
    };
    let mut interp = Interpreter::new(Arc::clone(flow), Arc::clone(prompts), info);
    interp.keep_missing_prompts = true;
    let mut sim = Sim {
        interp,
        prompts,
        services,
        stubs,
        now: Instant::ZERO,
        playing: None,
        replies: VecDeque::new(),
        steps: Vec::new(),
        played: Vec::new(),
        callback: None,
        outcome: None,
        queued: None,
        parked: None,
    };
    let mut inputs = inputs.iter();
    sim.interp.start(sim.now);
    sim.pump();
    for _ in 0..MAX_ITERATIONS {
        if let Some(o) = sim.parked.take() {
            if inputs.len() == 0 {
                sim.outcome = Some(o);
                break;
            }
            // The rest of the input is for what follows the agent (`after_agent`, a survey).
            sim.note("an agent answers, then hangs up first (after_agent)".to_string());
            sim.queued = Some(o);
            sim.interp.handle(sim.now, Event::AgentHungUp);
            sim.pump();
            continue;
        }
        if sim.outcome.is_some() || sim.interp.is_finished() {
            break;
        }
        if sim.interp.is_waiting_for_input() {
            if let Some(input) = inputs.next() {
                sim.type_input(input);
                continue;
            }
        }
        let play_end = sim.playing.map(|(_, end)| end);
        let timeout = sim.interp.poll_timeout();
        let Some(next) = [play_end, timeout].into_iter().flatten().min() else {
            sim.outcome = Some(Outcome::Stuck(format!(
                "the flow waits in step `{}` for something the simulator cannot give",
                sim.interp.current_step().unwrap_or("?")
            )));
            break;
        };
        if next.saturating_since(Instant::ZERO) > MAX_VIRTUAL_TIME {
            sim.outcome = Some(Outcome::Stuck(
                "the call lasted more than 24 hours".to_string(),
            ));
            break;
        }
        sim.now = sim.now.max(next);
        match sim.playing {
            Some((id, end)) if end <= sim.now => {
                sim.playing = None;
                sim.interp.handle(
                    sim.now,
                    Event::PlaybackDone {
                        id,
                        interrupted: false,
                    },
                );
            }
            _ => {
                if sim.interp.is_waiting_for_input() {
                    sim.note("no key pressed in time".to_string());
                }
                sim.interp.handle_timeout(sim.now);
            }
        }
        sim.pump();
    }
    let outcome = match (sim.outcome.take(), sim.interp.end_reason()) {
        (Some(o), _) => o,
        (None, Some(r)) => Outcome::Hangup(r.clone()),
        (None, None) => Outcome::Stuck("the simulation ran too long".to_string()),
    };
    SimReport {
        flow: flow.name.clone(),
        caller: caller.to_string(),
        at,
        steps: sim.steps,
        prompts: sim.played,
        vars: sim.interp.vars().clone(),
        path: sim.interp.path().to_vec(),
        auth: sim.interp.auth(),
        account_id: sim.interp.account_id().map(str::to_string),
        outcome,
        queued: sim.queued,
        unused_input: inputs.cloned().collect(),
        duration: sim.now.saturating_since(Instant::ZERO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ivr::interp_tests::{flow, prompts};

    struct Counter(u32);

    impl Services for Counter {
        fn verify_pin(&mut self, _: &AccountKey, pin: &str) -> PinOutcome {
            self.0 += 1;
            if pin == "4321" {
                PinOutcome::Ok {
                    account_id: "7".into(),
                    fields: BTreeMap::new(),
                }
            } else {
                PinOutcome::Invalid
            }
        }
        fn lookup(
            &mut self,
            _: &str,
            _: &str,
            _: Option<&str>,
        ) -> Result<serde_json::Value, String> {
            Err("none".into())
        }
    }

    const FLOW: &str = r##"
flow: t
numbers: ["7000"]
language: en
start: m
steps:
  m: { menu: { prompt: menu, options: { "1": login } }, on_timeout: bye }
  login: { pin: { account: caller, prompt: pin }, on_ok: bye, on_fail: bye }
  bye: { play: goodbye, next: hangup }
"##;

    #[test]
    fn keys_that_spill_into_a_pin_step_are_never_printed() {
        let f = flow(FLOW);
        let at = DateTime::parse_from_rfc3339("2026-01-05T09:00:00+01:00").unwrap();
        let mut services = Counter(0);
        let report = simulate(
            f.clone(),
            prompts(&["menu", "pin", "goodbye"]),
            "+1555",
            at,
            &["14321#".into()],
            &mut services,
        );
        let text = report.to_string();
        assert_eq!(services.0, 1);
        assert_eq!(report.path, ["m", "login", "bye", "hangup"]);
        assert!(text.contains("caller types a PIN (6 keys)"), "{text}");
        assert!(!text.contains("4321"), "{text}");
    }

    #[test]
    fn silence_lets_every_timeout_run_in_virtual_time() {
        let f = flow(FLOW);
        let at = DateTime::parse_from_rfc3339("2026-01-05T09:00:00+01:00").unwrap();
        let report = simulate(
            f.clone(),
            prompts(&["menu", "pin", "goodbye"]),
            "+1555",
            at,
            &[],
            &mut Counter(0),
        );
        // Three plays of the 1s menu prompt, each followed by 5s of silence, then goodbye (1s).
        assert_eq!(report.duration, Duration::from_secs(19));
        assert_eq!(report.outcome, Outcome::Hangup(EndReason::NoInput));
        assert_eq!(report.prompts, ["menu", "menu", "menu", "goodbye"]);
        assert!(report.to_string().contains("no key pressed in time"));
    }
}
