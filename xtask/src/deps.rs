//! `cargo xtask deps`: the dependency rules between the workspace crates, and their checker.
//!
//! The rules are data: [`RULES`] (one row per workspace crate: layer, allowed internal
//! dependencies, packages its normal-dependency closure must never contain) and [`DIRECT_ONLY`]
//! (packages only some crates may depend on directly). `ARCHITECTURE.md` shows the same table;
//! change both in the same commit.
//!
//! The checker, [`check`], is a pure function over [`Graph`]s. [`run`] builds those graphs from
//! cargo: `cargo metadata` names the workspace members, and `cargo tree -e normal` gives each
//! member's normal-dependency closure. The closure comes from `cargo tree` rather than from the
//! `resolve` section of `cargo metadata` because the latter unifies features over the whole
//! workspace, dev-dependencies included: a crate that turns on another's `test-util` feature in
//! its `[dev-dependencies]` would make `proptest` (and `getrandom` under it) look like a normal
//! dependency of every crate above. `cargo tree -e normal -p <crate>` resolves features the way
//! a build of that crate alone does.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use anyhow::{Context, bail};

use crate::cmd::{self, cargo};

/// One workspace crate's place in the layering and what it may and may not depend on.
#[derive(Debug)]
pub(crate) struct CrateRule {
    /// The package name.
    pub(crate) name: &'static str,
    /// Its layer: every internal edge goes to a strictly lower layer. `ipld-dagcbor` is the
    /// foundation (-1), under the layer-0 crates of STYLE §2; `datatransfer-testkit` and
    /// `xtask` sit above the program (5) because they are not part of the shipped stack.
    pub(crate) layer: i8,
    /// The workspace crates it may depend on directly (normal dependencies).
    pub(crate) internal: &'static [&'static str],
    /// Packages its normal-dependency closure must never contain. `name*` stands for the
    /// family `name` and `name-…` (`tokio*` covers `tokio-util`, `libp2p*` covers
    /// `libp2p-swarm`); other entries are exact names.
    pub(crate) never: &'static [&'static str],
}

const MESSAGE: &str = "datatransfer-message";
const SELECTOR: &str = "ipld-selector";
const DAGCBOR: &str = "ipld-dagcbor";
const DAG_IO: &str = "dag-io";
const FSM: &str = "datatransfer-fsm";
const GRAPHSYNC: &str = "graphsync";
const TRANSPORT: &str = "datatransfer-transport";
const STORE: &str = "datatransfer-store";
const DT_GRAPHSYNC: &str = "datatransfer-graphsync";
const FACADE: &str = "datatransfer";
const DTX: &str = "dtx";
const TESTKIT: &str = "datatransfer-testkit";
const BLOCK_FILES: &str = "block-files";
const XTASK: &str = "xtask";

