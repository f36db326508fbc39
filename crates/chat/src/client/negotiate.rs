//! Capability negotiation and SASL PLAIN before registration, as a pure state machine:
//! [`Negotiation::start`] gives the opening lines, [`Negotiation::on_message`] the
//! answers to each server line. The connection writes them; tests drive it directly.
//!
//! ```text
//! C: CAP LS 302 / [PASS p] / NICK n / USER …
//! S: CAP * LS [*] :caps…          (continuation lines collected until the last)
//! C: CAP REQ :wanted ∩ offered    (or CAP END when none is offered)
//! S: CAP * ACK :…                 (NAK: CAP END, no capabilities)
//! C: AUTHENTICATE PLAIN           (with an account and `sasl` enabled; else CAP END)
//! S: AUTHENTICATE +
//! C: AUTHENTICATE base64(NUL account NUL password), 400 bytes a line
//! S: 903 → CAP END;  904/905 → login failed
//! ```
//!
//! A server without CAP answers `421 CAP` or nothing at all and registers on NICK/USER:
//! both end the negotiation with no capabilities.

use base64::Engine as _;

use crate::irc::message::Message;

/// The capabilities the client uses, requested when offered.
pub const WANTED: &[&str] = &[
    "server-time",
    "message-tags",
    "batch",
    "multi-prefix",
    "away-notify",
    "draft/chathistory",
];

/// SASL chunk length (IRCv3 `sasl` 3.1).
const CHUNK: usize = 400;

/// Where the negotiation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for the `CAP LS` reply.
    Listing,
    /// `CAP REQ` sent, waiting for ACK or NAK.
    Requesting,
    /// `AUTHENTICATE PLAIN` sent, waiting for `AUTHENTICATE +`.
    Authenticating,
    /// The payload sent, waiting for 903 or 904.
    Verifying,
    /// `CAP END` sent (or the server has no CAP): registration goes on.
    Done,
    /// The SASL login was refused, with the server's text.
    Failed(String),
}

/// The negotiation of one connection.
#[derive(Debug, Clone)]
pub struct Negotiation {
    /// Where it stands.
    pub stage: Stage,
    wanted: Vec<String>,
    account: Option<(String, String)>,
    offered: Vec<String>,
    /// The capabilities the server acknowledged.
    pub enabled: Vec<String>,
    /// The account we are logged in as (after 900/903).
    pub logged_in: Option<String>,
}

impl Negotiation {
    /// A negotiation requesting [`WANTED`] plus `extra` (such as `echo-message`), and
    /// `sasl` when `account` (name, password) is given.
    pub fn new(extra: &[&str], account: Option<(String, String)>) -> Self {
        let mut wanted: Vec<String> = WANTED.iter().map(|s| (*s).to_owned()).collect();
        wanted.extend(extra.iter().map(|s| (*s).to_owned()));
        if account.is_some() {
            wanted.push("sasl".into());
        }
        Negotiation {
            stage: Stage::Listing,
            wanted,
            account,
            offered: Vec::new(),
            enabled: Vec::new(),
            logged_in: None,
        }
    }

    /// The first line to send: `CAP LS 302` (before PASS, NICK and USER).
    pub fn start(&self) -> Message {
        Message::new("CAP", vec!["LS".into(), "302".into()])
    }

    /// Whether `cap` was acknowledged.
    pub fn has(&self, cap: &str) -> bool {
        self.enabled.iter().any(|c| c.eq_ignore_ascii_case(cap))
    }

    /// Whether the negotiation is over (done or failed).
    pub fn finished(&self) -> bool {
        matches!(self.stage, Stage::Done | Stage::Failed(_))
    }

    fn end(&mut self) -> Vec<Message> {
        self.stage = Stage::Done;
        vec![Message::new("CAP", vec!["END".into()])]
    }

