//! The checked, typed form of a flow file. Everything here has been validated by the parser:
//! durations are durations, templates and conditions are parsed, exits name real steps.

use super::expr::{Condition, Template};
use super::hours::Hours;
use super::interp::{AuthState, Pin};
use super::pattern::Pattern;
use super::yaml::Pos;
use chrono::{DateTime, FixedOffset};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The built-in step that ends the call; `next: hangup` is always valid.
pub const HANGUP: &str = "hangup";

/// All flows that loaded without a fatal error, and which dialed number starts which.
#[derive(Clone, Debug, Default)]
pub struct FlowSet {
    flows: BTreeMap<String, Arc<Flow>>,
    numbers: BTreeMap<String, String>,
}

impl FlowSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a flow. A number already claimed keeps its first flow (the checker reports the
    /// conflict on both files); returns false when the flow name is already taken.
    pub fn insert(&mut self, flow: impl Into<Arc<Flow>>) -> bool {
        let flow: Arc<Flow> = flow.into();
        if self.flows.contains_key(&flow.name) {
            return false;
        }
        for n in &flow.numbers {
            self.numbers
                .entry(n.clone())
                .or_insert_with(|| flow.name.clone());
        }
        self.flows.insert(flow.name.clone(), flow);
        true
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Flow>> {
        self.flows.get(name)
    }

    /// The flow a dialed number (DID) starts.
    pub fn by_number(&self, dialed: &str) -> Option<&Arc<Flow>> {
        self.numbers
            .get(dialed)
            .and_then(|name| self.flows.get(name))
    }

    pub fn flows(&self) -> impl Iterator<Item = &Arc<Flow>> {
        self.flows.values()
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

#[derive(Clone, Debug)]
pub struct Flow {
    pub name: String,
    /// The file the flow was loaded from.
    pub source: PathBuf,
    pub numbers: Vec<String>,
    pub language: String,
    pub start: String,
    /// Extension key `answer_delay` (default 0): ring this long with 180 Ringing before
    /// answering, as a real line would, so callers do not hear a prompt clipped by their phone.
    pub answer_delay: Duration,
    pub steps: BTreeMap<String, Step>,
    pub tests: Vec<FlowTest>,
    pub(crate) pos: FlowPositions,
    /// Extension key `record_calls`: the conversation with an agent is recorded (two channels).
    pub record_calls: bool,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct FlowPositions {
    pub name: Pos,
    pub numbers: Vec<Pos>,
    pub start: Pos,
    /// Steps written in the file that did not parse; only a flow that failed `check` has any.
    pub unparsed_steps: Vec<String>,
}

impl Flow {
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.get(name)
    }
}

/// Where a step goes next. `pos` is where the admin wrote it (the step's name when defaulted).
#[derive(Clone, Debug, PartialEq)]
pub struct Exit {
    pub step: String,
    pub pos: Pos,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub name: String,
    pub kind: StepKind,
    pub(crate) pos: Pos,
}

/// One thing to say: a recorded prompt, or a value spoken with digit/number prompts.
#[derive(Clone, Debug, PartialEq)]
pub enum PlayItem {
    Prompt { name: String, pos: Pos },
    Digits { value: Template, pos: Pos },
    Number { value: Template, pos: Pos },
}

#[derive(Clone, Debug)]
pub enum StepKind {
    Play {
        prompts: Vec<PlayItem>,
        next: Exit,
    },
    Menu(Menu),
    Collect(Collect),
    Pin(PinStep),
    Branch {
        arms: Vec<(Condition, Exit)>,
        otherwise: Exit,
    },
    Hours {
        hours: Hours,
        on_open: Exit,
        on_closed: Exit,
    },
    Lookup(Lookup),
    Queue(QueueStep),
    Callback {
        queue: String,
        queue_pos: Pos,
        next: Exit,
    },
    Transfer {
        target: Template,
    },
    Record(Record),
    Set {
        language: Option<(String, Pos)>,
        vars: Vec<(String, Template)>,
        next: Exit,
    },
    Survey(Survey),
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Play { .. } => "play",
            StepKind::Menu(_) => "menu",
            StepKind::Collect(_) => "collect",
            StepKind::Pin(_) => "pin",
            StepKind::Branch { .. } => "branch",
            StepKind::Hours { .. } => "hours",
            StepKind::Lookup(_) => "lookup",
            StepKind::Queue(_) => "queue",
            StepKind::Callback { .. } => "callback",
            StepKind::Transfer { .. } => "transfer",
            StepKind::Record(_) => "record",
            StepKind::Set { .. } => "set",
            StepKind::Survey(_) => "survey",
        }
    }

    /// Steps that wait for the caller; a loop must pass through one of them.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            StepKind::Menu(_)
                | StepKind::Collect(_)
                | StepKind::Pin(_)
                | StepKind::Record(_)
                | StepKind::Survey(_)
        )
    }

    pub fn exits(&self) -> Vec<&Exit> {
        match self {
            StepKind::Play { next, .. } | StepKind::Set { next, .. } => vec![next],
            StepKind::Callback { next, .. } => vec![next],
            StepKind::Menu(m) => {
                let mut v: Vec<&Exit> = m.options.values().collect();
                v.extend([&m.on_timeout, &m.on_invalid]);
                v
            }
            StepKind::Collect(c) => vec![&c.next, &c.on_timeout, &c.on_invalid],
            StepKind::Pin(p) => vec![&p.on_ok, &p.on_fail],
            StepKind::Branch { arms, otherwise } => {
                let mut v: Vec<&Exit> = arms.iter().map(|(_, e)| e).collect();
                v.push(otherwise);
                v
            }
            StepKind::Hours {
                on_open, on_closed, ..
            } => vec![on_open, on_closed],
            StepKind::Lookup(l) => vec![&l.next, &l.on_error],
            StepKind::Queue(q) => {
                let mut v = vec![&q.on_timeout];
                v.extend(q.after_agent.as_ref());
                v
            }
            StepKind::Survey(s) => vec![&s.next],
            StepKind::Transfer { .. } => vec![],
            StepKind::Record(r) => vec![&r.next],
        }
    }

    /// Every prompt list of the step, for the prompt checks.
    pub fn prompt_lists(&self) -> Vec<&[PlayItem]> {
        match self {
            StepKind::Play { prompts, .. } => vec![prompts],
            StepKind::Menu(m) => vec![&m.prompt, &m.invalid_prompt],
            StepKind::Collect(c) => vec![&c.prompt, &c.invalid_prompt],
            StepKind::Pin(p) => vec![&p.prompt, &p.retry_prompt],
            StepKind::Record(r) => vec![&r.prompt],
            StepKind::Survey(s) => vec![&s.prompt, &s.invalid_prompt],
            _ => vec![],
        }
    }
}

