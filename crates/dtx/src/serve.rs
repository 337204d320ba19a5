//! `dtx serve`: import paths, listen, serve pulls of the served roots, accept pushes under the
//! policy, resume the channels this node initiated, and report every channel's progress until
//! Ctrl-C.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use datatransfer::{ChannelId, ChannelState, ChannelStatus, Event, SubscriptionError};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

use crate::cli::{FileConfig, ServeArgs, Settings};
use crate::dagfiles;
use crate::error::{CliError, chain};
use crate::node::{DataDir, Node, NodeOptions, Roots};
use crate::output::{EventLines, Output, blocks_and_bytes, channel_line, ordered};

/// `dtx serve`.
pub(crate) async fn serve(
    settings: &Settings,
    file: &FileConfig,
    out: Output,
    args: ServeArgs,
) -> Result<(), CliError> {
    let serve = args.settings(file)?;
    // Installed before anything is printed, so that a Ctrl-C right after `listening` stops
    // cleanly instead of killing the process.
    let shutdown = Shutdown::install()?;
    let data_dir = DataDir::open(&settings.data_dir)?;
    let roots = Roots::load(&data_dir.path)?;
    let blocks = data_dir.blocks().await?;
    let node = Node::start(
        &data_dir,
        blocks,
        NodeOptions::server(serve.listen.clone(), roots.clone(), serve.accept_push),
    )
    .await?;
    let outcome = run(&node, &data_dir, &roots, out, &args, shutdown).await;
    node.stop().await;
    outcome?;
    Ok(())
}

async fn run(
    node: &Node,
    data_dir: &DataDir,
    roots: &Roots,
    out: Output,
    args: &ServeArgs,
    mut shutdown: Shutdown,
) -> Result<(), CliError> {
    // Subscribed before anything can happen, so that no event is missed.
    let mut events = node.manager.subscribe();
    let peer = node.peer_id;
    let addrs: Vec<String> = node.listen_addrs.iter().map(ToString::to_string).collect();
    out.event(
        ordered!({"event": "listening", "peer_id": peer.to_string(), "addrs": addrs}),
        || {
            let mut text = format!("peer id: {peer}");
            for addr in &addrs {
                text.push_str(&format!("\nlistening on {addr}/p2p/{peer}"));
            }
            text
        },
    );

    let dialable = dialable_address(&node.listen_addrs);
    let mut served = Vec::new();
    for path in &args.paths {
        let imported = dagfiles::import(path, node.blocks.as_ref()).await?;
        for root in &imported.roots {
            roots.add(*root).map_err(|source| CliError::DataDir {
                path: data_dir.path.clone(),
                source,
            })?;
        }
        let root = imported.root();
        out.event(
            ordered!({
                "event": "imported",
                "path": path.display().to_string(),
                "root": root.to_string(),
                "blocks": imported.blocks,
                "bytes": imported.bytes,
            }),
            || {
                format!(
                    "imported {}: {root} ({})",
                    path.display(),
                    blocks_and_bytes(imported.blocks, imported.bytes)
                )
            },
        );
        served.push((path, root));
    }
    if let Some(addr) = &dialable {
        let launcher = Launcher::current();
        let here = std::env::current_dir().ok();
        let client_dir = client_data_dir(&data_dir.path, crate::cli::default_data_dir().as_deref());
        for (path, root) in served {
            let name = free_name(&output_name(path), here.as_deref());
            let command = pull_command(
                &launcher,
                client_dir.as_deref(),
                &format!("{addr}/p2p/{peer}"),
                &root.to_string(),
                &name,
            );
            out.event(
                ordered!({"event": "pull_command", "root": root.to_string(), "command": command}),
                || format!("fetch {} with: {command}", path.display()),
            );
        }
    }

    // The control socket of `dtx channels|cancel|pause|resume|restart`, and the metrics;
    // both stop when their handles drop at the end of this function.
    let socket = dtx::control::socket_path(&data_dir.path);
    let _control = dtx::control::serve(&socket, Arc::new(node.manager.clone()))
        .await
        .map_err(|error| CliError::Control {
            message: chain(&error),
        })?;
    out.event(
        ordered!({"event": "control", "socket": socket.display().to_string()}),
        || format!("control socket: {}", socket.display()),
    );
    let _metrics = match args.metrics {
        Some(addr) => Some(node.metrics(addr, out).await?),
        None => None,
    };

    resume_channels(node, out)?;
    out.event(ordered!({"event": "ready"}), || {
        "serving; press Ctrl-C to stop (channels are kept and resume on the next start)".into()
    });

    let mut channels = Channels::default();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => report(node, roots, out, &mut channels, event),
                Err(SubscriptionError::Lagged { missed }) => {
                    tracing::warn!(missed, "fell behind the manager's events");
                }
                Err(error) => return Err(CliError::internal("following the channels", &error)),
            },
            () = shutdown.recv() => break,
        }
    }
    out.event(ordered!({"event": "stopped"}), || {
        "stopped; unfinished channels resume on the next start".into()
    });
    Ok(())
}

