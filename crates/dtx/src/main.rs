//! `dtx`: serve, pull and push IPLD DAGs between peers over data-transfer
//! (`/fil/datatransfer/1.2.0`, wire compatible with go-data-transfer v1.15.1) and Graphsync.
//!
//! Place in the stack: layer 4, the program. It puts together the `datatransfer` facade's
//! `Manager` and libp2p swarm, the `datatransfer-graphsync` transport, the channel database
//! (`SledStore`), one file per block (`block-files`, decision 0009) and `dag-io` for UnixFS
//! and CAR.
//!
//! Commands: `serve`, `pull`, `push`, `import`, `export`, and `channels`, `cancel`, `pause`,
//! `resume`, `restart` (through the control socket of a running `dtx serve`, the lib target's
//! `control` module); `--metrics ADDR` on serve, pull and push (its `metrics` module). See
//! `dtx --help` and the crate's README. Global settings come from flags, then `DTX_*` environment variables, then the
//! config file (`--config FILE`, or `<data-dir>/config.toml` when present), then defaults.
//!
//! Modules: `cli` (arguments, config file, precedence), `node` (data directory, key, swarm,
//! manager, voucher policy), `serve`, `transfer` (pull and push), `local` (import and export),
//! `dagfiles` (import, verification and output through a temporary name), `output` (human or
//! JSON lines, the progress bar) and `error` (one line per failure, with a remedy).
//!
//! No feature flags. Exit status: 0 on success, 1 on a failure (one line on stderr; with
//! `--json` also an `{"event":"error",...}` line on stdout), 2 on a usage error, 130 when
//! interrupted during a transfer.

mod cli;
mod dagfiles;
mod error;
mod local;
mod node;
mod output;
mod serve;
mod transfer;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use dtx::control::Op;

use crate::cli::{ChannelArgs, Cli, Command, FileConfig, Settings};
use crate::error::CliError;
use crate::output::Output;

fn main() -> ExitCode {
    datatransfer::libp2p::reuse_freed_buffers();
    let cli = Cli::parse();
    let mut json = cli.json.unwrap_or(false);
    match run(cli, &mut json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let interrupted = matches!(error, CliError::Interrupted { .. });
            report(&error, json);
            ExitCode::from(if interrupted { 130 } else { 1 })
        }
    }
}

/// Runs the command; `json` is set to the resolved `--json` as soon as it is known, for the
/// error report.
fn run(cli: Cli, json: &mut bool) -> Result<(), CliError> {
    let data_dir = cli.data_dir()?;
    let file = FileConfig::load(cli.config.as_deref(), &data_dir)?;
    let settings = cli.settings(data_dir, &file);
    *json = settings.json;
    init_logging(&settings);
    let out = Output::new(settings.json, settings.quiet);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| CliError::internal("starting the async runtime", &error))?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::serve(&settings, &file, out, args).await,
            Command::Pull(args) => transfer::pull(&settings, out, args).await,
            Command::Push(args) => transfer::push(&settings, out, args).await,
            Command::Import(args) => local::import(&settings, out, args).await,
            Command::Export(args) => local::export(&settings, out, args).await,
            Command::Channels(args) => {
                dtx::control::channels(&settings.data_dir, args.watch, settings.json)
                    .await
                    .map_err(control_error)
            }
            Command::Cancel(args) => channel_command(&settings, Op::Cancel, args).await,
            Command::Pause(args) => channel_command(&settings, Op::Pause, args).await,
            Command::Resume(args) => channel_command(&settings, Op::Resume, args).await,
            Command::Restart(args) => channel_command(&settings, Op::Restart, args).await,
        }
    })
}

/// `dtx cancel|pause|resume|restart CHANNEL` through the control socket of the running serve.
async fn channel_command(settings: &Settings, op: Op, args: ChannelArgs) -> Result<(), CliError> {
    dtx::control::channel_command(&settings.data_dir, op, &args.channel, settings.json)
        .await
        .map_err(control_error)
}

/// A control client's error as one line (the control module's messages carry their remedy).
fn control_error(error: anyhow::Error) -> CliError {
    CliError::Control {
        message: format!("{error:#}"),
    }
}

/// Logs go to stderr: off by default (a failure is one line), `-v` info, `-vv` debug, `-vvv`
/// trace; `RUST_LOG` overrides.
fn init_logging(settings: &Settings) {
    let level = match settings.verbose {
        0 => "off",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// The one line of a failure on stderr, and its JSON form on stdout with `--json`.
fn report(error: &CliError, json: bool) {
    if json {
        let line = output::ordered!({"event": "error", "message": error.to_string()});
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
    let _ = writeln!(std::io::stderr().lock(), "dtx: {error}");
}
