//! A DAG-JSON reader (multicodec `0x0129`) that keeps map entries in document order.
//!
//! It reads what go-ipld-prime's `dagjson.Decode` reads: `{"/": "<cid>"}` (exactly one entry,
//! a string) is a link, `{"/": {"bytes": "<base64>"}}` (exactly that shape) is a byte string,
//! any other map is a map; numbers without fraction or exponent are integers, others floats;
//! repeated map keys are an error; only whitespace may follow the value.

use cid::Cid;
use ipld_dagcbor::{Map, Node, Text};

/// The deepest nesting of lists and maps accepted, as go-ipld-prime's default (1024).
pub const MAX_DEPTH: usize = 1024;

/// Why some bytes are not one DAG-JSON value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("input ends inside a value at offset {offset}")]
    UnexpectedEof {
        /// Where more bytes were needed.
        offset: usize,
    },
    /// A byte that cannot start or continue a value here.
    #[error("unexpected byte 0x{byte:02x} at offset {offset}")]
    UnexpectedByte {
        /// Where it is.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// Something other than whitespace follows the value.
    #[error("content after the value at offset {offset}")]
    TrailingContent {
        /// Where it starts.
        offset: usize,
    },
    /// A number that is malformed or outside the 64-bit integer range.
    #[error("invalid number at offset {offset}")]
    InvalidNumber {
        /// Where the number starts.
        offset: usize,
    },
    /// A malformed escape sequence or a control character in a string.
    #[error("invalid string at offset {offset}")]
    InvalidString {
        /// Where the problem is.
        offset: usize,
    },
    /// A map key that appears twice.
    #[error("repeated map key `{key}` at offset {offset}")]
    RepeatedKey {
        /// Where the second occurrence ends.
        offset: usize,
        /// The key.
        key: Text,
    },
    /// `{"/": "…"}` whose string is not a CID.
    #[error("invalid cid in link at offset {offset}")]
    InvalidCid {
        /// Where the link map ends.
        offset: usize,
        /// The CID parser's reason.
        #[source]
        source: cid::Error,
    },
    /// `{"/": {"bytes": "…"}}` whose string is not base64.
    #[error("invalid base64 in bytes at offset {offset}")]
    InvalidBase64 {
        /// Where the bytes map ends.
        offset: usize,
    },
    /// Lists and maps nest deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {limit} at offset {offset}")]
    TooDeep {
        /// Where the limit was passed.
        offset: usize,
        /// The limit.
        limit: usize,
    },
}

/// Decodes one DAG-JSON value.
///
/// # Errors
/// A [`DecodeError`] with the offset of the problem.
///
/// # Examples
/// ```
/// use ipld_selector::dagjson;
/// use ipld_dagcbor::Node;
///
/// let node = dagjson::decode(br#"{"z": 1, "a": {"/": {"bytes": "aGk"}}}"#)?;
/// let map = node.as_map().expect("a map");
/// let keys: Vec<String> = map.keys().map(|k| k.to_string()).collect();
/// assert_eq!(keys, ["z", "a"]);
/// assert_eq!(map.get("a"), Some(&Node::Bytes(bytes::Bytes::from_static(b"hi"))));
/// # Ok::<(), dagjson::DecodeError>(())
/// ```
pub fn decode(bytes: &[u8]) -> Result<Node, DecodeError> {
    let mut reader = Reader { bytes, pos: 0 };
    reader.skip_whitespace();
    let node = reader.value()?;
    while let Some(&byte) = reader.bytes.get(reader.pos) {
        if !matches!(byte, b' ' | b'\t' | b'\r' | b'\n' | 0) {
            return Err(DecodeError::TrailingContent { offset: reader.pos });
        }
        reader.pos += 1;
    }
    Ok(node)
}