/// Restarts the unfinished channels this node initiated (a `dtx pull` or `dtx push`
/// interrupted earlier on this data directory).
fn resume_channels(node: &Node, out: Output) -> Result<(), CliError> {
    let channels = node
        .manager
        .in_progress_channels()
        .map_err(|error| CliError::internal("reading the stored channels", &error))?;
    for (id, state) in channels {
        if state.status.is_terminal() || !state.is_initiator() {
            continue;
        }
        match node.manager.restart_channel(&id) {
            Ok(()) => out.event(
                ordered!({"event": "restarting", "channel": id.to_string(), "root": state.base_cid.to_string()}),
                || format!("restarting channel {id} ({})", state.base_cid),
            ),
            Err(error) => {
                let reason = chain(&error);
                out.event(
                    ordered!({"event": "restart_failed", "channel": id.to_string(), "reason": reason}),
                    || format!("cannot restart channel {id}: {reason}"),
                );
            }
        }
    }
    Ok(())
}

/// Prints what happened to a channel: with `--json` each of its events (data events at most
/// once per [`DATA_EVENT_INTERVAL`](crate::output::DATA_EVENT_INTERVAL) per channel), in human
/// form its status once per change; refusals and failures to send. A completed incoming push is
/// served from then on.
fn report(node: &Node, roots: &Roots, out: Output, channels: &mut Channels, event: Event) {
    let Channels { statuses, lines } = channels;
    match event {
        Event::Channel { event, state } => {
            let span = tracing::info_span!("channel", id = %event.channel);
            let _entered = span.enter();
            tracing::debug!(code = ?event.code, status = %state.status, "channel event");
            let changed = statuses.changed(&event.channel, state.status);
            if changed
                && state.status == ChannelStatus::Completed
                && !state.is_initiator()
                && !state.is_sender()
            {
                received_push(node, roots, out, &state);
            }
            // JSON: every event (data events rate-limited); human: status changes.
            if lines.wants(&event, Instant::now()) {
                out.json(channel_line(&event, &state));
            }
            if changed {
                status_line(out, &state);
            }
        }
        Event::Rejected { channel, reason } => {
            // A refused request may be reported more than once (its request and its answer).
            if statuses.refused(&channel) {
                out.event(
                    ordered!({"event": "refused", "channel": channel.to_string(), "reason": reason}),
                    || format!("refused {channel}: {reason}"),
                );
            }
        }
        Event::TransmitFailed { channel, reason } => out.event(
            ordered!({"event": "transmit_failed", "channel": channel.to_string(), "reason": reason}),
            || format!("cannot send for {channel}: {reason}"),
        ),
        other => tracing::debug!(event = ?other, "manager event"),
    }
}

/// What `dtx serve` remembers per channel to choose its lines.
#[derive(Default)]
struct Channels {
    statuses: Statuses,
    lines: EventLines,
}

/// The last status printed per channel, and the refusals printed; both bounded (the oldest
/// half is forgotten past [`Statuses::LIMIT`] entries, so a long-running serve stays small).
#[derive(Default)]
struct Statuses {
    last: HashMap<ChannelId, (u64, ChannelStatus)>,
    refused: HashMap<ChannelId, u64>,
    tick: u64,
}

impl Statuses {
    const LIMIT: usize = 4096;

    /// Records `status` for `channel`; whether it differs from the last one recorded.
    fn changed(&mut self, channel: &ChannelId, status: ChannelStatus) -> bool {
        self.tick += 1;
        let before = self.last.insert(channel.clone(), (self.tick, status));
        Self::bound(&mut self.last, |(tick, _)| *tick);
        before.is_none_or(|(_, old)| old != status)
    }

