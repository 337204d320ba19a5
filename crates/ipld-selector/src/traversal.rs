//! The sans-IO traversal: a state machine with an explicit stack that asks for blocks and
//! reports visits in go-ipld-prime's order.

use std::borrow::Cow;

use bytes::Bytes;
use cid::Cid;
use ipld_dagcbor::{Limits, Node, Text};

use crate::codec::{self, BlockDecodeError};
use crate::path::{Path, Segment, parse_go_int};
use crate::selector::{RecursionLimitError, Selector};
use crate::walk::{Active, Compiled, Interest, Interests, MatchKind};

/// The recursion depth cap of go-graphsync's default request validator (`maxRecursionDepth`).
pub const GRAPHSYNC_MAX_RECURSION_DEPTH: u64 = 100;

/// Settings of a [`Traversal`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// A recursion depth cap. With `Some(max)`, [`Traversal::new`] refuses a selector with an
    /// ExploreRecursive whose limit is `none` or a depth over `max` (see
    /// [`Selector::check_recursion_depth`]). `None` accepts every selector, as go-ipld-prime's
    /// traversal does.
    ///
    /// Default: `None`. go-graphsync's default request validator caps at
    /// [`GRAPHSYNC_MAX_RECURSION_DEPTH`]; a graphsync responder applies that cap itself (status
    /// 30), so the plain traversal does not.
    pub max_recursion_depth: Option<u64>,
    /// The link budget: the most link loads allowed, the root included. Exceeding it fails the
    /// traversal with [`TraversalError::LinkBudgetExceeded`] before the load. As in Go, the root
    /// is charged before the check, so a budget of 1 (or 0) fails at the root; a budget of
    /// `n ≥ 2` allows `n` loads.
    ///
    /// Default: `None`, unlimited (Go's `0`).
    pub link_budget: Option<u64>,
    /// Bounds for decoding dag-cbor blocks. Default: [`Limits::default`].
    pub block_limits: Limits,
}

impl Config {
    /// This config with another recursion depth cap (`None`: accept all selectors).
    pub fn with_max_recursion_depth(self, max_recursion_depth: Option<u64>) -> Self {
        Config {
            max_recursion_depth,
            ..self
        }
    }

    /// This config with another link budget (`None`: unlimited).
    pub fn with_link_budget(self, link_budget: Option<u64>) -> Self {
        Config {
            link_budget,
            ..self
        }
    }

    /// This config with other dag-cbor decoding bounds.
    pub fn with_block_limits(self, block_limits: Limits) -> Self {
        Config {
            block_limits,
            ..self
        }
    }
}

/// Why a traversal cannot go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraversalError {
    /// The selector exceeds [`Config::max_recursion_depth`] (graphsync: status 30).
    #[error("selector rejected by the recursion depth cap")]
    SelectorRejected {
        /// The offending recursion.
        #[source]
        source: RecursionLimitError,
    },
    /// A link names a codec this crate cannot decode. As in go-ipld-prime, whose link system
    /// picks the decoder before it opens storage, no load is asked for.
    #[error("link {cid} at `{path}` has unsupported codec 0x{codec:x}")]
    UnknownCodec {
        /// The link.
        cid: Cid,
        /// Where it is.
        path: Path,
        /// The multicodec code.
        codec: u64,
    },
    /// A loaded block does not decode.
    #[error("block {cid} loaded at `{path}` does not decode")]
    Decode {
        /// The block's CID.
        cid: Cid,
        /// Where its link is.
        path: Path,
        /// The codec's reason.
        #[source]
        source: BlockDecodeError,
    },
    /// The next load would exceed [`Config::link_budget`].
    #[error("link budget of {budget} exceeded at `{path}` by {cid}")]
    LinkBudgetExceeded {
        /// The link that would have been loaded.
        cid: Cid,
        /// Where it is.
        path: Path,
        /// The budget.
        budget: u64,
    },
    /// A node's selector is an ExploreInterpretAs, and no ADL is registered (spec §6.8).
    #[error("adl `{adl}` requested at `{path}` but no adl is supported")]
    AdlUnsupported {
        /// The ADL name.
        adl: Text,
        /// The node's path.
        path: Path,
    },
    /// [`Traversal::provide`] or [`Traversal::missing`] without a pending load.
    #[error("no block load is pending")]
    NotAwaitingBlock,
    /// The traversal already failed; it cannot go on.
    #[error("the traversal already failed")]
    AlreadyFailed,
}

