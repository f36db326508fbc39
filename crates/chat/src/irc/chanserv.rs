//! ChanServ, the channel-registration service (as Ergo's): a pseudo-user that takes
//! `PRIVMSG ChanServ :…` (or the `CS` / `CHANSERV` commands) and answers with NOTICEs
//! from `ChanServ!ChanServ@services.`.
//!
//! Commands: `REGISTER #c`, `UNREGISTER #c`, `AMODE #c [±o|±v account]`, `OP #c [nick]`,
//! `INFO #c`, `HELP`. A registered channel keeps its topic, modes and lists (saved on
//! every change in the [`ChannelStore`](crate::irc::channel_store::ChannelStore)) and
//! stays while empty; users logged in to its founder's account or to an AMODE account
//! get their status from ChanServ when they join. [`parse`] is the pure part.

use crate::irc::channel::{Amode, ClientId, Registration};
use crate::irc::commands::Ctx;
use crate::irc::message::Message;
use crate::irc::names;
use crate::irc::state::{Outgoing, State};

/// The service's nick (reserved while channel registration is on).
pub const NICK: &str = "ChanServ";

/// The prefix of the service's messages.
pub const PREFIX: &str = "ChanServ!ChanServ@services.";

/// The client id the service's nick maps to (no connection ever gets it: ids start at 1).
pub const SERVICE_ID: ClientId = 0;

/// Most AMODE entries per channel.
pub const MAX_AMODES: usize = 100;

/// Longest account name AMODE accepts (as the accounts store).
pub const MAX_ACCOUNT: usize = 128;

/// One ChanServ command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `HELP`.
    Help,
    /// `REGISTER #c`.
    Register(String),
    /// `UNREGISTER #c`.
    Unregister(String),
    /// `AMODE #c` (list) or `AMODE #c ±o|±v account`.
    Amode {
        /// The channel.
        channel: String,
        /// `(adding, mode, account)`, or `None` to list.
        change: Option<(bool, Amode, String)>,
    },
    /// `OP #c [nick]`.
    Op {
        /// The channel.
        channel: String,
        /// Who gets `+o` (the sender when absent).
        nick: Option<String>,
    },
    /// `INFO #c`.
    Info(String),
}

/// Why a ChanServ command was not understood (the reply says it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// An unknown command word.
    #[error("Unknown command {0}. To see the available commands, run /CS HELP")]
    Unknown(String),
    /// Missing or malformed arguments: the usage.
    #[error("Syntax: {0}")]
    Usage(&'static str),
}

const USAGE_REGISTER: &str = "REGISTER #channel";
const USAGE_UNREGISTER: &str = "UNREGISTER #channel";
const USAGE_AMODE: &str = "AMODE #channel [+o|-o|+v|-v account]";
const USAGE_OP: &str = "OP #channel [nick]";
const USAGE_INFO: &str = "INFO #channel";

/// What `HELP` answers, one NOTICE per line.
pub const HELP: &[&str] = &[
    "ChanServ registers channels: a registered channel keeps its topic, modes and",
    "ban, exception and invite-exception lists across restarts, and its founder's and",
    "AMODE accounts get their status when they join.",
    "  REGISTER #channel        register a channel you operate (you must be logged in)",
    "  UNREGISTER #channel      drop a registration (founder only)",
    "  AMODE #channel           list the accounts that get +o/+v on join",
    "  AMODE #channel +o|-o|+v|-v account   change one (founder; +o accounts may change +v)",
    "  OP #channel [nick]       get +o, or give it to nick (founder or +o account)",
    "  INFO #channel            who founded it, when, and its AMODEs",
];

