//! `REGISTER` (IRCv3 `draft/account-registration`): a client creates an account on the
//! server's account store through [`IrcAuth::create`](crate::irc::auth::IrcAuth::create)
//! and is logged in to it.
//!
//! ```text
//! C: REGISTER <account | *> <email | *> <password>
//! S: REGISTER SUCCESS <account> :Account created
//! S: :srv 900 nick nick!user@host account :You are now logged in as account
//! ```
//!
//! Offered (`draft/account-registration=before-connect,custom-account-name`) only when
//! the policy allows registration. `before-connect`: it works during CAP negotiation,
//! before NICK/USER are complete, so a server that requires logins can be joined by a
//! newcomer. `custom-account-name`: the account need not be the nick; `*` means the
//! current nick. No e-mail verification exists: the e-mail parameter is not used, and
//! `VERIFY` always fails with `INVALID_CODE`. The password is hashed outside the state
//! lock ([`Outcome::Register`]); [`register_result`] reports it.

use std::fmt;

use crate::irc::auth::{retry_text, CreateVerdict, SaslState};
use crate::irc::caps::Cap;
use crate::irc::commands::{Ctx, Outcome};
use crate::irc::message::Message;
use crate::irc::numeric::RPL_LOGGEDIN;
use crate::irc::register::try_complete;

/// The value of the capability.
pub const CAP_VALUE: &str = "before-connect,custom-account-name";

/// An account to create (the password is never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct RegisterRequest {
    /// The account name.
    pub account: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for RegisterRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterRequest")
            .field("account", &self.account)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Whether the server lets clients register accounts.
pub fn enabled(ctx: &Ctx<'_>) -> bool {
    ctx.cfg.auth.as_ref().is_some_and(|a| a.registration())
}

/// `REGISTER account email password`.
pub fn register(ctx: &mut Ctx<'_>, msg: &Message) -> Outcome {
    let fail = |ctx: &Ctx<'_>, code: &str, account: &str, text: &str| {
        ctx.fail("REGISTER", code, &[account], text);
        Outcome::Continue
    };
    if !enabled(ctx) {
        return fail(
            ctx,
            "TEMPORARILY_UNAVAILABLE",
            "*",
            "Account registration is not enabled on this server",
        );
    }
    if msg.params.len() < 3 {
        ctx.need_more_params("REGISTER");
        return Outcome::Continue;
    }
    let Some(me) = ctx.me() else {
        return Outcome::Continue;
    };
    if let Some(a) = &me.account {
        let a = a.clone();
        return fail(
            ctx,
            "ALREADY_AUTHENTICATED",
            &a,
            "You are already logged in",
        );
    }
    if me.sasl != SaslState::Idle {
        return fail(
            ctx,
            "TEMPORARILY_UNAVAILABLE",
            "*",
            "A SASL login is under way",
        );
    }
    let account = match msg.params[0].as_str() {
        "*" => match &me.nick {
            Some(n) => n.clone(),
            None => {
                return fail(
                    ctx,
                    "NEED_NICK",
                    "*",
                    "Send NICK first, or name the account",
                )
            }
        },
        a => a.to_owned(),
    };
    let password = msg.params[2].clone();
    if account.is_empty()
        || account.len() > 128
        || account.contains([':', ' ', ','])
        || account.starts_with(['#', '*'])
        || account.chars().any(char::is_control)
    {
        return fail(
            ctx,
            "BAD_ACCOUNT_NAME",
            &account,
            "Account name is not valid",
        );
    }
    if password.is_empty() || password == "*" {
        return fail(
            ctx,
            "UNACCEPTABLE_PASSWORD",
            &account,
            "Password is not valid",
        );
    }
    Outcome::Register(RegisterRequest { account, password })
}

/// Reports the store's answer to a [`RegisterRequest`]: on success the client is logged
/// in (900, `ACCOUNT` to neighbours with `account-notify` once registered).
pub fn register_result(
    ctx: &mut Ctx<'_>,
    req: &RegisterRequest,
    verdict: CreateVerdict,
) -> Outcome {
    let account = req.account.as_str();
    let fail = |ctx: &Ctx<'_>, code: &str, text: &str| {
        ctx.fail("REGISTER", code, &[account], text);
        Outcome::Continue
    };
    match verdict {
        CreateVerdict::Created => {}
        CreateVerdict::Exists => return fail(ctx, "ACCOUNT_EXISTS", "Account already exists"),
        CreateVerdict::BadName(why) => {
            return fail(
                ctx,
                "BAD_ACCOUNT_NAME",
                &format!("Account name is not valid: {why}"),
            )
        }
        CreateVerdict::BadPassword(why) => {
            return fail(
                ctx,
                "UNACCEPTABLE_PASSWORD",
                &format!("Password is not valid: {why}"),
            )
        }
        CreateVerdict::Throttled(wait) => {
            return fail(
                ctx,
                "TEMPORARILY_UNAVAILABLE",
                &format!("Too many attempts; try again in {}", retry_text(wait)),
            )
        }
        CreateVerdict::Unsupported => {
            return fail(
                ctx,
                "TEMPORARILY_UNAVAILABLE",
                "Account registration is not enabled on this server",
            )
        }
        CreateVerdict::Failed => {
            return fail(
                ctx,
                "TEMPORARILY_UNAVAILABLE",
                "The account could not be created; try again later",
            )
        }
    }
    if ctx.me().is_some_and(|c| c.account.is_some()) {
        // Logged in some other way meanwhile: the new account exists, unused here.
        return fail(ctx, "ALREADY_AUTHENTICATED", "You are already logged in");
    }
    let prefix = ctx.prefix();
    if let Some(c) = ctx.me_mut() {
        c.account = Some(account.to_owned());
    }
    ctx.send(&ctx.from_server(
        "REGISTER",
        vec![
            "SUCCESS".into(),
            account.to_owned(),
            "Account created".into(),
        ],
    ));
    ctx.num(
        RPL_LOGGEDIN,
        &[
            &prefix,
            account,
            &format!("You are now logged in as {account}"),
        ],
    );
    if ctx.registered() {
        let out = ctx.out(Message::new("ACCOUNT", vec![account.to_owned()]));
        ctx.st
            .to_neighbours_with(ctx.id, Cap::AccountNotify, &out, true);
    }
    try_complete(ctx)
}

/// `VERIFY account code`: no verification is ever pending here.
pub fn verify(ctx: &mut Ctx<'_>, msg: &Message) {
    if msg.params.len() < 2 {
        return ctx.need_more_params("VERIFY");
    }
    let account = msg.params[0].clone();
    ctx.fail(
        "VERIFY",
        "INVALID_CODE",
        &[&account],
        "No verification is pending for this account",
    );
}
