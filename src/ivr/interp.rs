//! The flow interpreter: one per call, driven by events and time, answering with actions.
//!
//! It never performs I/O and never reads a clock: the call controller (or the simulator) feeds
//! `handle(now, event)` / `handle_timeout(now)` and drains `poll_action()`, exactly like
//! quinn-proto's connection. The same code runs in the server, `switchboard simulate` and the
//! flows' `tests:`, so what the admin tested is what callers get.

pub use super::events::*;
use super::model::*;
use super::prompts::PromptIndex;
use crate::time::Instant;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Steps entered with no digit from the caller before the interpreter calls it a runaway loop.
pub const MAX_STEPS_WITHOUT_INPUT: u32 = 1000;
const MAX_PATH: usize = 10_000;
const MAX_TYPEAHEAD: usize = 64;
const MAX_LOOKUP_VARS: usize = 256;
const MAX_VALUE_CHARS: usize = 1024;

#[derive(Clone, Debug, PartialEq)]
enum Then {
    Goto(Exit),
    Gather,
    Record,
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    Idle,
    Playing { id: u64, barge_in: bool, then: Then },
    Gathering { deadline: Instant },
    Verifying { id: u64 },
    LookingUp { id: u64, deadline: Instant },
    Recording { id: u64 },
    Parked,
    Done,
}

/// The input a menu, collect or pin step has gathered so far.
#[derive(Default)]
struct Gather {
    digits: String,
    /// Failed tries so far (timeouts and invalid entries).
    tries: u32,
}

pub struct Interpreter {
    flow: Arc<Flow>,
    prompts: Arc<PromptIndex>,
    info: CallInfo,
    vars: BTreeMap<String, String>,
    path: Vec<String>,
    actions: VecDeque<Action>,
    next_id: u64,
    state: State,
    current: Option<String>,
    goto: Option<Exit>,
    gather: Gather,
    typeahead: VecDeque<char>,
    auth: AuthState,
    account_id: Option<String>,
    pin_attempts: BTreeMap<String, u32>,
    pin_rejected: bool,
    steps_since_input: u32,
    recorded: bool,
    no_input_exit: bool,
    end: Option<EndReason>,
    /// The simulator wants to show prompts that have no file; the server must never get them.
    pub(crate) keep_missing_prompts: bool,
    /// A terminator to ignore if it is the very next key (see `on_digit`).
    swallow: Option<char>,
}

impl Interpreter {
    /// Wall time at `now` is `started_wall + (now - started)`.
    pub fn new(flow: Arc<Flow>, prompts: Arc<PromptIndex>, info: CallInfo) -> Self {
        let mut vars = BTreeMap::new();
        vars.insert("caller".to_string(), info.caller.clone());
        vars.insert("dialed".to_string(), info.dialed.clone());
        vars.insert("call_id".to_string(), info.call_id.clone());
        vars.insert("language".to_string(), flow.language.clone());
        Interpreter {
            flow,
            prompts,
            info,
            vars,
            path: Vec::new(),
            actions: VecDeque::new(),
            next_id: 0,
            state: State::Idle,
            current: None,
            goto: None,
            gather: Gather::default(),
            typeahead: VecDeque::new(),
            auth: AuthState::None,
            account_id: None,
            pin_attempts: BTreeMap::new(),
            pin_rejected: false,
            steps_since_input: 0,
            recorded: false,
            no_input_exit: false,
            end: None,
            keep_missing_prompts: false,
            swallow: None,
        }
    }

    pub fn start(&mut self, now: Instant) {
        if self.state != State::Idle || self.current.is_some() {
            return;
        }
        self.goto = Some(Exit {
            step: self.flow.start.clone(),
            pos: Default::default(),
        });
        self.run(now);
    }