/// What the traversal does next; returned by [`Traversal::next`].
#[derive(Debug)]
pub enum Step<'a> {
    /// Load this block, then answer with [`Traversal::provide`] or [`Traversal::missing`].
    /// Every load is one graphsync metadata entry.
    Load(LoadRequest<'a>),
    /// A node was reached (pre-order), matched or not.
    Visit(Visit<'a>),
    /// The traversal is complete.
    Done,
}

/// A block the traversal needs.
#[derive(Debug, Clone, Copy)]
pub struct LoadRequest<'a> {
    /// The link to load.
    pub cid: Cid,
    /// The path of the link (empty for the root).
    pub path: &'a Path,
}

/// A node reached by the traversal, as go-ipld-prime's visitor sees it.
#[derive(Debug, Clone)]
pub struct Visit<'a> {
    /// The node's path.
    pub path: &'a Path,
    /// The node; for a Matcher `subset` match, the matched slice (a string or bytes node).
    pub node: Cow<'a, Node>,
    /// Whether the selector matches here (go-ipld-prime's `VisitReason_SelectionMatch`).
    pub matched: bool,
}

/// A sans-IO, resumable traversal of a DAG by a selector, in go-ipld-prime's order.
///
/// Drive it by calling [`Traversal::next`] until [`Step::Done`] or an error. On
/// [`Step::Load`], fetch the block and answer with [`Traversal::provide`] (the block bytes) or
/// [`Traversal::missing`]; calling `next` again without answering repeats the same load.
/// The traversal keeps an explicit stack, so DAG depth costs heap, not call stack, and it can
/// be paused between any two steps for as long as the caller likes.
///
/// Order (spec §6.3–§6.6): the root is loaded first; nodes are visited depth-first, pre-order;
/// map entries in block byte order; explicit interests (ExploreFields etc.) in selector order;
/// a link is loaded when explored, and its block is walked completely before the next
/// sibling; a link reached again is loaded again. A missing non-root block is recorded (see
/// [`Traversal::missing_links`]), its subtree skipped, and the traversal goes on.
///
/// Block hashes are not verified here: the loader (block layer) must do that.
///
/// ```
/// use ipld_selector::{Config, Selector, Step, Traversal};
///
/// let root: cid::Cid = "bafkreif4a5vrdoboupepfyeu6cynrniqwguk74bxr4edfz7w5l5dekdp6i".parse()?;
/// let mut traversal = Traversal::new(root, &Selector::match_point(), Config::default())?;
/// let mut visits = 0;
/// loop {
///     match traversal.next()? {
///         Step::Load(load) => {
///             assert_eq!(load.cid, root);
///             traversal.provide(b"leaf one")?;
///         }
///         Step::Visit(visit) => {
///             assert!(visit.matched);
///             visits += 1;
///         }
///         Step::Done => break,
///     }
/// }
/// assert_eq!(visits, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Traversal {
    config: Config,
    selector: Compiled,
    root: Cid,
    state: State,
    /// Loaded blocks on the current branch, outermost first.
    blocks: Vec<Node>,
    frames: Vec<Frame>,
    path: Path,
    /// Loads left, Go style; `None` when unlimited.
    budget_left: Option<i128>,
    missing: Vec<(Path, Cid)>,
    root_missing: bool,
}

#[derive(Debug)]
enum State {
    Start,
    Awaiting {
        cid: Cid,
        selector: Active,
        is_root: bool,
    },
    Running,
    Done,
    Failed,
}

#[derive(Debug)]
struct Frame {
    selector: Active,
    /// The index of this frame's block in `Traversal::blocks`.
    block: usize,
    /// The index of the frame holding this block's root node.
    block_root: usize,
    /// The index of this node in its parent frame's node, or `None` for a block root.
    child: Option<usize>,
    /// Whether entering this frame pushed a path segment.
    pushed_segment: bool,
    progress: Progress,
}

#[derive(Debug)]
enum Progress {
    /// Not visited yet.
    Enter,
    /// Visited; no children to explore.
    Leaf,
    /// Exploring every child; the next one is at this position.
    All { next: usize },
    /// Exploring these (segment, child position) pairs in order; the next is at `next`.
    Explicit {
        items: Vec<(Segment, usize)>,
        next: usize,
    },
}

/// What [`Traversal::advance`] decided to report.
enum Emit {
    Load(Cid),
    Visit(Option<MatchKind>),
    Done,
}

