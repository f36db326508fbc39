//! Command dispatch: one function per IRC command, run with the state locked.
//!
//! Before registration only CAP, AUTHENTICATE, PASS, NICK, USER, PING, PONG, QUIT,
//! REGISTER and VERIFY are accepted;
//! everything else gets 451 (irssi ≥ 1.3 relies on this: it probes with a bare `JOIN :`
//! during `CAP LS` and waits for the 451). After registration, an unknown command gets
//! 421. Handlers for related commands live in [`register`],
//! [`channel_cmds`], [`messaging`], [`chanserv`] (`CS` / `CHANSERV`, aliases of
//! `PRIVMSG ChanServ`) and [`query`].

use crate::irc::account_reg::{self, RegisterRequest};
use crate::irc::auth::AuthRequest;
use crate::irc::channel::ClientId;
use crate::irc::chathistory::HistoryCall;
use crate::irc::history::History;
use crate::irc::message::Message;
use crate::irc::numeric::*;
use crate::irc::state::{Client, Outgoing, ServerConfig, State};
use crate::irc::{
    channel_cmds, chanserv, chathistory, help, markread, messaging, monitor, oper, query, register,
};

/// What the connection does after a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Keep reading.
    Continue,
    /// Send `ERROR :Closing Link: host (reason)` and close; neighbours see QUIT with the
    /// reason.
    Close(String),
    /// Check these credentials with the server's [`IrcAuth`](crate::irc::auth::IrcAuth)
    /// (outside the state lock), then report the verdict with
    /// [`register::auth_result`].
    Verify(AuthRequest),
    /// Ask the history store (outside the state lock), then answer with
    /// [`chathistory::reply`].
    History(HistoryCall),
    /// Create this account with the server's [`IrcAuth`](crate::irc::auth::IrcAuth)
    /// (outside the state lock), then report with [`account_reg::register_result`].
    Register(RegisterRequest),
    /// Claim this nick network-wide (a cluster node; outside the state lock), then go on
    /// with [`cluster::claim_result`](crate::irc::cluster::claim_result).
    ClaimNick(String),
}

/// The context of one command: the configuration, the locked state and who sent it.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The server configuration.
    pub cfg: &'a ServerConfig,
    /// The state, locked.
    pub st: &'a mut State,
    /// The client that sent the command.
    pub id: ClientId,
    /// When the server started (for 003), human-readable.
    pub created: &'a str,
    /// Message history and read markers.
    pub history: &'a History,
}

impl Ctx<'_> {
    /// The sending client. Present while its command runs (only its own connection task
    /// removes it).
    pub fn me(&self) -> Option<&Client> {
        self.st.clients.get(&self.id)
    }

    /// The sending client, mutably.
    pub fn me_mut(&mut self) -> Option<&mut Client> {
        self.st.clients.get_mut(&self.id)
    }

    /// The sender's nick, or `*`.
    pub fn nick(&self) -> String {
        self.me().map_or("*", Client::nick_or_star).to_owned()
    }

    /// The sender's `nick!user@host`.
    pub fn prefix(&self) -> String {
        self.me().map(Client::prefix).unwrap_or_default()
    }

    /// Sends `msg` to the sender.
    pub fn send(&self, msg: &Message) {
        if let Some(c) = self.me() {
            c.handle.send_msg(msg);
        }
    }

    /// A message from the server.
    #[allow(clippy::wrong_self_convention)] // reads "a message from this server"
    pub fn from_server(&self, command: &str, params: Vec<String>) -> Message {
        Message::new(command, params).with_prefix(self.cfg.name.clone())
    }

    /// Sends the numeric `code` to the sender: `:server CODE nick params...`.
    pub fn num(&self, code: &str, params: &[&str]) {
        let mut p = Vec::with_capacity(params.len() + 1);
        p.push(self.nick());
        p.extend(params.iter().map(|s| (*s).to_owned()));
        self.send(&self.from_server(code, p));
    }

    /// 461 for `command`.
    pub fn need_more_params(&self, command: &str) {
        self.num(ERR_NEEDMOREPARAMS, &[command, "Not enough parameters"]);
    }

    /// An [`Outgoing`] from the sender (with its account, for `account-tag`).
    pub fn out(&self, msg: Message) -> Outgoing {
        self.st.from_client(self.id, msg.with_prefix(self.prefix()))
    }

    /// `FAIL command code :text` (IRCv3 standard replies).
    pub fn fail(&self, command: &str, code: &str, context: &[&str], text: &str) {
        let mut p = vec![command.to_owned(), code.to_owned()];
        p.extend(context.iter().map(|s| (*s).to_owned()));
        p.push(text.to_owned());
        self.send(&self.from_server("FAIL", p));
    }

    /// Whether the sender completed registration.
    pub fn registered(&self) -> bool {
        self.me().is_some_and(|c| c.registered)
    }
}

