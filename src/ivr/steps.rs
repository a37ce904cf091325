//! Parsing each step kind: its settings under its own key, its exits beside it.

use super::expr::Template;
use super::hours::{self, Hours};
use super::model::*;
use super::parse::{
    bool_of, condition_of, duration_of, exit_of, fields, int_of, prompts_of, say_of, str_of,
    suggestion, template_of, Ctx, Fields,
};
use super::pattern::Pattern;
use super::values;
use super::yaml::{Node, NodeKind, Pos};
use std::collections::BTreeMap;
use std::time::Duration;

/// Step kinds and the exit keys each one may have beside its own key.
const KINDS: &[(&str, &[&str])] = &[
    ("play", &["next", "say"]),
    ("menu", &["on_timeout", "on_invalid"]),
    ("collect", &["next", "on_timeout", "on_invalid"]),
    ("pin", &["on_ok", "on_fail"]),
    ("branch", &["else"]),
    ("hours", &["on_open", "on_closed"]),
    ("lookup", &["next", "on_error"]),
    ("queue", &["on_timeout", "after_agent"]),
    ("callback", &["next"]),
    ("transfer", &[]),
    ("record", &["next"]),
    ("set", &["next"]),
    ("survey", &["next"]),
];

const ALL_STEP_KEYS: &[&str] = &[
    "play",
    "say",
    "menu",
    "collect",
    "pin",
    "branch",
    "hours",
    "lookup",
    "queue",
    "callback",
    "transfer",
    "record",
    "set",
    "survey",
    "after_agent",
    "next",
    "on_timeout",
    "on_invalid",
    "on_ok",
    "on_fail",
    "else",
    "on_open",
    "on_closed",
    "on_error",
];

const MAX_LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_RECORDING: Duration = Duration::from_secs(600);

fn hangup_at(pos: Pos) -> Exit {
    Exit {
        step: HANGUP.to_string(),
        pos,
    }
}

/// An exit key beside the kind key; `None` when absent, `Some(None)` when malformed.
fn exit_key(cx: &mut Ctx, f: &Fields, key: &str) -> Option<Option<Exit>> {
    f.get(key).map(|n| exit_of(cx, n, &format!("`{key}`")))
}

/// An exit that defaults to hanging up; `warn` says so when the admin left it out.
fn exit_or_hangup(cx: &mut Ctx, f: &Fields, key: &str, step: &str, warn: bool) -> Option<Exit> {
    match exit_key(cx, f, key) {
        Some(e) => e,
        None => {
            if warn {
                cx.warn(
                    f.pos,
                    format!("step `{step}` has no `{key}`: the call hangs up after it"),
                );
            }
            Some(hangup_at(f.pos))
        }
    }
}

fn required_exit(cx: &mut Ctx, f: &Fields, key: &str, step: &str) -> Option<Exit> {
    match exit_key(cx, f, key) {
        Some(e) => e,
        None => {
            cx.error(f.pos, format!("step `{step}` needs `{key}`"));
            None
        }
    }
}

