//! The command line (clap derive) and the settings it resolves to: flags, then `DTX_*`
//! environment variables (both through clap), then the config file, then the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use libp2p::Multiaddr;
use serde::Deserialize;

use crate::error::CliError;

/// `dtx`: serve, pull and push IPLD DAGs over data-transfer (`/fil/datatransfer/1.2.0` with
/// Graphsync).
#[derive(Debug, Parser)]
#[command(name = "dtx", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// The data directory: the channel database, the block store and the node key (so the
    /// peer id persists). Default: the platform data directory (`~/.local/share/dtx` on Linux).
    #[arg(long, global = true, env = "DTX_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// A TOML config file. Default: `<data-dir>/config.toml` when it exists.
    #[arg(long, global = true, env = "DTX_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// One JSON object per line on stdout for every event and result.
    #[arg(
        long,
        global = true,
        env = "DTX_JSON",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub(crate) json: Option<bool>,

    /// Print only errors (and the results of `--json`); no progress bar.
    #[arg(
        long,
        short = 'q',
        global = true,
        env = "DTX_QUIET",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub(crate) quiet: Option<bool>,

    /// Logs on stderr: `-v` for info, `-vv` for debug (`RUST_LOG` overrides).
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// The command.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Import paths, serve pulls of them and accept pushes; prints the `dtx pull` commands.
    Serve(ServeArgs),
    /// Fetch a DAG from a peer into a file, a directory, a CAR, or only the block store.
    Pull(PullArgs),
    /// Send a file, a directory, a CAR or a stored DAG to a peer.
    Push(PushArgs),
    /// Import a file or directory (UnixFS) or a `.car` into the block store.
    Import(ImportArgs),
    /// Write a stored DAG out as a file or directory (UnixFS), or as a CAR for a `.car` path.
    Export(ExportArgs),
    /// List the channels of the `dtx serve` running on the data directory.
    Channels(ChannelsArgs),
    /// Cancel a channel of the running `dtx serve`.
    Cancel(ChannelArgs),
    /// Pause a channel of the running `dtx serve`.
    Pause(ChannelArgs),
    /// Resume a paused channel of the running `dtx serve`.
    Resume(ChannelArgs),
    /// Restart a channel of the running `dtx serve` (after a disconnection or a restart).
    Restart(ChannelArgs),
}

/// `dtx channels`.
#[derive(Debug, Args)]
pub(crate) struct ChannelsArgs {
    /// Keep printing every change until Ctrl-C.
    #[arg(long)]
    pub(crate) watch: bool,
}

/// `dtx cancel|pause|resume|restart`.
#[derive(Debug, Args)]
pub(crate) struct ChannelArgs {
    /// The channel: its full id, its transfer id, or a part of the id that fits only one.
    pub(crate) channel: String,
}

/// Whom `dtx serve` accepts pushes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AcceptPush {
    /// Refuse every push.
    None,
    /// Accept every push.
    All,
}

/// `dtx serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// An address to listen on (repeatable). Default: `/ip4/0.0.0.0/tcp/0`.
    #[arg(
        long,
        env = "DTX_LISTEN",
        value_delimiter = ',',
        value_name = "MULTIADDR"
    )]
    pub(crate) listen: Vec<Multiaddr>,

    /// Whose pushes are accepted. Default: none.
    #[arg(long, env = "DTX_ACCEPT_PUSH", value_name = "POLICY")]
    pub(crate) accept_push: Option<AcceptPush>,

    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long, env = "DTX_METRICS", value_name = "ADDR")]
    pub(crate) metrics: Option<SocketAddr>,

    /// Files, directories (UnixFS) and `.car` files to import and serve.
    pub(crate) paths: Vec<PathBuf>,
}

/// `dtx pull`.
#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// The peer: its address ending in `/p2p/<peer id>`, as `dtx serve` prints it.
    pub(crate) peer: Multiaddr,
    /// The root CID.
    pub(crate) cid: String,
    /// The selector as DAG-JSON. Default: the whole DAG (explore all, recursively).
    #[arg(long, value_name = "JSON")]
    pub(crate) selector: Option<String>,
    /// Where to write: a file or directory (UnixFS), a CAR when it ends in `.car`. Without
    /// it the blocks are only kept in the block store.
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub(crate) output: Option<PathBuf>,
    /// Serve Prometheus metrics on this address while the pull runs.
    #[arg(long, env = "DTX_METRICS", value_name = "ADDR")]
    pub(crate) metrics: Option<SocketAddr>,
}