/// Runs one command from client `ctx.id`.
pub fn dispatch(ctx: &mut Ctx<'_>, msg: &Message) -> Outcome {
    match msg.command.as_str() {
        "CAP" => return register::cap(ctx, msg),
        "AUTHENTICATE" => return register::authenticate(ctx, msg),
        "PASS" => register::pass(ctx, msg),
        "NICK" => return register::nick(ctx, msg),
        "USER" => return register::user(ctx, msg),
        "PING" => ping(ctx, msg),
        "PONG" => {}
        "QUIT" => return quit(msg),
        "REGISTER" => return account_reg::register(ctx, msg),
        "VERIFY" => account_reg::verify(ctx, msg),
        _ if !ctx.registered() => ctx.num(ERR_NOTREGISTERED, &["You have not registered"]),
        "JOIN" => channel_cmds::join(ctx, msg),
        "PART" => channel_cmds::part(ctx, msg),
        "TOPIC" => channel_cmds::topic(ctx, msg),
        "NAMES" => channel_cmds::names(ctx, msg),
        "LIST" => channel_cmds::list(ctx, msg),
        "KICK" => channel_cmds::kick(ctx, msg),
        "MODE" => channel_cmds::mode(ctx, msg),
        "PRIVMSG" | "NOTICE" | "TAGMSG" => messaging::privmsg(ctx, msg),
        "INVITE" => channel_cmds::invite(ctx, msg),
        "SETNAME" => messaging::setname(ctx, msg),
        "USERHOST" => query::userhost(ctx, msg),
        "TIME" => query::time(ctx, msg),
        "AWAY" => messaging::away(ctx, msg),
        "WHO" => query::who(ctx, msg),
        "WHOIS" => query::whois(ctx, msg),
        "ISON" => query::ison(ctx, msg),
        "LUSERS" => query::lusers(ctx),
        "MOTD" => query::motd(ctx),
        "VERSION" => query::version_cmd(ctx),
        "OPER" => return oper::oper(ctx, msg),
        "KILL" => return oper::kill(ctx, msg),
        "WALLOPS" => oper::wallops(ctx, msg),
        "CHGHOST" => oper::chghost(ctx, msg),
        "WHOWAS" => query::whowas(ctx, msg),
        "INFO" => query::info(ctx, msg),
        "ADMIN" => query::admin(ctx, msg),
        "HELP" | "HELPOP" => help::help(ctx, msg),
        "MONITOR" => monitor::monitor(ctx, msg),
        "CHATHISTORY" => return chathistory::chathistory(ctx, msg),
        "MARKREAD" => markread::markread(ctx, msg),
        "CS" | "CHANSERV" if ctx.cfg.channel_registration => chanserv::command(ctx, msg),
        other => ctx.num(ERR_UNKNOWNCOMMAND, &[other, "Unknown command"]),
    }
    Outcome::Continue
}

/// PING token → `:server PONG server :token` (the server name first, as clients expect).
fn ping(ctx: &mut Ctx<'_>, msg: &Message) {
    match msg.param(0) {
        None | Some("") => ctx.num(ERR_NOORIGIN, &["No origin specified"]),
        Some(token) => {
            let pong = ctx.from_server("PONG", vec![ctx.cfg.name.clone(), token.to_owned()]);
            ctx.send(&pong);
        }
    }
}

/// QUIT [reason].
fn quit(msg: &Message) -> Outcome {
    match msg.param(0) {
        Some(r) if !r.is_empty() => Outcome::Close(format!("Quit: {r}")),
        _ => Outcome::Close("Client Quit".into()),
    }
}
