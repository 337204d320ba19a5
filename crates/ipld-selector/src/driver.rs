//! Convenience drivers: run a [`Traversal`] to the end over a synchronous or an asynchronous
//! block loader.

use std::future::Future;

use cid::Cid;

use crate::path::Path;
use crate::selector::Selector;
use crate::traversal::{Config, Step, Traversal, TraversalError, Visit};

/// One link load of a finished traversal: one graphsync metadata entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Load {
    /// The link.
    pub cid: Cid,
    /// The path of the link (empty for the root).
    pub path: Path,
    /// Whether the loader had the block (graphsync `"p"`) or not (`"m"`).
    pub found: bool,
}

/// The result of a traversal run to its end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Every load, in order.
    pub loads: Vec<Load>,
    /// How many nodes were visited.
    pub visits: u64,
    /// How many of them matched.
    pub matches: u64,
}

impl Outcome {
    /// Whether the root block was missing (graphsync: status 34).
    pub fn root_missing(&self) -> bool {
        self.loads.first().is_some_and(|load| !load.found)
    }

    /// The loads whose block was missing.
    pub fn missing(&self) -> impl Iterator<Item = &Load> {
        self.loads.iter().filter(|load| !load.found)
    }
}

/// Runs a traversal with a synchronous loader: `load(cid)` returns the block bytes, or `None`
/// when the block is missing.
///
/// # Errors
/// The first [`TraversalError`]; the loads made before it are then lost (drive a
/// [`Traversal`] yourself to keep them).
///
/// # Examples
/// ```
/// use ipld_selector::{Config, Selector, traverse};
///
/// let root: cid::Cid = "bafkreif4a5vrdoboupepfyeu6cynrniqwguk74bxr4edfz7w5l5dekdp6i".parse()?;
/// let outcome = traverse(root, &Selector::match_point(), Config::default(), |_| Some(b"leaf one"))?;
/// assert_eq!(outcome.loads.len(), 1);
/// assert_eq!(outcome.matches, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn traverse<B: AsRef<[u8]>>(
    root: Cid,
    selector: &Selector,
    config: Config,
    load: impl FnMut(&Cid) -> Option<B>,
) -> Result<Outcome, TraversalError> {
    traverse_with(root, selector, config, load, |_| {})
}

/// Like [`traverse`], and calls `visit` for every node visited, in order.
///
/// # Errors
/// As [`traverse`].
pub fn traverse_with<B: AsRef<[u8]>>(
    root: Cid,
    selector: &Selector,
    config: Config,
    mut load: impl FnMut(&Cid) -> Option<B>,
    mut visit: impl FnMut(&Visit<'_>),
) -> Result<Outcome, TraversalError> {
    let mut traversal = Traversal::new(root, selector, config)?;
    let mut outcome = Outcome::default();
    loop {
        let pending = match traversal.next()? {
            Step::Done => return Ok(outcome),
            Step::Visit(step) => {
                record_visit(&mut outcome, &step);
                visit(&step);
                continue;
            }
            Step::Load(request) => Load {
                cid: request.cid,
                path: request.path.clone(),
                found: false,
            },
        };
        let block = load(&pending.cid);
        answer(&mut traversal, &mut outcome, pending, block)?;
    }
}

/// Runs a traversal with an asynchronous loader: `load(cid)` resolves to the block bytes, or
/// `None` when the block is missing. It needs no particular runtime: it only awaits `load`.
///
/// # Errors
/// As [`traverse`].
///
/// # Examples
/// ```
/// use ipld_selector::{Config, Selector, traverse_async};
///
/// # fn block_on<F: std::future::Future>(future: F) -> F::Output {
/// #     let mut future = std::pin::pin!(future);
/// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #     loop {
/// #         if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) { return out; }
/// #     }
/// # }
/// let root: cid::Cid = "bafkreif4a5vrdoboupepfyeu6cynrniqwguk74bxr4edfz7w5l5dekdp6i".parse()?;
/// let outcome = block_on(traverse_async(root, &Selector::match_point(), Config::default(), |_| async {
///     Some(b"leaf one".to_vec())
/// }))?;
/// assert_eq!(outcome.loads.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn traverse_async<B, F, Fut>(
    root: Cid,
    selector: &Selector,
    config: Config,
    mut load: F,
) -> Result<Outcome, TraversalError>
where
    B: AsRef<[u8]>,
    F: FnMut(Cid) -> Fut,
    Fut: Future<Output = Option<B>>,
{
    let mut traversal = Traversal::new(root, selector, config)?;
    let mut outcome = Outcome::default();
    loop {
        let pending = match traversal.next()? {
            Step::Done => return Ok(outcome),
            Step::Visit(step) => {
                record_visit(&mut outcome, &step);
                continue;
            }
            Step::Load(request) => Load {
                cid: request.cid,
                path: request.path.clone(),
                found: false,
            },
        };
        let block = load(pending.cid).await;
        answer(&mut traversal, &mut outcome, pending, block)?;
    }
}

fn record_visit(outcome: &mut Outcome, visit: &Visit<'_>) {
    outcome.visits += 1;
    if visit.matched {
        outcome.matches += 1;
    }
}

fn answer<B: AsRef<[u8]>>(
    traversal: &mut Traversal,
    outcome: &mut Outcome,
    mut pending: Load,
    block: Option<B>,
) -> Result<(), TraversalError> {
    match block {
        Some(bytes) => {
            pending.found = true;
            outcome.loads.push(pending);
            traversal.provide(bytes.as_ref())
        }
        None => {
            outcome.loads.push(pending);
            traversal.missing()
        }
    }
}