    /// Records a refusal of `channel`; whether it is the first.
    fn refused(&mut self, channel: &ChannelId) -> bool {
        self.tick += 1;
        let first = self.refused.insert(channel.clone(), self.tick).is_none();
        Self::bound(&mut self.refused, |tick| *tick);
        first
    }

    fn bound<V>(map: &mut HashMap<ChannelId, V>, tick: impl Fn(&V) -> u64) {
        if map.len() > Self::LIMIT {
            let mut ticks: Vec<u64> = map.values().map(&tick).collect();
            ticks.sort_unstable();
            let cut = ticks[ticks.len() / 2];
            map.retain(|_, value| tick(value) > cut);
        }
    }
}

fn received_push(node: &Node, roots: &Roots, out: Output, state: &ChannelState) {
    let root = state.base_cid;
    if let Err(error) = roots.add(root) {
        tracing::warn!(%root, error = %chain(&error), "cannot record the pushed root");
    }
    let peer = node.peer_id;
    out.event(
        ordered!({
            "event": "received",
            "channel": state.channel_id.to_string(),
            "peer": state.other_peer().to_string(),
            "root": root.to_string(),
            "blocks": state.received_blocks_total,
            "bytes": state.received,
        }),
        || {
            format!(
                "received {root} from {}; now served by {peer}",
                state.other_peer()
            )
        },
    );
}

/// The human line of a channel's new status.
fn status_line(out: Output, state: &ChannelState) {
    let direction = if state.is_sender() { "to" } else { "from" };
    out.human(|| {
        let mut line = format!(
            "channel {}: {} {} {} ({} bytes sent, {} received)",
            state.channel_id,
            state.status,
            direction,
            state.other_peer(),
            state.sent,
            state.received
        );
        if !state.message.is_empty() {
            line.push_str(&format!(": {}", state.message));
        }
        line
    });
}

/// An address a peer can dial: the first listen address that is not a wildcard.
fn dialable_address(addrs: &[Multiaddr]) -> Option<Multiaddr> {
    addrs
        .iter()
        .find(|addr| {
            !addr.iter().any(|part| match part {
                Protocol::Ip4(ip) => ip.is_unspecified(),
                Protocol::Ip6(ip) => ip.is_unspecified(),
                _ => false,
            })
        })
        .cloned()
}

/// How the printed pull command starts the program.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Launcher {
    /// `dtx`, the program the shell finds on the `PATH` (an installed `dtx`).
    Installed,
    /// This program by its own path, for a `dtx` run by path that the `PATH` does not lead to
    /// (a plain `dtx` would then fail or start another build).
    Program {
        /// The program's absolute path.
        path: PathBuf,
    },
    /// `cargo run --release --manifest-path <the dtx package's Cargo.toml> --`, for a serve
    /// started by `cargo run` (which sets `CARGO_MANIFEST_DIR` for the program it runs), so
    /// that a user without `dtx` installed can paste the command in any directory of the
    /// machine (a plain `cargo run` works only inside the checkout).
    Cargo {
        /// The `Cargo.toml` of the dtx package.
        manifest: PathBuf,
    },
}

impl Launcher {
    /// The launcher of this process.
    fn current() -> Self {
        let exe = std::env::current_exe().ok();
        let on_path = std::env::var_os("PATH").and_then(|path| program_on_path(&path, "dtx"));
        Launcher::choose(std::env::var_os("CARGO_MANIFEST_DIR"), exe, on_path)
    }

    /// The launcher for a process started by `cargo run` from `manifest_dir`, else running the
    /// program `exe`, where the shell finds `dtx` as `on_path`.
    fn choose(
        manifest_dir: Option<std::ffi::OsString>,
        exe: Option<PathBuf>,
        on_path: Option<PathBuf>,
    ) -> Self {
        if let Some(dir) = manifest_dir {
            return Launcher::Cargo {
                manifest: PathBuf::from(dir).join("Cargo.toml"),
            };
        }
        let same_file = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        };
        match (exe, on_path) {
            (Some(exe), Some(found)) if same_file(&exe, &found) => Launcher::Installed,
            (Some(exe), _) => Launcher::Program { path: exe },
            (None, _) => Launcher::Installed,
        }
    }

    fn prefix(&self) -> String {
        match self {
            Launcher::Installed => "dtx".into(),
            Launcher::Program { path } => shell_quote(&path.to_string_lossy()),
            Launcher::Cargo { manifest } => format!(
                "cargo run --release --manifest-path {} --",
                shell_quote(&manifest.to_string_lossy())
            ),
        }
    }
}

