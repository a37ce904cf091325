//! Loading and checking flow files: `file:line:column: message` for everything an admin can get
//! wrong, before any phone rings.
//!
//! Two grades of error: a *fatal* one (YAML or key errors, a malformed value, a step that points
//! nowhere, a loop that never waits for the caller) leaves the flow out of the [`FlowSet`],
//! because running it would misbehave; the others (a missing prompt, an unreachable step, an
//! unknown queue, a number claimed twice) fail `switchboard check` but keep the line answering.

use super::model::*;
use super::parse::{parse_flow, suggestion};
use super::prompts::PromptIndex;
use super::yaml::{self, Pos};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem. `line` 0 means it concerns the whole file or directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn new(
        file: &Path,
        pos: Pos,
        severity: Severity,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            severity,
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if self.severity == Severity::Warning {
            write!(f, ": warning")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A queue the server configuration defines, with the skills its agents can be matched on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueInfo {
    pub name: String,
    pub skills: Vec<String>,
}

/// What flows are checked against.
#[derive(Clone, Debug, Default)]
pub struct CheckEnv {
    pub sounds_dir: PathBuf,
    /// None until the server config defines queues: then queue names are not checked.
    pub queues: Option<Vec<QueueInfo>>,
    /// Whether the server config has a `trunk:` (None: not known, numbers are not checked).
    pub trunk: Option<bool>,
}

/// Parses and checks one flow's text on its own (no prompts, queues or other flows).
pub fn parse_str(file: &Path, text: &str) -> (Option<Flow>, Vec<Diagnostic>) {
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(e) => {
            return (
                None,
                vec![Diagnostic::new(file, e.pos, Severity::Error, e.message)],
            )
        }
    };
    let (flow, mut diags, parse_fatal) = parse_flow(file, &root);
    let Some(flow) = flow else {
        return (None, diags);
    };
    let graph_fatal = check_graph(&flow, &mut diags);
    (
        if parse_fatal || graph_fatal {
            None
        } else {
            Some(flow)
        },
        diags,
    )
}

/// Reads, parses and checks one flow file, prompts and queues included.
pub fn load_file(path: &Path, env: &CheckEnv) -> (Option<Flow>, Vec<Diagnostic>) {
    let prompts = PromptIndex::scan(&env.sounds_dir);
    load_file_with(path, env, &prompts)
}

fn load_file_with(
    path: &Path,
    env: &CheckEnv,
    prompts: &PromptIndex,
) -> (Option<Flow>, Vec<Diagnostic>) {
    let whole = |message: String| {
        (
            None,
            vec![Diagnostic::new(
                path,
                Pos::default(),
                Severity::Error,
                message,
            )],
        )
    };
    match std::fs::metadata(path) {
        Ok(m) if m.len() > yaml::MAX_FILE_BYTES as u64 => {
            return whole(format!(
                "larger than {} bytes; a flow file is one page of YAML",
                yaml::MAX_FILE_BYTES
            ))
        }
        Ok(_) => {}
        Err(e) => return whole(format!("cannot read it: {e}")),
    }
    let text = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => return whole("is not UTF-8 text".to_string()),
        },
        Err(e) => return whole(format!("cannot read it: {e}")),
    };
    let (flow, mut diags) = parse_str(path, &text);
    if let Some(flow) = &flow {
        diags.extend(check_assets(flow, env, prompts));
    }
    diags.sort_by_key(|d| (d.line, d.column));
    (flow, diags)
}

