//! The selector type, its parser (with the path to any bad field) and its canonical encoding.

use cid::Cid;
use ipld_dagcbor::{Kind, Map, Node, Text, canonical_key_order};

use crate::dagjson;
use crate::path::{Path, Segment};

/// An IPLD selector, as go-ipld-prime parses it (spec §6.1).
///
/// Parse one with [`Selector::from_node`], [`Selector::from_dag_cbor`] or
/// [`Selector::from_dag_json`]; write one with [`Selector::to_node`] or
/// [`Selector::to_dag_cbor`]. `ExploreFields` keeps its fields in the order they were parsed
/// or built, which is the order a traversal explores them in; [`Selector::canonical`] sorts
/// them the way the canonical encoding does.
///
/// ```
/// use ipld_selector::Selector;
///
/// let selector = Selector::from_dag_json(br#"{"R":{"l":{"none":{}},":>":{"a":{">":{"@":{}}}}}}"#)?;
/// assert_eq!(selector, Selector::explore_all_recursively());
/// assert_eq!(selector.to_dag_cbor().len(), 26);
/// # Ok::<(), ipld_selector::ParseError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Selector {
    /// `.`: matches the node; with a subset, matches a slice of a string or bytes node.
    Matcher {
        /// The optional `subset` slice.
        subset: Option<Subset>,
    },
    /// `a`: explores every entry of a map or list with `next`.
    ExploreAll {
        /// The selector for every child.
        next: Box<Selector>,
    },
    /// `f`: explores the named fields, in this order.
    ExploreFields {
        /// Field names and their selectors, in exploration order.
        fields: Vec<(Text, Selector)>,
    },
    /// `i`: explores one list element.
    ExploreIndex {
        /// The index.
        index: i64,
        /// The selector for that element.
        next: Box<Selector>,
    },
    /// `r`: explores the list elements `start..end`.
    ExploreRange {
        /// The first index.
        start: i64,
        /// One past the last index; greater than `start`.
        end: i64,
        /// The selector for those elements.
        next: Box<Selector>,
    },
    /// `R`: applies `sequence` again wherever it reaches an [`Selector::ExploreRecursiveEdge`].
    ExploreRecursive {
        /// How many passes through the sequence are allowed.
        limit: RecursionLimit,
        /// The selector repeated at each level; contains at least one edge.
        sequence: Box<Selector>,
        /// Children matching this condition are not explored.
        stop_at: Option<Condition>,
    },
    /// `@`: the point where the enclosing `R` sequence starts again.
    ExploreRecursiveEdge,
    /// `|`: all member selectors at once.
    ExploreUnion(Vec<Selector>),
    /// `~`: reinterpret the node through the named ADL, then apply `next`.
    ///
    /// This crate registers no ADL: a traversal that meets this clause as the selector of a
    /// node fails, as go-ipld-prime does without a reifier (spec §6.8).
    ExploreInterpretAs {
        /// The ADL name, e.g. `unixfs`.
        adl: Text,
        /// The selector for the reinterpreted node.
        next: Box<Selector>,
    },
}

/// The `subset` of a [`Selector::Matcher`]: a byte slice `[from, to)` of a string or bytes node.
///
/// Negative values count from the end; `to` beyond the end means the end (the semantics of
/// go-ipld-prime after v0.16.0, which the selector fixtures use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subset {
    /// The first byte (`[`).
    pub from: i64,
    /// One past the last byte (`]`).
    pub to: i64,
}

/// The `l` limit of a [`Selector::ExploreRecursive`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecursionLimit {
    /// `{"none": {}}`: no limit.
    None,
    /// `{"depth": d}`: at most `d` passes through the sequence (depth 1 is the start node only).
    Depth(i64),
}

/// The `!` stop-at condition of a [`Selector::ExploreRecursive`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Condition {
    /// `{"/": link}`: the child is exactly this link.
    Link(Cid),
}