/// Parses the text of a message to ChanServ (the command word in any case). Total.
///
/// # Errors
/// An unknown command, or arguments that do not fit its syntax.
pub fn parse(text: &str) -> Result<Command, ParseError> {
    let mut words = text.split_whitespace();
    let Some(word) = words.next() else {
        return Ok(Command::Help);
    };
    let args: Vec<&str> = words.collect();
    let channel = |usage| {
        args.first()
            .filter(|c| names::is_channel(c))
            .map(|c| (*c).to_owned())
            .ok_or(ParseError::Usage(usage))
    };
    match word.to_ascii_uppercase().as_str() {
        "HELP" => Ok(Command::Help),
        "REGISTER" if args.len() == 1 => Ok(Command::Register(channel(USAGE_REGISTER)?)),
        "REGISTER" => Err(ParseError::Usage(USAGE_REGISTER)),
        // Ergo asks for a confirmation code as a second argument; it is accepted and not
        // needed.
        "UNREGISTER" if (1..=2).contains(&args.len()) => {
            Ok(Command::Unregister(channel(USAGE_UNREGISTER)?))
        }
        "UNREGISTER" => Err(ParseError::Usage(USAGE_UNREGISTER)),
        "INFO" if args.len() == 1 => Ok(Command::Info(channel(USAGE_INFO)?)),
        "INFO" => Err(ParseError::Usage(USAGE_INFO)),
        "OP" if (1..=2).contains(&args.len()) => Ok(Command::Op {
            channel: channel(USAGE_OP)?,
            nick: args.get(1).map(|n| (*n).to_owned()),
        }),
        "OP" => Err(ParseError::Usage(USAGE_OP)),
        "AMODE" => {
            let channel = channel(USAGE_AMODE)?;
            match args.len() {
                1 => Ok(Command::Amode {
                    channel,
                    change: None,
                }),
                3 => {
                    let change = parse_change(args[1]).ok_or(ParseError::Usage(USAGE_AMODE))?;
                    let account = args[2];
                    if !valid_account(account) {
                        return Err(ParseError::Usage(USAGE_AMODE));
                    }
                    Ok(Command::Amode {
                        channel,
                        change: Some((change.0, change.1, account.to_owned())),
                    })
                }
                _ => Err(ParseError::Usage(USAGE_AMODE)),
            }
        }
        _ => Err(ParseError::Unknown(word.chars().take(32).collect())),
    }
}

/// `+o`, `-o`, `+v`, `-v`.
fn parse_change(s: &str) -> Option<(bool, Amode)> {
    let mut c = s.chars();
    let adding = match c.next()? {
        '+' => true,
        '-' => false,
        _ => return None,
    };
    let mode = Amode::from_letter(c.next()?)?;
    c.next().is_none().then_some((adding, mode))
}

/// An account name AMODE accepts: 1 to [`MAX_ACCOUNT`] bytes, no colon, comma or control
/// character, not a channel.
fn valid_account(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= MAX_ACCOUNT
        && !names::is_channel(a)
        && !a.chars().any(|c| c == ':' || c == ',' || c.is_control())
}

/// Whether `target` of a PRIVMSG/NOTICE is ChanServ (and the service is on).
pub fn addressed(ctx: &Ctx<'_>, target: &str) -> bool {
    ctx.cfg.channel_registration && names::eq(target, NICK)
}

/// Reserves the service's nick in `st`.
pub fn reserve_nick(st: &mut State) {
    st.nicks.insert(names::fold(NICK), SERVICE_ID);
}

/// `CS …` / `CHANSERV …`: the parameters joined, as a message to ChanServ.
pub fn command(ctx: &mut Ctx<'_>, msg: &Message) {
    let text = msg.params.join(" ");
    privmsg(ctx, &text);
}

/// `PRIVMSG ChanServ :text`.
pub fn privmsg(ctx: &mut Ctx<'_>, text: &str) {
    match parse(text) {
        Ok(Command::Help) => {
            for line in HELP {
                reply(ctx, line);
            }
        }
        Ok(Command::Register(c)) => register(ctx, &c),
        Ok(Command::Unregister(c)) => unregister(ctx, &c),
        Ok(Command::Amode { channel, change }) => match change {
            None => amode_list(ctx, &channel),
            Some((adding, mode, account)) => amode_change(ctx, &channel, adding, mode, &account),
        },
        Ok(Command::Op { channel, nick }) => op(ctx, &channel, nick.as_deref()),
        Ok(Command::Info(c)) => info(ctx, &c),
        Err(e) => reply(ctx, &e.to_string()),
    }
}

/// A NOTICE from ChanServ to the sender.
fn reply(ctx: &Ctx<'_>, text: &str) {
    let m = Message::new("NOTICE", vec![ctx.nick(), text.to_owned()]).with_prefix(PREFIX);
    ctx.send(&m);
}

/// The sender's account, or a reply saying it has none.
fn account(ctx: &Ctx<'_>) -> Option<String> {
    let a = ctx.me().and_then(|c| c.account.clone());
    if a.is_none() {
        reply(ctx, "You're not logged into an account");
    }
    a
}

