//! From a YAML node tree to a [`Flow`], reporting every problem at its `line:column`.
//!
//! Errors found here make the file unusable (it is left out of the FlowSet); the caller adds
//! the checks that depend on the world outside the file (prompts, queues, other flows).

use super::check::{Diagnostic, Severity};
use super::expr::{Condition, Template};
use super::model::*;
use super::steps::parse_step;
use super::testspec::parse_tests;
use super::values;
use super::yaml::{Node, NodeKind, Pos};
use super::IvrError;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub(crate) struct Ctx<'f> {
    pub file: &'f Path,
    pub diags: Vec<Diagnostic>,
    pub fatal: bool,
    /// `digits.<step>` uses, checked once every step is known.
    pub digit_refs: Vec<(String, Pos)>,
}

impl<'f> Ctx<'f> {
    pub fn new(file: &'f Path) -> Self {
        Ctx {
            file,
            diags: Vec::new(),
            fatal: false,
            digit_refs: Vec::new(),
        }
    }

    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.fatal = true;
        self.diags
            .push(Diagnostic::new(self.file, pos, Severity::Error, message));
    }

    pub fn warn(&mut self, pos: Pos, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::new(self.file, pos, Severity::Warning, message));
    }

    /// Reports a parse error from inside a scalar at its exact column.
    pub fn invalid(&mut self, node: &Node, e: IvrError, context: &str) {
        let (pos, msg) = match e {
            IvrError::Invalid { at, message } => (node.pos_at(at), message),
            other => (node.pos, other.to_string()),
        };
        if context.is_empty() {
            self.error(pos, msg);
        } else {
            self.error(pos, format!("{context}: {msg}"));
        }
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let old = row.get(j + 1).copied().unwrap_or(0);
            let sub = prev + usize::from(ca != *cb);
            let best = sub.min(old + 1).min(row.get(j).copied().unwrap_or(0) + 1);
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = best;
            }
            prev = old;
        }
    }
    row.last().copied().unwrap_or(0)
}

/// " (did you mean `next`?)" when a known key is one or two typos away.
pub(crate) fn suggestion(word: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, _)| *d <= 2 && *d < word.len())
        .min()
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default()
}

/// The entries of a mapping whose keys were checked against `allowed`.
pub(crate) struct Fields<'a> {
    pub pos: Pos,
    entries: Vec<(&'a str, &'a Node, &'a Node)>,
}

impl<'a> Fields<'a> {
    /// The same entries, reported at `pos` (a step's name rather than its body).
    pub fn at(pos: Pos, f: Fields<'a>) -> Fields<'a> {
        Fields { pos, ..f }
    }

    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, v)| *v)
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn key_node(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, k, _)| *k)
    }

    /// All entries, for free-form maps (options, skills, vars).
    pub fn entries(&self) -> &[(&'a str, &'a Node, &'a Node)] {
        &self.entries
    }

    pub fn require(&self, cx: &mut Ctx, key: &str, what: &str) -> Option<&'a Node> {
        let v = self.get(key);
        if v.is_none() {
            cx.error(self.pos, format!("{what} needs `{key}`"));
        }
        v
    }
}

/// Reads a mapping; unknown keys are reported at the key. `allowed: None` accepts any key.
pub(crate) fn fields<'a>(
    cx: &mut Ctx,
    node: &'a Node,
    allowed: Option<&[&str]>,
    what: &str,
) -> Option<Fields<'a>> {
    let NodeKind::Map(map) = &node.kind else {
        cx.error(
            node.pos,
            format!(
                "{what} must be a mapping of `key: value`, not {}",
                node.describe()
            ),
        );
        return None;
    };
    let mut entries = Vec::new();
    for (k, v) in map {
        let Some(key) = k.as_str() else {
            cx.error(k.pos, format!("a key in {what} must be a plain word"));
            continue;
        };
        if let Some(allowed) = allowed {
            if !allowed.contains(&key) {
                cx.error(
                    k.pos,
                    format!(
                        "unknown key `{key}` in {what}{}",
                        match suggestion(key, allowed) {
                            s if s.is_empty() =>
                                format!("; expected one of: {}", allowed.join(", ")),
                            s => s,
                        }
                    ),
                );
                continue;
            }
        }
        entries.push((key, k, v));
    }
    Some(Fields {
        pos: node.pos,
        entries,
    })
}

pub(crate) fn str_of<'a>(cx: &mut Ctx, node: &'a Node, what: &str) -> Option<&'a str> {
    match &node.kind {
        NodeKind::Scalar { text, .. } => Some(text),
        _ => {
            cx.error(
                node.pos,
                format!("{what} must be a single value, not {}", node.describe()),
            );
            None
        }
    }
}

pub(crate) fn duration_of(cx: &mut Ctx, node: &Node, what: &str) -> Option<Duration> {
    let text = str_of(cx, node, what)?;
    match values::parse_duration(text) {
        Ok(d) => Some(d),
        Err(e) => {
            cx.invalid(node, e, what);
            None
        }
    }
}