/// Why a node is not a selector go-ipld-prime accepts. Every variant names the path, inside
/// the selector node, of the offending value (e.g. `R/:>/a/>`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The selector bytes are not valid DAG-CBOR.
    #[error("selector is not valid dag-cbor")]
    DagCbor {
        /// The decoder's reason.
        #[source]
        source: ipld_dagcbor::DecodeError,
    },
    /// The selector bytes are not valid DAG-JSON.
    #[error("selector is not valid dag-json")]
    DagJson {
        /// The decoder's reason.
        #[source]
        source: dagjson::DecodeError,
    },
    /// A value has the wrong kind.
    #[error("expected a {expected} at `{path}`, found a {found}")]
    WrongKind {
        /// Where the value is.
        path: Path,
        /// The kind required there.
        expected: Kind,
        /// The kind found.
        found: Kind,
    },
    /// A keyed union (selector, limit, condition) is not a single-entry map.
    #[error("keyed union at `{path}` has {len} entries instead of one")]
    NotSingleEntry {
        /// Where the map is.
        path: Path,
        /// Its number of entries.
        len: usize,
    },
    /// The key of a selector map is no selector clause go-ipld-prime knows.
    #[error("unknown selector clause `{key}` at `{path}`")]
    UnknownClause {
        /// Where the selector map is.
        path: Path,
        /// The key.
        key: Text,
    },
    /// `&` (ExploreConditional), which go-ipld-prime does not implement.
    #[error("unsupported selector clause `&` (explore conditional) at `{path}`")]
    ConditionalUnsupported {
        /// Where the selector map is.
        path: Path,
    },
    /// A required field of a clause body is absent.
    #[error("missing field `{field}` in the clause body at `{path}`")]
    MissingField {
        /// Where the clause body is.
        path: Path,
        /// The missing key.
        field: &'static str,
    },
    /// An integer does not fit in 64 signed bits.
    #[error("integer {value} at `{path}` does not fit in 64 signed bits")]
    IntegerOutOfRange {
        /// Where the integer is.
        path: Path,
        /// Its value.
        value: i128,
    },
    /// An ExploreRange whose end is not after its start.
    #[error("range at `{path}` has end {end} not after start {start}")]
    EmptyRange {
        /// Where the range body is.
        path: Path,
        /// `^`.
        start: i64,
        /// `$`.
        end: i64,
    },
    /// A Matcher subset with `from` after a non-negative `to`.
    #[error("subset at `{path}` has from {from} after to {to}")]
    InvalidSubset {
        /// Where the subset is.
        path: Path,
        /// `[`.
        from: i64,
        /// `]`.
        to: i64,
    },
    /// The limit union has an unknown key.
    #[error("unknown recursion limit `{key}` at `{path}`")]
    UnknownLimit {
        /// Where the limit map is.
        path: Path,
        /// The key.
        key: Text,
    },
    /// The condition union has an unknown key (only `/` is supported).
    #[error("unknown condition `{key}` at `{path}`")]
    UnknownCondition {
        /// Where the condition map is.
        path: Path,
        /// The key.
        key: Text,
    },
    /// An ExploreRecursive whose sequence has no edge of its own.
    #[error("explore recursive at `{path}` has no recursive edge in its sequence")]
    NoRecursiveEdge {
        /// Where the ExploreRecursive body is.
        path: Path,
    },
    /// An ExploreRecursiveEdge outside any ExploreRecursive sequence.
    #[error("recursive edge at `{path}` is outside any explore recursive")]
    EdgeOutsideRecursive {
        /// Where the edge is.
        path: Path,
    },
    /// Selectors nest deeper than this parser follows.
    #[error("selector nesting deeper than {limit} at `{path}`")]
    TooDeep {
        /// Where the limit was passed.
        path: Path,
        /// The limit.
        limit: usize,
    },
}

/// A selector rejected by the recursion-depth check of go-graphsync's default request
/// validator (see [`Selector::check_recursion_depth`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecursionLimitError {
    /// An ExploreRecursive with limit `none`.
    #[error("unbounded recursion at `{path}` (limit none)")]
    Unbounded {
        /// Where the ExploreRecursive is, in the selector node.
        path: Path,
    },
    /// An ExploreRecursive whose depth exceeds the accepted maximum.
    #[error("recursion depth {depth} at `{path}` is over the maximum {max}")]
    TooDeep {
        /// Where the ExploreRecursive is, in the selector node.
        path: Path,
        /// Its depth limit.
        depth: i64,
        /// The maximum accepted.
        max: u64,
    },
}

/// The deepest nesting of selector clauses the parser follows.
pub(crate) const MAX_PARSE_DEPTH: usize = 512;