/// The channel's name as created and its registration, or a reply saying why not.
fn registered(ctx: &Ctx<'_>, name: &str) -> Option<(String, Registration)> {
    let reg = ctx
        .st
        .channels
        .get(&names::fold(name))
        .and_then(|ch| Some((ch.name.clone(), ch.registration.clone()?)));
    if reg.is_none() {
        reply(ctx, &format!("Channel {name} is not registered"));
    }
    reg
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn register(ctx: &mut Ctx<'_>, name: &str) {
    let Some(founder) = account(ctx) else { return };
    let key = names::fold(name);
    let Some(ch) = ctx.st.channels.get(&key) else {
        return reply(ctx, &format!("Channel {name} does not exist"));
    };
    let cname = ch.name.clone();
    if ch.is_registered() {
        return reply(ctx, &format!("Channel {cname} is already registered"));
    }
    if !ch.is_op(ctx.id) {
        return reply(
            ctx,
            &format!("You must be an operator in {cname} to register it"),
        );
    }
    let max = ctx.cfg.max_registered_channels;
    let owned = ctx
        .st
        .channels
        .values()
        .filter(|c| {
            c.registration
                .as_ref()
                .is_some_and(|r| r.founder == founder)
        })
        .count();
    if owned >= max {
        return reply(
            ctx,
            &format!("You have already registered the maximum number of channels ({max})"),
        );
    }
    if let Some(ch) = ctx.st.channels.get_mut(&key) {
        ch.registration = Some(Registration {
            founder,
            registered_at: now(),
            amodes: Default::default(),
        });
    }
    ctx.st.save_channel(&key);
    reply(ctx, &format!("Channel {cname} successfully registered"));
}

fn unregister(ctx: &mut Ctx<'_>, name: &str) {
    let Some(me) = account(ctx) else { return };
    let Some((cname, reg)) = registered(ctx, name) else {
        return;
    };
    if reg.founder != me {
        return reply(
            ctx,
            &format!("Insufficient privileges: only the founder may unregister {cname}"),
        );
    }
    let key = names::fold(&cname);
    if let Some(ch) = ctx.st.channels.get_mut(&key) {
        ch.registration = None;
        if ch.members.is_empty() {
            ctx.st.channels.remove(&key);
        }
    }
    ctx.st.channel_store.delete(&cname);
    reply(ctx, &format!("Channel {cname} is now unregistered"));
}

fn amode_list(ctx: &mut Ctx<'_>, name: &str) {
    let Some((cname, reg)) = registered(ctx, name) else {
        return;
    };
    let me = ctx.me().and_then(|c| c.account.clone());
    let chan_op = ctx
        .st
        .channels
        .get(&names::fold(&cname))
        .is_some_and(|ch| ch.is_op(ctx.id));
    let has_status = me.as_deref().is_some_and(|a| reg.status_of(a).is_some());
    if !chan_op && !has_status {
        return reply(
            ctx,
            &format!("Insufficient privileges: you must be an operator in {cname}"),
        );
    }
    reply(
        ctx,
        &format!(
            "Channel {cname} has {} persistent modes set",
            reg.amodes.len()
        ),
    );
    for (account, mode) in &reg.amodes {
        reply(
            ctx,
            &format!("Account {account} receives mode +{}", mode.letter()),
        );
    }
}

fn amode_change(ctx: &mut Ctx<'_>, name: &str, adding: bool, mode: Amode, target: &str) {
    let Some(me) = account(ctx) else { return };
    let Some((cname, reg)) = registered(ctx, name) else {
        return;
    };
    // The founder changes any AMODE; an account with +o may change +v.
    let allowed =
        reg.founder == me || (mode == Amode::Voice && reg.amodes.get(&me) == Some(&Amode::Op));
    if !allowed {
        return reply(
            ctx,
            &format!(
                "Insufficient privileges to change +{} in {cname}",
                mode.letter()
            ),
        );
    }
    if target == reg.founder {
        return reply(
            ctx,
            &format!("{target} founded {cname} and always receives +o"),
        );
    }
    let letter = mode.letter();
    let current = reg.amodes.get(target).copied();
    let key = names::fold(&cname);
    if adding {
        if current.is_none() && reg.amodes.len() >= MAX_AMODES {
            return reply(
                ctx,
                &format!("Channel {cname} has the most AMODEs allowed ({MAX_AMODES})"),
            );
        }
        // An account with +o keeps it unless the founder changes it.
        if current == Some(Amode::Op) && mode == Amode::Voice && reg.founder != me {
            return reply(
                ctx,
                &format!("Insufficient privileges to change +o in {cname}"),
            );
        }
        set_amode(ctx.st, &key, target, Some(mode));
        give_to_account(ctx.st, &key, target, mode);
        reply(
            ctx,
            &format!("Account {target} now receives +{letter} in {cname}"),
        );
    } else {
        if current != Some(mode) {
            return reply(
                ctx,
                &format!("Account {target} does not receive +{letter} in {cname}"),
            );
        }
        set_amode(ctx.st, &key, target, None);
        reply(
            ctx,
            &format!("Account {target} no longer receives +{letter} in {cname}"),
        );
    }
}

/// Sets (or, with `None`, removes) the AMODE of `account` in channel `key`, and saves.
fn set_amode(st: &mut State, key: &str, account: &str, mode: Option<Amode>) {
    let Some(reg) = st
        .channels
        .get_mut(key)
        .and_then(|ch| ch.registration.as_mut())
    else {
        return;
    };
    match mode {
        Some(m) => reg.amodes.insert(account.to_owned(), m),
        None => reg.amodes.remove(account),
    };
    st.save_channel(key);
}

/// Gives `mode` to every member of channel `key` logged in to `account` who lacks it.
fn give_to_account(st: &mut State, key: &str, account: &str, mode: Amode) {
    let Some(ch) = st.channels.get(key) else {
        return;
    };
    let ids: Vec<ClientId> = ch
        .members
        .keys()
        .copied()
        .filter(|id| {
            st.clients
                .get(id)
                .is_some_and(|c| c.account.as_deref() == Some(account))
        })
        .collect();
    for id in ids {
        give(st, key, id, mode);
    }
}

/// Gives member `id` of channel `key` `mode` (from ChanServ, seen by the channel),
/// unless it has it.
fn give(st: &mut State, key: &str, id: ClientId, mode: Amode) {
    let Some(member) = st
        .channels
        .get_mut(key)
        .and_then(|ch| ch.members.get_mut(&id))
    else {
        return;
    };
    let flag = match mode {
        Amode::Op => &mut member.op,
        Amode::Voice => &mut member.voice,
    };
    if *flag {
        return;
    }
    *flag = true;
    let (Some(ch), Some(c)) = (st.channels.get(key), st.clients.get(&id)) else {
        return;
    };
    let m = Message::new(
        "MODE",
        vec![
            ch.name.clone(),
            format!("+{}", mode.letter()),
            c.nick_or_star().to_owned(),
        ],
    )
    .with_prefix(PREFIX);
    st.to_channel(ch, &Outgoing::new(m), None);
}

/// After client `ctx.id` joined channel `key`: the status its account has there, from
/// ChanServ.
pub fn on_join(ctx: &mut Ctx<'_>, key: &str) {
    let Some(account) = ctx.me().and_then(|c| c.account.clone()) else {
        return;
    };
    let status = ctx
        .st
        .channels
        .get(key)
        .and_then(|ch| ch.registration.as_ref())
        .and_then(|r| r.status_of(&account));
    if let Some(mode) = status {
        give(ctx.st, key, ctx.id, mode);
    }
}

/// Whether a user logged in to `account` may join channel `ch` past `+i`, `+k`, `+l`
/// and `+b` (its founder and `+o` AMODE accounts, as in Ergo).
pub fn may_bypass(ch: &crate::irc::channel::Channel, account: Option<&str>) -> bool {
    let reg = ch.registration.as_ref();
    account.is_some_and(|a| reg.and_then(|r| r.status_of(a)) == Some(Amode::Op))
}

fn op(ctx: &mut Ctx<'_>, name: &str, nick: Option<&str>) {
    let Some(me) = account(ctx) else { return };
    let Some((cname, reg)) = registered(ctx, name) else {
        return;
    };
    if reg.status_of(&me) != Some(Amode::Op) {
        return reply(
            ctx,
            &format!("Insufficient privileges: you are not the founder or an +o AMODE of {cname}"),
        );
    }
    let key = names::fold(&cname);
    let target = match nick {
        None => Some(ctx.id),
        Some(n) => ctx.st.by_nick(n).filter(|id| *id != SERVICE_ID),
    };
    let shown = nick.map_or_else(|| ctx.nick(), str::to_owned);
    let on_channel = target.is_some_and(|t| ctx.st.channels.get(&key).is_some_and(|ch| ch.has(t)));
    let Some(target) = target.filter(|_| on_channel) else {
        return reply(ctx, &format!("{shown} is not on {cname}"));
    };
    give(ctx.st, &key, target, Amode::Op);
    reply(
        ctx,
        &format!("Successfully granted operator status to {shown} in {cname}"),
    );
}

fn info(ctx: &mut Ctx<'_>, name: &str) {
    let Some((cname, reg)) = registered(ctx, name) else {
        return;
    };
    let at = chrono::DateTime::from_timestamp(reg.registered_at, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    reply(ctx, &format!("Channel {cname} is registered"));
    reply(ctx, &format!("Founder: {}", reg.founder));
    reply(ctx, &format!("Registered at: {at}"));
    if reg.amodes.is_empty() {
        reply(ctx, "AMODEs: none");
    }
    for (account, mode) in &reg.amodes {
        reply(ctx, &format!("AMODE: {account} +{}", mode.letter()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amode(channel: &str, change: Option<(bool, Amode, &str)>) -> Command {
        Command::Amode {
            channel: channel.into(),
            change: change.map(|(a, m, acc)| (a, m, acc.to_owned())),
        }
    }

    #[test]
    fn commands_parse_in_any_case() {
        assert_eq!(parse(""), Ok(Command::Help));
        assert_eq!(parse("  help  "), Ok(Command::Help));
        assert_eq!(
            parse("register #Room"),
            Ok(Command::Register("#Room".into()))
        );
        assert_eq!(parse("UNREGISTER #r"), Ok(Command::Unregister("#r".into())));
        assert_eq!(
            parse("unregister #r code"),
            Ok(Command::Unregister("#r".into()))
        );
        assert_eq!(parse("Info #r"), Ok(Command::Info("#r".into())));
        assert_eq!(
            parse("OP #r"),
            Ok(Command::Op {
                channel: "#r".into(),
                nick: None
            })
        );
        assert_eq!(
            parse("op #r bob"),
            Ok(Command::Op {
                channel: "#r".into(),
                nick: Some("bob".into())
            })
        );
        assert_eq!(parse("AMODE #r"), Ok(amode("#r", None)));
        assert_eq!(
            parse("amode #r +o bob"),
            Ok(amode("#r", Some((true, Amode::Op, "bob"))))
        );
        assert_eq!(
            parse("AMODE #r -v carol"),
            Ok(amode("#r", Some((false, Amode::Voice, "carol"))))
        );
    }

    #[test]
    fn bad_commands_say_why() {
        assert_eq!(parse("DROP #r"), Err(ParseError::Unknown("DROP".into())));
        for (text, usage) in [
            ("REGISTER", USAGE_REGISTER),
            ("REGISTER room", USAGE_REGISTER),
            ("REGISTER #a #b", USAGE_REGISTER),
            ("UNREGISTER", USAGE_UNREGISTER),
            ("INFO", USAGE_INFO),
            ("OP", USAGE_OP),
            ("OP #r a b", USAGE_OP),
            ("AMODE", USAGE_AMODE),
            ("AMODE #r +o", USAGE_AMODE),
            ("AMODE #r +q bob", USAGE_AMODE),
            ("AMODE #r o bob", USAGE_AMODE),
            ("AMODE #r +ov bob", USAGE_AMODE),
            ("AMODE #r +o #other", USAGE_AMODE),
            ("AMODE #r +o a:b", USAGE_AMODE),
            ("AMODE #r +o bob extra", USAGE_AMODE),
        ] {
            assert_eq!(parse(text), Err(ParseError::Usage(usage)), "{text}");
        }
        let long = "x".repeat(MAX_ACCOUNT + 1);
        assert!(parse(&format!("AMODE #r +o {long}")).is_err());
        assert_eq!(
            ParseError::Unknown("X".into()).to_string(),
            "Unknown command X. To see the available commands, run /CS HELP"
        );
    }

    #[test]
    fn the_founder_and_op_accounts_get_op() {
        let reg = Registration {
            founder: "alice".into(),
            registered_at: 0,
            amodes: [
                ("bob".to_owned(), Amode::Op),
                ("carol".to_owned(), Amode::Voice),
            ]
            .into_iter()
            .collect(),
        };
        assert_eq!(reg.status_of("alice"), Some(Amode::Op));
        assert_eq!(reg.status_of("bob"), Some(Amode::Op));
        assert_eq!(reg.status_of("carol"), Some(Amode::Voice));
        assert_eq!(reg.status_of("Alice"), None, "accounts are exact");
        let mut ch = crate::irc::channel::Channel::new("#r", 1, 0);
        ch.registration = Some(reg);
        assert!(may_bypass(&ch, Some("bob")));
        assert!(!may_bypass(&ch, Some("carol")));
        assert!(!may_bypass(&ch, None));
    }
}