/// `dtx push`.
#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// The peer: its address ending in `/p2p/<peer id>`.
    pub(crate) peer: Multiaddr,
    /// A path to import and send, or the CID of a DAG in the block store.
    pub(crate) source: String,
    /// Serve Prometheus metrics on this address while the push runs.
    #[arg(long, env = "DTX_METRICS", value_name = "ADDR")]
    pub(crate) metrics: Option<SocketAddr>,
}

/// `dtx import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// A file or directory (UnixFS), or a `.car` file.
    pub(crate) path: PathBuf,
}

/// `dtx export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The root CID.
    pub(crate) cid: String,
    /// Where to write: a file or directory (UnixFS), a CAR when it ends in `.car`.
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub(crate) output: PathBuf,
}

/// The config file: every key is optional. Unknown keys are an error, so that a typo is not
/// silently ignored.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// Where it was read from (not a key).
    #[serde(skip)]
    pub(crate) path: Option<PathBuf>,
    /// As `--json`.
    pub(crate) json: Option<bool>,
    /// As `--quiet`.
    pub(crate) quiet: Option<bool>,
    /// As `-v` given this many times.
    pub(crate) verbose: Option<u8>,
    /// As `serve --listen`.
    pub(crate) listen: Option<Vec<String>>,
    /// As `serve --accept-push`.
    pub(crate) accept_push: Option<AcceptPush>,
}

impl FileConfig {
    /// Reads the config file: `explicit` when given (it must exist), otherwise
    /// `<data_dir>/config.toml` when it exists, otherwise the empty config.
    pub(crate) fn load(explicit: Option<&Path>, data_dir: &Path) -> Result<Self, CliError> {
        let (path, required) = match explicit {
            Some(path) => (path.to_path_buf(), true),
            None => (data_dir.join("config.toml"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if !required && error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FileConfig::default());
            }
            Err(source) => return Err(CliError::ConfigRead { path, source }),
        };
        let mut config: FileConfig =
            toml::from_str(&text).map_err(|error| CliError::ConfigInvalid {
                path: path.clone(),
                reason: error.message().to_owned(),
            })?;
        config.path = Some(path);
        Ok(config)
    }
}

/// The global settings after precedence (flags > env > file > defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// The data directory.
    pub(crate) data_dir: PathBuf,
    /// One JSON object per line.
    pub(crate) json: bool,
    /// No human output but errors.
    pub(crate) quiet: bool,
    /// Log verbosity (0: warnings, 1: info, 2+: debug).
    pub(crate) verbose: u8,
}

/// The settings of `dtx serve` after precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServeSettings {
    /// Listen addresses.
    pub(crate) listen: Vec<Multiaddr>,
    /// The push policy.
    pub(crate) accept_push: AcceptPush,
}

/// The platform data directory (`~/.local/share/dtx` on Linux), the default `--data-dir`;
/// `None` when the platform has none (no home directory).
pub(crate) fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "dtx").map(|dirs| dirs.data_dir().to_path_buf())
}

/// The default listen address of `dtx serve`.
pub(crate) const DEFAULT_LISTEN: &str = "/ip4/0.0.0.0/tcp/0";

impl Cli {
    /// The data directory: `--data-dir` / `DTX_DATA_DIR`, or the platform's.
    pub(crate) fn data_dir(&self) -> Result<PathBuf, CliError> {
        if let Some(dir) = &self.data_dir {
            return Ok(dir.clone());
        }
        default_data_dir().ok_or(CliError::NoDataDir)
    }

    /// The global settings: flags and environment (already merged by clap) over `file`.
    pub(crate) fn settings(&self, data_dir: PathBuf, file: &FileConfig) -> Settings {
        Settings {
            data_dir,
            json: self.json.or(file.json).unwrap_or(false),
            quiet: self.quiet.or(file.quiet).unwrap_or(false),
            verbose: if self.verbose > 0 {
                self.verbose
            } else {
                file.verbose.unwrap_or(0)
            },
        }
    }
}