impl Selector {
    /// go-ipld-prime's `CommonSelector_ExploreAllRecursively`: `{"R":{"l":{"none":{}},":>":{"a":{">":{"@":{}}}}}}`.
    pub fn explore_all_recursively() -> Self {
        Selector::ExploreRecursive {
            limit: RecursionLimit::None,
            sequence: Box::new(Selector::ExploreAll {
                next: Box::new(Selector::ExploreRecursiveEdge),
            }),
            stop_at: None,
        }
    }

    /// go-ipld-prime's `CommonSelector_MatchAllRecursively`.
    pub fn match_all_recursively() -> Self {
        Selector::ExploreRecursive {
            limit: RecursionLimit::None,
            sequence: Box::new(Selector::ExploreUnion(vec![
                Selector::match_point(),
                Selector::ExploreAll {
                    next: Box::new(Selector::ExploreRecursiveEdge),
                },
            ])),
            stop_at: None,
        }
    }

    /// go-ipld-prime's `CommonSelector_MatchPoint`: `{".":{}}`.
    pub fn match_point() -> Self {
        Selector::Matcher { subset: None }
    }

    /// go-ipld-prime's `CommonSelector_MatchChildren`: `{"a":{">":{".":{}}}}`.
    pub fn match_children() -> Self {
        Selector::ExploreAll {
            next: Box::new(Selector::match_point()),
        }
    }

    /// Parses a selector node as go-ipld-prime's `selector.ParseSelector` does.
    ///
    /// Unknown keys inside clause bodies are ignored; everything else that Go rejects is
    /// rejected, with the path of the bad value.
    ///
    /// # Errors
    /// A [`ParseError`] naming the path of the first bad value, in Go's checking order.
    pub fn from_node(node: &Node) -> Result<Self, ParseError> {
        let mut parser = Parser {
            path: Path::root(),
            recursions: Vec::new(),
        };
        parser.selector(node)
    }

    /// Decodes DAG-CBOR bytes and parses the selector they hold.
    ///
    /// # Errors
    /// [`ParseError::DagCbor`] if the bytes do not decode, else as [`Selector::from_node`].
    pub fn from_dag_cbor(bytes: &[u8]) -> Result<Self, ParseError> {
        let node = ipld_dagcbor::decode(bytes).map_err(|source| ParseError::DagCbor { source })?;
        Self::from_node(&node)
    }

    /// Decodes DAG-JSON bytes and parses the selector they hold.
    ///
    /// # Errors
    /// [`ParseError::DagJson`] if the bytes do not decode, else as [`Selector::from_node`].
    pub fn from_dag_json(bytes: &[u8]) -> Result<Self, ParseError> {
        let node = dagjson::decode(bytes).map_err(|source| ParseError::DagJson { source })?;
        Self::from_node(&node)
    }

    /// The selector as a data-model node, with `ExploreFields` fields in this selector's order.
    pub fn to_node(&self) -> Node {
        let (key, body) = match self {
            Selector::Matcher { subset } => {
                let mut body = Map::new();
                if let Some(subset) = subset {
                    let range = Map::new().with("[", subset.from).with("]", subset.to);
                    body.insert("subset", Node::Map(range));
                }
                (".", Node::Map(body))
            }
            Selector::ExploreAll { next } => ("a", Node::Map(Map::new().with(">", next.to_node()))),
            Selector::ExploreFields { fields } => {
                let mut inner = Map::new();
                for (name, selector) in fields {
                    inner.insert(name.clone(), selector.to_node());
                }
                ("f", Node::Map(Map::new().with("f>", Node::Map(inner))))
            }
            Selector::ExploreIndex { index, next } => (
                "i",
                Node::Map(Map::new().with("i", *index).with(">", next.to_node())),
            ),
            Selector::ExploreRange { start, end, next } => (
                "r",
                Node::Map(
                    Map::new()
                        .with("^", *start)
                        .with("$", *end)
                        .with(">", next.to_node()),
                ),
            ),
            Selector::ExploreRecursive {
                limit,
                sequence,
                stop_at,
            } => {
                let limit = match limit {
                    RecursionLimit::None => Map::new().with("none", Node::empty_map()),
                    RecursionLimit::Depth(depth) => Map::new().with("depth", *depth),
                };
                let mut body = Map::new()
                    .with("l", Node::Map(limit))
                    .with(":>", sequence.to_node());
                if let Some(Condition::Link(cid)) = stop_at {
                    body.insert("!", Node::Map(Map::new().with("/", *cid)));
                }
                ("R", Node::Map(body))
            }
            Selector::ExploreRecursiveEdge => ("@", Node::empty_map()),
            Selector::ExploreUnion(members) => (
                "|",
                Node::List(members.iter().map(Selector::to_node).collect()),
            ),
            Selector::ExploreInterpretAs { adl, next } => (
                "~",
                Node::Map(
                    Map::new()
                        .with("as", Node::String(adl.clone()))
                        .with(">", next.to_node()),
                ),
            ),
        };
        Node::Map(Map::new().with(key, body))
    }