    pub fn handle(&mut self, now: Instant, event: Event) {
        if self.state == State::Done {
            return;
        }
        match event {
            Event::Digit(c) => self.on_digit(now, c),
            Event::PlaybackDone { id, .. } => {
                if let State::Playing {
                    id: playing, then, ..
                } = &self.state
                {
                    if *playing == id {
                        let then = then.clone();
                        self.after_play(now, then);
                    }
                }
            }
            Event::PinChecked { id, outcome } => {
                if self.state == (State::Verifying { id }) {
                    self.on_pin(now, outcome);
                }
            }
            Event::LookupDone { id, result } => {
                if matches!(self.state, State::LookingUp { id: l, .. } if l == id) {
                    self.on_lookup(result);
                }
            }
            Event::RecordingDone { id, file } => {
                if self.state == (State::Recording { id }) {
                    if let Some(file) = file {
                        self.vars.insert("recording".to_string(), file);
                        self.recorded = true;
                    }
                    if let Some(StepKind::Record(r)) = self.step_kind() {
                        let next = r.next.clone();
                        self.goto = Some(next);
                    }
                }
            }
            Event::QueueResult { timed_out } => {
                if self.state == State::Parked {
                    // A transfer that did not happen ends the flow the normal way.
                    let exit = match self.step_kind() {
                        Some(StepKind::Queue(q)) if timed_out => Some(q.on_timeout.clone()),
                        Some(StepKind::Callback { next, .. }) => Some(next.clone()),
                        Some(StepKind::Transfer { .. }) if timed_out => Some(Exit {
                            step: HANGUP.to_string(),
                            pos: Default::default(),
                        }),
                        _ => None,
                    };
                    match exit {
                        Some(e) => self.goto = Some(e),
                        None => self.finish_quietly(EndReason::Completed),
                    }
                }
            }
            Event::Hangup => self.finish_quietly(EndReason::CallerHangup),
            Event::AgentHungUp => {
                if self.state == State::Parked {
                    match self.step_kind() {
                        Some(StepKind::Queue(q)) => match q.after_agent.clone() {
                            Some(e) => self.goto = Some(e),
                            None => self.finish_quietly(EndReason::Completed),
                        },
                        _ => self.finish_quietly(EndReason::Completed),
                    }
                }
            }
        }
        self.run(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Gathering { deadline } if now >= deadline => self.on_gather_timeout(now),
            State::LookingUp { deadline, .. } if now >= deadline => {
                tracing::info!(
                    step = self.current.as_deref().unwrap_or(""),
                    "lookup timed out"
                );
                self.on_lookup(Err("timed out".to_string()));
            }
            _ => {}
        }
        self.run(now);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Gathering { deadline } | State::LookingUp { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Step names entered, in order (the CDR's `ivr_path`).
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// Flattened variables: `caller`, `account.tier`, `digits.x`, `vars.a.b`. Never the PIN.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// True while parked at a queue step that has `after_agent`: the call outlives the agent.
    pub fn continues_after_agent(&self) -> bool {
        self.state == State::Parked
            && matches!(self.step_kind(), Some(StepKind::Queue(q)) if q.after_agent.is_some())
    }

    pub fn auth(&self) -> AuthState {
        self.auth
    }

    pub fn account_id(&self) -> Option<&str> {
        self.account_id.as_deref()
    }

    pub fn is_finished(&self) -> bool {
        self.state == State::Done
    }

    /// Why the flow ended, once it has.
    pub fn end_reason(&self) -> Option<&EndReason> {
        self.end.as_ref()
    }

    /// The step the call is in.
    pub fn current_step(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// True while a menu, collect or pin step is listening for digits after its prompt.
    pub fn is_waiting_for_input(&self) -> bool {
        matches!(self.state, State::Gathering { .. })
    }

    pub fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }

    /// The wall-clock time at `now`.
    pub fn wall_time(&self, now: Instant) -> DateTime<Utc> {
        let elapsed = now.saturating_since(self.info.started);
        chrono::Duration::from_std(elapsed)
            .ok()
            .and_then(|d| self.info.started_wall.checked_add_signed(d))
            .unwrap_or(self.info.started_wall)
    }

    fn step_kind(&self) -> Option<&StepKind> {
        self.current
            .as_ref()
            .and_then(|c| self.flow.steps.get(c))
            .map(|s| &s.kind)
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn finish(&mut self, reason: EndReason) {
        if self.state == State::Done {
            return;
        }
        tracing::info!(reason = reason.as_str(), "ivr flow ends");
        self.actions.push_back(Action::Hangup {
            reason: reason.clone(),
        });
        self.end = Some(reason);
        self.state = State::Done;
        self.goto = None;
    }

    fn finish_quietly(&mut self, reason: EndReason) {
        self.end = Some(reason);
        self.state = State::Done;
        self.goto = None;
    }

    /// Follows pending exits until the flow waits for something.
    fn run(&mut self, now: Instant) {
        while let Some(exit) = self.goto.take() {
            if self.state == State::Done {
                return;
            }
            self.enter(now, &exit.step);
        }
    }

    fn enter(&mut self, now: Instant, name: &str) {
        self.steps_since_input += 1;
        if self.steps_since_input > MAX_STEPS_WITHOUT_INPUT || self.path.len() >= MAX_PATH {
            tracing::warn!(step = name, "ivr flow loops without input; hanging up");
            self.finish(EndReason::Error(format!(
                "the flow entered more than {MAX_STEPS_WITHOUT_INPUT} steps without input (at `{name}`)"
            )));
            return;
        }
        self.path.push(name.to_string());
        self.current = Some(name.to_string());
        self.state = State::Idle;
        self.actions.push_back(Action::StepEntered {
            step: name.to_string(),
        });
        tracing::debug!(step = name, "ivr step");
        let flow = Arc::clone(&self.flow);
        let Some(step) = flow.steps.get(name) else {
            let reason = if name == HANGUP {
                self.hangup_reason()
            } else {
                EndReason::Error(format!("no step `{name}`"))
            };
            self.finish(reason);
            return;
        };
        match &step.kind {
            StepKind::Play { prompts, next } => {
                self.play(prompts, false, Then::Goto(next.clone()));
            }
            StepKind::Menu(_) | StepKind::Collect(_) | StepKind::Pin(_) | StepKind::Survey(_) => {
                self.gather = Gather::default();
                self.prompt_for_input(now, &[]);
            }
            StepKind::Branch { arms, otherwise } => {
                let exit = arms
                    .iter()
                    .find(|(cond, _)| cond.eval(&self.vars))
                    .map(|(_, e)| e)
                    .unwrap_or(otherwise);
                self.goto = Some(exit.clone());
            }
            StepKind::Hours {
                hours,
                on_open,
                on_closed,
            } => {
                let open = hours.is_open(self.wall_time(now));
                self.goto = Some(if open { on_open } else { on_closed }.clone());
            }
            StepKind::Lookup(l) => {
                let id = self.new_id();
                self.actions.push_back(Action::Lookup {
                    id,
                    method: l.method.clone(),
                    url: l.url.render(&self.vars),
                    body: l.body.as_ref().map(|b| b.render(&self.vars)),
                    timeout: l.timeout,
                });
                self.state = State::LookingUp {
                    id,
                    deadline: now + l.timeout,
                };
            }
            StepKind::Queue(q) => {
                let priority = match &q.priority {
                    Priority::Fixed(p) => *p,
                    Priority::Template(t) => {
                        let text = t.render(&self.vars);
                        text.trim().parse().unwrap_or_else(|_| {
                            tracing::warn!(step = name, "queue priority is not a number; using 0");
                            0
                        })
                    }
                };
                self.actions.push_back(Action::Queue {
                    step: name.to_string(),
                    name: q.name.clone(),
                    priority,
                    skills: q.skills.clone(),
                    timeout: q.timeout,
                });
                self.state = State::Parked;
            }
            StepKind::Callback { queue, .. } => {
                self.actions.push_back(Action::Callback {
                    step: name.to_string(),
                    queue: queue.clone(),
                });
                self.state = State::Parked;
            }
            StepKind::Transfer { target } => {
                self.actions.push_back(Action::Transfer {
                    step: name.to_string(),
                    target: target.render(&self.vars),
                });
                self.state = State::Parked;
            }
            StepKind::Record(r) => {
                self.play(&r.prompt, false, Then::Record);
            }
            StepKind::Set {
                language,
                vars,
                next,
            } => {
                if let Some((lang, _)) = language {
                    self.vars.insert("language".to_string(), lang.clone());
                }
                for (var, value) in vars {
                    let v = value.render(&self.vars);
                    self.vars.insert(var.clone(), v);
                }
                self.goto = Some(next.clone());
            }
        }
    }

    fn hangup_reason(&self) -> EndReason {
        if self.recorded {
            EndReason::Voicemail
        } else if matches!(self.auth, AuthState::Failed | AuthState::Locked) {
            EndReason::AuthFailed
        } else if self.no_input_exit {
            EndReason::NoInput
        } else {
            EndReason::Completed
        }
    }

    fn play(&mut self, items: &[PlayItem], barge_in: bool, then: Then) {
        let lang = self.vars.get("language").map(String::as_str).unwrap_or("");
        let prompts = self
            .prompts
            .play_list(lang, items, &self.vars, self.keep_missing_prompts);
        if prompts.is_empty() {
            self.state = State::Idle;
            self.after_play_now(then);
            return;
        }
        let id = self.new_id();
        self.actions.push_back(Action::Play {
            id,
            prompts,
            barge_in,
        });
        self.state = State::Playing { id, barge_in, then };
    }

    /// `after_play` without a `now`: used when there was nothing to play. Gathering needs a
    /// deadline, so it is set by the caller of `prompt_for_input` instead.
    fn after_play_now(&mut self, then: Then) {
        match then {
            Then::Goto(exit) => self.goto = Some(exit),
            Then::Record => self.start_recording(),
            Then::Gather => {}
        }
    }

    fn after_play(&mut self, now: Instant, then: Then) {
        match then {
            Then::Gather => self.listen(now),
            other => self.after_play_now(other),
        }
    }

    fn start_recording(&mut self) {
        let Some(StepKind::Record(r)) = self.step_kind() else {
            return;
        };
        let (max, beep) = (r.max, r.beep);
        let id = self.new_id();
        self.actions.push_back(Action::Record { id, max, beep });
        self.state = State::Recording { id };
    }

    fn input_settings(&self) -> Option<(Vec<PlayItem>, Duration)> {
        match self.step_kind()? {
            StepKind::Menu(m) => Some((m.prompt.clone(), m.timeout)),
            StepKind::Survey(s) => Some((s.prompt.clone(), s.timeout)),
            StepKind::Collect(c) => Some((c.prompt.clone(), c.rules.timeout)),
            StepKind::Pin(p) => Some((p.prompt.clone(), p.rules.timeout)),
            _ => None,
        }
    }

    /// Plays `first` then the step's prompt with barge-in, unless the caller already typed ahead.
    fn prompt_for_input(&mut self, now: Instant, first: &[PlayItem]) {
        self.gather.digits.clear();
        if !self.typeahead.is_empty() {
            self.listen(now);
            return;
        }
        let Some((prompt, _)) = self.input_settings() else {
            return;
        };
        let mut items = first.to_vec();
        items.extend(prompt);
        self.play(&items, true, Then::Gather);
        if self.state == State::Idle {
            self.listen(now);
        }
    }

    /// Starts waiting for digits, consuming type-ahead first.
    fn listen(&mut self, now: Instant) {
        let Some((_, timeout)) = self.input_settings() else {
            return;
        };
        self.state = State::Gathering {
            deadline: now + timeout,
        };
        let step = self.current.clone();
        while self.goto.is_none()
            && matches!(self.state, State::Gathering { .. })
            && self.current == step
        {
            let Some(c) = self.typeahead.pop_front() else {
                break;
            };
            self.feed(now, c);
        }
    }

    fn on_digit(&mut self, now: Instant, c: char) {
        if !super::values::is_dtmf(c) {
            return;
        }
        // Callers finish a full-length entry with the terminator out of habit ("1234#" where
        // 4 digits is the maximum); that `#` belongs to the entry just taken, not the next one.
        if self.swallow.take() == Some(c) {
            return;
        }
        self.steps_since_input = 0;
        self.no_input_exit = false;
        match &self.state {
            State::Playing {
                barge_in: true,
                then: Then::Gather,
                ..
            } => {
                self.actions.push_back(Action::StopPlayback);
                self.typeahead.push_front(c);
                self.listen(now);
            }
            State::Gathering { .. } => self.feed(now, c),
            State::Recording { .. } => {
                if c == '#' {
                    self.actions.push_back(Action::StopRecording);
                }
            }
            State::Done => {}
            _ => {
                if self.typeahead.len() < MAX_TYPEAHEAD {
                    self.typeahead.push_back(c);
                }
            }
        }
    }

    fn feed(&mut self, now: Instant, c: char) {
        if self.swallow.take() == Some(c) {
            return;
        }
        let flow = Arc::clone(&self.flow);
        let Some(kind) = self
            .current
            .as_ref()
            .and_then(|n| flow.steps.get(n))
            .map(|s| &s.kind)
        else {
            return;
        };
        match kind {
            StepKind::Menu(m) => match m.options.get(&c) {
                Some(exit) => self.goto = Some(exit.clone()),
                None => {
                    self.gather.tries += 1;
                    if self.gather.tries > m.retries {
                        self.goto = Some(m.on_invalid.clone());
                    } else {
                        self.prompt_for_input(now, &m.invalid_prompt);
                    }
                }
            },
            StepKind::Survey(s) => match s.options.get(&c) {
                Some(score) => {
                    let bad = s.bad_below.is_some_and(|b| *score < b);
                    self.vars.insert("survey".to_string(), score.to_string());
                    self.actions.push_back(Action::Survey {
                        step: self.current.clone().unwrap_or_default(),
                        score: *score,
                        bad,
                    });
                    self.goto = Some(s.next.clone());
                }
                None => {
                    self.gather.tries += 1;
                    if self.gather.tries > s.retries {
                        self.goto = Some(s.next.clone());
                    } else {
                        self.prompt_for_input(now, &s.invalid_prompt);
                    }
                }
            },
            StepKind::Collect(Collect { rules, .. }) | StepKind::Pin(PinStep { rules, .. }) => {
                if rules.terminator == Some(c) {
                    self.complete(now);
                    return;
                }
                self.gather.digits.push(c);
                if self.gather.digits.chars().count() >= rules.max {
                    self.swallow = rules.terminator;
                    self.complete(now);
                } else {
                    self.state = State::Gathering {
                        deadline: now + rules.inter_digit_timeout,
                    };
                }
            }
            _ => {}
        }
    }

    fn on_gather_timeout(&mut self, now: Instant) {
        let flow = Arc::clone(&self.flow);
        let Some(kind) = self
            .current
            .as_ref()
            .and_then(|n| flow.steps.get(n))
            .map(|s| &s.kind)
        else {
            return;
        };
        match kind {
            StepKind::Menu(m) => {
                self.gather.tries += 1;
                if self.gather.tries > m.retries {
                    self.no_input_exit = true;
                    self.goto = Some(m.on_timeout.clone());
                } else {
                    self.prompt_for_input(now, &[]);
                }
            }
            StepKind::Survey(s) => {
                self.gather.tries += 1;
                if self.gather.tries > s.retries {
                    self.no_input_exit = true;
                    self.goto = Some(s.next.clone());
                } else {
                    self.prompt_for_input(now, &[]);
                }
            }
            StepKind::Collect(c) if self.gather.digits.is_empty() => {
                self.gather.tries += 1;
                if self.gather.tries > c.retries {
                    self.no_input_exit = true;
                    self.goto = Some(c.on_timeout.clone());
                } else {
                    self.prompt_for_input(now, &[]);
                }
            }
            StepKind::Pin(p) if self.gather.digits.is_empty() => {
                if self.pin_failed_attempt(p) {
                    self.no_input_exit = !self.pin_rejected;
                } else {
                    self.prompt_for_input(now, &[]);
                }
            }
            StepKind::Collect(_) | StepKind::Pin(_) => self.complete(now),
            _ => {}
        }
    }

    /// Counts a failed PIN attempt; true when they are used up and the call left by on_fail.
    fn pin_failed_attempt(&mut self, p: &PinStep) -> bool {
        let step = self.current.clone().unwrap_or_default();
        let used = self.pin_attempts.entry(step).or_insert(0);
        *used += 1;
        if *used >= p.attempts {
            if self.pin_rejected && self.auth == AuthState::None {
                self.auth = AuthState::Failed;
            }
            self.goto = Some(p.on_fail.clone());
            true
        } else {
            false
        }
    }

    fn complete(&mut self, now: Instant) {
        let flow = Arc::clone(&self.flow);
        let Some(step) = self.current.as_ref().and_then(|n| flow.steps.get(n)) else {
            return;
        };
        let digits = std::mem::take(&mut self.gather.digits);
        match &step.kind {
            StepKind::Collect(c) => {
                let ok = digits.chars().count() >= c.rules.min
                    && c.pattern.as_ref().is_none_or(|p| p.matches(&digits));
                if ok {
                    self.vars.insert(format!("digits.{}", step.name), digits);
                    self.goto = Some(c.next.clone());
                    return;
                }
                self.gather.tries += 1;
                if self.gather.tries > c.retries {
                    self.goto = Some(c.on_invalid.clone());
                } else {
                    self.prompt_for_input(now, &c.invalid_prompt);
                }
            }
            StepKind::Pin(p) => {
                if digits.chars().count() < p.rules.min {
                    self.pin_rejected = true;
                    if !self.pin_failed_attempt(p) {
                        self.prompt_for_input(now, &p.retry_prompt);
                    }
                    return;
                }
                let key = match &p.account {
                    PinAccount::Caller => AccountKey::Phone(self.info.caller.clone()),
                    PinAccount::Collected(s) => AccountKey::Id(
                        self.vars
                            .get(&format!("digits.{s}"))
                            .cloned()
                            .unwrap_or_default(),
                    ),
                };
                let id = self.new_id();
                self.actions.push_back(Action::VerifyPin {
                    id,
                    key,
                    pin: Pin::new(digits),
                });
                self.state = State::Verifying { id };
            }
            _ => {}
        }
    }

    fn on_pin(&mut self, now: Instant, outcome: PinOutcome) {
        let Some(StepKind::Pin(p)) = self.step_kind().cloned() else {
            return;
        };
        match outcome {
            PinOutcome::Ok { account_id, fields } => {
                self.auth = AuthState::Ok;
                self.vars
                    .insert("account.id".to_string(), account_id.clone());
                for (k, v) in fields {
                    let safe = !k.is_empty()
                        && !k.to_ascii_lowercase().contains("pin")
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if safe && k != "id" {
                        self.vars.insert(format!("account.{k}"), clip(v));
                    }
                }
                self.account_id = Some(account_id);
                self.goto = Some(p.on_ok.clone());
            }
            PinOutcome::Invalid => {
                self.pin_rejected = true;
                if !self.pin_failed_attempt(&p) {
                    self.prompt_for_input(now, &p.retry_prompt);
                }
            }
            PinOutcome::Locked => {
                self.auth = AuthState::Locked;
                self.goto = Some(p.on_fail.clone());
            }
        }
    }

    fn on_lookup(&mut self, result: Result<serde_json::Value, String>) {
        let Some(StepKind::Lookup(l)) = self.step_kind().cloned() else {
            return;
        };
        match result {
            Ok(value) => {
                let step = self.current.clone().unwrap_or_default();
                let mut out = Vec::new();
                match &value {
                    serde_json::Value::Object(_) => flatten("vars", &value, 0, &mut out),
                    other => flatten(&format!("vars.{step}"), other, 0, &mut out),
                }
                for (k, v) in out {
                    self.vars.insert(k, v);
                }
                self.goto = Some(l.next.clone());
            }
            Err(e) => {
                tracing::info!(step = self.current.as_deref().unwrap_or(""), error = %e, "lookup failed");
                self.goto = Some(l.on_error.clone());
            }
        }
    }
}

fn clip(mut s: String) -> String {
    if s.chars().count() > MAX_VALUE_CHARS {
        s = s.chars().take(MAX_VALUE_CHARS).collect();
    }
    s
}

/// JSON into dotted variables: `{"order": {"status": "x"}}` → `vars.order.status = x`.
fn flatten(prefix: &str, value: &serde_json::Value, depth: usize, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    if out.len() >= MAX_LOOKUP_VARS || depth > 8 {
        return;
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&format!("{prefix}.{k}"), v, depth + 1, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}.{i}"), v, depth + 1, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), clip(s.clone()))),
        Value::Null => out.push((prefix.to_string(), String::new())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}
