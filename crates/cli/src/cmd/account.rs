//! `sockit account add|admin|passwd|remove|list|cert`: the server's accounts
//! (ROOT/state/accounts.db), used by the reader (kosync, OPDS, web UI) and IRC (SASL
//! PLAIN, PASS, and SASL EXTERNAL by the client certificates `cert add` registers).
//! `add --admin` and `admin NAME [--revoke]` set the administrator role (the reader lets
//! administrators delete books). Only
//! argon2id hashes and certificate fingerprints are stored. A running server sees additions and removals at once (it reads
//! the same file); a credential it verified in the last minutes may keep working until
//! its cache entry expires.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use sockit_accounts::{normalize_fingerprint, Accounts, CertAdded, MAX_CERTS_PER_ACCOUNT};

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
        /// Make it an administrator (the reader lets administrators delete books).
        #[arg(long)]
        admin: bool,
    },
    /// Make an account an administrator (or, with --revoke, an ordinary account again).
    Admin {
        /// The account name.
        name: String,
        /// Take the administrator role away.
        #[arg(long)]
        revoke: bool,
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
    /// List the account names (administrators marked `(admin)`).
    List,
    /// Manage the TLS client certificates that log in to an account (IRC SASL
    /// EXTERNAL), by SHA-256 fingerprint.
    Cert {
        /// What to do.
        #[command(subcommand)]
        action: CertAction,
    },
}

/// `sockit account cert` actions. A fingerprint is the SHA-256 of the certificate (DER),
/// in hex: `AA:BB:…` as `openssl x509 -noout -fingerprint -sha256` prints it, or 64
/// digits without colons, in either case.
#[derive(Debug, clap::Subcommand)]
pub enum CertAction {
    /// Let a certificate log in to an account (at most 16 per account).
    Add {
        /// The account name.
        name: String,
        /// The certificate's SHA-256 fingerprint.
        fingerprint: String,
    },
    /// Stop a certificate logging in to an account.
    Remove {
        /// The account name.
        name: String,
        /// The certificate's SHA-256 fingerprint.
        fingerprint: String,
    },
    /// List an account's certificate fingerprints.
    List {
        /// The account name.
        name: String,
    },
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
        Action::Add { name, admin } => {
            sockit_accounts::check_name(&name)?;
            let accounts = open()?;
            if accounts.exists(&name) {
                bail!("account {name} already exists (change its password with `sockit account passwd {name}`)");
            }
            let password = read_password(&name)?;
            if !accounts.create(&name, &password)? {
                bail!("account {name} already exists");
            }
            if admin {
                accounts.set_admin(&name, true)?;
                println!("added administrator {name} ({})", file.display());
            } else {
                println!("added account {name} ({})", file.display());
            }
        }
        Action::Admin { name, revoke } => {
            if !open()?.set_admin(&name, !revoke)? {
                bail!("no account {name} (see `sockit account list`)");
            }
            if revoke {
                println!("{name} is no longer an administrator");
            } else {
                println!("{name} is an administrator");
            }
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
            let accounts = open()?;
            for name in accounts.list() {
                if accounts.is_admin(&name) {
                    println!("{name} (admin)");
                } else {
                    println!("{name}");
                }
            }
        }
        Action::Cert { action } => cert(action, open)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a `sockit account cert` action.
fn cert(
    action: CertAction,
    open: impl Fn() -> anyhow::Result<std::sync::Arc<Accounts>>,
) -> anyhow::Result<()> {
    let no_account = |name: &str| anyhow::anyhow!("no account {name} (see `sockit account list`)");
    match action {
        CertAction::Add { name, fingerprint } => {
            let fp = normalize_fingerprint(&fingerprint)?;
            match open()?.add_cert(&name, &fp)? {
                CertAdded::Added => println!("added certificate {fp} to account {name}"),
                CertAdded::AlreadyThere => println!("account {name} already has certificate {fp}"),
                CertAdded::NoAccount => return Err(no_account(&name)),
                CertAdded::OtherAccount(other) => bail!(
                    "certificate {fp} already logs in to account {other} (remove it there first with `sockit account cert remove {other} {fp}`)"
                ),
                CertAdded::Full => bail!(
                    "account {name} has {MAX_CERTS_PER_ACCOUNT} certificates already (remove one with `sockit account cert remove {name} FINGERPRINT`)"
                ),
            }
        }
        CertAction::Remove { name, fingerprint } => {
            let fp = normalize_fingerprint(&fingerprint)?;
            let accounts = open()?;
            if !accounts.exists(&name) {
                return Err(no_account(&name));
            }
            if !accounts.remove_cert(&name, &fp)? {
                bail!("account {name} has no certificate {fp} (see `sockit account cert list {name}`)");
            }
            println!("removed certificate {fp} from account {name}");
        }
        CertAction::List { name } => {
            let accounts = open()?;
            if !accounts.exists(&name) {
                return Err(no_account(&name));
            }
            for fp in accounts.certs(&name)? {
                println!("{fp}");
            }
        }
    }
    Ok(())
}