impl ServeArgs {
    /// The serve settings: flags and environment over `file` over the defaults.
    pub(crate) fn settings(&self, file: &FileConfig) -> Result<ServeSettings, CliError> {
        let listen = if !self.listen.is_empty() {
            self.listen.clone()
        } else if let Some(listen) = &file.listen {
            listen
                .iter()
                .map(|text| {
                    text.parse().map_err(|_| CliError::ConfigInvalid {
                        path: file
                            .path
                            .clone()
                            .unwrap_or_else(|| PathBuf::from("config.toml")),
                        reason: format!("`listen` entry {text:?} is not a multiaddr"),
                    })
                })
                .collect::<Result<_, _>>()?
        } else {
            vec![DEFAULT_LISTEN.parse().expect("the default address parses")]
        };
        Ok(ServeSettings {
            listen,
            accept_push: self
                .accept_push
                .or(file.accept_push)
                .unwrap_or(AcceptPush::None),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("dtx").chain(args.iter().copied()))
            .expect("the arguments parse")
    }

    fn file(text: &str) -> FileConfig {
        toml::from_str(text).expect("the config parses")
    }

    #[test]
    fn flags_win_over_the_file() {
        let cli = parse(&["--json=false", "-q", "-vv", "import", "x"]);
        let settings = cli.settings("d".into(), &file("json = true\nquiet = false\nverbose = 1"));
        assert_eq!(
            settings,
            Settings {
                data_dir: "d".into(),
                json: false,
                quiet: true,
                verbose: 2
            }
        );
    }

    #[test]
    fn the_file_wins_over_the_defaults() {
        let cli = parse(&["import", "x"]);
        let settings = cli.settings("d".into(), &file("json = true\nverbose = 1"));
        assert!(settings.json);
        assert!(!settings.quiet);
        assert_eq!(settings.verbose, 1);
        let defaults = cli.settings("d".into(), &FileConfig::default());
        assert!(!defaults.json && !defaults.quiet);
        assert_eq!(defaults.verbose, 0);
    }

    #[test]
    fn a_bare_json_flag_does_not_swallow_the_command() {
        let cli = parse(&["--json", "import", "x"]);
        assert_eq!(cli.json, Some(true));
        assert!(matches!(cli.command, Command::Import(_)));
    }

    #[test]
    fn serve_settings_follow_the_precedence() {
        let Command::Serve(args) = parse(&["serve", "--listen", "/ip4/127.0.0.1/tcp/5"]).command
        else {
            panic!("not serve")
        };
        let config = file("listen = [\"/ip4/127.0.0.1/tcp/7\"]\naccept_push = \"all\"");
        let settings = args.settings(&config).expect("valid");
        assert_eq!(
            settings.listen,
            vec!["/ip4/127.0.0.1/tcp/5".parse().expect("addr")]
        );
        assert_eq!(settings.accept_push, AcceptPush::All);

        let Command::Serve(bare) = parse(&["serve"]).command else {
            panic!("not serve")
        };
        let from_file = bare.settings(&config).expect("valid");
        assert_eq!(
            from_file.listen,
            vec!["/ip4/127.0.0.1/tcp/7".parse().expect("addr")]
        );
        let defaults = bare.settings(&FileConfig::default()).expect("valid");
        assert_eq!(defaults.listen, vec![DEFAULT_LISTEN.parse().expect("addr")]);
        assert_eq!(defaults.accept_push, AcceptPush::None);
    }

    #[test]
    fn unknown_keys_and_bad_addresses_in_the_file_are_errors() {
        assert!(toml::from_str::<FileConfig>("jsn = true").is_err());
        let Command::Serve(bare) = parse(&["serve"]).command else {
            panic!("not serve")
        };
        let error = bare
            .settings(&file("listen = [\"nowhere\"]"))
            .expect_err("not a multiaddr");
        assert!(error.to_string().contains("nowhere"), "{error}");
    }

    #[test]
    fn a_missing_explicit_config_file_is_an_error_and_a_missing_default_is_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(
            FileConfig::load(None, dir.path()).expect("absent default"),
            FileConfig::default()
        );
        assert!(matches!(
            FileConfig::load(Some(&dir.path().join("config.toml")), dir.path()),
            Err(CliError::ConfigRead { .. })
        ));
        let missing = dir.path().join("nope.toml");
        assert!(FileConfig::load(Some(&missing), dir.path()).is_err());
        std::fs::write(dir.path().join("config.toml"), "quiet = true").expect("write");
        assert_eq!(
            FileConfig::load(None, dir.path())
                .expect("present default")
                .quiet,
            Some(true)
        );
    }
}
