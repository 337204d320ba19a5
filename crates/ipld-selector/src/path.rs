//! Data-model paths: [`Segment`] and [`Path`], written `a/b/0` as go-ipld-prime writes them.

use std::fmt;

use ipld_dagcbor::Text;

/// One step of a [`Path`]: a map key or a list index.
///
/// As in go-ipld-prime, a segment keeps the form it was made in: explicit interests of a
/// selector (`ExploreFields` keys) are [`Segment::Key`] even when they address a list element,
/// and list elements reached by iteration are [`Segment::Index`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A map key (or a decimal index written as a string).
    Key(Text),
    /// A list index.
    Index(i64),
}

impl Segment {
    /// The segment as a list index, parsed as Go's `strconv.ParseInt(s, 10, 64)` does for keys
    /// (an optional sign, then decimal digits, fitting in an `i64`).
    pub fn as_index(&self) -> Option<i64> {
        match self {
            Segment::Index(index) => Some(*index),
            Segment::Key(key) => parse_go_int(key.as_bytes()),
        }
    }

    /// The segment as map-key bytes: the key itself, or the decimal form of an index.
    pub fn key_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Segment::Key(key) => std::borrow::Cow::Borrowed(key.as_bytes()),
            Segment::Index(index) => std::borrow::Cow::Owned(index.to_string().into_bytes()),
        }
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Key(key) => fmt::Display::fmt(key, f),
            Segment::Index(index) => fmt::Display::fmt(index, f),
        }
    }
}

impl From<&str> for Segment {
    fn from(value: &str) -> Self {
        Segment::Key(Text::from(value))
    }
}

impl From<i64> for Segment {
    fn from(value: i64) -> Self {
        Segment::Index(value)
    }
}

/// A path from the traversal root (or from a selector's root) to a node.
///
/// Displayed as go-ipld-prime displays paths: segments joined by `/`, the empty path as ``.
///
/// ```
/// use ipld_selector::{Path, Segment};
///
/// let path = Path::from_segments([Segment::from("Links"), Segment::from(0), "Hash".into()]);
/// assert_eq!(path.to_string(), "Links/0/Hash");
/// assert_eq!(Path::root().to_string(), "");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Path(Vec<Segment>);

impl Path {
    /// The empty path.
    pub fn root() -> Self {
        Path(Vec::new())
    }

    /// A path of these segments.
    pub fn from_segments(segments: impl IntoIterator<Item = Segment>) -> Self {
        Path(segments.into_iter().collect())
    }

    /// The segments, first to last.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// The number of segments.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether this is the empty path.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// This path with one more segment.
    pub fn join(&self, segment: impl Into<Segment>) -> Self {
        let mut segments = self.0.clone();
        segments.push(segment.into());
        Path(segments)
    }

    pub(crate) fn push(&mut self, segment: Segment) {
        self.0.push(segment);
    }

    pub(crate) fn pop(&mut self) {
        self.0.pop();
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            fmt::Display::fmt(segment, f)?;
        }
        Ok(())
    }
}

/// Parses decimal text as Go's `strconv.ParseInt(s, 10, 64)`: an optional `+` or `-`, at least
/// one ASCII digit, and a value that fits in an `i64`.
pub(crate) fn parse_go_int(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, bytes),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: i128 = 0;
    for digit in digits {
        value = value * 10 + i128::from(digit - b'0');
        if value > i128::from(i64::MAX) + 1 {
            return None;
        }
    }
    let value = if negative { -value } else { value };
    i64::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_int_parsing_accepts_signs_and_rejects_junk() {
        assert_eq!(parse_go_int(b"0"), Some(0));
        assert_eq!(parse_go_int(b"+12"), Some(12));
        assert_eq!(parse_go_int(b"-7"), Some(-7));
        assert_eq!(parse_go_int(b"007"), Some(7));
        assert_eq!(parse_go_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_go_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_go_int(b"9223372036854775808"), None);
        assert_eq!(parse_go_int(b""), None);
        assert_eq!(parse_go_int(b"-"), None);
        assert_eq!(parse_go_int(b"1a"), None);
        assert_eq!(parse_go_int(b" 1"), None);
    }

    #[test]
    fn segments_display_and_convert() {
        assert_eq!(Segment::from("12").as_index(), Some(12));
        assert_eq!(Segment::from(3).key_bytes().as_ref(), b"3");
        let path = Path::root().join("a").join(0);
        assert_eq!(path.to_string(), "a/0");
        assert_eq!(path.len(), 2);
    }
}