pub(crate) fn parse_step(cx: &mut Ctx, name: &str, name_pos: Pos, node: &Node) -> Option<StepKind> {
    let f = fields(cx, node, None, &format!("step `{name}`"))?;
    let f = Fields::at(name_pos, f);
    let kinds: Vec<&str> = f
        .entries()
        .iter()
        .map(|(k, _, _)| *k)
        .filter(|k| KINDS.iter().any(|(kind, _)| kind == k))
        .collect();
    let kind = match kinds.as_slice() {
        [] if f.has("say") => "play",
        [] => {
            let names: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
            cx.error(
                name_pos,
                format!(
                    "step `{name}` does nothing: give it one of {}",
                    names.join(", ")
                ),
            );
            return None;
        }
        [one] => *one,
        [first, second, ..] => {
            let pos = f.key_node(second).map(|k| k.pos).unwrap_or(name_pos);
            cx.error(
                pos,
                format!("step `{name}` is already a `{first}` step; one step does one thing"),
            );
            return None;
        }
    };
    let allowed = KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, a)| *a)
        .unwrap_or(&[]);
    for (key, key_node, _) in f.entries() {
        if *key == kind || allowed.contains(key) {
            continue;
        }
        let exits = if allowed.is_empty() {
            "it has no exits".to_string()
        } else {
            format!("it leaves by {}", allowed.join(", "))
        };
        if ALL_STEP_KEYS.contains(key) {
            cx.error(
                key_node.pos,
                format!("`{key}` does not apply to a {kind} step ({exits})"),
            );
        } else {
            let mut known: Vec<&str> = vec![kind];
            known.extend(allowed);
            cx.error(
                key_node.pos,
                format!(
                    "unknown key `{key}` in step `{name}`{}",
                    match suggestion(key, &known) {
                        s if s.is_empty() => format!("; a {kind} step takes {}", known.join(", ")),
                        s => s,
                    }
                ),
            );
        }
    }
    let body = f.get(kind);
    match kind {
        "play" => {
            let mut prompts = body.map(|b| prompts_of(cx, b)).unwrap_or_default();
            if let Some(say) = f.get("say") {
                prompts.extend(say_of(cx, say));
            }
            let next = exit_or_hangup(cx, &f, "next", name, true)?;
            Some(StepKind::Play { prompts, next })
        }
        "menu" => menu(cx, &f, body?, name).map(StepKind::Menu),
        "collect" => collect(cx, &f, body?, name).map(StepKind::Collect),
        "pin" => pin(cx, &f, body?, name).map(StepKind::Pin),
        "branch" => branch(cx, &f, body?, name),
        "hours" => hours_step(cx, &f, body?, name),
        "lookup" => lookup(cx, &f, body?, name).map(StepKind::Lookup),
        "queue" => queue(cx, &f, body?).map(StepKind::Queue),
        "callback" => callback(cx, &f, body?, name),
        "transfer" => transfer(cx, body?),
        "record" => record(cx, &f, body?, name).map(StepKind::Record),
        "set" => set(cx, &f, body?, name),
        "survey" => survey(cx, &f, body?, name).map(StepKind::Survey),
        _ => None,
    }
}

fn opt_prompts(cx: &mut Ctx, f: &Fields, key: &str) -> Vec<PlayItem> {
    f.get(key).map(|n| prompts_of(cx, n)).unwrap_or_default()
}

fn opt_duration(cx: &mut Ctx, f: &Fields, key: &str, default: Duration) -> Option<Duration> {
    match f.get(key) {
        None => Some(default),
        Some(n) => {
            let d = duration_of(cx, n, &format!("`{key}`"))?;
            if d.is_zero() {
                cx.error(n.pos, format!("`{key}` must be longer than 0s"));
            }
            Some(d)
        }
    }
}

fn opt_count(cx: &mut Ctx, f: &Fields, key: &str, default: u32, min: i64, max: i64) -> Option<u32> {
    match f.get(key) {
        None => Some(default),
        Some(n) => int_of(cx, n, &format!("`{key}`"), min, max).and_then(|v| u32::try_from(v).ok()),
    }
}

fn menu(cx: &mut Ctx, step: &Fields, body: &Node, name: &str) -> Option<Menu> {
    const KEYS: &[&str] = &["prompt", "options", "timeout", "retries", "invalid_prompt"];
    let f = fields(cx, body, Some(KEYS), "a menu")?;
    let prompt = f
        .require(cx, "prompt", "a menu")
        .map(|n| prompts_of(cx, n))
        .unwrap_or_default();
    let mut options = BTreeMap::new();
    if let Some(opts) = f.require(cx, "options", "a menu") {
        let of = fields(cx, opts, None, "`options`")?;
        if of.entries().is_empty() {
            cx.error(of.pos, "a menu needs at least one option");
        }
        for (key, key_node, target) in of.entries() {
            let mut chars = key.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if values::is_dtmf(c) => {
                    if let Some(exit) = exit_of(cx, target, "an option") {
                        options.insert(c, exit);
                    }
                }
                _ => cx.error(
                    key_node.pos,
                    format!("menu option `{key}` must be one key: 0-9, * or #"),
                ),
            }
        }
    }
    let timeout = opt_duration(cx, &f, "timeout", Duration::from_secs(5))?;
    let retries = opt_count(cx, &f, "retries", 2, 0, 10)?;
    let invalid_prompt = opt_prompts(cx, &f, "invalid_prompt");
    let on_timeout = exit_or_hangup(cx, step, "on_timeout", name, false)?;
    let on_invalid = match exit_key(cx, step, "on_invalid") {
        Some(e) => e?,
        None => on_timeout.clone(),
    };
    Some(Menu {
        prompt,
        options,
        timeout,
        retries,
        invalid_prompt,
        on_timeout,
        on_invalid,
    })
}

