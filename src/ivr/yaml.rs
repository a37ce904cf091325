//! A YAML document as a tree of positioned nodes.
//!
//! Flow files are checked by walking this tree rather than by deriving serde structs, so that one
//! pass reports every problem (not only the first), an unknown key is reported at the key itself,
//! and short forms (`play: welcome` / `play: [a, b]`) need no serde tricks. serde-saphyr still does
//! the YAML parsing and reports syntax errors with their positions.
//!
//! Plain scalars keep the text the admin wrote: `+5511…`, `0800` or `yes` stay strings instead of
//! becoming numbers or booleans, because everything in a flow is read as text and parsed by the
//! checker.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// Files larger than this are refused before parsing: a flow is a page of YAML, not a data dump.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Nesting deeper than this is refused; a flow needs about six levels.
pub const MAX_DEPTH: usize = 48;

/// 1-based line and column of a node in its file.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl Pos {
    pub const fn new(line: u64, column: u64) -> Self {
        Pos { line, column }
    }

    /// The position `chars` characters to the right on the same line.
    pub fn right(self, chars: usize) -> Pos {
        Pos::new(self.line, self.column.saturating_add(chars as u64))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: NodeKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    Null,
    /// `quoted` tells whether the scalar was written in quotes; columns inside a quoted scalar
    /// are one further right than its start.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// Where character `index` of this scalar's text sits in the file (for errors inside a
    /// template or schedule string). Exact for single-line scalars without escapes.
    pub fn pos_at(&self, index: usize) -> Pos {
        match &self.kind {
            NodeKind::Scalar { quoted: true, .. } => self.pos.right(index + 1),
            _ => self.pos.right(index),
        }
    }

    pub fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Null => "nothing",
            NodeKind::Scalar { .. } => "a value",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses one YAML document into a node tree.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(SyntaxError {
            pos: Pos::new(1, 1),
            message: format!("the file is larger than {MAX_FILE_BYTES} bytes"),
        });
    }
    // The node tree is built recursively: a shallow depth limit keeps a hostile file from
    // exhausting the stack of the task that reloads flows.
    let budget = serde_saphyr::Budget {
        max_depth: MAX_DEPTH,
        ..Default::default()
    };
    let options = serde_saphyr::Options {
        with_snippet: false,
        budget: Some(budget),
        ..Default::default()
    };
    let raw: Spanned<Raw> =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| syntax_error(&e))?;
    let lines: Vec<&str> = text.split('\n').collect();
    Ok(to_node(raw, &lines))
}

fn syntax_error(e: &serde_saphyr::Error) -> SyntaxError {
    use serde_saphyr::Error as E;
    let pos = e
        .location()
        .map(|l| Pos::new(l.line(), l.column()))
        .unwrap_or(Pos::new(1, 1));
    let message = match e.without_snippet() {
        E::Message { msg, .. } | E::HookError { msg, .. } => msg.clone(),
        E::Eof { .. } => "unexpected end of file".to_string(),
        E::Unexpected { expected, .. } => format!("YAML syntax error: expected {expected}"),
        E::ContainerEndMismatch { .. } => "a list or mapping ends that never started".to_string(),
        E::UnknownAnchor { .. } => "an alias refers to an anchor that is not defined".to_string(),
        E::Budget { .. } => "the YAML is too large or too deeply nested".to_string(),
        other => other.to_string(),
    };
    SyntaxError { pos, message }
}

/// What serde-saphyr hands us before positions are attached.
enum Raw {
    Null,
    Str(String),
    /// A plain scalar that the YAML schema would type (number, boolean): its text is
    /// recovered from the source span.
    Typed(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

/// The source text from `pos` on, to the end of its line.
fn source_at<'a>(lines: &[&'a str], pos: Pos) -> impl Iterator<Item = char> + 'a {
    let line = usize::try_from(pos.line)
        .ok()
        .and_then(|l| l.checked_sub(1));
    let skip = usize::try_from(pos.column).unwrap_or(0).saturating_sub(1);
    line.and_then(|l| lines.get(l))
        .copied()
        .unwrap_or("")
        .chars()
        .skip(skip)
}