    /// The canonical DAG-CBOR encoding: every map sorted length-first, as Go writes it.
    pub fn to_dag_cbor(&self) -> Vec<u8> {
        ipld_dagcbor::to_vec(&self.to_node())
            .expect("selector nodes hold only maps, lists, text, links and i64 integers")
    }

    /// This selector with every `ExploreFields` in canonical (length-first) key order: the
    /// order a Go responder explores after decoding the canonical bytes (spec §6.7). A
    /// requester sends [`Selector::to_dag_cbor`] and walks this form locally.
    pub fn canonical(&self) -> Selector {
        match self {
            Selector::Matcher { .. } | Selector::ExploreRecursiveEdge => self.clone(),
            Selector::ExploreAll { next } => Selector::ExploreAll {
                next: Box::new(next.canonical()),
            },
            Selector::ExploreFields { fields } => {
                let mut fields: Vec<_> = fields
                    .iter()
                    .map(|(name, sel)| (name.clone(), sel.canonical()))
                    .collect();
                fields.sort_by(|(a, _), (b, _)| canonical_key_order(a.as_bytes(), b.as_bytes()));
                Selector::ExploreFields { fields }
            }
            Selector::ExploreIndex { index, next } => Selector::ExploreIndex {
                index: *index,
                next: Box::new(next.canonical()),
            },
            Selector::ExploreRange { start, end, next } => Selector::ExploreRange {
                start: *start,
                end: *end,
                next: Box::new(next.canonical()),
            },
            Selector::ExploreRecursive {
                limit,
                sequence,
                stop_at,
            } => Selector::ExploreRecursive {
                limit: *limit,
                sequence: Box::new(sequence.canonical()),
                stop_at: *stop_at,
            },
            Selector::ExploreUnion(members) => {
                Selector::ExploreUnion(members.iter().map(Selector::canonical).collect())
            }
            Selector::ExploreInterpretAs { adl, next } => Selector::ExploreInterpretAs {
                adl: adl.clone(),
                next: Box::new(next.canonical()),
            },
        }
    }

    /// The recursion-depth check of go-graphsync's default request validator
    /// (`selectorvalidator.ValidateMaxRecursionDepth`): every ExploreRecursive reachable
    /// through `R`, `f`, `|`, `a`, `i` and `r` clauses must have limit `depth ≤ max`; limit
    /// `none` is rejected. As in Go, `~` bodies and stop-at conditions are not looked into.
    ///
    /// # Errors
    /// The first offending ExploreRecursive, in depth-first order.
    pub fn check_recursion_depth(&self, max: u64) -> Result<(), RecursionLimitError> {
        let mut path = Path::root();
        self.check_depth_at(max, &mut path)
    }

    fn check_depth_at(&self, max: u64, path: &mut Path) -> Result<(), RecursionLimitError> {
        match self {
            Selector::ExploreRecursive {
                limit, sequence, ..
            } => {
                match limit {
                    RecursionLimit::None => {
                        return Err(RecursionLimitError::Unbounded { path: path.clone() });
                    }
                    RecursionLimit::Depth(depth) => {
                        if i128::from(*depth) > i128::from(max) {
                            return Err(RecursionLimitError::TooDeep {
                                path: path.clone(),
                                depth: *depth,
                                max,
                            });
                        }
                    }
                }
                check_child(sequence, max, path, &["R", ":>"])
            }
            Selector::ExploreAll { next } => check_child(next, max, path, &["a", ">"]),
            Selector::ExploreIndex { next, .. } => check_child(next, max, path, &["i", ">"]),
            Selector::ExploreRange { next, .. } => check_child(next, max, path, &["r", ">"]),
            Selector::ExploreFields { fields } => {
                for (name, selector) in fields {
                    path.push(Segment::from("f"));
                    path.push(Segment::from("f>"));
                    path.push(Segment::Key(name.clone()));
                    let result = selector.check_depth_at(max, path);
                    path.pop();
                    path.pop();
                    path.pop();
                    result?;
                }
                Ok(())
            }
            Selector::ExploreUnion(members) => {
                for (index, member) in members.iter().enumerate() {
                    path.push(Segment::from("|"));
                    path.push(Segment::Index(index as i64));
                    let result = member.check_depth_at(max, path);
                    path.pop();
                    path.pop();
                    result?;
                }
                Ok(())
            }
            Selector::Matcher { .. }
            | Selector::ExploreRecursiveEdge
            | Selector::ExploreInterpretAs { .. } => Ok(()),
        }
    }
}