fn survey(cx: &mut Ctx, step: &Fields, body: &Node, name: &str) -> Option<Survey> {
    const KEYS: &[&str] = &[
        "prompt",
        "options",
        "bad_below",
        "timeout",
        "retries",
        "invalid_prompt",
    ];
    let f = fields(cx, body, Some(KEYS), "a survey")?;
    let prompt = f
        .require(cx, "prompt", "a survey")
        .map(|n| prompts_of(cx, n))
        .unwrap_or_default();
    let mut options = BTreeMap::new();
    if let Some(opts) = f.require(cx, "options", "a survey") {
        let of = fields(cx, opts, None, "`options`")?;
        if of.entries().is_empty() {
            cx.error(of.pos, "a survey needs at least one option");
        }
        for (key, key_node, score) in of.entries() {
            let mut chars = key.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if values::is_dtmf(c) => {
                    if let Some(v) =
                        int_of(cx, score, &format!("the score of `{key}`"), -1000, 1000)
                    {
                        options.insert(c, v);
                    }
                }
                _ => cx.error(
                    key_node.pos,
                    format!("survey option `{key}` must be one key: 0-9, * or #"),
                ),
            }
        }
    }
    let bad_below = match f.get("bad_below") {
        Some(n) => Some(int_of(cx, n, "`bad_below`", -1000, 1000)?),
        None => None,
    };
    let timeout = opt_duration(cx, &f, "timeout", Duration::from_secs(5))?;
    let retries = opt_count(cx, &f, "retries", 1, 0, 10)?;
    let invalid_prompt = opt_prompts(cx, &f, "invalid_prompt");
    let next = exit_or_hangup(cx, step, "next", name, false)?;
    Some(Survey {
        prompt,
        options,
        bad_below,
        timeout,
        retries,
        invalid_prompt,
        next,
    })
}

fn digit_rules(cx: &mut Ctx, f: &Fields, default_digits: &str) -> Option<DigitRules> {
    let (min, max) = match f.get("digits") {
        None => values::parse_digit_range(default_digits).ok()?,
        Some(n) => {
            let text = str_of(cx, n, "`digits`")?;
            match values::parse_digit_range(text) {
                Ok(r) => r,
                Err(e) => {
                    cx.invalid(n, e, "`digits`");
                    return None;
                }
            }
        }
    };
    let terminator = match f.get("terminator") {
        None => Some('#'),
        Some(n) if matches!(n.kind, NodeKind::Null) => None,
        Some(n) => {
            let text = str_of(cx, n, "`terminator`")?;
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (None, _) => None,
                (Some(c @ ('#' | '*')), None) => Some(c),
                _ => {
                    cx.error(
                        n.pos,
                        format!("`terminator` must be \"#\" or \"*\", not `{text}`"),
                    );
                    return None;
                }
            }
        }
    };
    let timeout = opt_duration(cx, f, "timeout", Duration::from_secs(5))?;
    let inter_digit_timeout = opt_duration(cx, f, "inter_digit_timeout", Duration::from_secs(3))?;
    Some(DigitRules {
        min,
        max,
        terminator,
        timeout,
        inter_digit_timeout,
    })
}

fn collect(cx: &mut Ctx, step: &Fields, body: &Node, name: &str) -> Option<Collect> {
    const KEYS: &[&str] = &[
        "prompt",
        "digits",
        "terminator",
        "timeout",
        "inter_digit_timeout",
        "pattern",
        "retries",
        "invalid_prompt",
    ];
    let f = fields(cx, body, Some(KEYS), "a collect")?;
    let prompt = opt_prompts(cx, &f, "prompt");
    let rules = digit_rules(cx, &f, "1-16")?;
    let pattern = match f.get("pattern") {
        None => None,
        Some(n) => {
            let text = str_of(cx, n, "`pattern`")?;
            match Pattern::parse(text) {
                Ok(p) => Some(p),
                Err(e) => {
                    cx.invalid(n, e, "`pattern`");
                    return None;
                }
            }
        }
    };
    let retries = opt_count(cx, &f, "retries", 2, 0, 10)?;
    let invalid_prompt = opt_prompts(cx, &f, "invalid_prompt");
    let next = exit_or_hangup(cx, step, "next", name, true)?;
    let on_timeout = exit_or_hangup(cx, step, "on_timeout", name, false)?;
    let on_invalid = match exit_key(cx, step, "on_invalid") {
        Some(e) => e?,
        None => on_timeout.clone(),
    };
    Some(Collect {
        prompt,
        rules,
        pattern,
        retries,
        invalid_prompt,
        next,
        on_timeout,
        on_invalid,
    })
}

