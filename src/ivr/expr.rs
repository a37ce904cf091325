//! Templates (`"…{{ account.id }}…"`) and branch conditions (`account.tier == 'gold' and …`).
//!
//! Both are parsed once when the flow loads; a syntax error carries the character index inside
//! the string so the checker reports the exact column. Evaluation never fails: an unknown
//! variable is the empty string, the way an admin expects a blank field to behave.

use super::IvrError;
use std::collections::BTreeMap;

/// Variables a template or condition may name. `digits`, `account` and `vars` need a field.
const SINGLE_ROOTS: &[&str] = &["caller", "dialed", "call_id", "language", "recording"];
const FIELD_ROOTS: &[&str] = &["digits", "account", "vars"];
const MAX_SOURCE_CHARS: usize = 2048;
const MAX_RENDERED_CHARS: usize = 8192;
const MAX_DEPTH: usize = 32;

fn invalid(at: usize, message: impl Into<String>) -> IvrError {
    IvrError::Invalid {
        at,
        message: message.into(),
    }
}

/// Checks a variable path such as `account.tier` or `vars.order.status`.
pub(crate) fn check_variable(name: &str, at: usize) -> Result<(), IvrError> {
    let mut parts = name.split('.');
    let root = parts.next().unwrap_or_default();
    let has_field = name.contains('.');
    if SINGLE_ROOTS.contains(&root) && !has_field {
        return Ok(());
    }
    if FIELD_ROOTS.contains(&root) {
        if has_field && parts.all(|p| !p.is_empty()) {
            return Ok(());
        }
        return Err(invalid(
            at,
            format!("`{root}` needs a field, like {root}.name"),
        ));
    }
    Err(invalid(
        at,
        format!(
            "unknown variable `{name}`: use caller, dialed, call_id, language, recording, \
             digits.<step>, account.<field> or vars.<name>"
        ),
    ))
}

fn is_var_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    /// The variable name and the character index where it starts in the source.
    Var(String, usize),
}

/// A string with `{{ variable }}` placeholders.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, IvrError> {
        let chars: Vec<char> = source.chars().collect();
        if chars.len() > MAX_SOURCE_CHARS {
            return Err(invalid(
                0,
                format!("longer than {MAX_SOURCE_CHARS} characters"),
            ));
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        while i < chars.len() {
            let (c, next) = (chars.get(i).copied(), chars.get(i + 1).copied());
            if c == Some('}') && next == Some('}') {
                return Err(invalid(i, "`}}` without an opening `{{`"));
            }
            if !(c == Some('{') && next == Some('{')) {
                text.extend(c);
                i += 1;
                continue;
            }
            let open = i;
            i += 2;
            while chars.get(i).is_some_and(|c| *c == ' ') {
                i += 1;
            }
            let start = i;
            while chars.get(i).copied().is_some_and(is_var_char) {
                i += 1;
            }
            let name: String = chars.get(start..i).unwrap_or_default().iter().collect();
            while chars.get(i).is_some_and(|c| *c == ' ') {
                i += 1;
            }
            if name.is_empty() {
                return Err(match chars.get(i) {
                    None => invalid(open, "`{{` is never closed with `}}`"),
                    Some(c) => invalid(i, format!("expected a variable name, found `{c}`")),
                });
            }
            match (chars.get(i), chars.get(i + 1)) {
                (Some('}'), Some('}')) => {}
                (None, _) => return Err(invalid(open, "`{{` is never closed with `}}`")),
                (Some(c), _) => {
                    return Err(invalid(
                        i,
                        format!("expected `}}}}` after `{name}`, found `{c}`"),
                    ))
                }
            }
            check_variable(&name, start)?;
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Var(name, start));
            i += 2;
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The text when the template has no placeholders.
    pub fn literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Variables used, with the character index of each in the source.
    pub fn variables(&self) -> impl Iterator<Item = (&str, usize)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(name, at) => Some((name.as_str(), *at)),
            Part::Text(_) => None,
        })
    }

    pub fn render(&self, vars: &BTreeMap<String, String>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(name, _) => {
                    out.push_str(vars.get(name).map(String::as_str).unwrap_or(""))
                }
            }
            if out.len() > MAX_RENDERED_CHARS {
                let mut cut = MAX_RENDERED_CHARS;
                while !out.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.truncate(cut);
                break;
            }
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Str(String),
    Num(String),
    Word(String),
    Sym(&'static str),
}

