//! Helpers for reading the shared graphsync vectors: the folder, CBOR diagnostic notation and
//! protobuf text format, each parsed into this crate's types so vectors can be compared.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use graphsync::codec::v1::pb;
use ipld_dagcbor::{Cid, Map, Node, Text};

/// The vector folder; a missing folder fails the test that reads it.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/spec/vectors/graphsync"
    ))
}

/// One vector file as JSON.
pub fn read_json(name: &str) -> serde_json::Value {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{name} is not json: {error}"))
}

/// A string field of a JSON object.
pub fn str_field<'a>(value: &'a serde_json::Value, field: &str) -> &'a str {
    value
        .get(field)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_else(|| panic!("no string field {field} in {value}"))
}

/// A hex field of a JSON object, as bytes.
pub fn hex_field(value: &serde_json::Value, field: &str) -> Vec<u8> {
    hex::decode(str_field(value, field))
        .unwrap_or_else(|error| panic!("{field} is not hex: {error}"))
}

/// An integer field of a JSON object.
pub fn u64_field(value: &serde_json::Value, field: &str) -> u64 {
    value
        .get(field)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("no integer field {field} in {value}"))
}

/// Parses CBOR diagnostic notation as the vectors write it: maps, lists, `"text"`, `h'hex'`,
/// integers, `null`, `true`, `false`, `42(h'00…')` links, and `/ … /` comments.
pub fn parse_diag(text: &str) -> Node {
    let mut parser = Diag {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let node = parser.value();
    parser.skip_space();
    assert_eq!(
        parser.pos,
        parser.bytes.len(),
        "trailing diag text in {text}"
    );
    node
}

struct Diag<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Diag<'_> {
    fn skip_space(&mut self) {
        loop {
            match self.bytes.get(self.pos) {
                Some(b' ' | b'\n' | b'\t' | b'\r') => self.pos += 1,
                Some(b'/') => {
                    let end = self.bytes[self.pos + 1..]
                        .iter()
                        .position(|&b| b == b'/')
                        .expect("closed comment");
                    self.pos += end + 2;
                }
                _ => return,
            }
        }
    }

    fn peek(&mut self) -> u8 {
        self.skip_space();
        *self.bytes.get(self.pos).expect("more diag")
    }

    fn eat(&mut self, expected: u8) {
        assert_eq!(self.peek(), expected, "at {} of diag", self.pos);
        self.pos += 1;
    }

    fn value(&mut self) -> Node {
        match self.peek() {
            b'{' => {
                self.pos += 1;
                let mut map = Map::new();
                if self.peek() == b'}' {
                    self.pos += 1;
                    return Node::Map(map);
                }
                loop {
                    let Node::String(key) = self.value() else {
                        panic!("map key is not text")
                    };
                    self.eat(b':');
                    let value = self.value();
                    assert!(map.insert(key, value).is_none(), "repeated key");
                    match self.peek() {
                        b',' => self.pos += 1,
                        b'}' => {
                            self.pos += 1;
                            return Node::Map(map);
                        }
                        other => panic!("unexpected {:?} in map", other as char),
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                let mut list = Vec::new();
                if self.peek() == b']' {
                    self.pos += 1;
                    return Node::List(list);
                }
                loop {
                    list.push(self.value());
                    match self.peek() {
                        b',' => self.pos += 1,
                        b']' => {
                            self.pos += 1;
                            return Node::List(list);
                        }
                        other => panic!("unexpected {:?} in list", other as char),
                    }
                }
            }
            b'"' => {
                self.pos += 1;
                let mut text = Vec::new();
                loop {
                    match self.bytes[self.pos] {
                        b'"' => break,
                        b'\\' => {
                            text.push(self.bytes[self.pos + 1]);
                            self.pos += 2;
                        }
                        byte => {
                            text.push(byte);
                            self.pos += 1;
                        }
                    }
                }
                self.pos += 1;
                Node::String(Text::from_bytes(text))
            }
            b'h' => {
                self.pos += 1;
                self.eat(b'\'');
                let end = self.bytes[self.pos..]
                    .iter()
                    .position(|&b| b == b'\'')
                    .expect("h'");
                let hex =
                    std::str::from_utf8(&self.bytes[self.pos..self.pos + end]).expect("ascii");
                self.pos += end + 1;
                Node::Bytes(hex::decode(hex).expect("diag hex").into())
            }
            b'n' => self.word("null", Node::Null),
            b't' => self.word("true", Node::Bool(true)),
            b'f' => self.word("false", Node::Bool(false)),
            _ => {
                let start = self.pos;
                if self.bytes[self.pos] == b'-' {
                    self.pos += 1;
                }
                while self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
                    self.pos += 1;
                }
                let number: i128 = std::str::from_utf8(&self.bytes[start..self.pos])
                    .expect("ascii")
                    .parse()
                    .unwrap_or_else(|_| panic!("bad diag number at {start}"));
                if self.bytes.get(self.pos) == Some(&b'(') {
                    assert_eq!(number, 42, "only tag 42 appears");
                    self.pos += 1;
                    let Node::Bytes(bytes) = self.value() else {
                        panic!("tag 42 over non-bytes")
                    };
                    self.eat(b')');
                    assert_eq!(bytes[0], 0, "link bytes start with 0x00");
                    return Node::Link(Cid::try_from(&bytes[1..]).expect("diag cid"));
                }
                Node::Integer(number)
            }
        }
    }

    fn word(&mut self, word: &str, node: Node) -> Node {
        assert!(
            self.bytes[self.pos..].starts_with(word.as_bytes()),
            "expected {word}"
        );
        self.pos += word.len();
        node
    }
}

/// One field of protobuf text format: a scalar token or a nested message.
#[derive(Debug)]
enum PbValue {
    Scalar(Vec<u8>),
    Message(Vec<(String, PbValue)>),
}

/// Parses the protobuf text format of a graphsync 1.0.0 `Message`, as the vectors hold it.
pub fn parse_pb_text(text: &str) -> pb::Message {
    let mut parser = PbText {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let fields = parser.fields();
    assert_eq!(parser.pos, parser.bytes.len(), "trailing protobuf text");
    let mut message = pb::Message::default();
    for (name, value) in fields {
        let PbValue::Message(fields) = value else {
            panic!("{name} is not a message")
        };
        match name.as_str() {
            "requests" => message.requests.push(pb_request(fields)),
            "responses" => message.responses.push(pb_response(fields)),
            "data" => message.data.push(pb_block(fields)),
            other => panic!("unknown message field {other}"),
        }
    }
    message
}

fn pb_request(fields: Vec<(String, PbValue)>) -> pb::Request {
    let mut request = pb::Request::default();
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("id", PbValue::Scalar(v)) => request.id = int(&v),
            ("root", PbValue::Scalar(v)) => request.root = v,
            ("selector", PbValue::Scalar(v)) => request.selector = v,
            ("priority", PbValue::Scalar(v)) => request.priority = int(&v),
            ("cancel", PbValue::Scalar(v)) => request.cancel = v == b"true",
            ("update", PbValue::Scalar(v)) => request.update = v == b"true",
            ("extensions", PbValue::Message(entry)) => {
                let (key, value) = map_entry(entry);
                request.extensions.insert(key, value);
            }
            (other, _) => panic!("unknown request field {other}"),
        }
    }
    request
}

