//! The `pattern` of a collect step: a small regular-expression subset for digit strings.
//!
//! Supported: literal keys `0-9 * #`, `.` (any key), `\d` (a digit), classes `[0-9]`, `[135]`,
//! `[^0]`, groups `( )`, alternation `|`, and the quantifiers `?`, `*`, `+`, `{n}`, `{n,m}`,
//! `{n,}`. A `*` right after something repeatable is the quantifier; elsewhere it is the star
//! key (write `\*` to be explicit). The whole input must match (a leading `^` / trailing `$`
//! are accepted and redundant). Matching is backtracking with a step budget, so a pathological
//! pattern fails closed instead of spinning.

use super::IvrError;
use std::cell::Cell;

const MAX_PATTERN_CHARS: usize = 128;
const MAX_REPEAT: usize = 32;
const STEP_BUDGET: usize = 100_000;

#[derive(Clone, Debug, PartialEq)]
enum Atom {
    Key(char),
    Any,
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
    Group(Vec<Vec<Piece>>),
}

#[derive(Clone, Debug, PartialEq)]
struct Piece {
    atom: Atom,
    min: usize,
    max: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pattern {
    source: String,
    alternatives: Vec<Vec<Piece>>,
}

fn invalid(at: usize, message: impl Into<String>) -> IvrError {
    IvrError::Invalid {
        at,
        message: message.into(),
    }
}

struct Parser {
    chars: Vec<char>,
    i: usize,
}

impl Parser {
    fn alternatives(&mut self, depth: usize) -> Result<Vec<Vec<Piece>>, IvrError> {
        if depth > 8 {
            return Err(invalid(self.i, "groups are nested too deeply"));
        }
        let mut alts = vec![self.sequence(depth)?];
        while self.chars.get(self.i) == Some(&'|') {
            self.i += 1;
            alts.push(self.sequence(depth)?);
        }
        Ok(alts)
    }

    fn sequence(&mut self, depth: usize) -> Result<Vec<Piece>, IvrError> {
        let mut seq = Vec::new();
        while let Some(&c) = self.chars.get(self.i) {
            if c == '|' || c == ')' {
                break;
            }
            let start = self.i;
            self.i += 1;
            let atom = match c {
                '0'..='9' | '*' | '#' => Atom::Key(c),
                '.' => Atom::Any,
                '\\' => match self.chars.get(self.i) {
                    Some('d') => {
                        self.i += 1;
                        Atom::Class {
                            ranges: vec![('0', '9')],
                            negated: false,
                        }
                    }
                    Some(
                        &k @ ('*' | '#' | '.' | '+' | '?' | '(' | ')' | '[' | ']' | '|' | '\\'),
                    ) => {
                        self.i += 1;
                        Atom::Key(k)
                    }
                    _ => {
                        return Err(invalid(
                            start,
                            "only `\\d` and escaped symbols are supported",
                        ))
                    }
                },
                '[' => self.class(start)?,
                '(' => {
                    let alts = self.alternatives(depth + 1)?;
                    if self.chars.get(self.i) != Some(&')') {
                        return Err(invalid(start, "this `(` is never closed"));
                    }
                    self.i += 1;
                    Atom::Group(alts)
                }
                '?' | '+' | '{' => {
                    return Err(invalid(start, format!("`{c}` has nothing to repeat")))
                }
                other => {
                    return Err(invalid(
                        start,
                        format!("`{other}` cannot be typed on a phone keypad"),
                    ))
                }
            };
            let (min, max) = self.quantifier()?;
            seq.push(Piece { atom, min, max });
        }
        Ok(seq)
    }

    fn class(&mut self, start: usize) -> Result<Atom, IvrError> {
        let negated = self.chars.get(self.i) == Some(&'^');
        if negated {
            self.i += 1;
        }
        let mut ranges = Vec::new();
        loop {
            match self.chars.get(self.i).copied() {
                None => return Err(invalid(start, "this `[` is never closed")),
                Some(']') if !ranges.is_empty() => {
                    self.i += 1;
                    return Ok(Atom::Class { ranges, negated });
                }
                Some(a) if super::values::is_dtmf(a) => {
                    self.i += 1;
                    let mut b = a;
                    if self.chars.get(self.i) == Some(&'-')
                        && self.chars.get(self.i + 1).is_some_and(|c| *c != ']')
                    {
                        b = self.chars.get(self.i + 1).copied().unwrap_or(a);
                        if !b.is_ascii_digit() || b < a {
                            return Err(invalid(self.i + 1, "a class range must be like 0-9"));
                        }
                        self.i += 2;
                    }
                    ranges.push((a, b));
                }
                Some(c) => {
                    return Err(invalid(
                        self.i,
                        format!("`{c}` cannot be typed on a phone keypad"),
                    ))
                }
            }
        }
    }

    fn number(&mut self) -> Option<usize> {
        let start = self.i;
        while self.chars.get(self.i).is_some_and(char::is_ascii_digit) {
            self.i += 1;
        }
        let s: String = self.chars.get(start..self.i)?.iter().collect();
        s.parse().ok()
    }