#[derive(Clone, Debug)]
pub struct Menu {
    pub prompt: Vec<PlayItem>,
    pub options: BTreeMap<char, Exit>,
    pub timeout: Duration,
    pub retries: u32,
    pub invalid_prompt: Vec<PlayItem>,
    pub on_timeout: Exit,
    pub on_invalid: Exit,
}

/// How several digits are gathered (collect and pin).
#[derive(Clone, Debug, PartialEq)]
pub struct DigitRules {
    pub min: usize,
    pub max: usize,
    pub terminator: Option<char>,
    /// Wait for the first digit.
    pub timeout: Duration,
    /// Wait between digits; when it runs out with at least `min` digits, the input is complete.
    pub inter_digit_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct Collect {
    pub prompt: Vec<PlayItem>,
    pub rules: DigitRules,
    pub pattern: Option<Pattern>,
    pub retries: u32,
    pub invalid_prompt: Vec<PlayItem>,
    pub next: Exit,
    pub on_timeout: Exit,
    pub on_invalid: Exit,
}

#[derive(Clone, Debug, PartialEq)]
pub enum PinAccount {
    /// Find the account by the caller's number.
    Caller,
    /// Find the account by the digits a collect step gathered.
    Collected(String),
}

#[derive(Clone, Debug)]
pub struct PinStep {
    pub account: PinAccount,
    pub account_pos: Pos,
    pub prompt: Vec<PlayItem>,
    pub rules: DigitRules,
    pub attempts: u32,
    pub retry_prompt: Vec<PlayItem>,
    pub on_ok: Exit,
    pub on_fail: Exit,
}

#[derive(Clone, Debug)]
pub struct Lookup {
    pub method: String,
    pub url: Template,
    pub body: Option<Template>,
    pub timeout: Duration,
    pub next: Exit,
    pub on_error: Exit,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Priority {
    Fixed(i64),
    /// Rendered per call; a value that is not a number counts as 0.
    Template(Template),
}

#[derive(Clone, Debug)]
pub struct QueueStep {
    pub name: String,
    pub name_pos: Pos,
    pub priority: Priority,
    pub skills: BTreeMap<String, u8>,
    pub skill_pos: BTreeMap<String, Pos>,
    pub timeout: Option<Duration>,
    pub on_timeout: Exit,
    /// Where the caller goes when the agent hangs up first; `None` ends the call then.
    pub after_agent: Option<Exit>,
}

/// A post-call rating: one key maps to a score that lands on the call record.
#[derive(Clone, Debug)]
pub struct Survey {
    pub prompt: Vec<PlayItem>,
    pub options: BTreeMap<char, i64>,
    /// Scores below this raise `survey.bad`.
    pub bad_below: Option<i64>,
    pub timeout: Duration,
    pub retries: u32,
    pub invalid_prompt: Vec<PlayItem>,
    /// Taken after a score, and after no answer (no score is recorded then).
    pub next: Exit,
}

#[derive(Clone, Debug)]
pub struct Record {
    pub prompt: Vec<PlayItem>,
    pub max: Duration,
    pub beep: bool,
    pub next: Exit,
}

/// One entry of a flow's `tests:`.
#[derive(Clone, Debug)]
pub struct FlowTest {
    pub name: String,
    pub pos: Pos,
    pub caller: String,
    pub at: DateTime<FixedOffset>,
    pub input: Vec<String>,
    pub expect: Expect,
    /// `accounts:` stubs; when absent the caller's services (the real accounts file) answer.
    pub accounts: Option<Vec<StubAccount>>,
    /// `lookups:` stubs by step name: the JSON answer, or an error.
    pub lookups: BTreeMap<String, Result<serde_json::Value, String>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expect {
    pub queue: Option<String>,
    pub priority: Option<i64>,
    pub path_ends: Option<Vec<String>>,
    pub path: Option<Vec<String>>,
    pub prompts: Option<Vec<String>>,
    pub vars: BTreeMap<String, String>,
    pub auth: Option<AuthState>,
    pub outcome: Option<String>,
    pub transfer: Option<String>,
    pub callback: Option<String>,
    /// `expect: { survey: 1 }` — the score recorded; `survey: none` for no score.
    pub survey: Option<Option<i64>>,
}

#[derive(Clone, Debug)]
pub struct StubAccount {
    pub id: String,
    pub phones: Vec<String>,
    pub pin: Pin,
    pub locked: bool,
    pub fields: BTreeMap<String, String>,
}