/// A container being read: its entries so far (and, for a map, the key of the value being
/// read).
enum Open {
    List(Vec<Node>),
    Map(Map, Text),
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.bytes
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::UnexpectedEof { offset: self.pos })
    }

    fn unexpected(&self) -> DecodeError {
        match self.bytes.get(self.pos) {
            Some(&byte) => DecodeError::UnexpectedByte {
                offset: self.pos,
                byte,
            },
            None => DecodeError::UnexpectedEof { offset: self.pos },
        }
    }

    fn literal(&mut self, word: &[u8], node: Node) -> Result<Node, DecodeError> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(node)
        } else {
            let matched = word
                .iter()
                .zip(&self.bytes[self.pos..])
                .take_while(|(a, b)| a == b)
                .count();
            self.pos += matched;
            Err(self.unexpected())
        }
    }

    /// Reads one value with an explicit stack of open containers, so that nesting costs heap
    /// rather than call stack.
    fn value(&mut self) -> Result<Node, DecodeError> {
        let mut stack: Vec<Open> = Vec::new();
        loop {
            self.skip_whitespace();
            let mut value = match self.peek()? {
                open @ (b'{' | b'[') => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(DecodeError::TooDeep {
                            offset: self.pos,
                            limit: MAX_DEPTH,
                        });
                    }
                    self.pos += 1;
                    self.skip_whitespace();
                    let close = if open == b'{' { b'}' } else { b']' };
                    if self.peek()? == close {
                        self.pos += 1;
                        if open == b'{' {
                            Node::Map(Map::new())
                        } else {
                            Node::List(Vec::new())
                        }
                    } else if open == b'{' {
                        let key = self.key()?;
                        stack.push(Open::Map(Map::new(), key));
                        continue;
                    } else {
                        stack.push(Open::List(Vec::new()));
                        continue;
                    }
                }
                b'"' => Node::String(Text::from_bytes(self.string()?)),
                b't' => self.literal(b"true", Node::Bool(true))?,
                b'f' => self.literal(b"false", Node::Bool(false))?,
                b'n' => self.literal(b"null", Node::Null)?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return Err(self.unexpected()),
            };
            // Attach the finished value to the innermost open container, closing containers
            // for as long as they end here.
            loop {
                match stack.last_mut() {
                    None => return Ok(value),
                    Some(Open::List(items)) => {
                        items.push(value);
                        self.skip_whitespace();
                        match self.peek()? {
                            b',' => {
                                self.pos += 1;
                                break;
                            }
                            b']' => {
                                self.pos += 1;
                                let Some(Open::List(items)) = stack.pop() else {
                                    break;
                                };
                                value = Node::List(items);
                            }
                            _ => return Err(self.unexpected()),
                        }
                    }
                    Some(Open::Map(map, key)) => {
                        let key = std::mem::take(key);
                        if map.keys().any(|existing| *existing == key) {
                            return Err(DecodeError::RepeatedKey {
                                offset: self.pos,
                                key,
                            });
                        }
                        map.insert(key, value);
                        self.skip_whitespace();
                        match self.peek()? {
                            b',' => {
                                self.pos += 1;
                                self.skip_whitespace();
                                let next_key = self.key()?;
                                if let Some(Open::Map(_, key)) = stack.last_mut() {
                                    *key = next_key;
                                }
                                break;
                            }
                            b'}' => {
                                self.pos += 1;
                                let Some(Open::Map(map, _)) = stack.pop() else {
                                    break;
                                };
                                value = self.special_map(map)?;
                            }
                            _ => return Err(self.unexpected()),
                        }
                    }
                }
            }
        }
    }

    /// Reads a map key and the colon after it.
    fn key(&mut self) -> Result<Text, DecodeError> {
        if self.peek()? != b'"' {
            return Err(self.unexpected());
        }
        let key = Text::from_bytes(self.string()?);
        self.skip_whitespace();
        if self.peek()? != b':' {
            return Err(self.unexpected());
        }
        self.pos += 1;
        Ok(key)
    }

    /// Turns `{"/": "cid"}` into a link and `{"/": {"bytes": "b64"}}` into bytes.
    fn special_map(&self, map: Map) -> Result<Node, DecodeError> {
        let Some((key, value)) = map.get_index(0).filter(|_| map.len() == 1) else {
            return Ok(Node::Map(map));
        };
        if *key != "/" {
            return Ok(Node::Map(map));
        }
        match value {
            Node::String(text) => {
                let text = String::from_utf8_lossy(text.as_bytes());
                let cid =
                    Cid::try_from(text.as_ref()).map_err(|source| DecodeError::InvalidCid {
                        offset: self.pos,
                        source,
                    })?;
                Ok(Node::Link(cid))
            }
            Node::Map(inner) => match inner.get_index(0) {
                Some((name, Node::String(encoded))) if inner.len() == 1 && *name == "bytes" => {
                    let bytes = decode_base64(encoded.as_bytes())
                        .ok_or(DecodeError::InvalidBase64 { offset: self.pos })?;
                    Ok(Node::Bytes(bytes.into()))
                }
                _ => Ok(Node::Map(map)),
            },
            _ => Ok(Node::Map(map)),
        }
    }

    fn string(&mut self) -> Result<Vec<u8>, DecodeError> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let byte = self.peek()?;
            match byte {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.pos += 1;
                    let escape = self.peek()?;
                    self.pos += 1;
                    match escape {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let ch = self.unicode_escape()?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => {
                            return Err(DecodeError::InvalidString {
                                offset: self.pos - 1,
                            });
                        }
                    }
                }
                0x00..=0x1f => return Err(DecodeError::InvalidString { offset: self.pos }),
                _ => {
                    out.push(byte);
                    self.pos += 1;
                }
            }
        }
    }

    /// Reads the four hex digits after `\u` (and a low surrogate escape after a high one).
    fn unicode_escape(&mut self) -> Result<char, DecodeError> {
        let first = self.hex4()?;
        if (0xd800..0xdc00).contains(&first) && self.bytes[self.pos..].starts_with(b"\\u") {
            let save = self.pos;
            self.pos += 2;
            let second = self.hex4()?;
            if (0xdc00..0xe000).contains(&second) {
                let code = 0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00);
                return Ok(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            self.pos = save;
        }
        Ok(char::from_u32(first).unwrap_or(char::REPLACEMENT_CHARACTER))
    }

    fn hex4(&mut self) -> Result<u32, DecodeError> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or(DecodeError::UnexpectedEof {
                offset: self.bytes.len(),
            })?;
        let mut value = 0u32;
        for digit in digits {
            let nibble = (*digit as char)
                .to_digit(16)
                .ok_or(DecodeError::InvalidString { offset: self.pos })?;
            value = value * 16 + nibble;
        }
        self.pos += 4;
        Ok(value)
    }

    fn number(&mut self) -> Result<Node, DecodeError> {
        let start = self.pos;
        let invalid = DecodeError::InvalidNumber { offset: start };
        if self.peek()? == b'-' {
            self.pos += 1;
        }
        let int_start = self.pos;
        self.digits();
        let int_digits = &self.bytes[int_start..self.pos];
        if int_digits.is_empty() || (int_digits.len() > 1 && int_digits[0] == b'0') {
            return Err(invalid);
        }
        let mut is_float = false;
        if self.bytes.get(self.pos) == Some(&b'.') {
            is_float = true;
            self.pos += 1;
            if self.digits() == 0 {
                return Err(invalid);
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            is_float = true;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(invalid);
            }
        }
        let text = std::str::from_utf8(&self.bytes[start..self.pos])
            .map_err(|_| DecodeError::InvalidNumber { offset: start })?;
        if is_float {
            let value: f64 = text
                .parse()
                .map_err(|_| DecodeError::InvalidNumber { offset: start })?;
            return Ok(Node::Float(value));
        }
        let value: i128 = text
            .parse()
            .map_err(|_| DecodeError::InvalidNumber { offset: start })?;
        if value < i128::from(i64::MIN) || value > i128::from(u64::MAX) {
            return Err(invalid);
        }
        Ok(Node::Integer(value))
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
        self.pos - start
    }
}

