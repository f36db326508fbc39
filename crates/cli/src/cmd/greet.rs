//! `sockit greet`: the greet dialogue.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use sockit_basic::ports;
use sockit_basic::{GreetClient, ServerSays};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::global::GlobalArgs;

/// Flags of `sockit greet`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: crate::global::ServerArg,
    /// Do one round non-interactively: send NAME, then `exit`.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// Where the names come from.
enum Names {
    /// One name, then `exit`.
    Once(Option<String>),
    /// Lines of stdin; `exit` at end of input.
    Stdin {
        lines: tokio::io::Lines<BufReader<tokio::io::Stdin>>,
        interactive: bool,
    },
}

impl Names {
    async fn next(&mut self) -> anyhow::Result<String> {
        match self {
            Names::Once(name) => Ok(name.take().unwrap_or_else(|| "exit".into())),
            Names::Stdin { lines, .. } => loop {
                match lines.next_line().await? {
                    None => return Ok("exit".into()),
                    Some(l) if l.trim().is_empty() => {
                        // The server ignores empty names; ask again locally.
                        prompt()?;
                    }
                    Some(l) => return Ok(l.trim_end_matches('\r').to_owned()),
                }
            },
        }
    }

    fn echoes_input(&self) -> bool {
        !matches!(
            self,
            Names::Stdin {
                interactive: true,
                ..
            }
        )
    }
}

fn prompt() -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    write!(out, "What's your name? ")?;
    out.flush()?;
    Ok(())
}

/// Runs the dialogue.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let addr = g.server_addr(ports::GREET);
    let mut client = GreetClient::connect(&addr)
        .await
        .with_context(|| format!("cannot connect to greet server {addr}"))?;
    let mut names = match args.name {
        Some(n) if n.trim().is_empty() || n.contains('\n') => {
            return crate::exit::usage("--name must be a non-empty single line")
        }
        Some(n) => Names::Once(Some(n)),
        None => Names::Stdin {
            lines: BufReader::new(tokio::io::stdin()).lines(),
            interactive: std::io::stdin().is_terminal(),
        },
    };
    loop {
        match client.next().await? {
            ServerSays::Prompt(text) => {
                print!("{text}");
                prompt()?;
                let name = names.next().await?;
                if names.echoes_input() {
                    println!("{name}");
                }
                client.send_name(&name).await?;
            }
            ServerSays::Closed(text) => {
                print!("{text}");
                std::io::stdout().flush()?;
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
}