fn tokenize(source: &str) -> Result<Vec<(Tok, usize)>, IvrError> {
    let chars: Vec<char> = source.chars().collect();
    if chars.len() > MAX_SOURCE_CHARS {
        return Err(invalid(
            0,
            format!("longer than {MAX_SOURCE_CHARS} characters"),
        ));
    }
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            i += 1;
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(invalid(start, "this string is never closed")),
                    Some('\\') if matches!(chars.get(i + 1), Some(q) if *q == c || *q == '\\') => {
                        s.extend(chars.get(i + 1));
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            out.push((Tok::Str(s), start));
            continue;
        }
        let two: String = chars.get(i..i + 2).unwrap_or_default().iter().collect();
        let sym2 = ["==", "!=", "<=", ">="].into_iter().find(|s| *s == two);
        if let Some(s) = sym2 {
            out.push((Tok::Sym(s), start));
            i += 2;
            continue;
        }
        let sym1 = match c {
            '(' => Some("("),
            ')' => Some(")"),
            '[' => Some("["),
            ']' => Some("]"),
            ',' => Some(","),
            '<' => Some("<"),
            '>' => Some(">"),
            _ => None,
        };
        if let Some(s) = sym1 {
            out.push((Tok::Sym(s), start));
            i += 1;
            continue;
        }
        if c == '=' {
            return Err(invalid(start, "use `==` to compare"));
        }
        let numeric_start = c.is_ascii_digit()
            || (matches!(c, '-' | '+') && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        if numeric_start {
            i += 1;
            while chars
                .get(i)
                .is_some_and(|c| c.is_ascii_digit() || *c == '.')
            {
                i += 1;
            }
            let n: String = chars.get(start..i).unwrap_or_default().iter().collect();
            if n.parse::<f64>().is_err() {
                return Err(invalid(start, format!("`{n}` is not a number")));
            }
            out.push((Tok::Num(n), start));
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            while chars.get(i).copied().is_some_and(is_var_char) {
                i += 1;
            }
            let w: String = chars.get(start..i).unwrap_or_default().iter().collect();
            out.push((Tok::Word(w), start));
            continue;
        }
        return Err(invalid(start, format!("unexpected `{c}`")));
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    StartsWith,
    EndsWith,
    Contains,
}

#[derive(Clone, Debug, PartialEq)]
enum Operand {
    Lit(String),
    Var(String, usize),
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Operand, Op, Operand),
    In(Operand, Vec<Operand>),
    Truthy(Operand),
}