fn pin(cx: &mut Ctx, step: &Fields, body: &Node, name: &str) -> Option<PinStep> {
    const KEYS: &[&str] = &[
        "account",
        "prompt",
        "digits",
        "terminator",
        "timeout",
        "inter_digit_timeout",
        "attempts",
        "retry_prompt",
    ];
    let f = fields(cx, body, Some(KEYS), "a pin")?;
    let account_node = f.require(cx, "account", "a pin")?;
    let account = match str_of(cx, account_node, "`account`")? {
        "caller" => PinAccount::Caller,
        other => PinAccount::Collected(other.to_string()),
    };
    let prompt = f
        .require(cx, "prompt", "a pin")
        .map(|n| prompts_of(cx, n))
        .unwrap_or_default();
    let rules = digit_rules(cx, &f, "4-8")?;
    let attempts = opt_count(cx, &f, "attempts", 3, 1, 10)?;
    let retry_prompt = opt_prompts(cx, &f, "retry_prompt");
    let on_ok = required_exit(cx, step, "on_ok", name)?;
    let on_fail = exit_or_hangup(cx, step, "on_fail", name, false)?;
    Some(PinStep {
        account,
        account_pos: account_node.pos,
        prompt,
        rules,
        attempts,
        retry_prompt,
        on_ok,
        on_fail,
    })
}

fn branch(cx: &mut Ctx, step: &Fields, body: &Node, name: &str) -> Option<StepKind> {
    let Some(items) = body.as_seq() else {
        cx.error(
            body.pos,
            "`branch` is a list of `- when: …` / `next: …` entries",
        );
        return None;
    };
    if items.is_empty() {
        cx.error(body.pos, "`branch` has no conditions");
    }
    let mut arms = Vec::new();
    for item in items {
        let Some(af) = fields(cx, item, Some(&["when", "next"]), "a branch entry") else {
            continue;
        };
        let when = af
            .require(cx, "when", "a branch entry")
            .and_then(|n| condition_of(cx, n));
        let next = af
            .require(cx, "next", "a branch entry")
            .and_then(|n| exit_of(cx, n, "`next`"));
        if let (Some(w), Some(n)) = (when, next) {
            arms.push((w, n));
        }
    }
    let otherwise = match exit_key(cx, step, "else") {
        Some(e) => e?,
        None => {
            cx.warn(
                step.pos,
                format!("step `{name}` has no `else`: when no condition matches the call hangs up"),
            );
            hangup_at(step.pos)
        }
    };
    Some(StepKind::Branch { arms, otherwise })
}

fn hours_step(cx: &mut Ctx, step: &Fields, body: &Node, name: &str) -> Option<StepKind> {
    let f = fields(
        cx,
        body,
        Some(&["timezone", "open", "closed_dates"]),
        "`hours`",
    )?;
    let tz_node = f.require(cx, "timezone", "`hours`")?;
    let timezone = match hours::parse_timezone(str_of(cx, tz_node, "`timezone`")?) {
        Ok(tz) => Some(tz),
        Err(e) => {
            cx.invalid(tz_node, e, "");
            None
        }
    };
    let mut week: [Vec<hours::Range>; 7] = Default::default();
    let mut seen: [Option<&str>; 7] = [None; 7];
    if let Some(open) = f.require(cx, "open", "`hours`") {
        if let Some(of) = fields(cx, open, None, "`open`") {
            for (days_text, key, ranges_node) in of.entries() {
                let days = match hours::parse_days(days_text) {
                    Ok(d) => d,
                    Err(e) => {
                        cx.invalid(key, e, "");
                        continue;
                    }
                };
                let Some(ranges_text) = str_of(cx, ranges_node, "opening hours") else {
                    continue;
                };
                let ranges = match hours::parse_ranges(ranges_text) {
                    Ok(r) => r,
                    Err(e) => {
                        cx.invalid(ranges_node, e, "");
                        continue;
                    }
                };
                for d in days {
                    if let (Some(slot), Some(seen_at)) = (week.get_mut(d), seen.get_mut(d)) {
                        if let Some(first) = seen_at {
                            cx.error(
                                key.pos,
                                format!(
                                    "`{}` already has opening hours from `{first}`",
                                    hours::DAY_NAMES.get(d).copied().unwrap_or("that day"),
                                ),
                            );
                        }
                        *seen_at = Some(days_text);
                        *slot = ranges.clone();
                    }
                }
            }
        }
    }
    let mut closed_dates = std::collections::BTreeSet::new();
    if let Some(dates) = f.get("closed_dates") {
        match dates.as_seq() {
            Some(items) => {
                for item in items {
                    let Some(text) = str_of(cx, item, "a closed date") else {
                        continue;
                    };
                    match hours::parse_date(text) {
                        Ok(d) => {
                            closed_dates.insert(d);
                        }
                        Err(e) => cx.invalid(item, e, ""),
                    }
                }
            }
            None => cx.error(dates.pos, "`closed_dates` is a list like [\"2026-12-25\"]"),
        }
    }
    let on_open = required_exit(cx, step, "on_open", name);
    let on_closed = required_exit(cx, step, "on_closed", name);
    Some(StepKind::Hours {
        hours: Hours {
            timezone: timezone?,
            week,
            closed_dates,
        },
        on_open: on_open?,
        on_closed: on_closed?,
    })
}