/// Loads every `*.yaml` / `*.yml` in `flows_dir`. Broken files are reported and left out; a
/// flow name used twice keeps the first file (by file name); a number claimed by two flows is
/// reported in both and keeps routing to the first.
pub fn load_dir(flows_dir: &Path, env: &CheckEnv) -> (FlowSet, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut set = FlowSet::new();
    let entries = match std::fs::read_dir(flows_dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(Diagnostic::new(
                flows_dir,
                Pos::default(),
                Severity::Error,
                format!("cannot read the flows directory: {e}"),
            ));
            return (set, diags);
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    let prompts = PromptIndex::scan(&env.sounds_dir);
    let mut flows: Vec<Flow> = Vec::new();
    for file in &files {
        let (flow, d) = load_file_with(file, env, &prompts);
        diags.extend(d);
        let Some(flow) = flow else { continue };
        if let Some(first) = flows.iter().find(|f| f.name == flow.name) {
            diags.push(Diagnostic::new(
                &flow.source,
                flow.pos.name,
                Severity::Error,
                format!(
                    "the flow name `{}` is already used by {}; this file is not loaded",
                    flow.name,
                    first.source.display()
                ),
            ));
            continue;
        }
        flows.push(flow);
    }
    let mut claimed: BTreeMap<&str, (&Flow, Pos)> = BTreeMap::new();
    for flow in &flows {
        for (number, pos) in flow.numbers.iter().zip(&flow.pos.numbers) {
            match claimed.get(number.as_str()) {
                None => {
                    claimed.insert(number, (flow, *pos));
                }
                Some((other, other_pos)) => {
                    diags.push(Diagnostic::new(&other.source, *other_pos, Severity::Error, format!("the number {number} is also claimed by flow `{}` ({}); calls to it go to `{}`", flow.name, flow.source.display(), other.name)));
                    diags.push(Diagnostic::new(&flow.source, *pos, Severity::Error, format!("the number {number} is already claimed by flow `{}` ({}); calls to it go there", other.name, other.source.display())));
                }
            }
        }
    }
    for flow in flows {
        set.insert(flow);
    }
    diags.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    (set, diags)
}

fn err(flow: &Flow, diags: &mut Vec<Diagnostic>, pos: Pos, message: String) {
    diags.push(Diagnostic::new(&flow.source, pos, Severity::Error, message));
}

/// Step references, reachability and loops. Returns true when the flow must not run.
fn check_graph(flow: &Flow, diags: &mut Vec<Diagnostic>) -> bool {
    let mut fatal = false;
    let names: Vec<&str> = flow
        .steps
        .keys()
        .map(String::as_str)
        .chain([HANGUP])
        .collect();
    let unparsed = &flow.pos.unparsed_steps;
    let exists =
        |s: &str| s == HANGUP || flow.steps.contains_key(s) || unparsed.iter().any(|u| u == s);
    if !exists(&flow.start) {
        fatal = true;
        err(
            flow,
            diags,
            flow.pos.start,
            format!(
                "`start` names `{}`, which is not a step{}",
                flow.start,
                suggestion(&flow.start, &names)
            ),
        );
    }
    for step in flow.steps.values() {
        for exit in step.kind.exits() {
            if !exists(&exit.step) {
                fatal = true;
                err(
                    flow,
                    diags,
                    exit.pos,
                    format!(
                        "step `{}` goes to `{}`, which is not a step{}",
                        step.name,
                        exit.step,
                        suggestion(&exit.step, &names)
                    ),
                );
            }
        }
    }
    if fatal {
        return true;
    }
    if !unparsed.is_empty() {
        // Reachability and loops through steps that did not parse would be guesses.
        return true;
    }

    let mut reached = BTreeSet::new();
    let mut queue = VecDeque::from([flow.start.as_str()]);
    while let Some(name) = queue.pop_front() {
        if !reached.insert(name) {
            continue;
        }
        if let Some(step) = flow.steps.get(name) {
            queue.extend(step.kind.exits().into_iter().map(|e| e.step.as_str()));
        }
    }
    for step in flow.steps.values() {
        if !reached.contains(step.name.as_str()) {
            err(
                flow,
                diags,
                step.pos,
                format!(
                    "step `{}` is never reached from `start` ({})",
                    step.name, flow.start
                ),
            );
        }
    }

    for cycle in silent_cycles(flow) {
        fatal = true;
        let first = cycle.first().and_then(|n| flow.steps.get(n));
        let pos = first.map(|s| s.pos).unwrap_or_default();
        err(flow, diags, pos, format!("these steps loop forever without waiting for the caller: {}; put a menu, collect, pin or record step in the loop", cycle.join(" → ")));
    }
    fatal
}

/// Cycles made only of steps that never wait for input, each as a path that returns to its
/// first step (the one written first in the file).
fn silent_cycles(flow: &Flow) -> Vec<Vec<String>> {
    let silent: BTreeMap<&str, Vec<&str>> = flow
        .steps
        .values()
        .filter(|s| !s.kind.is_input())
        .map(|s| {
            let next = s
                .kind
                .exits()
                .into_iter()
                .map(|e| e.step.as_str())
                .filter(|n| flow.steps.get(*n).is_some_and(|t| !t.kind.is_input()))
                .collect();
            (s.name.as_str(), next)
        })
        .collect();
    let mut by_pos: Vec<&Step> = flow
        .steps
        .values()
        .filter(|s| silent.contains_key(s.name.as_str()))
        .collect();
    by_pos.sort_by_key(|s| s.pos);
    let mut in_cycle: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    for step in by_pos {
        let start = step.name.as_str();
        if in_cycle.contains(start) {
            continue;
        }
        // Shortest way back to `start`, breadth first.
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue: VecDeque<&str> = VecDeque::from([start]);
        let mut found = false;
        while let Some(n) = queue.pop_front() {
            for &m in silent.get(n).map(Vec::as_slice).unwrap_or_default() {
                if m == start {
                    parent.insert(start, n);
                    found = true;
                    break;
                }
                if !parent.contains_key(m) {
                    parent.insert(m, n);
                    queue.push_back(m);
                }
            }
            if found {
                break;
            }
        }
        if !found {
            continue;
        }
        let mut path = vec![start.to_string()];
        let mut cur = parent.get(start).copied();
        while let Some(n) = cur {
            if n == start {
                break;
            }
            path.push(n.to_string());
            cur = parent.get(n).copied();
        }
        path.push(start.to_string());
        let last = path.len() - 1;
        if let Some(middle) = path.get_mut(1..last) {
            middle.reverse();
        }
        in_cycle.extend(
            path.iter()
                .filter_map(|n| flow.steps.get_key_value(n).map(|(k, _)| k.as_str())),
        );
        out.push(path);
    }
    out
}

/// The languages the caller may be in at each step: the flow's, changed by `set` steps.
fn languages_at(flow: &Flow) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut at: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut work: VecDeque<(&str, &str)> =
        VecDeque::from([(flow.start.as_str(), flow.language.as_str())]);
    while let Some((name, lang)) = work.pop_front() {
        let Some(step) = flow.steps.get(name) else {
            continue;
        };
        if !at.entry(step.name.as_str()).or_default().insert(lang) {
            continue;
        }
        let out_lang = match &step.kind {
            StepKind::Set {
                language: Some((l, _)),
                ..
            } => l.as_str(),
            _ => lang,
        };
        for e in step.kind.exits() {
            work.push_back((e.step.as_str(), out_lang));
        }
    }
    at
}