pub(crate) fn int_of(cx: &mut Ctx, node: &Node, what: &str, min: i64, max: i64) -> Option<i64> {
    let text = str_of(cx, node, what)?;
    match text.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Some(n),
        _ => {
            cx.error(
                node.pos,
                format!("{what} must be a whole number from {min} to {max}, not `{text}`"),
            );
            None
        }
    }
}

pub(crate) fn bool_of(cx: &mut Ctx, node: &Node, what: &str) -> Option<bool> {
    let text = str_of(cx, node, what)?;
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Some(true),
        "false" | "no" | "off" => Some(false),
        _ => {
            cx.error(
                node.pos,
                format!("{what} must be true or false, not `{text}`"),
            );
            None
        }
    }
}

pub(crate) fn template_of(cx: &mut Ctx, node: &Node, what: &str) -> Option<Template> {
    let text = str_of(cx, node, what)?;
    match Template::parse(text) {
        Ok(t) => {
            note_digit_refs(cx, node, t.variables());
            Some(t)
        }
        Err(e) => {
            cx.invalid(node, e, what);
            None
        }
    }
}

pub(crate) fn condition_of(cx: &mut Ctx, node: &Node) -> Option<Condition> {
    let text = str_of(cx, node, "a `when` condition")?;
    match Condition::parse(text) {
        Ok(c) => {
            note_digit_refs(cx, node, c.variables().into_iter());
            Some(c)
        }
        Err(e) => {
            cx.invalid(node, e, "in this condition");
            None
        }
    }
}

fn note_digit_refs<'t>(cx: &mut Ctx, node: &Node, vars: impl Iterator<Item = (&'t str, usize)>) {
    for (name, at) in vars {
        if let Some(step) = name.strip_prefix("digits.") {
            cx.digit_refs.push((step.to_string(), node.pos_at(at)));
        }
    }
}

pub(crate) fn exit_of(cx: &mut Ctx, node: &Node, what: &str) -> Option<Exit> {
    let text = str_of(cx, node, what)?;
    if let Err(e) = values::check_name(text, "step name") {
        cx.invalid(node, e, what);
        return None;
    }
    Some(Exit {
        step: text.to_string(),
        pos: node.pos,
    })
}

fn say_item(cx: &mut Ctx, node: &Node) -> Option<PlayItem> {
    let f = fields(cx, node, Some(&["digits", "number"]), "a `say` value")?;
    match (f.get("digits"), f.get("number")) {
        (Some(v), None) => Some(PlayItem::Digits {
            value: template_of(cx, v, "`digits`")?,
            pos: v.pos,
        }),
        (None, Some(v)) => Some(PlayItem::Number {
            value: template_of(cx, v, "`number`")?,
            pos: v.pos,
        }),
        _ => {
            cx.error(
                f.pos,
                "`say` takes exactly one of `digits: …` or `number: …`",
            );
            None
        }
    }
}

/// `say: { digits: … }` or a list of such.
pub(crate) fn say_of(cx: &mut Ctx, node: &Node) -> Vec<PlayItem> {
    match &node.kind {
        NodeKind::Seq(items) => items.iter().filter_map(|n| say_item(cx, n)).collect(),
        _ => say_item(cx, node).into_iter().collect(),
    }
}

fn prompt_item(cx: &mut Ctx, node: &Node) -> Option<PlayItem> {
    match &node.kind {
        NodeKind::Scalar { text, .. } => match values::check_prompt_name(text) {
            Ok(()) => Some(PlayItem::Prompt {
                name: text.clone(),
                pos: node.pos,
            }),
            Err(e) => {
                cx.invalid(node, e, "");
                None
            }
        },
        NodeKind::Map(_) => say_item(cx, node),
        _ => {
            cx.error(
                node.pos,
                "a prompt is a name like `welcome`, or `{ digits: … }` / `{ number: … }`",
            );
            None
        }
    }
}

/// A prompt name, or a list of names and `{ digits: … }` / `{ number: … }` items.
pub(crate) fn prompts_of(cx: &mut Ctx, node: &Node) -> Vec<PlayItem> {
    match &node.kind {
        NodeKind::Seq(items) => {
            if items.is_empty() {
                cx.error(node.pos, "the prompt list is empty");
            }
            items.iter().filter_map(|n| prompt_item(cx, n)).collect()
        }
        _ => prompt_item(cx, node).into_iter().collect(),
    }
}

const FLOW_KEYS: &[&str] = &[
    "flow",
    "numbers",
    "language",
    "start",
    "steps",
    "tests",
    "answer_delay",
    "record_calls",
];

/// Parses one flow file's tree. The flow comes back even when something fatal was found (the
/// third value), as far as it parsed, so the checker can still report the rest of the problems
/// in the same pass; such a flow must never serve calls.
pub(crate) fn parse_flow(file: &Path, root: &Node) -> (Option<Flow>, Vec<Diagnostic>, bool) {
    let mut cx = Ctx::new(file);
    let flow = parse_flow_inner(&mut cx, root);
    (flow, cx.diags, cx.fatal)
}