/// The layering of STYLE §2 plus decisions 0001 (`ipld-dagcbor`, the foundation every crate that
/// carries vouchers, selectors or CAR headers may use) and 0002 (`dag-io` reads CAR headers
/// with it), one row per workspace crate.
///
/// Nothing depends on `datatransfer` except `dtx` and the testkit, and nothing depends on the
/// testkit or xtask at all: no other row lists them under `internal` (a test checks this).
pub(crate) const RULES: &[CrateRule] = &[
    CrateRule {
        name: DAGCBOR,
        layer: -1,
        internal: &[],
        never: &["tokio*", "futures*", "libp2p*", "sled"],
    },
    CrateRule {
        name: MESSAGE,
        layer: 0,
        internal: &[DAGCBOR],
        never: &["tokio*", "futures*", "libp2p*", "sled"],
    },
    CrateRule {
        name: SELECTOR,
        layer: 0,
        internal: &[DAGCBOR],
        never: &["tokio*", "libp2p*", "sled"],
    },
    // dag-io decodes CAR headers with ipld-dagcbor (decision 0002).
    CrateRule {
        name: DAG_IO,
        layer: 1,
        internal: &[SELECTOR, DAGCBOR],
        never: &[FSM, STORE, TRANSPORT, "libp2p*", "sled"],
    },
    CrateRule {
        name: FSM,
        layer: 1,
        internal: &[MESSAGE, DAGCBOR],
        never: &["tokio*", "futures*", "libp2p*", "sled", "getrandom"],
    },
    CrateRule {
        name: GRAPHSYNC,
        layer: 1,
        internal: &[SELECTOR, DAGCBOR],
        never: &[FSM, STORE, TRANSPORT, "sled"],
    },
    // The transport's in-memory implementation (feature `mem`) walks DAGs with ipld-selector.
    CrateRule {
        name: TRANSPORT,
        layer: 1,
        internal: &[MESSAGE, SELECTOR, DAGCBOR],
        never: &[FSM, STORE, "tokio*", "libp2p*", "sled"],
    },
    CrateRule {
        name: STORE,
        layer: 2,
        internal: &[MESSAGE, FSM, DAGCBOR],
        never: &["tokio*", "libp2p*", TRANSPORT],
    },
    // datatransfer-graphsync parses `OpenChannel`'s selector node into the `Selector` that
    // `graphsync::Node::request` takes.
    CrateRule {
        name: DT_GRAPHSYNC,
        layer: 2,
        internal: &[MESSAGE, SELECTOR, TRANSPORT, GRAPHSYNC, DAGCBOR],
        never: &[FSM, STORE, "sled"],
    },
    CrateRule {
        name: FACADE,
        layer: 3,
        internal: &[
            DAGCBOR,
            MESSAGE,
            SELECTOR,
            DAG_IO,
            FSM,
            GRAPHSYNC,
            TRANSPORT,
            STORE,
            DT_GRAPHSYNC,
        ],
        never: &[],
    },
    // The program assembles a node itself: the graphsync node and transport under the
    // Manager, the channel store's configuration, selectors for `--selector`.
    CrateRule {
        name: DTX,
        layer: 4,
        internal: &[
            FACADE,
            DAG_IO,
            DT_GRAPHSYNC,
            STORE,
            GRAPHSYNC,
            SELECTOR,
            BLOCK_FILES,
        ],
        never: &[],
    },
    // The file-per-block store of dtx and of the interop and bench peers: beside the stack,
    // under dtx and the testkit (normal dependencies) and graphsync's bench example (a
    // dev-dependency). It needs tokio's sync primitives only (the queue to its writer
    // threads), no runtime.
    CrateRule {
        name: BLOCK_FILES,
        layer: 0,
        internal: &[],
        never: &["libp2p*", "sled", "datatransfer*", GRAPHSYNC],
    },
    CrateRule {
        name: TESTKIT,
        layer: 5,
        internal: &[
            BLOCK_FILES,
            DAGCBOR,
            MESSAGE,
            SELECTOR,
            DAG_IO,
            FSM,
            GRAPHSYNC,
            TRANSPORT,
            STORE,
            DT_GRAPHSYNC,
            FACADE,
        ],
        never: &[],
    },
    CrateRule {
        name: XTASK,
        layer: 5,
        internal: &[],
        never: &[],
    },
];

/// Packages that only the listed workspace crates may name as direct normal dependencies
/// (STYLE §2: "tokio appears only in …, libp2p only in …, sled only in `datatransfer-store`").
/// Other crates may still reach them through those crates (the facade reaches sled through the
/// store); [`CrateRule::never`] is what forbids the closure.
pub(crate) const DIRECT_ONLY: &[(&str, &[&str])] = &[
    // block-files: its writer threads' queue (tokio's `sync` feature, no runtime).
    (
        "tokio*",
        &[GRAPHSYNC, DT_GRAPHSYNC, FACADE, DTX, TESTKIT, BLOCK_FILES],
    ),
    ("libp2p*", &[GRAPHSYNC, DT_GRAPHSYNC, FACADE, DTX, TESTKIT]),
    // dtx opens its channel database's sled database (for its marker record) and moves the
    // blocks of an older data directory's sled block store; the testkit's `dt_role` node
    // program keeps its blocks in a sled database of its own.
    ("sled", &[STORE, DTX, TESTKIT]),
];

