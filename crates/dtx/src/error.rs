//! [`CliError`]: why a command failed, as the one line the user sees (what happened, then what
//! to do).

use std::io;
use std::path::PathBuf;

/// Why a `dtx` command failed. Every message says what went wrong and, after a semicolon,
/// what to do about it; `main` prints it as one line and exits non-zero.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CliError {
    /// No platform data directory could be found.
    #[error("cannot find a data directory for this user; pass --data-dir DIR")]
    NoDataDir,
    /// The data directory cannot be created or read.
    #[error("cannot use data directory {}: {source}; check its permissions or pass another --data-dir", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Another process holds the data directory's databases.
    #[error("data directory {} is in use by another dtx process; stop it or pass another --data-dir", path.display())]
    DataDirInUse {
        /// The directory.
        path: PathBuf,
    },
    /// A database or the key in the data directory is damaged.
    #[error("data directory {} is corrupted ({what}: {reason}); move it away and start again with an empty --data-dir", path.display())]
    DataDirCorrupt {
        /// The directory.
        path: PathBuf,
        /// The damaged part.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The config file cannot be read.
    #[error("cannot read config file {}: {source}; fix the path or drop --config", path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The config file is not valid.
    #[error("config file {} is invalid: {reason}; fix it (keys: json, quiet, verbose, listen, accept_push)", path.display())]
    ConfigInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The peer address does not end in `/p2p/<peer id>`.
    #[error(
        "address {address} does not end in /p2p/<peer id>; copy the full address that `dtx serve` prints"
    )]
    NoPeerId {
        /// The address.
        address: String,
    },
    /// A CID argument does not parse.
    #[error(
        "{text:?} is not a valid CID; copy the root CID that `dtx serve` or `dtx import` prints"
    )]
    BadCid {
        /// The text.
        text: String,
    },
    /// The selector does not parse.
    #[error(
        "invalid --selector: {reason}; give a DAG-JSON selector, such as {{\".\":{{}}}} for the root block alone"
    )]
    BadSelector {
        /// What is wrong.
        reason: String,
    },
    /// A listen address cannot be used.
    #[error("cannot listen on {address}: {reason}; pick another --listen address or port")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// The peer cannot be reached.
    #[error(
        "cannot reach peer {peer} at {address}: {reason}; check that `dtx serve` runs there and the address is current"
    )]
    Unreachable {
        /// The peer id.
        peer: String,
        /// The address dialed.
        address: String,
        /// Why.
        reason: String,
    },
    /// The peer refused the request.
    #[error("peer {peer} refused the {kind}: {reason}; {hint}")]
    Refused {
        /// The peer id.
        peer: String,
        /// `pull` or `push`.
        kind: &'static str,
        /// The peer's reason.
        reason: String,
        /// What to do.
        hint: &'static str,
    },
    /// The transfer failed or was cancelled.
    #[error(
        "the {kind} of {cid} from {peer} ended {status}: {message}; run the command again to retry"
    )]
    TransferFailed {
        /// `pull` or `push`.
        kind: &'static str,
        /// The root.
        cid: String,
        /// The peer.
        peer: String,
        /// The final status.
        status: String,
        /// The channel's message.
        message: String,
    },
    /// The DAG in the block store is incomplete or does not verify.
    #[error("the DAG of {cid} is incomplete or corrupt: {reason}; pull it again")]
    Incomplete {
        /// The root.
        cid: String,
        /// What is wrong.
        reason: String,
    },
    /// The DAG is not in the local block store.
    #[error("{cid} is not in the block store of {}; import it first (dtx import) or give a path", data_dir.display())]
    NotStored {
        /// The root.
        cid: String,
        /// The data directory.
        data_dir: PathBuf,
    },
    /// A path to import cannot be read or imported.
    #[error("cannot import {}: {reason}; check that the path exists and is readable", path.display())]
    Import {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The output path already exists.
    #[error("{} already exists; remove it or choose another -o", path.display())]
    OutputExists {
        /// The path.
        path: PathBuf,
    },
    /// The output cannot be written.
    #[error("cannot write {}: {reason}; choose a writable -o path", path.display())]
    Output {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The DAG cannot be exported in the asked form.
    #[error("cannot write {cid} as {form}: {reason}; use -o NAME.car to get the blocks as a CAR")]
    Export {
        /// The root.
        cid: String,
        /// The form asked for.
        form: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The control socket or the metrics endpoint failed; the message says what to do.
    #[error("{message}")]
    Control {
        /// The message (the control module's errors carry their remedy).
        message: String,
    },
    /// The metrics endpoint cannot be served.
    #[error("cannot serve metrics on {addr}: {reason}; pick another --metrics address or port")]
    Metrics {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The user interrupted the command (Ctrl-C) during a transfer.
    #[error(
        "interrupted; channel {channel} is saved in the data directory and `dtx serve` on it resumes the transfer"
    )]
    Interrupted {
        /// The channel.
        channel: String,
    },
    /// The node failed in a way the user cannot fix with other arguments.
    #[error("{what} failed: {reason}; run again with -vv and report the log if it persists")]
    Internal {
        /// What failed.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

impl CliError {
    /// An internal failure with the whole chain of sources as its reason.
    pub(crate) fn internal(what: &'static str, error: &dyn std::error::Error) -> Self {
        CliError::Internal {
            what,
            reason: chain(error),
        }
    }
}

/// An error and its sources, joined by `: `.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_with_a_remedy() {
        let errors = [
            CliError::NoDataDir,
            CliError::DataDirInUse { path: "/d".into() },
            CliError::Unreachable {
                peer: "12D3".into(),
                address: "/ip4/127.0.0.1/tcp/1".into(),
                reason: "connection refused".into(),
            },
            CliError::BadSelector { reason: "x".into() },
        ];
        for error in errors {
            let text = error.to_string();
            assert!(!text.contains('\n'), "{text}");
            assert!(text.contains("; "), "no remedy in {text}");
        }
    }

    #[test]
    fn chain_joins_sources_without_repeating_them() {
        let inner = io::Error::other("disk full");
        let outer = CliError::DataDir {
            path: "/d".into(),
            source: inner,
        };
        let text = chain(&outer);
        assert_eq!(text.matches("disk full").count(), 1, "{text}");
    }
}