/// A branch condition, parsed once at load.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    source: String,
    expr: Expr,
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    i: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|(t, _)| t)
    }
    fn at(&self) -> usize {
        self.toks.get(self.i).map(|(_, a)| *a).unwrap_or(self.end)
    }
    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }
    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Tok::Sym(x)) if *x == s)
    }
    fn expect_sym(&mut self, s: &str) -> Result<(), IvrError> {
        if self.is_sym(s) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{s}`")))
        }
    }
    fn unexpected(&self, wanted: &str) -> IvrError {
        match self.toks.get(self.i) {
            None => invalid(self.end, format!("expected {wanted} at the end")),
            Some((t, at)) => {
                let found = match t {
                    Tok::Str(s) => format!("'{s}'"),
                    Tok::Num(n) | Tok::Word(n) => n.clone(),
                    Tok::Sym(s) => s.to_string(),
                };
                invalid(*at, format!("expected {wanted}, found `{found}`"))
            }
        }
    }

    fn or(&mut self, depth: usize) -> Result<Expr, IvrError> {
        let mut left = self.and(depth)?;
        while self.is_word("or") {
            self.i += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and(depth)?));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, IvrError> {
        let mut left = self.not(depth)?;
        while self.is_word("and") {
            self.i += 1;
            left = Expr::And(Box::new(left), Box::new(self.not(depth)?));
        }
        Ok(left)
    }

    fn not(&mut self, depth: usize) -> Result<Expr, IvrError> {
        if depth > MAX_DEPTH {
            return Err(invalid(self.at(), "the condition is nested too deeply"));
        }
        if self.is_word("not") {
            self.i += 1;
            return Ok(Expr::Not(Box::new(self.not(depth + 1)?)));
        }
        if self.is_sym("(") {
            self.i += 1;
            let e = self.or(depth + 1)?;
            self.expect_sym(")")?;
            return Ok(e);
        }
        self.comparison()
    }

    fn operand(&mut self) -> Result<Operand, IvrError> {
        let at = self.at();
        let op = match self.peek() {
            Some(Tok::Str(s)) | Some(Tok::Num(s)) => Operand::Lit(s.clone()),
            Some(Tok::Word(w)) if w == "true" || w == "false" => Operand::Lit(w.clone()),
            Some(Tok::Word(w))
                if ![
                    "and",
                    "or",
                    "not",
                    "in",
                    "starts_with",
                    "ends_with",
                    "contains",
                ]
                .contains(&w.as_str()) =>
            {
                check_variable(w, at)?;
                Operand::Var(w.clone(), at)
            }
            _ => return Err(self.unexpected("a variable, a 'string' or a number")),
        };
        self.i += 1;
        Ok(op)
    }

    fn comparison(&mut self) -> Result<Expr, IvrError> {
        let left = self.operand()?;
        let op = match self.peek() {
            Some(Tok::Sym("==")) => Some(Op::Eq),
            Some(Tok::Sym("!=")) => Some(Op::Ne),
            Some(Tok::Sym("<")) => Some(Op::Lt),
            Some(Tok::Sym("<=")) => Some(Op::Le),
            Some(Tok::Sym(">")) => Some(Op::Gt),
            Some(Tok::Sym(">=")) => Some(Op::Ge),
            Some(Tok::Word(w)) if w == "starts_with" => Some(Op::StartsWith),
            Some(Tok::Word(w)) if w == "ends_with" => Some(Op::EndsWith),
            Some(Tok::Word(w)) if w == "contains" => Some(Op::Contains),
            _ => None,
        };
        if let Some(op) = op {
            self.i += 1;
            let right = self.operand()?;
            return Ok(Expr::Cmp(left, op, right));
        }
        if self.is_word("in") {
            self.i += 1;
            self.expect_sym("[")?;
            let mut items = Vec::new();
            if !self.is_sym("]") {
                loop {
                    items.push(self.operand()?);
                    if self.is_sym(",") {
                        self.i += 1;
                        continue;
                    }
                    break;
                }
            }
            self.expect_sym("]")?;
            return Ok(Expr::In(left, items));
        }
        Ok(Expr::Truthy(left))
    }
}

fn value<'a>(op: &'a Operand, vars: &'a BTreeMap<String, String>) -> &'a str {
    match op {
        Operand::Lit(s) => s,
        Operand::Var(name, _) => vars.get(name).map(String::as_str).unwrap_or(""),
    }
}

fn number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Non-empty and not "false" or "0".
pub fn truthy(s: &str) -> bool {
    let s = s.trim();
    !(s.is_empty() || s.eq_ignore_ascii_case("false") || number(s) == Some(0.0))
}

fn equal(a: &str, b: &str) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn eval(e: &Expr, vars: &BTreeMap<String, String>) -> bool {
    match e {
        Expr::Or(a, b) => eval(a, vars) || eval(b, vars),
        Expr::And(a, b) => eval(a, vars) && eval(b, vars),
        Expr::Not(a) => !eval(a, vars),
        Expr::Truthy(a) => truthy(value(a, vars)),
        Expr::In(a, items) => {
            let v = value(a, vars);
            items.iter().any(|i| equal(v, value(i, vars)))
        }
        Expr::Cmp(a, op, b) => {
            let (x, y) = (value(a, vars), value(b, vars));
            let ord = match (number(x), number(y)) {
                (Some(p), Some(q)) => p.partial_cmp(&q),
                _ => Some(x.cmp(y)),
            };
            use std::cmp::Ordering::*;
            match op {
                Op::Eq => equal(x, y),
                Op::Ne => !equal(x, y),
                Op::Lt => ord == Some(Less),
                Op::Le => matches!(ord, Some(Less | Equal)),
                Op::Gt => ord == Some(Greater),
                Op::Ge => matches!(ord, Some(Greater | Equal)),
                Op::StartsWith => x.starts_with(y),
                Op::EndsWith => x.ends_with(y),
                Op::Contains => x.contains(y),
            }
        }
    }
}

fn collect_vars<'a>(e: &'a Expr, out: &mut Vec<(&'a str, usize)>) {
    let push = |o: &'a Operand, out: &mut Vec<(&'a str, usize)>| {
        if let Operand::Var(n, at) = o {
            out.push((n.as_str(), *at));
        }
    };
    match e {
        Expr::Or(a, b) | Expr::And(a, b) => {
            collect_vars(a, out);
            collect_vars(b, out);
        }
        Expr::Not(a) => collect_vars(a, out),
        Expr::Truthy(a) => push(a, out),
        Expr::Cmp(a, _, b) => {
            push(a, out);
            push(b, out);
        }
        Expr::In(a, items) => {
            push(a, out);
            for i in items {
                push(i, out);
            }
        }
    }
}

impl Condition {
    pub fn parse(source: &str) -> Result<Condition, IvrError> {
        let toks = tokenize(source)?;
        if toks.is_empty() {
            return Err(invalid(0, "the condition is empty"));
        }
        let mut p = Parser {
            toks,
            i: 0,
            end: source.chars().count(),
        };
        let expr = p.or(0)?;
        if p.peek().is_some() {
            return Err(p.unexpected("`and`, `or` or the end of the condition"));
        }
        Ok(Condition {
            source: source.to_string(),
            expr,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn eval(&self, vars: &BTreeMap<String, String>) -> bool {
        eval(&self.expr, vars)
    }

    /// Variables used, with the character index of each in the source.
    pub fn variables(&self) -> Vec<(&str, usize)> {
        let mut out = Vec::new();
        collect_vars(&self.expr, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err_at<T: std::fmt::Debug>(r: Result<T, IvrError>) -> usize {
        match r {
            Err(IvrError::Invalid { at, .. }) => at,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn templates_render_variables_and_blank_unknowns() {
        let t = Template::parse("https://crm/api?account={{ account.id }}&x={{vars.order.status}}")
            .unwrap();
        let v = vars(&[("account.id", "42"), ("vars.order.status", "shipped")]);
        assert_eq!(t.render(&v), "https://crm/api?account=42&x=shipped");
        assert_eq!(t.render(&vars(&[])), "https://crm/api?account=&x=");
        assert_eq!(Template::parse("plain").unwrap().literal(), Some("plain"));
        let names: Vec<_> = t.variables().map(|(n, _)| n).collect();
        assert_eq!(names, ["account.id", "vars.order.status"]);
    }

    #[test]
    fn template_errors_point_inside_the_string() {
        assert_eq!(err_at(Template::parse("ab {{ account.id ")), 3);
        assert_eq!(err_at(Template::parse("x{{ acount.id }}")), 4);
        assert_eq!(err_at(Template::parse("x{{ account }}")), 4);
        assert_eq!(err_at(Template::parse("x{{ a b }}")), 6);
        assert_eq!(err_at(Template::parse("abc }}")), 4);
    }

    #[test]
    fn spec_condition_matches_gold_brazilian_callers_only() {
        let c = Condition::parse("account.tier == 'gold' and caller starts_with '+55'").unwrap();
        assert!(c.eval(&vars(&[
            ("account.tier", "gold"),
            ("caller", "+5511987650000")
        ])));
        assert!(!c.eval(&vars(&[
            ("account.tier", "gold"),
            ("caller", "+5411987650000")
        ])));
        assert!(!c.eval(&vars(&[("account.tier", "silver"), ("caller", "+5511")])));
    }

    #[test]
    fn operators_precedence_and_numbers() {
        let v = vars(&[
            ("account.priority", "10"),
            ("vars.status", "shipped"),
            ("digits.opt", "07"),
            ("vars.flag", "false"),
        ]);
        let t = |s: &str| Condition::parse(s).unwrap().eval(&v);
        assert!(t("account.priority > 9"));
        assert!(t("account.priority >= 10 and account.priority <= 10"));
        assert!(!t("account.priority < 9"));
        assert!(
            t("digits.opt == 7"),
            "numeric equality when both are numbers"
        );
        assert!(t("vars.status in ['pending', \"shipped\"]"));
        assert!(t("not vars.flag"));
        assert!(t("vars.status"));
        assert!(!t("vars.missing"));
        assert!(t(
            "vars.status contains 'hip' and vars.status ends_with 'ed'"
        ));
        assert!(t("false or true and true"));
        assert!(!t("(false or true) and false"));
        assert!(t("not (vars.status != 'shipped')"));
        assert!(t("'b' > 'a'"), "strings compare as text");
    }

    #[test]
    fn condition_errors_point_at_the_column() {
        assert_eq!(err_at(Condition::parse("account.tier = 'gold'")), 13);
        assert_eq!(err_at(Condition::parse("account.tier == 'gold")), 16);
        assert_eq!(err_at(Condition::parse("account.tier == ")), 16);
        assert_eq!(err_at(Condition::parse("acount.tier == 'x'")), 0);
        assert_eq!(err_at(Condition::parse("(caller == '1'")), 14);
        assert_eq!(err_at(Condition::parse("caller caller")), 7);
        assert_eq!(err_at(Condition::parse("caller == 'x' $")), 14);
        assert!(Condition::parse("").is_err());
        let deep = format!("{}true{}", "(".repeat(100), ")".repeat(100));
        assert!(Condition::parse(&deep).is_err());
    }
}
