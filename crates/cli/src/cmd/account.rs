//! `sockit account add|passwd|remove|list`: the server's accounts (ROOT/state/accounts.db),
//! used by the reader (kosync, OPDS, web UI) and IRC (SASL PLAIN, PASS). Only argon2id
//! hashes are stored. A running server sees additions and removals at once (it reads
//! the same file); a credential it verified in the last minutes may keep working until
//! its cache entry expires.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use sockit_accounts::Accounts;

/// Flags of `sockit account`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server's data root (as for `sockit serve`; default: the platform data dir +
    /// /sockit); the accounts live in ROOT/state/accounts.db.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// `sockit account` actions.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Create an account; the password is read from stdin (one line) or prompted for.
    Add {
        /// The account name (no colon).
        name: String,
    },
    /// Change an account's password (read as for `add`).
    Passwd {
        /// The account name.
        name: String,
    },
    /// Remove an account.
    Remove {
        /// The account name.
        name: String,
    },
    /// List the account names.
    List,
}

fn accounts_file(root: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let root = match root {
        Some(r) => r,
        None => dirs::data_dir()
            .context("no platform data dir; pass --root DIR")?
            .join("sockit"),
    };
    Ok(crate::serve::layout::Layout::of(&root).accounts())
}

/// The password: prompted twice without echo on a terminal, else one line of stdin.
fn read_password(name: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(format!("password for {name}: "))
            .context("cannot read the password")?;
        let again = rpassword::prompt_password("again: ").context("cannot read the password")?;
        if p != again {
            bail!("the passwords differ; nothing changed");
        }
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let p = line.strip_suffix('\n').unwrap_or(&line);
    let p = p.strip_suffix('\r').unwrap_or(p);
    if p.is_empty() {
        bail!("no password on stdin (give it as one line, or run in a terminal to be prompted)");
    }
    Ok(p.to_owned())
}

/// Runs the action.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let file = accounts_file(args.root)?;
    let open = || Accounts::open(&file).with_context(|| format!("cannot open {}", file.display()));
    match args.action {
        Action::Add { name } => {
            sockit_accounts::check_name(&name)?;
            let accounts = open()?;
            if accounts.exists(&name) {
                bail!("account {name} already exists (change its password with `sockit account passwd {name}`)");
            }
            let password = read_password(&name)?;
            if !accounts.create(&name, &password)? {
                bail!("account {name} already exists");
            }
            println!("added account {name} ({})", file.display());
        }
        Action::Passwd { name } => {
            let accounts = open()?;
            if !accounts.exists(&name) {
                bail!("no account {name} (see `sockit account list`)");
            }
            let password = read_password(&name)?;
            if !accounts.set_password(&name, &password)? {
                bail!("no account {name}");
            }
            println!("changed the password of {name}");
        }
        Action::Remove { name } => {
            if !open()?.remove(&name)? {
                bail!("no account {name} (see `sockit account list`)");
            }
            println!("removed account {name}");
        }
        Action::List => {
            for name in open()?.list() {
                println!("{name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
