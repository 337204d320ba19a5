//! The selector as the traversal runs it: a compiled arena of clauses and the *active*
//! selector values go-ipld-prime derives from them while exploring (spec §6.4).

use std::ops::Range;
use std::sync::Arc;

use cid::Cid;
use ipld_dagcbor::{Node, Text};

use crate::path::Segment;
use crate::selector::{Condition, RecursionLimit, Selector, Subset};

/// Index of a clause in [`Compiled::clauses`].
type ClauseId = u32;

/// One parsed clause, its children referred to by index.
#[derive(Debug)]
pub(crate) enum Clause {
    Matcher(Option<Subset>),
    All {
        next: ClauseId,
    },
    Fields {
        fields: Vec<(Text, ClauseId)>,
    },
    Index {
        index: i64,
        next: ClauseId,
    },
    Range {
        start: i64,
        end: i64,
        next: ClauseId,
    },
    Recursive {
        sequence: ClauseId,
        limit: RecursionLimit,
        stop_at: Option<Cid>,
    },
    Edge,
    Union(Vec<ClauseId>),
    InterpretAs {
        adl: Text,
        next: ClauseId,
    },
}

/// A selector flattened into an arena.
#[derive(Debug)]
pub(crate) struct Compiled {
    clauses: Vec<Clause>,
}

/// A selector value during traversal: a parsed clause, or a state go-ipld-prime builds while
/// exploring (an ExploreRecursive with its current position, or a union of derived values).
#[derive(Clone, Debug)]
pub(crate) enum Active {
    Clause(ClauseId),
    Recursive(Arc<RecursiveState>),
    Union(Arc<[Active]>),
}

#[derive(Debug)]
pub(crate) struct RecursiveState {
    sequence: ClauseId,
    current: Active,
    limit: RecursionLimit,
    stop_at: Option<Cid>,
}

/// What a selector wants to explore of a node (go-ipld-prime's `Interests`).
#[derive(Debug)]
pub(crate) enum Interests<'s> {
    /// Every entry, in the node's own order (`nil` in Go).
    All,
    /// These segments in this order (possibly none).
    Explicit(Vec<Interest<'s>>),
}

/// One explicit interest.
#[derive(Debug)]
pub(crate) enum Interest<'s> {
    Key(&'s Text),
    Index(i64),
    /// The indexes `start..end` of an ExploreRange, expanded against the node.
    Range(i64, i64),
}

/// How a node is matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MatchKind {
    Whole,
    /// A Matcher subset matched this byte range of a string or bytes node.
    Slice(Range<usize>),
}

impl Compiled {
    pub(crate) fn new(selector: &Selector) -> Self {
        let mut compiled = Compiled {
            clauses: Vec::new(),
        };
        compiled.add(selector);
        compiled
    }

    /// The root clause: the first one added.
    pub(crate) fn root(&self) -> Active {
        Active::Clause(0)
    }

    fn add(&mut self, selector: &Selector) -> ClauseId {
        let id = self.clauses.len() as ClauseId;
        // Reserve the slot so that the root is clause 0 and parents precede children.
        self.clauses.push(Clause::Edge);
        let clause = match selector {
            Selector::Matcher { subset } => Clause::Matcher(*subset),
            Selector::ExploreAll { next } => Clause::All {
                next: self.add(next),
            },
            Selector::ExploreFields { fields } => Clause::Fields {
                fields: fields
                    .iter()
                    .map(|(name, sel)| (name.clone(), self.add(sel)))
                    .collect(),
            },
            Selector::ExploreIndex { index, next } => Clause::Index {
                index: *index,
                next: self.add(next),
            },
            Selector::ExploreRange { start, end, next } => Clause::Range {
                start: *start,
                end: *end,
                next: self.add(next),
            },
            Selector::ExploreRecursive {
                limit,
                sequence,
                stop_at,
            } => Clause::Recursive {
                sequence: self.add(sequence),
                limit: *limit,
                stop_at: stop_at.map(|Condition::Link(cid)| cid),
            },
            Selector::ExploreRecursiveEdge => Clause::Edge,
            Selector::ExploreUnion(members) => {
                Clause::Union(members.iter().map(|member| self.add(member)).collect())
            }
            Selector::ExploreInterpretAs { adl, next } => Clause::InterpretAs {
                adl: adl.clone(),
                next: self.add(next),
            },
        };
        self.clauses[id as usize] = clause;
        id
    }

    fn clause(&self, id: ClauseId) -> &Clause {
        &self.clauses[id as usize]
    }

    /// The ADL name if `active` is itself an ExploreInterpretAs (go-ipld-prime's `Reifiable`).
    pub(crate) fn reifier(&self, active: &Active) -> Option<&Text> {
        match active {
            Active::Clause(id) => match self.clause(*id) {
                Clause::InterpretAs { adl, .. } => Some(adl),
                _ => None,
            },
            _ => None,
        }
    }