fn check_child(
    selector: &Selector,
    max: u64,
    path: &mut Path,
    keys: &[&str],
) -> Result<(), RecursionLimitError> {
    for key in keys {
        path.push(Segment::from(*key));
    }
    let result = selector.check_depth_at(max, path);
    for _ in keys {
        path.pop();
    }
    result
}

/// The parser state: the current path and, for each enclosing ExploreRecursive, how many
/// edges its sequence has linked so far (innermost last).
struct Parser {
    path: Path,
    recursions: Vec<usize>,
}

impl Parser {
    fn selector(&mut self, node: &Node) -> Result<Selector, ParseError> {
        if self.path.len() > MAX_PARSE_DEPTH {
            return Err(ParseError::TooDeep {
                path: self.path.clone(),
                limit: MAX_PARSE_DEPTH,
            });
        }
        let map = self.expect_map(node)?;
        let (key, body) = self.single_entry(map)?;
        self.path.push(Segment::Key(key.clone()));
        let result = match key.as_bytes() {
            b"f" => self.explore_fields(body),
            b"a" => self.explore_all(body),
            b"i" => self.explore_index(body),
            b"r" => self.explore_range(body),
            b"|" => self.explore_union(body),
            b"R" => self.explore_recursive(body),
            b"@" => self.explore_recursive_edge(body),
            b"~" => self.explore_interpret_as(body),
            b"." => self.matcher(body),
            b"&" => {
                self.path.pop();
                return Err(ParseError::ConditionalUnsupported {
                    path: self.path.clone(),
                });
            }
            _ => {
                self.path.pop();
                return Err(ParseError::UnknownClause {
                    path: self.path.clone(),
                    key: key.clone(),
                });
            }
        };
        self.path.pop();
        result
    }

    fn matcher(&mut self, body: &Node) -> Result<Selector, ParseError> {
        let body = self.expect_map(body)?;
        let Some(subset) = body.get("subset") else {
            return Ok(Selector::Matcher { subset: None });
        };
        self.path.push(Segment::from("subset"));
        let subset = self.expect_map(subset)?;
        let from = self.int_field(subset, "[")?;
        let to = self.int_field(subset, "]")?;
        if to >= 0 && from > to {
            return Err(ParseError::InvalidSubset {
                path: self.path.clone(),
                from,
                to,
            });
        }
        self.path.pop();
        Ok(Selector::Matcher {
            subset: Some(Subset { from, to }),
        })
    }

    fn explore_all(&mut self, body: &Node) -> Result<Selector, ParseError> {
        let body = self.expect_map(body)?;
        let next = self.next_field(body, ">")?;
        Ok(Selector::ExploreAll {
            next: Box::new(next),
        })
    }

    fn explore_fields(&mut self, body: &Node) -> Result<Selector, ParseError> {
        let body = self.expect_map(body)?;
        let fields_node = self.field(body, "f>")?;
        self.path.push(Segment::from("f>"));
        let fields_map = self.expect_map(fields_node)?;
        let mut fields = Vec::with_capacity(fields_map.len());
        for (name, value) in fields_map.iter() {
            self.path.push(Segment::Key(name.clone()));
            let selector = self.selector(value)?;
            self.path.pop();
            fields.push((name.clone(), selector));
        }
        self.path.pop();
        Ok(Selector::ExploreFields { fields })
    }

    fn explore_index(&mut self, body: &Node) -> Result<Selector, ParseError> {
        let body = self.expect_map(body)?;
        let index = self.int_field(body, "i")?;
        let next = self.next_field(body, ">")?;
        Ok(Selector::ExploreIndex {
            index,
            next: Box::new(next),
        })
    }