fn pb_response(fields: Vec<(String, PbValue)>) -> pb::Response {
    let mut response = pb::Response::default();
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("id", PbValue::Scalar(v)) => response.id = int(&v),
            ("status", PbValue::Scalar(v)) => response.status = int(&v),
            ("extensions", PbValue::Message(entry)) => {
                let (key, value) = map_entry(entry);
                response.extensions.insert(key, value);
            }
            (other, _) => panic!("unknown response field {other}"),
        }
    }
    response
}

fn pb_block(fields: Vec<(String, PbValue)>) -> pb::Block {
    let mut block = pb::Block::default();
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("prefix", PbValue::Scalar(v)) => block.prefix = v,
            ("data", PbValue::Scalar(v)) => block.data = v.into(),
            (other, _) => panic!("unknown block field {other}"),
        }
    }
    block
}

fn map_entry(fields: Vec<(String, PbValue)>) -> (String, Vec<u8>) {
    let mut key = None;
    let mut value = Vec::new();
    for (name, field) in fields {
        match (name.as_str(), field) {
            ("key", PbValue::Scalar(v)) => key = Some(String::from_utf8(v).expect("utf-8 key")),
            ("value", PbValue::Scalar(v)) => value = v,
            (other, _) => panic!("unknown map entry field {other}"),
        }
    }
    (key.expect("map entry key"), value)
}

