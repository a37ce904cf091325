//! The `tests:` section of a flow file: scripted callers and what must happen to them.

use super::expr::check_variable;
use super::interp::{AuthState, Pin};
use super::model::*;
use super::parse::{bool_of, fields, int_of, str_of, Ctx};
use super::values;
use super::yaml::{Node, NodeKind};
use chrono::DateTime;
use std::collections::BTreeMap;

/// When a test gives no `at`: a Monday noon, UTC, so results never depend on the real clock.
pub const DEFAULT_TEST_TIME: &str = "2026-01-05T12:00:00+00:00";
const MAX_TESTS: usize = 200;

/// The words `outcome:` / `ends:` accept.
pub const OUTCOMES: &[&str] = &[
    "queue",
    "transfer",
    "callback",
    "hangup",
    "completed",
    "auth_failed",
    "voicemail",
    "no_input",
    "error",
    "caller_hangup",
];

const TEST_KEYS: &[&str] = &[
    "name", "caller", "at", "input", "expect", "accounts", "lookups",
];
const EXPECT_KEYS: &[&str] = &[
    "queue",
    "priority",
    "path_ends",
    "path",
    "prompts",
    "vars",
    "auth",
    "outcome",
    "ends",
    "transfer",
    "callback",
    "survey",
];

pub(crate) fn parse_tests(
    cx: &mut Ctx,
    node: &Node,
    steps: &BTreeMap<String, Step>,
) -> Vec<FlowTest> {
    let Some(items) = node.as_seq() else {
        cx.error(node.pos, "`tests` is a list of `- name: …` entries");
        return Vec::new();
    };
    if items.len() > MAX_TESTS {
        cx.error(node.pos, format!("more than {MAX_TESTS} tests in one flow"));
        return Vec::new();
    }
    let mut names: BTreeMap<String, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for item in items {
        if let Some(t) = parse_test(cx, item, steps) {
            if let Some(line) = names.get(&t.name) {
                cx.error(
                    t.pos,
                    format!("another test is already called `{}` (line {line})", t.name),
                );
            }
            names.insert(t.name.clone(), t.pos.line);
            out.push(t);
        }
    }
    out
}

fn strings(cx: &mut Ctx, node: &Node, what: &str) -> Option<Vec<String>> {
    let items: Vec<&Node> = match &node.kind {
        NodeKind::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    let mut out = Vec::new();
    for item in items {
        out.push(str_of(cx, item, what)?.to_string());
    }
    Some(out)
}

fn step_names(
    cx: &mut Ctx,
    node: &Node,
    what: &str,
    steps: &BTreeMap<String, Step>,
) -> Option<Vec<String>> {
    let names = strings(cx, node, what)?;
    let items: Vec<&Node> = match &node.kind {
        NodeKind::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    for (name, item) in names.iter().zip(items) {
        if name != HANGUP && !steps.contains_key(name) {
            cx.error(item.pos, format!("{what}: there is no step `{name}`"));
        }
    }
    Some(names)
}

fn parse_test(cx: &mut Ctx, node: &Node, steps: &BTreeMap<String, Step>) -> Option<FlowTest> {
    let f = fields(cx, node, Some(TEST_KEYS), "a test")?;
    let name_node = f.require(cx, "name", "a test")?;
    let name = str_of(cx, name_node, "the test `name`")?.to_string();
    let caller = match f.get("caller") {
        Some(n) => str_of(cx, n, "`caller`")?.to_string(),
        None => "anonymous".to_string(),
    };
    let at = match f.get("at") {
        Some(n) => {
            let text = str_of(cx, n, "`at`")?;
            match DateTime::parse_from_rfc3339(text.trim()) {
                Ok(t) => t,
                Err(_) => {
                    cx.error(
                        n.pos,
                        format!("`{text}` is not a date and time like 2026-11-23T10:00:00-03:00"),
                    );
                    return None;
                }
            }
        }
        None => DateTime::parse_from_rfc3339(DEFAULT_TEST_TIME).ok()?,
    };
    let mut input = Vec::new();
    if let Some(n) = f.get("input") {
        let items: Vec<&Node> = match &n.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![n],
        };
        for item in items {
            let text = str_of(cx, item, "an input")?;
            if let Some((i, c)) = text.chars().enumerate().find(|(_, c)| !values::is_dtmf(*c)) {
                cx.error(
                    item.pos_at(i),
                    format!("`{c}` is not a phone key (0-9, * or #)"),
                );
            }
            input.push(text.to_string());
        }
    }
    let expect = match f.get("expect") {
        Some(n) => parse_expect(cx, n, steps)?,
        None => {
            cx.error(
                f.pos,
                format!("test `{name}` has no `expect`, so it could never fail"),
            );
            return None;
        }
    };
    let accounts = match f.get("accounts") {
        Some(n) => Some(parse_accounts(cx, n)?),
        None => None,
    };
    let mut lookups = BTreeMap::new();
    if let Some(n) = f.get("lookups") {
        let lf = fields(cx, n, None, "`lookups`")?;
        for (step, key, value) in lf.entries() {
            if !matches!(steps.get(*step).map(|s| &s.kind), Some(StepKind::Lookup(_))) {
                cx.error(key.pos, format!("there is no lookup step `{step}`"));
                continue;
            }
            let answer = match value.as_str() {
                Some("error") if is_plain(value) => Err("stubbed error".to_string()),
                _ => Ok(to_json(value)),
            };
            lookups.insert(step.to_string(), answer);
        }
    }
    Some(FlowTest {
        name,
        pos: name_node.pos,
        caller,
        at,
        input,
        expect,
        accounts,
        lookups,
    })
}

fn is_plain(n: &Node) -> bool {
    matches!(n.kind, NodeKind::Scalar { quoted: false, .. })
}

/// A YAML answer stub as the JSON a CRM would send: unquoted numbers and booleans keep their type.
fn to_json(n: &Node) -> serde_json::Value {
    use serde_json::Value;
    match &n.kind {
        NodeKind::Null => Value::Null,
        NodeKind::Scalar { text, quoted: true } => Value::String(text.clone()),
        NodeKind::Scalar {
            text,
            quoted: false,
        } => match text.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" | "~" => Value::Null,
            t => {
                if let Ok(i) = t.parse::<i64>() {
                    Value::from(i)
                } else if let Some(f) = t.parse::<f64>().ok().filter(|f| f.is_finite()) {
                    Value::from(f)
                } else {
                    Value::String(t.to_string())
                }
            }
        },
        NodeKind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        NodeKind::Map(entries) => Value::Object(
            entries
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), to_json(v))))
                .collect(),
        ),
    }
}