    fn explore_range(&mut self, body: &Node) -> Result<Selector, ParseError> {
        let body = self.expect_map(body)?;
        let start = self.int_field(body, "^")?;
        let end = self.int_field(body, "$")?;
        if start >= end {
            return Err(ParseError::EmptyRange {
                path: self.path.clone(),
                start,
                end,
            });
        }
        let next = self.next_field(body, ">")?;
        Ok(Selector::ExploreRange {
            start,
            end,
            next: Box::new(next),
        })
    }

    fn explore_union(&mut self, body: &Node) -> Result<Selector, ParseError> {
        let Node::List(items) = body else {
            return Err(ParseError::WrongKind {
                path: self.path.clone(),
                expected: Kind::List,
                found: body.kind(),
            });
        };
        let mut members = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            self.path.push(Segment::Index(index as i64));
            members.push(self.selector(item)?);
            self.path.pop();
        }
        Ok(Selector::ExploreUnion(members))
    }

    fn explore_recursive(&mut self, body: &Node) -> Result<Selector, ParseError> {
        let body = self.expect_map(body)?;
        let limit_node = self.field(body, "l")?;
        self.path.push(Segment::from("l"));
        let limit = self.limit(limit_node)?;
        self.path.pop();
        let sequence_node = self.field(body, ":>")?;
        self.recursions.push(0);
        self.path.push(Segment::from(":>"));
        let sequence = self.selector(sequence_node);
        self.path.pop();
        let edges = self.recursions.pop().expect("pushed just above");
        let sequence = sequence?;
        if edges == 0 {
            return Err(ParseError::NoRecursiveEdge {
                path: self.path.clone(),
            });
        }
        let stop_at = match body.get("!") {
            Some(condition) => {
                self.path.push(Segment::from("!"));
                let condition = self.condition(condition)?;
                self.path.pop();
                Some(condition)
            }
            None => None,
        };
        Ok(Selector::ExploreRecursive {
            limit,
            sequence: Box::new(sequence),
            stop_at,
        })
    }

    fn explore_recursive_edge(&mut self, body: &Node) -> Result<Selector, ParseError> {
        self.expect_map(body)?;
        match self.recursions.last_mut() {
            Some(edges) => {
                *edges += 1;
                Ok(Selector::ExploreRecursiveEdge)
            }
            None => Err(ParseError::EdgeOutsideRecursive {
                path: self.path.clone(),
            }),
        }
    }

    fn explore_interpret_as(&mut self, body: &Node) -> Result<Selector, ParseError> {
        let body = self.expect_map(body)?;
        let adl = self.field(body, "as")?;
        let next = self.next_field(body, ">")?;
        let Node::String(adl) = adl else {
            self.path.push(Segment::from("as"));
            return Err(ParseError::WrongKind {
                path: self.path.clone(),
                expected: Kind::String,
                found: adl.kind(),
            });
        };
        Ok(Selector::ExploreInterpretAs {
            adl: adl.clone(),
            next: Box::new(next),
        })
    }

    fn limit(&mut self, node: &Node) -> Result<RecursionLimit, ParseError> {
        let map = self.expect_map(node)?;
        let (key, value) = self.single_entry(map)?;
        match key.as_bytes() {
            b"depth" => {
                self.path.push(Segment::from("depth"));
                let depth = self.int(value)?;
                self.path.pop();
                Ok(RecursionLimit::Depth(depth))
            }
            b"none" => Ok(RecursionLimit::None),
            _ => Err(ParseError::UnknownLimit {
                path: self.path.clone(),
                key: key.clone(),
            }),
        }
    }

    fn condition(&mut self, node: &Node) -> Result<Condition, ParseError> {
        let map = self.expect_map(node)?;
        let (key, value) = self.single_entry(map)?;
        match key.as_bytes() {
            b"/" => match value {
                Node::Link(cid) => Ok(Condition::Link(*cid)),
                other => {
                    self.path.push(Segment::from("/"));
                    Err(ParseError::WrongKind {
                        path: self.path.clone(),
                        expected: Kind::Link,
                        found: other.kind(),
                    })
                }
            },
            _ => Err(ParseError::UnknownCondition {
                path: self.path.clone(),
                key: key.clone(),
            }),
        }
    }

    fn expect_map<'n>(&self, node: &'n Node) -> Result<&'n Map, ParseError> {
        node.as_map().ok_or_else(|| ParseError::WrongKind {
            path: self.path.clone(),
            expected: Kind::Map,
            found: node.kind(),
        })
    }

    fn single_entry<'n>(&self, map: &'n Map) -> Result<(&'n Text, &'n Node), ParseError> {
        match map.get_index(0) {
            Some(entry) if map.len() == 1 => Ok(entry),
            _ => Err(ParseError::NotSingleEntry {
                path: self.path.clone(),
                len: map.len(),
            }),
        }
    }

    fn field<'n>(&self, body: &'n Map, field: &'static str) -> Result<&'n Node, ParseError> {
        body.get(field).ok_or_else(|| ParseError::MissingField {
            path: self.path.clone(),
            field,
        })
    }

    fn next_field(&mut self, body: &Map, field: &'static str) -> Result<Selector, ParseError> {
        let node = self.field(body, field)?;
        self.path.push(Segment::from(field));
        let selector = self.selector(node)?;
        self.path.pop();
        Ok(selector)
    }

    fn int_field(&mut self, body: &Map, field: &'static str) -> Result<i64, ParseError> {
        let node = self.field(body, field)?;
        self.path.push(Segment::from(field));
        let value = self.int(node)?;
        self.path.pop();
        Ok(value)
    }

    fn int(&self, node: &Node) -> Result<i64, ParseError> {
        match node {
            Node::Integer(value) => {
                i64::try_from(*value).map_err(|_| ParseError::IntegerOutOfRange {
                    path: self.path.clone(),
                    value: *value,
                })
            }
            other => Err(ParseError::WrongKind {
                path: self.path.clone(),
                expected: Kind::Integer,
                found: other.kind(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_json(text: &str) -> Result<Selector, ParseError> {
        Selector::from_dag_json(text.as_bytes())
    }

    #[test]
    fn every_clause_round_trips_through_its_node() {
        let text = r#"{"|":[
            {".":{"subset":{"[":1,"]":-1}}},
            {"f":{"f>":{"b":{".":{}},"a":{"i":{"i":2,">":{".":{}}}}}}},
            {"r":{"^":0,"$":3,">":{".":{}}}},
            {"R":{"l":{"depth":3},":>":{"|":[{"@":{}},{"~":{"as":"unixfs",">":{"@":{}}}}]},
                  "!":{"/":{"/":"bafkreif4a5vrdoboupepfyeu6cynrniqwguk74bxr4edfz7w5l5dekdp6i"}}}}
        ]}"#;
        let selector = parse_json(text).expect("valid selector");
        let again = Selector::from_node(&selector.to_node()).expect("re-parses");
        assert_eq!(again, selector);
        let Selector::ExploreUnion(members) = &selector else {
            panic!("a union")
        };
        let Selector::ExploreFields { fields } = &members[1] else {
            panic!("fields")
        };
        let names: Vec<_> = fields.iter().map(|(name, _)| name.to_string()).collect();
        assert_eq!(names, ["b", "a"], "parsed order is kept");
        let Selector::ExploreUnion(members) = selector.canonical() else {
            panic!("a union")
        };
        let Selector::ExploreFields { fields } = &members[1] else {
            panic!("fields")
        };
        let names: Vec<_> = fields.iter().map(|(name, _)| name.to_string()).collect();
        assert_eq!(names, ["a", "b"], "canonical order is length-first");
    }

    #[test]
    fn unknown_keys_in_bodies_are_ignored() {
        let selector = parse_json(r#"{".":{"onlyIf":1,"label":"x"}}"#).expect("ignored keys");
        assert_eq!(selector, Selector::match_point());
    }

    #[test]
    fn recursion_depth_check_follows_go_validator() {
        let all = Selector::explore_all_recursively();
        assert!(matches!(
            all.check_recursion_depth(100),
            Err(RecursionLimitError::Unbounded { .. })
        ));
        let deep =
            parse_json(r#"{"f":{"f>":{"x":{"R":{"l":{"depth":101},":>":{"a":{">":{"@":{}}}}}}}}}"#)
                .expect("valid");
        match deep.check_recursion_depth(100) {
            Err(RecursionLimitError::TooDeep {
                path,
                depth: 101,
                max: 100,
            }) => {
                assert_eq!(path.to_string(), "f/f>/x");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(deep.check_recursion_depth(101).is_ok());
        // Go's validator does not look inside `~`.
        let hidden = parse_json(
            r#"{"~":{"as":"unixfs",">":{"R":{"l":{"none":{}},":>":{"a":{">":{"@":{}}}}}}}}"#,
        )
        .expect("valid");
        assert!(hidden.check_recursion_depth(100).is_ok());
    }
}