fn parse_flow_inner(cx: &mut Ctx, root: &Node) -> Option<Flow> {
    let f = fields(cx, root, Some(FLOW_KEYS), "a flow file")?;
    let mut pos = FlowPositions::default();
    let name = f.require(cx, "flow", "a flow file").and_then(|n| {
        pos.name = n.pos;
        let s = str_of(cx, n, "`flow`")?;
        match values::check_name(s, "flow name") {
            Ok(()) => Some(s.to_string()),
            Err(e) => {
                cx.invalid(n, e, "");
                None
            }
        }
    });
    let mut numbers = Vec::new();
    match f.get("numbers") {
        None => cx.warn(f.pos, "this flow has no `numbers`: no call can reach it"),
        Some(n) => {
            let items: Vec<&Node> = match &n.kind {
                NodeKind::Seq(items) => items.iter().collect(),
                _ => vec![n],
            };
            for item in items {
                let Some(s) = str_of(cx, item, "a number") else {
                    continue;
                };
                match values::check_number(s) {
                    Ok(()) if numbers.contains(&s.to_string()) => {
                        cx.error(item.pos, format!("the number {s} is listed twice"));
                    }
                    Ok(()) => {
                        numbers.push(s.to_string());
                        pos.numbers.push(item.pos);
                    }
                    Err(e) => cx.invalid(item, e, ""),
                }
            }
        }
    }
    let language = match f.get("language") {
        None => "en".to_string(),
        Some(n) => {
            let s = str_of(cx, n, "`language`").unwrap_or("en");
            if let Err(e) = values::check_language(s) {
                cx.invalid(n, e, "");
            }
            s.to_string()
        }
    };
    let answer_delay = match f.get("answer_delay") {
        None => Duration::ZERO,
        Some(n) => {
            let d = duration_of(cx, n, "`answer_delay`").unwrap_or_default();
            if d > Duration::from_secs(60) {
                cx.error(
                    n.pos,
                    "`answer_delay` longer than 60s would make callers give up",
                );
            }
            d
        }
    };

    let record_calls = match f.get("record_calls") {
        Some(n) => bool_of(cx, n, "`record_calls`").unwrap_or(false),
        None => false,
    };

    let mut steps = BTreeMap::new();
    if let Some(steps_node) = f.require(cx, "steps", "a flow file") {
        if let Some(sf) = fields(cx, steps_node, None, "`steps`") {
            if sf.entries().is_empty() {
                cx.error(sf.pos, "`steps` is empty");
            }
            for (step_name, key, value) in sf.entries() {
                if *step_name == HANGUP {
                    cx.error(key.pos, "`hangup` is the built-in step that ends the call; give this step another name");
                    continue;
                }
                if let Err(e) = values::check_name(step_name, "step name") {
                    cx.invalid(key, e, "");
                    continue;
                }
                if let Some(kind) = parse_step(cx, step_name, key.pos, value) {
                    let step = Step {
                        name: step_name.to_string(),
                        kind,
                        pos: key.pos,
                    };
                    steps.insert(step_name.to_string(), step);
                } else {
                    pos.unparsed_steps.push(step_name.to_string());
                }
            }
        }
    }

    let start = f.require(cx, "start", "a flow file").and_then(|n| {
        pos.start = n.pos;
        str_of(cx, n, "`start`").map(str::to_string)
    });

    check_collect_refs(cx, &steps);
    let tests = match f.get("tests") {
        Some(n) => parse_tests(cx, n, &steps),
        None => Vec::new(),
    };

    Some(Flow {
        name: name?,
        source: cx.file.to_path_buf(),
        numbers,
        language,
        start: start?,
        answer_delay,
        steps,
        tests,
        pos,
        record_calls,
    })
}

/// `digits.<step>` and `pin: { account: <step> }` must name a collect step.
fn check_collect_refs(cx: &mut Ctx, steps: &BTreeMap<String, Step>) {
    let is_collect =
        |name: &str| matches!(steps.get(name).map(|s| &s.kind), Some(StepKind::Collect(_)));
    let refs = std::mem::take(&mut cx.digit_refs);
    for (name, pos) in refs {
        if !is_collect(&name) {
            cx.error(
                pos,
                format!("`digits.{name}`: there is no collect step called `{name}`"),
            );
        }
    }
    let pin_refs: Vec<(String, Pos)> = steps
        .values()
        .filter_map(|s| match &s.kind {
            StepKind::Pin(p) => match &p.account {
                PinAccount::Collected(step) => Some((step.clone(), p.account_pos)),
                PinAccount::Caller => None,
            },
            _ => None,
        })
        .collect();
    for (name, pos) in pin_refs {
        if !is_collect(&name) {
            cx.error(
                pos,
                format!("`account` must be `caller` or the name of a collect step; there is no collect step `{name}`"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(
            suggestion("nxt", &["next", "on_error"]),
            "; did you mean `next`?"
        );
        assert_eq!(suggestion("colour", &["next", "on_error"]), "");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