    /// What to send in answer to `m` (nothing for lines that do not concern it).
    pub fn on_message(&mut self, m: &Message) -> Vec<Message> {
        if self.finished() {
            return Vec::new();
        }
        let p = |i: usize| m.param(i).unwrap_or("");
        match m.command.as_str() {
            "CAP" => match p(1).to_ascii_uppercase().as_str() {
                "LS" if self.stage == Stage::Listing => {
                    let more = m.params.len() > 3 && p(2) == "*";
                    let list = m.params.last().map(String::as_str).unwrap_or("");
                    self.offered.extend(
                        list.split(' ')
                            .filter(|c| !c.is_empty())
                            .map(|c| c.split('=').next().unwrap_or(c).to_ascii_lowercase()),
                    );
                    if more {
                        return Vec::new();
                    }
                    let req: Vec<String> = self
                        .wanted
                        .iter()
                        .filter(|w| self.offered.iter().any(|o| o == *w))
                        .cloned()
                        .collect();
                    if req.is_empty() {
                        return self.end_or_pass();
                    }
                    self.stage = Stage::Requesting;
                    vec![Message::new("CAP", vec!["REQ".into(), req.join(" ")])]
                }
                "ACK" if self.stage == Stage::Requesting => {
                    let list = m.params.last().map(String::as_str).unwrap_or("");
                    for c in list.split(' ').filter(|c| !c.is_empty()) {
                        match c.strip_prefix('-') {
                            Some(off) => self.enabled.retain(|e| !e.eq_ignore_ascii_case(off)),
                            None => self.enabled.push(c.to_ascii_lowercase()),
                        }
                    }
                    if self.has("sasl") && self.account.is_some() {
                        self.stage = Stage::Authenticating;
                        return vec![Message::new("AUTHENTICATE", vec!["PLAIN".into()])];
                    }
                    self.end_or_pass()
                }
                "NAK" if self.stage == Stage::Requesting => self.end_or_pass(),
                _ => Vec::new(),
            },
            "AUTHENTICATE" if self.stage == Stage::Authenticating && p(0) == "+" => {
                self.stage = Stage::Verifying;
                let (name, password) = self.account.clone().unwrap_or_default();
                plain_payload(&name, &password)
                    .into_iter()
                    .map(|chunk| Message::new("AUTHENTICATE", vec![chunk]))
                    .collect()
            }
            "900" => {
                self.logged_in = m.param(2).map(str::to_owned);
                Vec::new()
            }
            "903" | "907" => {
                if self.logged_in.is_none() {
                    self.logged_in = self.account.as_ref().map(|(n, _)| n.clone());
                }
                self.end()
            }
            "904" | "905" | "906" | "902"
                if matches!(self.stage, Stage::Authenticating | Stage::Verifying) =>
            {
                let text = m.params.last().cloned().unwrap_or_default();
                self.stage = Stage::Failed(format!("{text} ({})", m.command));
                vec![
                    Message::new("AUTHENTICATE", vec!["*".into()]),
                    Message::new("QUIT", vec!["SASL login failed".into()]),
                ]
            }
            // A server without CAP: it answers 421, or registers straight away.
            "421" if p(1).eq_ignore_ascii_case("CAP") => {
                self.stage = Stage::Done;
                Vec::new()
            }
            "001" => {
                self.stage = Stage::Done;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// `CAP END`; with an account but no SASL, `PASS account:password` first (the form
    /// sockit, Ergo and ZNC accept).
    fn end_or_pass(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        if let Some((name, password)) = &self.account {
            out.push(Message::new("PASS", vec![format!("{name}:{password}")]));
        }
        out.extend(self.end());
        out
    }
}

/// The SASL PLAIN payload for `account`, base64 in lines of at most 400 bytes; `+` ends
/// a payload whose length is a multiple of 400.
pub fn plain_payload(account: &str, password: &str) -> Vec<String> {
    let raw = format!("\0{account}\0{password}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw.as_bytes());
    let mut out: Vec<String> = b64
        .as_bytes()
        .chunks(CHUNK)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    if b64.len() % CHUNK == 0 {
        out.push("+".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> Message {
        Message::parse(s.as_bytes()).unwrap()
    }

    fn lines(v: Vec<Message>) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn requests_what_is_offered_and_logs_in_with_sasl() {
        let mut n = Negotiation::new(&["echo-message"], Some(("alice".into(), "s3cret".into())));
        assert_eq!(n.start().to_string(), "CAP LS 302");
        assert!(
            lines(n.on_message(&msg(":srv CAP * LS * :server-time batch sasl=PLAIN"))).is_empty()
        );
        let out = lines(n.on_message(&msg(":srv CAP * LS :echo-message draft/chathistory foo")));
        assert_eq!(
            out,
            ["CAP REQ :server-time batch draft/chathistory echo-message sasl"]
        );
        let out = lines(n.on_message(&msg(
            ":srv CAP * ACK :server-time batch draft/chathistory echo-message sasl",
        )));
        assert_eq!(out, ["AUTHENTICATE PLAIN"]);
        let out = lines(n.on_message(&msg("AUTHENTICATE +")));
        assert_eq!(out, ["AUTHENTICATE AGFsaWNlAHMzY3JldA=="]);
        assert!(n
            .on_message(&msg(":srv 900 * * alice :You are now logged in"))
            .is_empty());
        assert_eq!(lines(n.on_message(&msg(":srv 903 * :ok"))), ["CAP END"]);
        assert_eq!(n.stage, Stage::Done);
        assert_eq!(n.logged_in.as_deref(), Some("alice"));
        assert!(n.has("server-time") && n.has("echo-message") && !n.has("foo"));
    }

    #[test]
    fn a_refused_login_fails() {
        let mut n = Negotiation::new(&[], Some(("alice".into(), "wrong".into())));
        n.on_message(&msg(":srv CAP * LS :sasl"));
        n.on_message(&msg(":srv CAP * ACK :sasl"));
        n.on_message(&msg("AUTHENTICATE +"));
        let out = lines(n.on_message(&msg(":srv 904 * :SASL authentication failed")));
        assert_eq!(out[0], "AUTHENTICATE *");
        assert_eq!(
            n.stage,
            Stage::Failed("SASL authentication failed (904)".into())
        );
        assert!(n.finished());
    }

    #[test]
    fn servers_without_cap_or_sasl_still_register() {
        let mut n = Negotiation::new(&[], None);
        assert!(n
            .on_message(&msg(":srv 421 * CAP :Unknown command"))
            .is_empty());
        assert_eq!(n.stage, Stage::Done);
        let mut n = Negotiation::new(&[], None);
        n.on_message(&msg(":srv 001 me :Welcome"));
        assert!(n.finished() && n.enabled.is_empty());
        // Nothing wanted on offer: CAP END at once.
        let mut n = Negotiation::new(&[], None);
        assert_eq!(
            lines(n.on_message(&msg(":srv CAP * LS :foo bar"))),
            ["CAP END"]
        );
        // NAK: no capabilities.
        let mut n = Negotiation::new(&[], None);
        n.on_message(&msg(":srv CAP * LS :batch"));
        assert_eq!(
            lines(n.on_message(&msg(":srv CAP * NAK :batch"))),
            ["CAP END"]
        );
        assert!(n.enabled.is_empty());
        // An account but no SASL: PASS account:password before CAP END.
        let mut n = Negotiation::new(&[], Some(("bob".into(), "pw".into())));
        assert_eq!(
            lines(n.on_message(&msg(":srv CAP * LS :batch"))),
            ["CAP REQ batch"]
        );
        assert_eq!(
            lines(n.on_message(&msg(":srv CAP * ACK batch"))),
            ["PASS bob:pw", "CAP END"]
        );
    }

    #[test]
    fn long_payloads_are_chunked() {
        let pw = "p".repeat(400);
        let chunks = plain_payload("a", &pw);
        assert!(chunks.len() >= 2 && chunks.iter().all(|c| c.len() <= 400));
        assert!(chunks[..chunks.len() - 1].iter().all(|c| c.len() == 400));
        // 300 raw bytes are exactly 400 base64 bytes: a `+` follows.
        let exact = plain_payload("a", &"x".repeat(297));
        assert_eq!(exact.len(), 2);
        assert_eq!(exact[1], "+");
    }
}