    pub(crate) fn interests<'s>(&'s self, active: &Active) -> Interests<'s> {
        match active {
            Active::Clause(id) => match self.clause(*id) {
                Clause::Matcher(_) | Clause::Edge => Interests::Explicit(Vec::new()),
                Clause::All { .. } => Interests::All,
                Clause::Fields { fields } => Interests::Explicit(
                    fields.iter().map(|(name, _)| Interest::Key(name)).collect(),
                ),
                Clause::Index { index, .. } => Interests::Explicit(vec![Interest::Index(*index)]),
                Clause::Range { start, end, .. } => {
                    Interests::Explicit(vec![Interest::Range(*start, *end)])
                }
                Clause::Recursive { sequence, .. } => self.interests(&Active::Clause(*sequence)),
                Clause::Union(members) => {
                    let members: Vec<Active> = members.iter().map(|m| Active::Clause(*m)).collect();
                    self.union_interests(&members)
                }
                Clause::InterpretAs { next, .. } => self.interests(&Active::Clause(*next)),
            },
            Active::Recursive(state) => self.interests(&state.current),
            Active::Union(members) => self.union_interests(members),
        }
    }

    fn union_interests<'s>(&'s self, members: &[Active]) -> Interests<'s> {
        let mut all = Vec::new();
        for member in members {
            match self.interests(member) {
                Interests::All => return Interests::All,
                Interests::Explicit(items) => all.extend(items),
            }
        }
        Interests::Explicit(all)
    }

    /// go-ipld-prime's `Explore`: the selector for the child at `segment` of `parent`, if any.
    pub(crate) fn explore(
        &self,
        active: &Active,
        parent: &Node,
        segment: &Segment,
        child: &Node,
    ) -> Option<Active> {
        match active {
            Active::Clause(id) => match self.clause(*id) {
                Clause::Matcher(_) => None,
                // Go panics when asked to explore a bare edge; there is nothing to explore.
                Clause::Edge => None,
                Clause::All { next } => Some(Active::Clause(*next)),
                Clause::Fields { fields } => {
                    let key = segment.key_bytes();
                    fields
                        .iter()
                        .find(|(name, _)| name.as_bytes() == key.as_ref())
                        .map(|(_, next)| Active::Clause(*next))
                }
                Clause::Index { index, next } => {
                    let is_list = matches!(parent, Node::List(_));
                    (is_list && segment.as_index() == Some(*index)).then_some(Active::Clause(*next))
                }
                Clause::Range { start, end, next } => {
                    let is_list = matches!(parent, Node::List(_));
                    let in_range = segment.as_index().is_some_and(|i| *start <= i && i < *end);
                    (is_list && in_range).then_some(Active::Clause(*next))
                }
                Clause::Recursive {
                    sequence,
                    limit,
                    stop_at,
                } => self.explore_recursive(
                    *sequence,
                    &Active::Clause(*sequence),
                    *limit,
                    *stop_at,
                    parent,
                    segment,
                    child,
                ),
                Clause::Union(members) => {
                    let members: Vec<Active> = members.iter().map(|m| Active::Clause(*m)).collect();
                    self.explore_union(&members, parent, segment, child)
                }
                Clause::InterpretAs { next, .. } => Some(Active::Clause(*next)),
            },
            Active::Recursive(state) => self.explore_recursive(
                state.sequence,
                &state.current,
                state.limit,
                state.stop_at,
                parent,
                segment,
                child,
            ),
            Active::Union(members) => self.explore_union(members, parent, segment, child),
        }
    }

    fn explore_union(
        &self,
        members: &[Active],
        parent: &Node,
        segment: &Segment,
        child: &Node,
    ) -> Option<Active> {
        let mut results: Vec<Active> = members
            .iter()
            .filter_map(|member| self.explore(member, parent, segment, child))
            .collect();
        match results.len() {
            0 => None,
            1 => results.pop(),
            _ => Some(Active::Union(results.into())),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn explore_recursive(
        &self,
        sequence: ClauseId,
        current: &Active,
        limit: RecursionLimit,
        stop_at: Option<Cid>,
        parent: &Node,
        segment: &Segment,
        child: &Node,
    ) -> Option<Active> {
        if let (Some(stop), Node::Link(cid)) = (stop_at, child)
            && stop == *cid
        {
            return None;
        }
        if self.is_edge(current) {
            return None;
        }
        let next = self.explore(current, parent, segment, child)?;
        if !self.has_edge(&next) {
            return Some(Active::Recursive(Arc::new(RecursiveState {
                sequence,
                current: next,
                limit,
                stop_at,
            })));
        }
        match limit {
            RecursionLimit::Depth(depth) if depth < 2 => self.replace_edges(&next, None),
            RecursionLimit::Depth(depth) => {
                let current = self.replace_edges(&next, Some(&Active::Clause(sequence)))?;
                Some(Active::Recursive(Arc::new(RecursiveState {
                    sequence,
                    current,
                    limit: RecursionLimit::Depth(depth - 1),
                    stop_at,
                })))
            }
            RecursionLimit::None => {
                let current = self.replace_edges(&next, Some(&Active::Clause(sequence)))?;
                Some(Active::Recursive(Arc::new(RecursiveState {
                    sequence,
                    current,
                    limit,
                    stop_at,
                })))
            }
        }
    }

    fn is_edge(&self, active: &Active) -> bool {
        matches!(active, Active::Clause(id) if matches!(self.clause(*id), Clause::Edge))
    }

    /// Whether `active` is an edge or a union with an edge member (through nested unions).
    fn has_edge(&self, active: &Active) -> bool {
        match active {
            Active::Clause(id) => match self.clause(*id) {
                Clause::Edge => true,
                Clause::Union(members) => members
                    .iter()
                    .any(|member| self.has_edge(&Active::Clause(*member))),
                _ => false,
            },
            Active::Union(members) => members.iter().any(|member| self.has_edge(member)),
            Active::Recursive(_) => false,
        }
    }

    /// go-ipld-prime's `replaceRecursiveEdge`.
    fn replace_edges(&self, active: &Active, replacement: Option<&Active>) -> Option<Active> {
        let members: Vec<Active> = match active {
            Active::Clause(id) => match self.clause(*id) {
                Clause::Edge => return replacement.cloned(),
                Clause::Union(members) => members.iter().map(|m| Active::Clause(*m)).collect(),
                _ => return Some(active.clone()),
            },
            Active::Union(members) => members.to_vec(),
            Active::Recursive(_) => return Some(active.clone()),
        };
        let mut replaced: Vec<Active> = members
            .iter()
            .filter_map(|member| self.replace_edges(member, replacement))
            .collect();
        match replaced.len() {
            0 => None,
            1 => replaced.pop(),
            _ => Some(Active::Union(replaced.into())),
        }
    }

    /// go-ipld-prime's `Match`: whether (and how) `active` matches `node`.
    pub(crate) fn matches(&self, active: &Active, node: &Node) -> Option<MatchKind> {
        match active {
            Active::Clause(id) => match self.clause(*id) {
                Clause::Matcher(None) => Some(MatchKind::Whole),
                Clause::Matcher(Some(subset)) => slice_match(subset, node),
                Clause::Recursive { sequence, .. } => {
                    self.matches(&Active::Clause(*sequence), node)
                }
                Clause::Union(members) => members
                    .iter()
                    .find_map(|member| self.matches(&Active::Clause(*member), node)),
                _ => None,
            },
            Active::Recursive(state) => self.matches(&state.current, node),
            Active::Union(members) => members.iter().find_map(|member| self.matches(member, node)),
        }
    }
}

/// A Matcher subset on a string or bytes node, with go-ipld-prime's `sliceBounds` rules.
fn slice_match(subset: &Subset, node: &Node) -> Option<MatchKind> {
    let length = match node {
        Node::String(text) => text.len(),
        Node::Bytes(bytes) => bytes.len(),
        _ => return None,
    };
    let length = i64::try_from(length).ok()?;
    let mut to = subset.to;
    if to < 0 {
        to += length;
    } else if length < to {
        to = length;
    }
    let mut from = subset.from;
    if from < 0 {
        from = (from + length).max(0);
    }
    if from > to || from >= length {
        return None;
    }
    // Here 0 <= from <= to <= length.
    Some(MatchKind::Slice(from as usize..to as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> Node {
        Node::text(value)
    }

    #[test]
    fn slice_bounds_follow_go() {
        let node = text("abcdef");
        let slice = |from, to| slice_match(&Subset { from, to }, &node);
        assert_eq!(slice(1, 3), Some(MatchKind::Slice(1..3)));
        assert_eq!(slice(-2, i64::MAX), Some(MatchKind::Slice(4..6)));
        assert_eq!(slice(-100, 2), Some(MatchKind::Slice(0..2)));
        assert_eq!(slice(2, 2), Some(MatchKind::Slice(2..2)));
        assert_eq!(slice(6, 8), None, "from at the end");
        assert_eq!(slice(3, -4), None, "to before from");
        assert_eq!(slice(0, i64::MIN), None);
        assert_eq!(
            slice_match(&Subset { from: 0, to: 1 }, &Node::Integer(1)),
            None
        );
        assert_eq!(slice_match(&Subset { from: 0, to: 0 }, &text("")), None);
    }

    #[test]
    fn depth_one_recursion_explores_nothing() {
        let selector = Selector::ExploreRecursive {
            limit: RecursionLimit::Depth(1),
            sequence: Box::new(Selector::ExploreAll {
                next: Box::new(Selector::ExploreRecursiveEdge),
            }),
            stop_at: None,
        };
        let compiled = Compiled::new(&selector);
        let parent = Node::List(vec![Node::Null]);
        let next = compiled.explore(&compiled.root(), &parent, &Segment::Index(0), &Node::Null);
        assert!(next.is_none());
    }
}
