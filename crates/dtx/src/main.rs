//! `dtx`: serve, pull and push IPLD DAGs over data-transfer.
//!
//! The commands are built in the `dtx` issue. Until then the program says so and exits with an
//! error, so that no script mistakes it for a working tool.

use std::process::ExitCode;

#[allow(clippy::print_stderr)]
fn main() -> ExitCode {
    eprintln!(
        "dtx {}: no commands are available in this build yet",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