fn lookup(cx: &mut Ctx, step: &Fields, body: &Node, name: &str) -> Option<Lookup> {
    let (url_node, f) = match &body.kind {
        NodeKind::Scalar { .. } => (body, None),
        _ => {
            let f = fields(
                cx,
                body,
                Some(&["url", "method", "body", "timeout"]),
                "a lookup",
            )?;
            (f.require(cx, "url", "a lookup")?, Some(f))
        }
    };
    let url = template_of(cx, url_node, "`url`")?;
    let src = url.source().to_ascii_lowercase();
    if !(src.starts_with("http://") || src.starts_with("https://")) {
        cx.error(
            url_node.pos,
            "a lookup `url` must start with http:// or https://",
        );
    }
    let mut method = "GET".to_string();
    let mut body_t: Option<Template> = None;
    let mut timeout = Duration::from_secs(2);
    if let Some(f) = f {
        if let Some(n) = f.get("method") {
            let m = str_of(cx, n, "`method`")?.to_ascii_uppercase();
            if m != "GET" && m != "POST" {
                cx.error(n.pos, format!("`method` must be GET or POST, not `{m}`"));
            }
            method = m;
        }
        if let Some(n) = f.get("body") {
            body_t = Some(template_of(cx, n, "`body`")?);
            if f.get("method").is_none() {
                method = "POST".to_string();
            }
        }
        timeout = opt_duration(cx, &f, "timeout", timeout)?;
        if timeout > MAX_LOOKUP_TIMEOUT {
            if let Some(n) = f.get("timeout") {
                cx.error(
                    n.pos,
                    "a lookup `timeout` longer than 30s keeps the caller in silence",
                );
            }
        }
    }
    let next = exit_or_hangup(cx, step, "next", name, true)?;
    let on_error = match exit_key(cx, step, "on_error") {
        Some(e) => e?,
        None => next.clone(),
    };
    Some(Lookup {
        method,
        url,
        body: body_t,
        timeout,
        next,
        on_error,
    })
}

fn queue(cx: &mut Ctx, step: &Fields, body: &Node) -> Option<QueueStep> {
    let (name_node, f) = match &body.kind {
        NodeKind::Scalar { .. } => (body, None),
        _ => {
            let keys = ["name", "priority", "skills", "timeout"];
            let f = fields(cx, body, Some(&keys), "a queue")?;
            (f.require(cx, "name", "a queue")?, Some(f))
        }
    };
    let name = str_of(cx, name_node, "the queue name")?;
    if let Err(e) = values::check_name(name, "queue name") {
        cx.invalid(name_node, e, "");
    }
    let mut q = QueueStep {
        name: name.to_string(),
        name_pos: name_node.pos,
        priority: Priority::Fixed(0),
        skills: BTreeMap::new(),
        skill_pos: BTreeMap::new(),
        timeout: None,
        on_timeout: exit_or_hangup(cx, step, "on_timeout", name, false)?,
        after_agent: match exit_key(cx, step, "after_agent") {
            Some(e) => Some(e?),
            None => None,
        },
    };
    let Some(f) = f else { return Some(q) };
    if let Some(n) = f.get("priority") {
        let text = str_of(cx, n, "`priority`")?;
        q.priority = match text.trim().parse::<i64>() {
            Ok(p) => Priority::Fixed(p),
            Err(_) => {
                let t = template_of(cx, n, "`priority`")?;
                if t.literal().is_some() {
                    cx.error(n.pos, format!("`priority` must be a number or a template like \"{{{{ account.priority }}}}\", not `{text}`"));
                }
                Priority::Template(t)
            }
        };
    }
    if let Some(n) = f.get("skills") {
        let sf = fields(cx, n, None, "`skills`")?;
        for (skill, key, level) in sf.entries() {
            if let Err(e) = values::check_name(skill, "skill name") {
                cx.invalid(key, e, "");
                continue;
            }
            if let Some(l) = int_of(cx, level, &format!("skill `{skill}`"), 1, 5) {
                q.skills.insert(skill.to_string(), l as u8);
                q.skill_pos.insert(skill.to_string(), key.pos);
            }
        }
    }
    if let Some(n) = f.get("timeout") {
        q.timeout = Some(duration_of(cx, n, "`timeout`")?);
    }
    Some(q)
}