    fn quantifier(&mut self) -> Result<(usize, usize), IvrError> {
        let q = match self.chars.get(self.i) {
            Some('?') => (0, 1),
            Some('*') => (0, MAX_REPEAT),
            Some('+') => (1, MAX_REPEAT),
            Some('{') => {
                let open = self.i;
                self.i += 1;
                let min = self
                    .number()
                    .ok_or_else(|| invalid(open, "write repeats like {4} or {2,5}"))?;
                let max = if self.chars.get(self.i) == Some(&',') {
                    self.i += 1;
                    self.number().unwrap_or(MAX_REPEAT)
                } else {
                    min
                };
                if self.chars.get(self.i) != Some(&'}') || min > max || max > MAX_REPEAT {
                    return Err(invalid(
                        open,
                        format!("write repeats like {{4}} or {{2,5}}, at most {MAX_REPEAT}"),
                    ));
                }
                return Ok((min, max)).inspect(|_| self.i += 1);
            }
            _ => return Ok((1, 1)),
        };
        self.i += 1;
        Ok(q)
    }
}

impl Pattern {
    pub fn parse(source: &str) -> Result<Pattern, IvrError> {
        let mut chars: Vec<char> = source.chars().collect();
        if chars.len() > MAX_PATTERN_CHARS {
            return Err(invalid(
                0,
                format!("longer than {MAX_PATTERN_CHARS} characters"),
            ));
        }
        let mut offset = 0;
        if chars.first() == Some(&'^') {
            chars.remove(0);
            offset = 1;
        }
        if chars.last() == Some(&'$')
            && chars.len() >= 2
            && chars.get(chars.len() - 2) != Some(&'\\')
        {
            chars.pop();
        }
        let mut p = Parser { chars, i: 0 };
        let alternatives = p.alternatives(0).map_err(|e| match e {
            IvrError::Invalid { at, message } => invalid(at + offset, message),
            other => other,
        })?;
        if p.i < p.chars.len() {
            return Err(invalid(p.i + offset, "this `)` has no matching `(`"));
        }
        Ok(Pattern {
            source: source.to_string(),
            alternatives,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `input` matches.
    pub fn matches(&self, input: &str) -> bool {
        let input: Vec<char> = input.chars().collect();
        let budget = Cell::new(STEP_BUDGET);
        match_alts(&self.alternatives, &input, 0, &budget, &mut |end| {
            end == input.len()
        })
    }
}

fn atom_matches(atom: &Atom, c: char) -> bool {
    match atom {
        Atom::Key(k) => *k == c,
        Atom::Any => true,
        Atom::Class { ranges, negated } => {
            ranges.iter().any(|(a, b)| *a <= c && c <= *b) != *negated
        }
        Atom::Group(_) => false,
    }
}

type Cont<'a> = dyn FnMut(usize) -> bool + 'a;

fn spend(budget: &Cell<usize>) -> bool {
    let left = budget.get();
    budget.set(left.saturating_sub(1));
    left > 0
}

fn match_alts(
    alts: &[Vec<Piece>],
    input: &[char],
    pos: usize,
    budget: &Cell<usize>,
    k: &mut Cont<'_>,
) -> bool {
    alts.iter().any(|seq| match_seq(seq, input, pos, budget, k))
}

fn match_seq(
    seq: &[Piece],
    input: &[char],
    pos: usize,
    budget: &Cell<usize>,
    k: &mut Cont<'_>,
) -> bool {
    match seq.split_first() {
        None => k(pos),
        Some((piece, rest)) => match_piece(piece, 0, rest, input, pos, budget, k),
    }
}

/// Greedy repetition of `piece` (already matched `count` times), then the rest.
fn match_piece(
    piece: &Piece,
    count: usize,
    rest: &[Piece],
    input: &[char],
    pos: usize,
    budget: &Cell<usize>,
    k: &mut Cont<'_>,
) -> bool {
    if !spend(budget) {
        return false;
    }
    if count < piece.max {
        let more = match &piece.atom {
            Atom::Group(alts) => match_alts(alts, input, pos, budget, &mut |end| {
                // A group that matched nothing would repeat forever.
                end > pos && match_piece(piece, count + 1, rest, input, end, budget, k)
            }),
            atom => {
                input.get(pos).is_some_and(|c| atom_matches(atom, *c))
                    && match_piece(piece, count + 1, rest, input, pos + 1, budget, k)
            }
        };
        if more {
            return true;
        }
    }
    count >= piece.min && match_seq(rest, input, pos, budget, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_numbers_and_dates() {
        let p = Pattern::parse(r"\d{6,8}").unwrap();
        assert!(p.matches("123456"));
        assert!(p.matches("12345678"));
        assert!(!p.matches("12345"));
        assert!(!p.matches("123456789"));
        let p = Pattern::parse("^[1-9][0-9]*$").unwrap();
        assert!(p.matches("42"));
        assert!(!p.matches("042"));
        let p = Pattern::parse("(0[1-9]|1[0-2])[0-9]{2}").unwrap();
        assert!(p.matches("1227"));
        assert!(!p.matches("1327"));
        let p = Pattern::parse(r"\*[0-9]+|#").unwrap();
        assert!(p.matches("*72"));
        assert!(p.matches("#"));
        assert!(!p.matches("72"));
    }

    #[test]
    fn pathological_patterns_fail_closed() {
        let p = Pattern::parse("(1*)*2").unwrap();
        assert!(!p.matches(&"1".repeat(32)));
        assert!(p.matches("112"));
    }

    #[test]
    fn errors_point_at_the_column() {
        let at = |s: &str| match Pattern::parse(s) {
            Err(IvrError::Invalid { at, .. }) => at,
            other => panic!("{other:?}"),
        };
        assert_eq!(at("12a"), 2);
        assert_eq!(at("[0-9"), 0);
        assert_eq!(at("(12"), 0);
        assert_eq!(at("12)"), 2);
        assert_eq!(at("1{40}"), 1);
        assert_eq!(at("^+1"), 1);
    }
}