/// Decodes standard-alphabet base64, unpadded (as Go's `RawStdEncoding`) or padded (as Go's
/// `StdEncoding`, which go-ipld-prime falls back to). Line breaks are skipped, as Go does.
fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    let text: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    let unpadded = match text.iter().position(|b| *b == b'=') {
        None => &text[..],
        Some(at) => {
            let padding = &text[at..];
            if !text.len().is_multiple_of(4)
                || padding.len() > 2
                || padding.iter().any(|b| *b != b'=')
            {
                return None;
            }
            &text[..at]
        }
    };
    if unpadded.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(unpadded.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &byte in unpadded {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_and_containers_decode() {
        let node = decode(br#" [null, true, false, -5, 18446744073709551615, 1.5, "a\u00e9\n"] "#)
            .expect("valid");
        assert_eq!(
            node,
            Node::List(vec![
                Node::Null,
                Node::Bool(true),
                Node::Bool(false),
                Node::Integer(-5),
                Node::Integer(u64::MAX.into()),
                Node::Float(1.5),
                Node::text("a\u{e9}\n"),
            ])
        );
    }

    #[test]
    fn links_and_bytes_are_recognised_only_in_their_exact_shape() {
        let cid = "bafkreif4a5vrdoboupepfyeu6cynrniqwguk74bxr4edfz7w5l5dekdp6i";
        let node = decode(format!(r#"{{"/": "{cid}"}}"#).as_bytes()).expect("link");
        assert_eq!(node, Node::Link(Cid::try_from(cid).expect("valid cid")));
        let node = decode(format!(r#"{{"/": "{cid}", "x": 1}}"#).as_bytes()).expect("map");
        assert!(node.as_map().is_some());
        assert_eq!(
            decode(br#"{"/":{"bytes":"AQID"}}"#).expect("bytes"),
            Node::Bytes(vec![1, 2, 3].into())
        );
        assert_eq!(
            decode(br#"{"/":{"bytes":"AQI="}}"#).expect("padded"),
            Node::Bytes(vec![1, 2].into())
        );
        assert!(decode(br#"{"/":{"bytes":"A"}}"#).is_err());
        assert!(matches!(
            decode(br#"{"/": "nope"}"#),
            Err(DecodeError::InvalidCid { .. })
        ));
    }

    #[test]
    fn malformed_input_is_rejected() {
        for bad in [
            &b""[..],
            b"{",
            b"[1,]",
            b"{\"a\":1,\"a\":2}",
            b"01",
            b"1.",
            b"tru",
            b"\"\x01\"",
            b"1 2",
            b"{1:2}",
            b"-",
        ] {
            assert!(
                decode(bad).is_err(),
                "{:?} should fail",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert!(matches!(
            decode(deep.as_bytes()),
            Err(DecodeError::TooDeep { .. })
        ));
    }
}