impl Traversal {
    /// A traversal of the DAG under `root` by `selector`.
    ///
    /// # Errors
    /// [`TraversalError::SelectorRejected`] when [`Config::max_recursion_depth`] is set and the
    /// selector exceeds it.
    pub fn new(root: Cid, selector: &Selector, config: Config) -> Result<Self, TraversalError> {
        if let Some(max) = config.max_recursion_depth {
            selector
                .check_recursion_depth(max)
                .map_err(|source| TraversalError::SelectorRejected { source })?;
        }
        let budget_left = config.link_budget.map(i128::from);
        Ok(Traversal {
            config,
            selector: Compiled::new(selector),
            root,
            state: State::Start,
            blocks: Vec::new(),
            frames: Vec::new(),
            path: Path::root(),
            budget_left,
            missing: Vec::new(),
            root_missing: false,
        })
    }

    /// The next step.
    ///
    /// # Errors
    /// A [`TraversalError`] ends the traversal (graphsync: status 32), except
    /// [`TraversalError::SelectorRejected`], which only [`Traversal::new`] returns. After an
    /// error, `next` returns [`TraversalError::AlreadyFailed`].
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Step<'_>, TraversalError> {
        let emit = match self.advance() {
            Ok(emit) => emit,
            Err(error) => {
                self.state = State::Failed;
                return Err(error);
            }
        };
        Ok(match emit {
            Emit::Load(cid) => Step::Load(LoadRequest {
                cid,
                path: &self.path,
            }),
            Emit::Done => Step::Done,
            Emit::Visit(matched) => {
                let node = self.node_of(self.frames.len() - 1);
                let (node, matched) = match matched {
                    None => (Cow::Borrowed(node), false),
                    Some(MatchKind::Whole) => (Cow::Borrowed(node), true),
                    Some(MatchKind::Slice(range)) => (Cow::Owned(slice_node(node, range)), true),
                };
                Step::Visit(Visit {
                    path: &self.path,
                    node,
                    matched,
                })
            }
        })
    }

    /// Answers the pending load with the block's bytes.
    ///
    /// # Errors
    /// [`TraversalError::NotAwaitingBlock`] without a pending load;
    /// [`TraversalError::Decode`] if the bytes do not decode (the traversal then fails).
    pub fn provide(&mut self, bytes: &[u8]) -> Result<(), TraversalError> {
        self.decode_and_enter(|cid, limits| codec::decode_block(cid, bytes, limits))
    }

    /// Answers the pending load like [`Traversal::provide`], without copying the block: the
    /// decoded node shares `bytes` where it can ([`codec::decode_shared_block`]).
    ///
    /// # Errors
    /// As [`Traversal::provide`].
    pub fn provide_shared(&mut self, bytes: &Bytes) -> Result<(), TraversalError> {
        self.decode_and_enter(|cid, limits| codec::decode_shared_block(cid, bytes, limits))
    }

    /// Decodes the awaited block with `decode` and enters it.
    fn decode_and_enter(
        &mut self,
        decode: impl FnOnce(&Cid, &Limits) -> Result<Node, BlockDecodeError>,
    ) -> Result<(), TraversalError> {
        let (cid, selector, is_root) = match std::mem::replace(&mut self.state, State::Running) {
            State::Awaiting {
                cid,
                selector,
                is_root,
            } => (cid, selector, is_root),
            other => {
                self.state = other;
                return Err(self.misuse());
            }
        };
        let node = match decode(&cid, &self.config.block_limits) {
            Ok(node) => node,
            Err(source) => {
                self.state = State::Failed;
                return Err(TraversalError::Decode {
                    cid,
                    path: self.path.clone(),
                    source,
                });
            }
        };
        self.blocks.push(node);
        self.frames.push(Frame {
            selector,
            block: self.blocks.len() - 1,
            block_root: self.frames.len(),
            child: None,
            pushed_segment: !is_root,
            progress: Progress::Enter,
        });
        Ok(())
    }

    /// Answers the pending load with "this block is not available". The load stays recorded
    /// (see [`Traversal::missing_links`]); its subtree is skipped and the traversal goes on
    /// with the next sibling. A missing root ends the traversal ([`Traversal::root_missing`]).
    ///
    /// # Errors
    /// [`TraversalError::NotAwaitingBlock`] without a pending load.
    pub fn missing(&mut self) -> Result<(), TraversalError> {
        let State::Awaiting { cid, is_root, .. } = &self.state else {
            return Err(self.misuse());
        };
        self.missing.push((self.path.clone(), *cid));
        if *is_root {
            self.root_missing = true;
            self.state = State::Done;
        } else {
            self.path.pop();
            self.state = State::Running;
        }
        Ok(())
    }

    /// The root CID.
    pub fn root(&self) -> &Cid {
        &self.root
    }

    /// The loads answered with [`Traversal::missing`] so far, in order: path and CID.
    pub fn missing_links(&self) -> &[(Path, Cid)] {
        &self.missing
    }

    /// Whether the root block was missing (graphsync: status 34).
    pub fn root_missing(&self) -> bool {
        self.root_missing
    }

    /// Whether the traversal has finished without error.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn misuse(&self) -> TraversalError {
        match self.state {
            State::Failed => TraversalError::AlreadyFailed,
            _ => TraversalError::NotAwaitingBlock,
        }
    }

    fn advance(&mut self) -> Result<Emit, TraversalError> {
        loop {
            match &self.state {
                State::Start => {
                    let root = self.root;
                    // go-graphsync charges the root before checking the budget.
                    if let Some(left) = self.budget_left.as_mut() {
                        *left -= 1;
                        if *left <= 0 {
                            return Err(self.budget_error(root));
                        }
                    }
                    self.check_codec(root)?;
                    self.state = State::Awaiting {
                        cid: root,
                        selector: self.selector.root(),
                        is_root: true,
                    };
                    return Ok(Emit::Load(root));
                }
                State::Awaiting { cid, .. } => return Ok(Emit::Load(*cid)),
                State::Done => return Ok(Emit::Done),
                State::Failed => return Err(TraversalError::AlreadyFailed),
                State::Running => {}
            }
            let Some(top) = self.frames.len().checked_sub(1) else {
                self.state = State::Done;
                return Ok(Emit::Done);
            };
            match self.frames[top].progress {
                Progress::Enter => return self.enter(top),
                Progress::Leaf => self.pop(),
                Progress::All { .. } | Progress::Explicit { .. } => {
                    if let Some(emit) = self.explore_next(top)? {
                        return Ok(emit);
                    }
                }
            }
        }
    }

    /// Visits the top frame's node and prepares its exploration.
    fn enter(&mut self, top: usize) -> Result<Emit, TraversalError> {
        let frame = &self.frames[top];
        if let Some(adl) = self.selector.reifier(&frame.selector) {
            return Err(TraversalError::AdlUnsupported {
                adl: adl.clone(),
                path: self.path.clone(),
            });
        }
        let node = self.node_of(top);
        let matched = self.selector.matches(&frame.selector, node);
        let progress = match node {
            Node::Map(_) | Node::List(_) => match self.selector.interests(&frame.selector) {
                Interests::All => Progress::All { next: 0 },
                Interests::Explicit(interests) => Progress::Explicit {
                    items: resolve(&interests, node),
                    next: 0,
                },
            },
            _ => Progress::Leaf,
        };
        self.frames[top].progress = progress;
        Ok(Emit::Visit(matched))
    }

    /// Explores the next child of the top frame: descends into it, asks for its block, or
    /// skips it. Returns `None` to keep going.
    fn explore_next(&mut self, top: usize) -> Result<Option<Emit>, TraversalError> {
        let node = self.node_of(top);
        let frame = &self.frames[top];
        let (segment, child) = match &frame.progress {
            Progress::All { next } => child_at(node, *next),
            Progress::Explicit { items, next } => {
                items.get(*next).and_then(|(segment, position)| {
                    child_at(node, *position).map(|(_, child)| (segment.clone(), child))
                })
            }
            Progress::Enter | Progress::Leaf => None,
        }
        .map_or((None, None), |(segment, child)| {
            (Some(segment), Some(child))
        });
        let (Some(segment), Some(child)) = (segment, child) else {
            self.pop();
            return Ok(None);
        };
        let next_selector = self
            .selector
            .explore(&frame.selector, node, &segment, child);
        let link = child.as_link().copied();
        let position = match &mut self.frames[top].progress {
            Progress::All { next } => {
                *next += 1;
                *next - 1
            }
            Progress::Explicit { items, next } => {
                *next += 1;
                items[*next - 1].1
            }
            Progress::Enter | Progress::Leaf => return Ok(None),
        };
        let Some(selector) = next_selector else {
            return Ok(None);
        };
        self.path.push(segment);
        match link {
            Some(cid) => {
                if let Some(left) = self.budget_left.as_mut() {
                    if *left <= 0 {
                        return Err(self.budget_error(cid));
                    }
                    *left -= 1;
                }
                self.check_codec(cid)?;
                self.state = State::Awaiting {
                    cid,
                    selector,
                    is_root: false,
                };
                Ok(Some(Emit::Load(cid)))
            }
            None => {
                let (block, block_root) = (self.frames[top].block, self.frames[top].block_root);
                self.frames.push(Frame {
                    selector,
                    block,
                    block_root,
                    child: Some(position),
                    pushed_segment: true,
                    progress: Progress::Enter,
                });
                Ok(None)
            }
        }
    }

    fn pop(&mut self) {
        if let Some(frame) = self.frames.pop() {
            if frame.child.is_none() {
                self.blocks.pop();
            }
            if frame.pushed_segment {
                self.path.pop();
            }
        }
    }

    fn check_codec(&self, cid: Cid) -> Result<(), TraversalError> {
        match cid.codec() {
            codec::DAG_CBOR | codec::DAG_PB | codec::RAW | codec::DAG_JSON => Ok(()),
            codec => Err(TraversalError::UnknownCodec {
                cid,
                path: self.path.clone(),
                codec,
            }),
        }
    }

    fn budget_error(&self, cid: Cid) -> TraversalError {
        TraversalError::LinkBudgetExceeded {
            cid,
            path: self.path.clone(),
            budget: self.config.link_budget.unwrap_or_default(),
        }
    }

    /// The node of frame `index`: its block's root, followed down by child positions.
    fn node_of(&self, index: usize) -> &Node {
        let frame = &self.frames[index];
        let mut node = &self.blocks[frame.block];
        for frame in &self.frames[frame.block_root + 1..=index] {
            if let Some(child) = frame
                .child
                .and_then(|position| child_at_ref(node, position))
            {
                node = child;
            }
        }
        node
    }
}

