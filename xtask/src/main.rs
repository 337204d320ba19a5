//! Project automation; see `cargo xtask --help`.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("xtask: no subcommands yet")
}