/// A literal transfer target the server could not dial: a number without a trunk (an error), a
/// SIP URI whose host is a name (a warning: the transfer fails at run time, the call ends).
fn check_transfer(
    flow: &Flow,
    env: &CheckEnv,
    pos: Pos,
    target: &super::expr::Template,
    diags: &mut Vec<Diagnostic>,
) {
    match target.literal().map(super::values::transfer_target) {
        Some(Ok(super::values::TransferTarget::Number(n))) if env.trunk == Some(false) => err(
            flow,
            diags,
            pos,
            format!("the transfer to `{n}` needs a SIP trunk: add `trunk:` to the server config"),
        ),
        _ => {}
    }
}

/// Prompts, WAV formats, queues and the not-yet-available step kinds.
pub fn check_assets(flow: &Flow, env: &CheckEnv, prompts: &PromptIndex) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let langs = languages_at(flow);
    let default_langs: BTreeSet<&str> = BTreeSet::from([flow.language.as_str()]);
    let mut seen_files: BTreeSet<PathBuf> = BTreeSet::new();
    for step in flow.steps.values() {
        let step_langs = langs
            .get(step.name.as_str())
            .filter(|l| !l.is_empty())
            .unwrap_or(&default_langs);
        for list in step.kind.prompt_lists() {
            for item in list {
                let (names, pos, what): (Vec<String>, Pos, String) = match item {
                    PlayItem::Prompt { name, pos } => {
                        (vec![name.clone()], *pos, format!("prompt `{name}`"))
                    }
                    PlayItem::Digits { pos, .. } => (
                        (0..10).map(|d| format!("digits/{d}")).collect(),
                        *pos,
                        "`say: digits`".into(),
                    ),
                    PlayItem::Number { pos, .. } => (
                        (0..10)
                            .map(|d| format!("digits/{d}"))
                            .chain((0..100).map(|n| format!("numbers/{n}")))
                            .collect(),
                        *pos,
                        "`say: number`".into(),
                    ),
                };
                for lang in step_langs {
                    let mut missing = Vec::new();
                    for name in &names {
                        match prompts.resolve(lang, name) {
                            None => missing.push(name.as_str()),
                            Some(file) => {
                                if !seen_files.insert(file.path.clone()) {
                                    continue;
                                }
                                match &file.info {
                                    Err(e) => err(
                                        flow,
                                        &mut diags,
                                        pos,
                                        format!(
                                            "{} cannot be read as a PCM WAV file: {e}",
                                            file.path.display()
                                        ),
                                    ),
                                    Ok(info) => {
                                        if let Some(how) = info.conversion() {
                                            diags.push(Diagnostic::new(
                                                &flow.source,
                                                pos,
                                                Severity::Warning,
                                                format!("{} {how}", file.path.display()),
                                            ));
                                        }
                                    }
                                }
                            }
                        }
                    }
                    let dir = env.sounds_dir.display();
                    match missing.as_slice() {
                        [] => {}
                        [one] if names.len() == 1 => err(flow, &mut diags, pos, format!("{what} has no sound file for language {lang}: add {dir}/{lang}/{one}.wav or {dir}/{one}.wav")),
                        some => err(flow, &mut diags, pos, format!("{what} needs sound files for language {lang} that are missing: {} (under {dir}/{lang}/ or {dir}/)", some.join(", "))),
                    }
                }
            }
        }
        let kind = step.kind.name();
        let later = match &step.kind {
            // With queues in the server config, queue steps are routed to agents.
            StepKind::Queue(_) if env.queues.is_some() => None,
            StepKind::Queue(_) => Some("follows on_timeout (or ends)"),
            StepKind::Callback { .. } if env.queues.is_some() => None,
            StepKind::Callback { .. } => Some("follows next (or ends)"),
            _ => None,
        };
        if let StepKind::Transfer { target } = &step.kind {
            check_transfer(flow, env, step.pos, target, &mut diags);
        }
        if let Some(later) = later {
            let msg = format!("{kind} steps need queues and none are configured (add `queues:` to the server config): at run time the call {later}");
            diags.push(Diagnostic::new(
                &flow.source,
                step.pos,
                Severity::Warning,
                msg,
            ));
        }
        if let Some(queues) = &env.queues {
            let (name, pos, skills) = match &step.kind {
                StepKind::Queue(q) => (q.name.as_str(), q.name_pos, Some(&q.skill_pos)),
                StepKind::Callback {
                    queue, queue_pos, ..
                } => (queue.as_str(), *queue_pos, None),
                _ => continue,
            };
            match queues.iter().find(|q| q.name == name) {
                None => {
                    let known: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
                    err(
                        flow,
                        &mut diags,
                        pos,
                        format!(
                            "queue `{name}` is not defined in the server config{}",
                            match suggestion(name, &known) {
                                s if s.is_empty() => format!(" (it defines: {})", known.join(", ")),
                                s => s,
                            }
                        ),
                    );
                }
                Some(q) => {
                    for (skill, spos) in skills.into_iter().flatten() {
                        if !q.skills.contains(skill) {
                            err(flow, &mut diags, *spos, format!("skill `{skill}` is not defined for queue `{name}` in the server config"));
                        }
                    }
                }
            }
        }
    }
    diags
}