/// The file the shell runs for `name`: the first directory of `path` (a `PATH` value) that
/// holds a file of that name.
fn program_on_path(path: &std::ffi::OsStr, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The data directory the printed pull command names: `<serve's dir>-client` when this serve
/// runs on the default data directory (a pull there would find it in use), none otherwise (the
/// pull then runs on the default one, which this serve does not hold).
fn client_data_dir(serve_dir: &Path, default_dir: Option<&Path>) -> Option<PathBuf> {
    if default_dir != Some(serve_dir) {
        return None;
    }
    let mut name = serve_dir.as_os_str().to_os_string();
    name.push("-client");
    Some(PathBuf::from(name))
}

/// The ready-to-paste command that pulls `root` from `peer` into `name`, every argument
/// quoted for a POSIX shell where it needs it.
fn pull_command(
    launcher: &Launcher,
    client_dir: Option<&Path>,
    peer: &str,
    root: &str,
    name: &str,
) -> String {
    let mut command = launcher.prefix();
    if let Some(dir) = client_dir {
        command.push_str(" --data-dir ");
        command.push_str(&shell_quote(&dir.to_string_lossy()));
    }
    for arg in ["pull", peer, root, "-o", name] {
        command.push(' ');
        command.push_str(&shell_quote(arg));
    }
    command
}

/// `arg` as one word of a POSIX shell: as is when it holds only characters no shell treats
/// specially, otherwise in single quotes (a single quote inside written `'\''`).
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// `name`, or when a file of that name is in `dir` (the serve's working directory, where a
/// pull pasted into a second terminal of the same machine often runs, and where a served
/// `./file` is), the first of `pulled-NAME`, `pulled-2-NAME`, … that is not (the extension
/// stays last, so a `.car` is still pulled as a CAR).
fn free_name(name: &str, dir: Option<&Path>) -> String {
    let Some(dir) = dir else {
        return name.to_owned();
    };
    let taken = |candidate: &str| std::fs::symlink_metadata(dir.join(candidate)).is_ok();
    if !taken(name) {
        return name.to_owned();
    }
    (1..1000)
        .map(|n| match n {
            1 => format!("pulled-{name}"),
            n => format!("pulled-{n}-{name}"),
        })
        .find(|candidate| !taken(candidate))
        .unwrap_or_else(|| format!("pulled-{}-{name}", std::process::id()))
}

/// The `-o` name suggested for a served path: its file name (`out` when it has none).
fn output_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "out".into())
}

/// SIGINT (Ctrl-C) and SIGTERM (what `kill` and service managers send), listened for from
/// the moment it is made.
#[cfg(unix)]
struct Shutdown {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Shutdown {
    fn install() -> Result<Self, CliError> {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind| {
            signal(kind).map_err(|error| CliError::internal("installing a signal handler", &error))
        };
        Ok(Shutdown {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
        })
    }

    /// Waits for either signal.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Ctrl-C, elsewhere than Unix.
#[cfg(not(unix))]
struct Shutdown;

#[cfg(not(unix))]
impl Shutdown {
    fn install() -> Result<Self, CliError> {
        Ok(Shutdown)
    }