/// The segment and child at `position` of a map or list, in the node's own order.
fn child_at(node: &Node, position: usize) -> Option<(Segment, &Node)> {
    match node {
        Node::Map(map) => map
            .get_index(position)
            .map(|(key, value)| (Segment::Key(key.clone()), value)),
        Node::List(items) => items
            .get(position)
            .map(|item| (Segment::Index(position as i64), item)),
        _ => None,
    }
}

/// The child at `position` of a map or list.
fn child_at_ref(node: &Node, position: usize) -> Option<&Node> {
    match node {
        Node::Map(map) => map.get_index(position).map(|(_, value)| value),
        Node::List(items) => items.get(position),
        _ => None,
    }
}

/// Looks each interest up in `node` (go-ipld-prime's `LookupBySegment`), dropping those
/// that do not exist, and keeping the selector's order and duplicates.
fn resolve(interests: &[Interest<'_>], node: &Node) -> Vec<(Segment, usize)> {
    let mut items = Vec::new();
    for interest in interests {
        match (interest, node) {
            (Interest::Key(key), Node::Map(map)) => {
                if let Some(position) = map.keys().position(|k| k == *key) {
                    items.push((Segment::Key((*key).clone()), position));
                }
            }
            (Interest::Key(key), Node::List(list)) => {
                if let Some(position) = list_position(parse_go_int(key.as_bytes()), list.len()) {
                    items.push((Segment::Key((*key).clone()), position));
                }
            }
            (Interest::Index(index), Node::List(list)) => {
                if let Some(position) = list_position(Some(*index), list.len()) {
                    items.push((Segment::Index(*index), position));
                }
            }
            (Interest::Index(index), Node::Map(map)) => {
                let key = index.to_string();
                if let Some(position) = map.keys().position(|k| *k == key.as_str()) {
                    items.push((Segment::Index(*index), position));
                }
            }
            (Interest::Range(start, end), Node::List(list)) => {
                let len = i64::try_from(list.len()).unwrap_or(i64::MAX);
                for index in (*start).max(0)..(*end).min(len) {
                    items.push((Segment::Index(index), index as usize));
                }
            }
            (Interest::Range(start, end), Node::Map(map)) => {
                // Go looks up every index of the range as a decimal key; only keys that are
                // the canonical decimal form of an index in range can be found.
                let mut found: Vec<(i64, usize)> = map
                    .keys()
                    .enumerate()
                    .filter_map(|(position, key)| {
                        let index = parse_go_int(key.as_bytes())?;
                        let canonical = index.to_string();
                        (canonical.as_bytes() == key.as_bytes() && *start <= index && index < *end)
                            .then_some((index, position))
                    })
                    .collect();
                found.sort_unstable();
                items.extend(
                    found
                        .into_iter()
                        .map(|(index, pos)| (Segment::Index(index), pos)),
                );
            }
            _ => {}
        }
    }
    items
}

fn list_position(index: Option<i64>, len: usize) -> Option<usize> {
    let index = usize::try_from(index?).ok()?;
    (index < len).then_some(index)
}

/// The matched slice of a string or bytes node, as a node of the same kind.
fn slice_node(node: &Node, range: std::ops::Range<usize>) -> Node {
    match node {
        Node::String(text) => Node::String(Text::from_bytes(&text.as_bytes()[range])),
        Node::Bytes(bytes) => Node::Bytes(bytes.slice(range)),
        other => other.clone(),
    }
}