/// Normal (non-dev, non-build) dependency edges between packages, named by package name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// Records that `from` has a normal dependency on `to`.
    pub(crate) fn add_edge(&mut self, from: &str, to: &str) {
        self.edges
            .entry(from.to_owned())
            .or_default()
            .insert(to.to_owned());
    }

    /// The direct normal dependencies of `package`.
    pub(crate) fn deps(&self, package: &str) -> impl Iterator<Item = &str> {
        self.edges
            .get(package)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Every package reachable from `root`, each with a shortest path from `root` to it
    /// (both ends included), in breadth-first order.
    fn paths_from<'a>(&'a self, root: &'a str) -> Vec<Vec<&'a str>> {
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut seen: BTreeSet<&str> = BTreeSet::from([root]);
        let mut queue = VecDeque::from([root]);
        let mut order = Vec::new();
        while let Some(package) = queue.pop_front() {
            for dep in self.deps(package) {
                if seen.insert(dep) {
                    parent.insert(dep, package);
                    order.push(dep);
                    queue.push_back(dep);
                }
            }
        }
        order
            .into_iter()
            .map(|package| {
                let mut path = vec![package];
                while let Some(up) = parent.get(path[path.len() - 1]) {
                    path.push(up);
                }
                path.reverse();
                path
            })
            .collect()
    }
}

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Violation {
    /// A workspace member has no row in [`RULES`].
    Unlisted { krate: String },
    /// The normal-dependency closure of `krate` contains a package its row forbids.
    Forbidden {
        krate: String,
        rule: &'static str,
        package: String,
        path: Vec<String>,
    },
    /// `krate` depends directly on a workspace crate its row does not list.
    InternalNotAllowed { krate: String, dep: String },
    /// `krate` depends on a workspace crate that is not in a strictly lower layer.
    EdgeNotDown {
        krate: String,
        layer: i8,
        dep: String,
        dep_layer: i8,
    },
    /// `krate` depends directly on a package that only some crates may name.
    DirectNotAllowed {
        krate: String,
        rule: &'static str,
        package: String,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Unlisted { krate } => write!(
                f,
                "{krate}: workspace crate has no row in the dependency rules (xtask/src/deps.rs); \
                 add one and update ARCHITECTURE.md"
            ),
            Violation::Forbidden {
                krate,
                rule,
                package,
                path,
            } => write!(
                f,
                "{krate}: must never depend on `{rule}`, but its normal dependencies reach \
                 `{package}`: {}",
                path.join(" -> ")
            ),
            Violation::InternalNotAllowed { krate, dep } => write!(
                f,
                "{krate}: depends on workspace crate `{dep}`, which is not among its allowed \
                 internal dependencies"
            ),
            Violation::EdgeNotDown {
                krate,
                layer,
                dep,
                dep_layer,
            } => write!(
                f,
                "{krate}: edge to `{dep}` does not point down (layer {layer} -> layer {dep_layer})"
            ),
            Violation::DirectNotAllowed {
                krate,
                rule,
                package,
            } => write!(
                f,
                "{krate}: depends directly on `{package}`, but only {} may depend on `{rule}`",
                DIRECT_ONLY
                    .iter()
                    .find(|(pattern, _)| pattern == rule)
                    .map(|(_, crates)| crates.join(", "))
                    .unwrap_or_default()
            ),
        }
    }
}

