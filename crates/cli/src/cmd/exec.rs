//! `sockit exec -- CMD ARGS...`: run a command on the server (no shell), stream its output,
//! forward stdin, exit with its exit code.

use std::process::ExitCode;
use std::time::Duration;

use sockit_exec::{run_remote, ExecRequest, RemoteExit};

use crate::cmd::framed_conn;
use crate::global::GlobalArgs;

/// Flags of `sockit exec`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub conn: crate::global::FramedArgs,
    /// Do not forward stdin (the remote command reads an empty stdin), like `ssh -n`.
    #[arg(short = 'n', long)]
    pub no_stdin: bool,
    /// Time limit (the server's --exec-timeout still applies).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// The program and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub argv: Vec<String>,
}

/// Runs the command remotely.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let client = framed_conn::connect(g).await?;
    let request = ExecRequest {
        argv: args.argv,
        stdin: !args.no_stdin,
        timeout: args.timeout,
    };
    let stdin = (!args.no_stdin).then(tokio::io::stdin);
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let frame = run_remote(client, &request, stdin, &mut stdout, &mut stderr).await?;
    if g.verbose > 0 {
        match frame.containment {
            Some(c) => eprintln!("sockit: containment: {c}"),
            None => eprintln!("sockit: containment: not reported by the server"),
        }
    }
    let exit = frame.exit;
    if let RemoteExit::Signal {
        signal, message, ..
    } = &exit
    {
        match message {
            Some(m) => eprintln!("sockit: remote command {m}"),
            None => eprintln!("sockit: remote command killed by signal {signal}"),
        }
    }
    Ok(ExitCode::from(exit.exit_code()))
}
