//! `sockit keygen FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use sockit_wire::Key;

/// Flags of `sockit keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the key (must not exist; missing parent directories are created,
    /// mode 0700).
    pub file: PathBuf,
}

/// Writes a fresh key.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(dir) = args.file.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    Key::generate()?.save_new(&args.file)?;
    println!(
        "wrote a new 256-bit key to {} (mode 0600); pass --key {} to `sockit serve` and to clients",
        args.file.display(),
        args.file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Creates `dir` and its missing parents, the new ones readable by the owner only.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}
