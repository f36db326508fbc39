//! `sockit keygen FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use sockit_wire::Key;

/// Flags of `sockit keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the key (must not exist).
    pub file: PathBuf,
}

/// Writes a fresh key.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    Key::generate()?.save_new(&args.file)?;
    println!(
        "wrote a new 256-bit key to {} (mode 0600); pass --key {} to `sockit serve` and to clients",
        args.file.display(),
        args.file.display()
    );
    Ok(ExitCode::SUCCESS)
}