// Span offsets drift after multi-byte characters earlier in the file, while line and column
// stay right, so the raw text is found by position. A number or boolean token never holds
// spaces or flow punctuation.
fn to_node(raw: Spanned<Raw>, lines: &[&str]) -> Node {
    let loc = raw.referenced;
    let pos = Pos::new(loc.line(), loc.column());
    let kind = match raw.value {
        Raw::Null => NodeKind::Null,
        Raw::Str(text) => {
            let quoted = matches!(source_at(lines, pos).next(), Some('"') | Some('\''));
            NodeKind::Scalar { text, quoted }
        }
        Raw::Typed(fallback) => {
            let token: String = source_at(lines, pos)
                .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ']' | '}' | '#'))
                .collect();
            let text = if token.is_empty() { fallback } else { token };
            NodeKind::Scalar {
                text,
                quoted: false,
            }
        }
        Raw::Seq(items) => NodeKind::Seq(items.into_iter().map(|n| to_node(n, lines)).collect()),
        Raw::Map(entries) => NodeKind::Map(
            entries
                .into_iter()
                .map(|(k, v)| (to_node(k, lines), to_node(v, lines)))
                .collect(),
        ),
    };
    Node { pos, kind }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Typed(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Typed(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Typed(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Typed(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Raw>>()? {
            let value = map.next_value::<Spanned<Raw>>()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Raw, A::Error> {
        Err(de::Error::custom(
            "YAML tags are not supported in flow files",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_get<'a>(n: &'a Node, key: &str) -> &'a Node {
        n.as_map()
            .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some(key)))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no key {key}"))
    }

    #[test]
    fn plain_scalars_keep_the_text_the_admin_wrote() {
        let doc = "# café …\nnumbers: [+551130000000, 7000, \"+1\"]\nflag: yes\ntime: 08:00\nratio: 1.50\nm: { a: 2, b: true }\n";
        let n = parse(doc).unwrap();
        let nums: Vec<&str> = map_get(&n, "numbers")
            .as_seq()
            .unwrap()
            .iter()
            .filter_map(Node::as_str)
            .collect();
        assert_eq!(nums, ["+551130000000", "7000", "+1"]);
        assert_eq!(map_get(&n, "flag").as_str(), Some("yes"));
        assert_eq!(map_get(&n, "time").as_str(), Some("08:00"));
        assert_eq!(map_get(&n, "ratio").as_str(), Some("1.50"));
        let m = map_get(&n, "m");
        assert_eq!(map_get(m, "a").as_str(), Some("2"));
        assert_eq!(map_get(m, "b").as_str(), Some("true"));
    }

    #[test]
    fn keys_and_values_carry_line_and_column() {
        let doc = "flow: x\nsteps:\n  welcome:\n    play: \"hello\"\n";
        let n = parse(doc).unwrap();
        let steps = map_get(&n, "steps");
        let (k, v) = &steps.as_map().unwrap()[0];
        assert_eq!(k.pos, Pos::new(3, 3));
        let (pk, pv) = &v.as_map().unwrap()[0];
        assert_eq!(pk.pos, Pos::new(4, 5));
        assert_eq!(pv.pos, Pos::new(4, 11));
        assert_eq!(pv.pos_at(0), Pos::new(4, 12));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        for depth in [200, 5000] {
            let doc = format!("a: {}1{}\n", "[".repeat(depth), "]".repeat(depth));
            assert!(parse(&doc).is_err(), "depth {depth}");
        }
        let ok = format!("a: {}1{}\n", "[".repeat(40), "]".repeat(40));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = parse("flow: x\nsteps: [a, b\n").unwrap_err();
        assert!(e.pos.line >= 2, "{e:?}");
        let dup = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(dup.pos.line, 2, "{dup:?}");
    }
}