fn int(token: &[u8]) -> i32 {
    std::str::from_utf8(token)
        .expect("ascii")
        .parse()
        .expect("protobuf text int")
}

struct PbText<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl PbText<'_> {
    fn skip_space(&mut self) {
        while self
            .bytes
            .get(self.pos)
            .is_some_and(u8::is_ascii_whitespace)
        {
            self.pos += 1;
        }
    }

    fn fields(&mut self) -> Vec<(String, PbValue)> {
        let mut fields = Vec::new();
        loop {
            self.skip_space();
            match self.bytes.get(self.pos) {
                None | Some(b'}') => return fields,
                Some(_) => {}
            }
            let start = self.pos;
            while self.bytes[self.pos].is_ascii_alphanumeric() || self.bytes[self.pos] == b'_' {
                self.pos += 1;
            }
            let name = String::from_utf8(self.bytes[start..self.pos].to_vec()).expect("ascii");
            self.skip_space();
            match self.bytes[self.pos] {
                b'{' => {
                    self.pos += 1;
                    let inner = self.fields();
                    assert_eq!(self.bytes[self.pos], b'}', "closing brace");
                    self.pos += 1;
                    fields.push((name, PbValue::Message(inner)));
                }
                b':' => {
                    self.pos += 1;
                    self.skip_space();
                    fields.push((name, PbValue::Scalar(self.scalar())));
                }
                other => panic!("unexpected {:?} after field {name}", other as char),
            }
        }
    }

    fn scalar(&mut self) -> Vec<u8> {
        if self.bytes[self.pos] != b'"' {
            let start = self.pos;
            while self
                .bytes
                .get(self.pos)
                .is_some_and(|b| !b.is_ascii_whitespace())
            {
                self.pos += 1;
            }
            return self.bytes[start..self.pos].to_vec();
        }
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.bytes[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return out;
                }
                b'\\' => {
                    self.pos += 1;
                    let escaped = self.bytes[self.pos];
                    match escaped {
                        b'0'..=b'7' => {
                            let digits = self.bytes[self.pos..]
                                .iter()
                                .take(3)
                                .take_while(|b| (b'0'..=b'7').contains(b))
                                .count();
                            let octal =
                                std::str::from_utf8(&self.bytes[self.pos..self.pos + digits])
                                    .expect("ascii");
                            out.push(u8::from_str_radix(octal, 8).expect("octal escape"));
                            self.pos += digits;
                        }
                        b'n' => self.push_escape(&mut out, b'\n'),
                        b't' => self.push_escape(&mut out, b'\t'),
                        b'r' => self.push_escape(&mut out, b'\r'),
                        b'x' => {
                            let hex = std::str::from_utf8(&self.bytes[self.pos + 1..self.pos + 3])
                                .expect("ascii");
                            out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                            self.pos += 3;
                        }
                        other => self.push_escape(&mut out, other),
                    }
                }
                byte => {
                    out.push(byte);
                    self.pos += 1;
                }
            }
        }
    }

    fn push_escape(&mut self, out: &mut Vec<u8>, byte: u8) {
        out.push(byte);
        self.pos += 1;
    }
}