fn callback(cx: &mut Ctx, step: &Fields, body: &Node, name: &str) -> Option<StepKind> {
    let queue_node = match &body.kind {
        NodeKind::Scalar { .. } => body,
        _ => {
            let f = fields(cx, body, Some(&["queue"]), "a callback")?;
            f.require(cx, "queue", "a callback")?
        }
    };
    let queue = str_of(cx, queue_node, "the callback queue")?;
    if let Err(e) = values::check_name(queue, "queue name") {
        cx.invalid(queue_node, e, "");
    }
    Some(StepKind::Callback {
        queue: queue.to_string(),
        queue_pos: queue_node.pos,
        next: exit_or_hangup(cx, step, "next", name, true)?,
    })
}

fn transfer(cx: &mut Ctx, body: &Node) -> Option<StepKind> {
    let target_node = match &body.kind {
        NodeKind::Scalar { .. } => body,
        _ => {
            let f = fields(cx, body, Some(&["target"]), "a transfer")?;
            f.require(cx, "target", "a transfer")?
        }
    };
    let target = template_of(cx, target_node, "the transfer target")?;
    if let Some(lit) = target.literal() {
        if let Err(e) = values::transfer_target(lit) {
            cx.error(target_node.pos, e);
        }
    }
    Some(StepKind::Transfer { target })
}

fn record(cx: &mut Ctx, step: &Fields, body: &Node, name: &str) -> Option<Record> {
    let f = fields(cx, body, Some(&["prompt", "max", "beep"]), "a record")?;
    let prompt = opt_prompts(cx, &f, "prompt");
    let max = opt_duration(cx, &f, "max", Duration::from_secs(120))?;
    if max > MAX_RECORDING {
        if let Some(n) = f.get("max") {
            cx.error(n.pos, "a recording `max` may be at most 10m");
        }
    }
    let beep = match f.get("beep") {
        None => true,
        Some(n) => bool_of(cx, n, "`beep`")?,
    };
    let next = exit_or_hangup(cx, step, "next", name, true)?;
    Some(Record {
        prompt,
        max,
        beep,
        next,
    })
}

fn set(cx: &mut Ctx, step: &Fields, body: &Node, name: &str) -> Option<StepKind> {
    let f = fields(cx, body, None, "`set`")?;
    let mut language = None;
    let mut vars = Vec::new();
    for (key, key_node, value) in f.entries() {
        if *key == "language" {
            let Some(text) = str_of(cx, value, "`language`") else {
                continue;
            };
            match values::check_language(text) {
                Ok(()) => language = Some((text.to_string(), value.pos)),
                Err(e) => cx.invalid(value, e, ""),
            }
        } else if let Some(var) = key.strip_prefix("vars.") {
            let ok = !var.is_empty()
                && var.split('.').all(|p| {
                    !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                });
            if !ok {
                cx.error(
                    key_node.pos,
                    format!("`{key}` is not a variable name like vars.reason"),
                );
                continue;
            }
            if let Some(t) = template_of(cx, value, &format!("`{key}`")) {
                vars.push((key.to_string(), t));
            }
        } else {
            cx.error(
                key_node.pos,
                format!("`set` can change `language` or `vars.<name>`, not `{key}`"),
            );
        }
    }
    Some(StepKind::Set {
        language,
        vars,
        next: exit_or_hangup(cx, step, "next", name, true)?,
    })
}