/// Checks every workspace member against the rules.
///
/// `closures` maps each workspace member's name to the graph of its normal-dependency closure
/// (a graph may hold more than that closure; only what is reachable from the member counts).
/// Returns every violation, sorted; an empty list means the workspace follows the rules.
pub(crate) fn check(
    rules: &[CrateRule],
    direct_only: &[(&'static str, &[&str])],
    closures: &BTreeMap<String, Graph>,
) -> Vec<Violation> {
    let rule_of = |name: &str| rules.iter().find(|rule| rule.name == name);
    let mut violations = Vec::new();
    for (krate, graph) in closures {
        let Some(rule) = rule_of(krate) else {
            violations.push(Violation::Unlisted {
                krate: krate.clone(),
            });
            continue;
        };
        for dep in graph.deps(krate) {
            if closures.contains_key(dep) {
                if !rule.internal.contains(&dep) {
                    violations.push(Violation::InternalNotAllowed {
                        krate: krate.clone(),
                        dep: dep.to_owned(),
                    });
                }
                if let Some(dep_rule) = rule_of(dep)
                    && dep_rule.layer >= rule.layer
                {
                    violations.push(Violation::EdgeNotDown {
                        krate: krate.clone(),
                        layer: rule.layer,
                        dep: dep.to_owned(),
                        dep_layer: dep_rule.layer,
                    });
                }
            }
            for (pattern, allowed) in direct_only {
                if matches(pattern, dep) && !allowed.contains(&krate.as_str()) {
                    violations.push(Violation::DirectNotAllowed {
                        krate: krate.clone(),
                        rule: pattern,
                        package: dep.to_owned(),
                    });
                }
            }
        }
        for path in graph.paths_from(krate) {
            let package = path[path.len() - 1];
            for pattern in rule
                .never
                .iter()
                .filter(|pattern| matches(pattern, package))
            {
                violations.push(Violation::Forbidden {
                    krate: krate.clone(),
                    rule: pattern,
                    package: package.to_owned(),
                    path: path.iter().map(|&step| step.to_owned()).collect(),
                });
            }
        }
    }
    violations.sort_by_key(ToString::to_string);
    violations
}

/// Whether `package` matches a rule pattern: `name*` matches `name` and `name-…`; anything else
/// matches itself only.
fn matches(pattern: &str, package: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(stem) => {
            package == stem
                || package
                    .strip_prefix(stem)
                    .is_some_and(|rest| rest.starts_with('-'))
        }
        None => package == pattern,
    }
}

/// Runs the check on this workspace and prints the result.
///
/// # Errors
/// When cargo cannot describe the workspace, or when a rule is broken (all violations listed).
pub(crate) fn run() -> anyhow::Result<()> {
    let members = workspace_members()?;
    let mut closures = BTreeMap::new();
    for member in &members {
        closures.insert(member.clone(), normal_closure(member)?);
    }
    let violations = check(RULES, DIRECT_ONLY, &closures);
    if violations.is_empty() {
        println!(
            "deps: {} workspace crates follow the dependency rules",
            members.len()
        );
        return Ok(());
    }
    for violation in &violations {
        eprintln!("deps: {violation}");
    }
    bail!("{} dependency rule violation(s)", violations.len())
}

/// The names of the workspace members, from `cargo metadata`.
fn workspace_members() -> anyhow::Result<Vec<String>> {
    let json =
        cmd::output(cargo().args(["metadata", "--format-version", "1", "--no-deps", "--locked"]))?;
    members_from_metadata(&json)
}

/// The workspace members named in `cargo metadata --no-deps` output.
fn members_from_metadata(json: &str) -> anyhow::Result<Vec<String>> {
    let metadata: serde_json::Value =
        serde_json::from_str(json).context("cargo metadata printed invalid JSON")?;
    let members = metadata["workspace_members"]
        .as_array()
        .context("cargo metadata has no workspace_members list")?;
    let packages = metadata["packages"]
        .as_array()
        .context("cargo metadata has no packages list")?;
    let mut names = Vec::new();
    for member in members {
        let id = member
            .as_str()
            .context("workspace member id is not a string")?;
        let package = packages
            .iter()
            .find(|package| package["id"].as_str() == Some(id))
            .with_context(|| format!("workspace member {id} is missing from the packages"))?;
        let name = package["name"].as_str().context("package without a name")?;
        names.push(name.to_owned());
    }
    names.sort();
    Ok(names)
}

/// The normal-dependency closure of one workspace member, from `cargo tree -e normal`, for all
/// targets and with the member's default features.
fn normal_closure(member: &str) -> anyhow::Result<Graph> {
    let tree = cmd::output(cargo().args([
        "tree", "--locked", "-p", member, "-e", "normal", "--target", "all", "--prefix", "depth",
        "--format", "{p}",
    ]))?;
    graph_from_tree(&tree).with_context(|| format!("cannot read the dependency tree of {member}"))
}

/// Builds a graph from `cargo tree --prefix depth --format {p}` output: each line is a depth,
/// a package name, a space and the rest (version, source, `(*)` for an already shown subtree).
fn graph_from_tree(tree: &str) -> anyhow::Result<Graph> {
    let mut graph = Graph::default();
    let mut stack: Vec<String> = Vec::new();
    for line in tree.lines().filter(|line| !line.trim().is_empty()) {
        let digits = line.bytes().take_while(u8::is_ascii_digit).count();
        let depth: usize = line[..digits]
            .parse()
            .with_context(|| format!("no depth on line {line:?}"))?;
        let name = line[digits..]
            .split_whitespace()
            .next()
            .with_context(|| format!("no package on line {line:?}"))?;
        if depth > stack.len() {
            bail!("line {line:?} is deeper than its parent");
        }
        stack.truncate(depth);
        if let Some(parent) = stack.last() {
            graph.add_edge(parent, name);
        }
        stack.push(name.to_owned());
    }
    Ok(graph)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same graph as every listed member's closure, as `check` expects.
    fn closures(members: &[&str], edges: &[(&str, &str)]) -> BTreeMap<String, Graph> {
        let mut graph = Graph::default();
        for (from, to) in edges {
            graph.add_edge(from, to);
        }
        members
            .iter()
            .map(|member| ((*member).to_owned(), graph.clone()))
            .collect()
    }

    /// A graph shaped like the planned workspace, which follows every rule.
    fn clean_edges() -> Vec<(&'static str, &'static str)> {
        vec![
            (DAGCBOR, "cid"),
            (DAGCBOR, "bytes"),
            ("cid", "multihash"),
            (MESSAGE, DAGCBOR),
            (MESSAGE, "bytes"),
            (SELECTOR, DAGCBOR),
            (DAG_IO, SELECTOR),
            (FSM, MESSAGE),
            (GRAPHSYNC, SELECTOR),
            (GRAPHSYNC, DAGCBOR),
            (GRAPHSYNC, "libp2p"),
            (GRAPHSYNC, "tokio"),
            ("libp2p", "libp2p-swarm"),
            ("libp2p-swarm", "futures"),
            (TRANSPORT, MESSAGE),
            (STORE, FSM),
            (STORE, "sled"),
            (DT_GRAPHSYNC, GRAPHSYNC),
            (DT_GRAPHSYNC, TRANSPORT),
            (FACADE, DT_GRAPHSYNC),
            (FACADE, STORE),
            (FACADE, "tokio"),
            (DTX, FACADE),
            (DTX, DAG_IO),
            (DTX, "sled"),
            (DTX, BLOCK_FILES),
            (BLOCK_FILES, "blockstore"),
            (BLOCK_FILES, "tokio"),
            (TESTKIT, FACADE),
            (TESTKIT, BLOCK_FILES),
            (TESTKIT, "sled"),
            (XTASK, "anyhow"),
        ]
    }

    fn all_members() -> Vec<&'static str> {
        RULES.iter().map(|rule| rule.name).collect()
    }

    #[test]
    fn planned_workspace_graph_passes() {
        let violations = check(
            RULES,
            DIRECT_ONLY,
            &closures(&all_members(), &clean_edges()),
        );
        assert_eq!(violations, []);
    }

    #[test]
    fn forbidden_direct_and_transitive_packages_are_reported_with_their_path() {
        let mut edges = clean_edges();
        edges.push((FSM, "tokio"));
        edges.push((MESSAGE, "some-codec"));
        edges.push(("some-codec", "libp2p-core"));
        let violations = check(RULES, DIRECT_ONLY, &closures(&all_members(), &edges));
        let messages: Vec<String> = violations.iter().map(ToString::to_string).collect();

        let fsm_tokio = Violation::Forbidden {
            krate: FSM.into(),
            rule: "tokio*",
            package: "tokio".into(),
            path: vec![FSM.into(), "tokio".into()],
        };
        assert!(violations.contains(&fsm_tokio), "{messages:#?}");
        assert!(violations.contains(&Violation::DirectNotAllowed {
            krate: FSM.into(),
            rule: "tokio*",
            package: "tokio".into(),
        }));
        let message_libp2p = Violation::Forbidden {
            krate: MESSAGE.into(),
            rule: "libp2p*",
            package: "libp2p-core".into(),
            path: vec![MESSAGE.into(), "some-codec".into(), "libp2p-core".into()],
        };
        assert!(violations.contains(&message_libp2p), "{messages:#?}");
        assert!(messages.contains(
            &"datatransfer-message: must never depend on `libp2p*`, but its normal dependencies \
              reach `libp2p-core`: datatransfer-message -> some-codec -> libp2p-core"
                .to_owned()
        ));
        // The crates above the message crate inherit the violation through it.
        assert!(violations.iter().any(|violation| matches!(violation,
            Violation::Forbidden { krate, package, path, .. }
                if krate == FSM && package == "libp2p-core" && path.len() == 4)));
        // Crates allowed libp2p (graphsync, the facade) do not report it.
        assert!(!violations.iter().any(|violation| matches!(violation,
            Violation::Forbidden { krate, .. } if krate == GRAPHSYNC || krate == FACADE)));
    }

    #[test]
    fn edges_that_do_not_point_down_are_reported() {
        let mut edges = clean_edges();
        edges.push((STORE, FACADE));
        edges.push((MESSAGE, SELECTOR));
        let violations = check(RULES, DIRECT_ONLY, &closures(&all_members(), &edges));
        assert!(violations.contains(&Violation::EdgeNotDown {
            krate: STORE.into(),
            layer: 2,
            dep: FACADE.into(),
            dep_layer: 3,
        }));
        assert!(violations.contains(&Violation::InternalNotAllowed {
            krate: STORE.into(),
            dep: FACADE.into(),
        }));
        assert!(violations.contains(&Violation::EdgeNotDown {
            krate: MESSAGE.into(),
            layer: 0,
            dep: SELECTOR.into(),
            dep_layer: 0,
        }));
    }

    #[test]
    fn dagcbor_may_depend_on_no_workspace_crate() {
        let mut edges = clean_edges();
        edges.push((DAGCBOR, MESSAGE));
        let violations = check(RULES, DIRECT_ONLY, &closures(&all_members(), &edges));
        assert!(violations.contains(&Violation::InternalNotAllowed {
            krate: DAGCBOR.into(),
            dep: MESSAGE.into(),
        }));
        assert!(violations.contains(&Violation::EdgeNotDown {
            krate: DAGCBOR.into(),
            layer: -1,
            dep: MESSAGE.into(),
            dep_layer: 0,
        }));
    }

    #[test]
    fn sled_is_a_direct_dependency_of_the_store_dtx_and_the_testkit_only() {
        let mut edges = clean_edges();
        edges.push((FACADE, "sled"));
        let violations = check(RULES, DIRECT_ONLY, &closures(&all_members(), &edges));
        assert_eq!(
            violations,
            [Violation::DirectNotAllowed {
                krate: FACADE.into(),
                rule: "sled",
                package: "sled".into(),
            }]
        );
    }

    #[test]
    fn block_files_may_reach_neither_libp2p_nor_sled_nor_the_data_transfer_crates() {
        let mut edges = clean_edges();
        edges.push((BLOCK_FILES, "libp2p"));
        edges.push((BLOCK_FILES, "sled"));
        edges.push((BLOCK_FILES, MESSAGE));
        let violations = check(RULES, DIRECT_ONLY, &closures(&all_members(), &edges));
        let forbidden = |rule: &'static str, package: &str, path: &[&str]| Violation::Forbidden {
            krate: BLOCK_FILES.into(),
            rule,
            package: package.into(),
            path: path.iter().map(|step| (*step).to_owned()).collect(),
        };
        for expected in [
            forbidden("libp2p*", "libp2p", &[BLOCK_FILES, "libp2p"]),
            forbidden("sled", "sled", &[BLOCK_FILES, "sled"]),
            forbidden("datatransfer*", MESSAGE, &[BLOCK_FILES, MESSAGE]),
            Violation::InternalNotAllowed {
                krate: BLOCK_FILES.into(),
                dep: MESSAGE.into(),
            },
        ] {
            assert!(
                violations.contains(&expected),
                "{expected:?} in {violations:?}"
            );
        }
    }

    #[test]
    fn a_member_without_a_rule_is_reported() {
        let mut members = all_members();
        members.push("datatransfer-extra");
        let violations = check(RULES, DIRECT_ONLY, &closures(&members, &clean_edges()));
        assert_eq!(
            violations,
            [Violation::Unlisted {
                krate: "datatransfer-extra".into()
            }]
        );
    }

    #[test]
    fn only_dtx_and_the_testkit_may_depend_on_the_facade_and_nothing_on_the_tools() {
        let dependents = |name: &str| -> Vec<&str> {
            RULES
                .iter()
                .filter(|rule| rule.internal.contains(&name))
                .map(|rule| rule.name)
                .collect()
        };
        assert_eq!(dependents(FACADE), [DTX, TESTKIT]);
        assert_eq!(dependents(TESTKIT), Vec::<&str>::new());
        assert_eq!(dependents(XTASK), Vec::<&str>::new());
    }

    #[test]
    fn every_allowed_internal_edge_points_down_and_names_a_listed_crate() {
        for rule in RULES {
            for dep in rule.internal {
                let dep_rule = RULES.iter().find(|other| other.name == *dep);
                let dep_rule =
                    dep_rule.unwrap_or_else(|| panic!("{} lists unknown {dep}", rule.name));
                assert!(dep_rule.layer < rule.layer, "{} -> {dep}", rule.name);
            }
        }
    }

    #[test]
    fn patterns_match_families_and_exact_names() {
        assert!(matches("tokio*", "tokio"));
        assert!(matches("tokio*", "tokio-util"));
        assert!(!matches("tokio*", "tokionic"));
        assert!(matches("sled", "sled"));
        assert!(!matches("sled", "sled-extra"));
    }

    #[test]
    fn tree_output_becomes_a_graph_with_shared_subtrees_kept() -> anyhow::Result<()> {
        let tree = "0datatransfer-fsm v0.1.0 (/w/crates/datatransfer-fsm)\n\
                    1datatransfer-message v0.1.0 (/w/crates/datatransfer-message)\n\
                    2bytes v1.10.1\n\
                    2ipld-dagcbor v0.1.0 (/w/crates/ipld-dagcbor)\n\
                    3bytes v1.10.1\n\
                    1thiserror v2.0.12\n\
                    2thiserror-impl v2.0.12 (proc-macro)\n";
        let graph = graph_from_tree(tree)?;
        let mut expected = Graph::default();
        expected.add_edge(FSM, MESSAGE);
        expected.add_edge(MESSAGE, "bytes");
        expected.add_edge(MESSAGE, DAGCBOR);
        expected.add_edge(DAGCBOR, "bytes");
        expected.add_edge(FSM, "thiserror");
        expected.add_edge("thiserror", "thiserror-impl");
        assert_eq!(graph, expected);
        Ok(())
    }

    #[test]
    fn tree_output_with_a_skipped_level_is_rejected() {
        let error = graph_from_tree("0a v1\n2b v1\n").map(|_| ()).unwrap_err();
        assert!(
            error.to_string().contains("deeper than its parent"),
            "{error}"
        );
    }

    #[test]
    fn metadata_members_are_read_by_id() -> anyhow::Result<()> {
        let json = r#"{
            "packages": [
                {"id": "path+file:///w/crates/b#0.1.0", "name": "b"},
                {"id": "path+file:///w/crates/a#0.1.0", "name": "a"},
                {"id": "registry+x#c@1.0.0", "name": "c"}
            ],
            "workspace_members": ["path+file:///w/crates/b#0.1.0", "path+file:///w/crates/a#0.1.0"]
        }"#;
        assert_eq!(members_from_metadata(json)?, ["a", "b"]);
        Ok(())
    }
}