fn parse_expect(cx: &mut Ctx, node: &Node, steps: &BTreeMap<String, Step>) -> Option<Expect> {
    let f = fields(cx, node, Some(EXPECT_KEYS), "`expect`")?;
    let mut e = Expect::default();
    let text = |cx: &mut Ctx, key: &str| -> Option<Option<String>> {
        match f.get(key) {
            None => Some(None),
            Some(n) => Some(Some(str_of(cx, n, &format!("`{key}`"))?.to_string())),
        }
    };
    e.queue = text(cx, "queue")?;
    e.transfer = text(cx, "transfer")?;
    e.callback = text(cx, "callback")?;
    if let Some(n) = f.get("survey") {
        e.survey = Some(match str_of(cx, n, "`survey`")?.trim() {
            "none" => None,
            _ => Some(int_of(cx, n, "`survey`", -1000, 1000)?),
        });
    }
    if let Some(n) = f.get("priority") {
        e.priority = Some(int_of(cx, n, "`priority`", i64::MIN, i64::MAX)?);
    }
    if let Some(n) = f.get("path_ends") {
        e.path_ends = Some(step_names(cx, n, "`path_ends`", steps)?);
    }
    if let Some(n) = f.get("path") {
        e.path = Some(step_names(cx, n, "`path`", steps)?);
    }
    if let Some(n) = f.get("prompts") {
        e.prompts = Some(strings(cx, n, "a prompt")?);
    }
    if let Some(n) = f.get("vars") {
        let vf = fields(cx, n, None, "`vars`")?;
        for (name, key, value) in vf.entries() {
            if let Err(err) = check_variable(name, 0) {
                cx.invalid(key, err, "");
                continue;
            }
            let v = match &value.kind {
                NodeKind::Null => String::new(),
                _ => str_of(cx, value, "an expected value")?.to_string(),
            };
            e.vars.insert(name.to_string(), v);
        }
    }
    if let Some(n) = f.get("auth") {
        let t = str_of(cx, n, "`auth`")?;
        e.auth = Some(match t {
            "none" => AuthState::None,
            "ok" => AuthState::Ok,
            "failed" => AuthState::Failed,
            "locked" => AuthState::Locked,
            _ => {
                cx.error(
                    n.pos,
                    format!("`auth` is none, ok, failed or locked, not `{t}`"),
                );
                return None;
            }
        });
    }
    if f.has("outcome") && f.has("ends") {
        if let Some(k) = f.key_node("ends") {
            cx.error(k.pos, "`ends` and `outcome` say the same thing; keep one");
        }
    }
    if let Some(n) = f.get("outcome").or_else(|| f.get("ends")) {
        let t = str_of(cx, n, "`outcome`")?;
        if !OUTCOMES.contains(&t) {
            cx.error(
                n.pos,
                format!(
                    "`{t}` is not an outcome; use one of {}",
                    OUTCOMES.join(", ")
                ),
            );
            return None;
        }
        e.outcome = Some(t.to_string());
    }
    Some(e)
}

fn parse_accounts(cx: &mut Ctx, node: &Node) -> Option<Vec<StubAccount>> {
    let Some(items) = node.as_seq() else {
        cx.error(
            node.pos,
            "`accounts` is a list of `- { id: …, phones: […], pin: … }`",
        );
        return None;
    };
    let mut out = Vec::new();
    for item in items {
        let f = fields(cx, item, None, "an account")?;
        let id_node = f.require(cx, "id", "an account")?;
        let id = str_of(cx, id_node, "`id`")?.to_string();
        let pin_node = f.require(cx, "pin", "an account")?;
        let pin = str_of(cx, pin_node, "`pin`")?.to_string();
        let mut phones = Vec::new();
        let mut locked = false;
        let mut extra = BTreeMap::new();
        for (key, key_node, value) in f.entries() {
            match *key {
                "id" | "pin" => {}
                "phone" | "phones" => phones.extend(strings(cx, value, "a phone")?),
                "locked" => locked = bool_of(cx, value, "`locked`")?,
                k if k.to_ascii_lowercase().contains("pin") => {
                    cx.error(key_node.pos, "account fields must not carry PIN data");
                }
                k => {
                    extra.insert(
                        k.to_string(),
                        str_of(cx, value, "an account field")?.to_string(),
                    );
                }
            }
        }
        out.push(StubAccount {
            id,
            phones,
            pin: Pin::new(pin),
            locked,
            fields: extra,
        });
    }
    Some(out)
}