    /// Waits for Ctrl-C (an error installing the handler counts as never).
    async fn recv(&mut self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pull_command_uses_a_dialable_address() {
        let addrs: Vec<Multiaddr> = ["/ip4/0.0.0.0/tcp/1", "/ip4/127.0.0.1/tcp/2"]
            .iter()
            .map(|text| text.parse().expect("valid"))
            .collect();
        assert_eq!(
            dialable_address(&addrs).map(|addr| addr.to_string()),
            Some("/ip4/127.0.0.1/tcp/2".to_owned())
        );
        assert_eq!(dialable_address(&addrs[..1]), None);
    }

    #[test]
    fn statuses_print_changes_and_first_refusals_only_and_stay_bounded() {
        use datatransfer::{PeerId, TransferId};
        let id = |n: u64| {
            ChannelId::new(
                PeerId::from_bytes(vec![1]),
                PeerId::from_bytes(vec![2]),
                TransferId(n),
            )
        };
        let mut statuses = Statuses::default();
        assert!(statuses.changed(&id(1), ChannelStatus::Ongoing));
        assert!(!statuses.changed(&id(1), ChannelStatus::Ongoing));
        assert!(statuses.changed(&id(1), ChannelStatus::Completed));
        assert!(statuses.refused(&id(2)));
        assert!(!statuses.refused(&id(2)));
        for n in 0..(Statuses::LIMIT as u64 * 2) {
            statuses.changed(&id(n + 10), ChannelStatus::Ongoing);
            statuses.refused(&id(n + 10));
        }
        assert!(statuses.last.len() <= Statuses::LIMIT);
        assert!(statuses.refused.len() <= Statuses::LIMIT);
    }

    #[test]
    fn the_pull_command_names_a_client_directory_beside_the_default_one() {
        let default = Path::new("/home/u/.local/share/dtx");
        assert_eq!(
            client_data_dir(default, Some(default)),
            Some(PathBuf::from("/home/u/.local/share/dtx-client"))
        );
        assert_eq!(client_data_dir(Path::new("/srv/d"), Some(default)), None);
        assert_eq!(client_data_dir(default, None), None);

        let peer = "/ip4/127.0.0.1/tcp/2/p2p/12D3KooW";
        assert_eq!(
            pull_command(&Launcher::Installed, None, peer, "bafy", "a.bin"),
            format!("dtx pull {peer} bafy -o a.bin")
        );
        let cargo = Launcher::Cargo {
            manifest: PathBuf::from("/Users/u/my code/dtx/crates/dtx/Cargo.toml"),
        };
        assert_eq!(
            pull_command(
                &cargo,
                Some(Path::new("/Users/u/Library/Application Support/dtx-client")),
                peer,
                "bafy",
                "it's here.txt"
            ),
            format!(
                "cargo run --release --manifest-path '/Users/u/my code/dtx/crates/dtx/Cargo.toml' \
                 -- --data-dir '/Users/u/Library/Application Support/dtx-client' pull {peer} bafy \
                 -o 'it'\\''s here.txt'"
            )
        );
    }

    #[test]
    fn the_pull_command_runs_this_program_by_path_when_the_path_finds_another_dtx() {
        let dir = tempfile::tempdir().expect("temp dir");
        let built = dir.path().join("target/release/dtx");
        let installed = dir.path().join("bin/dtx");
        for program in [&built, &installed] {
            std::fs::create_dir_all(program.parent().expect("parent")).expect("mkdir");
            std::fs::write(program, b"").expect("write");
        }
        let path =
            std::env::join_paths([dir.path().join("none"), dir.path().join("bin")]).expect("PATH");
        assert_eq!(program_on_path(&path, "dtx"), Some(installed.clone()));
        assert_eq!(program_on_path(&path, "other"), None);

        assert_eq!(
            Launcher::choose(None, Some(installed.clone()), Some(installed.clone())),
            Launcher::Installed
        );
        let by_path = Launcher::Program {
            path: built.clone(),
        };
        assert_eq!(
            Launcher::choose(None, Some(built.clone()), Some(installed)),
            by_path
        );
        assert_eq!(Launcher::choose(None, Some(built.clone()), None), by_path);
        assert!(matches!(
            Launcher::choose(Some("/src/dtx".into()), Some(built), None),
            Launcher::Cargo { .. }
        ));
        let peer = "/ip4/127.0.0.1/tcp/2/p2p/12D3KooW";
        let spaced = Launcher::Program {
            path: PathBuf::from("/opt/my tools/dtx"),
        };
        assert_eq!(
            pull_command(&spaced, None, peer, "bafy", "a.bin"),
            format!("'/opt/my tools/dtx' pull {peer} bafy -o a.bin")
        );
    }

    #[test]
    fn the_suggested_name_avoids_a_file_of_the_serves_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(free_name("a.car", Some(dir.path())), "a.car");
        assert_eq!(free_name("a.car", None), "a.car");
        std::fs::write(dir.path().join("a.car"), b"x").expect("write");
        assert_eq!(free_name("a.car", Some(dir.path())), "pulled-a.car");
        std::fs::create_dir(dir.path().join("pulled-a.car")).expect("mkdir");
        assert_eq!(free_name("a.car", Some(dir.path())), "pulled-2-a.car");
    }

    #[test]
    fn the_suggested_name_is_the_file_name() {
        assert_eq!(output_name(Path::new("/tmp/a/report.pdf")), "report.pdf");
        assert_eq!(output_name(Path::new("/")), "out");
    }
}
