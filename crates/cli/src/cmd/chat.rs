//! `sockit chat`: the IRC client (terminal UI, or `--plain` lines for scripts) and the
//! full-duplex UDP chat-room client (`--udp`).

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Context as _;
use sockit_chat::client::{plain, ClientConfig, Connection, Options};
use sockit_chat::irc::names;
use sockit_chat::{ports, udp_room};
use tokio_util::sync::CancellationToken;

use crate::exit::usage;
use crate::global::GlobalArgs;

/// Flags of `sockit chat`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: crate::global::ServerArg,
    #[command(flatten)]
    pub tls: crate::global::TlsArgs,
    /// Channel to join (the leading # may be left out).
    pub channel: Option<String>,
    /// Nick (default: $USER, or `sockit`).
    #[arg(long, value_name = "NICK")]
    pub nick: Option<String>,
    /// Log in to this account with SASL PLAIN (`PASS account:password` on servers
    /// without SASL); the password comes from --password, SOCKIT_CHAT_PASSWORD or a
    /// prompt.
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// With --account: the account's password. Without: the server password (PASS).
    #[arg(
        long,
        env = "SOCKIT_CHAT_PASSWORD",
        value_name = "PASS",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Line mode: stdin lines go to the channel, received lines go to stdout. Used
    /// automatically when stdin or stdout is not a terminal.
    #[arg(long)]
    pub plain: bool,
    /// Terminal UI: log every channel and query to DIR/SERVER/NAME.log (as irssi's autolog).
    #[arg(long, value_name = "DIR", conflicts_with = "plain")]
    pub log_dir: Option<std::path::PathBuf>,
    /// The UDP chat room (udp 7788) instead of IRC: stdin → room, room → stdout.
    #[arg(long, conflicts_with_all = ["plain", "nick", "channel", "password", "account", "tls"])]
    pub udp: bool,
}

fn default_nick() -> String {
    let user: String = std::env::var("USER")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(names::NICKLEN)
        .collect();
    if names::valid_nick(&user) {
        user
    } else {
        "sockit".into()
    }
}

/// Runs the chosen client.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if args.udp {
        let addr = g.server_addr(ports::UDP_CHAT);
        let socket = sockit_basic::client::udp_connect(&addr).await?;
        let stop = CancellationToken::new();
        let ctrl_c = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            ctrl_c.cancel();
        });
        udp_room::run_client(&socket, tokio::io::stdin(), tokio::io::stdout(), stop)
            .await
            .with_context(|| format!("udp chat with {addr}"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let nick = args.nick.clone().unwrap_or_else(default_nick);
    if !names::valid_nick(&nick) {
        return usage(format!(
            "--nick `{nick}` is not a valid nick: a letter or one of []\\`_^{{|}} first, then letters, digits, those or -, at most {} characters",
            names::NICKLEN
        ));
    }
    let channel = args.channel.as_deref().map(|c| {
        if names::is_channel(c) {
            c.to_owned()
        } else {
            format!("#{c}")
        }
    });
    if let Some(c) = &channel {
        if !names::valid_channel(c) {
            return usage(format!("`{c}` is not a valid channel name"));
        }
    }
    let addr = g.server_addr(if g.conn.tls {
        ports::IRC_TLS
    } else {
        ports::IRC
    });
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let plain_mode = args.plain || !interactive;
    let (pass, account) = match &args.account {
        None => (args.password.clone(), None),
        Some(name) if name.is_empty() || name.contains([' ', ':', '\0']) => {
            return usage(format!("--account `{name}` is not an account name"));
        }
        Some(name) => {
            let password = match &args.password {
                Some(p) => p.clone(),
                None if std::io::stdin().is_terminal() => {
                    rpassword::prompt_password(format!("password for {name}: "))
                        .context("cannot read the password")?
                }
                None => {
                    return usage(format!(
                        "--account {name} needs a password: --password, SOCKIT_CHAT_PASSWORD, or run in a terminal to be prompted"
                    ))
                }
            };
            (None, Some((name.clone(), password)))
        }
    };
    let tls = g.trust(&addr, g.conn.tls)?;
    let opts = Options {
        account,
        // The terminal UI shows its own lines from the server's echo; plain mode prints
        // only what others say.
        echo_message: !plain_mode,
        // Scripts want the exit, not a retry.
        reconnect: !plain_mode,
        history: 50,
    };
    let conn = Connection::connect_with(
        &ClientConfig {
            addr: addr.clone(),
            nick,
            realname: "sockit chat".into(),
            password: pass,
            tls: tls.clone(),
        },
        opts,
    )
    .await?;
    crate::global::tell_recorded(conn.recorded.as_ref(), tls.as_ref());
    if plain_mode {
        let closing = plain::run(conn, channel, tokio::io::stdin(), tokio::io::stdout()).await?;
        if let Some(text) = closing {
            tracing::info!("server closed: {text}");
        }
    } else {
        let log = args
            .log_dir
            .as_deref()
            .map(|dir| crate::tui::chat_log::ChatLog::new(dir, &addr));
        crate::tui::chat::run(conn, &addr, channel, log).await?;
    }
    Ok(ExitCode::SUCCESS)
}
