//! The chat services' flags of `sockit serve` (IRC server, UDP chat room, discovery).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use sockit_chat::irc::FloodConfig;
use sockit_chat::irc::{OperBlock, ServerConfig};
use sockit_chat::udp_room::RoomConfig;

/// Flags of the chat services.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// IRC server name (message prefix, PONG, discovery answers). Default: the host name.
    #[arg(long, value_name = "NAME")]
    pub chat_name: Option<String>,
    /// IRC connection password clients must send with PASS.
    #[arg(long, env = "SOCKIT_CHAT_PASSWORD", value_name = "PASS")]
    pub chat_password: Option<String>,
    /// IRC message of the day from FILE (default: a short built-in one).
    #[arg(long, value_name = "FILE")]
    pub chat_motd: Option<PathBuf>,
    /// IRC: ping a client silent this long.
    #[arg(long, default_value = "90s", value_parser = humantime::parse_duration)]
    pub chat_ping_interval: Duration,
    /// IRC: disconnect a pinged client that has not answered after this long.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub chat_ping_timeout: Duration,
    /// IRC: most lines queued for one client before it is dropped ("SendQ exceeded").
    #[arg(long, default_value_t = ServerConfig::default().sendq)]
    pub chat_sendq: usize,
    /// IRC: most received lines waiting for processing before "Excess Flood".
    #[arg(long, default_value_t = ServerConfig::default().recvq)]
    pub chat_recvq: usize,
    /// IRC flood control: what one command costs (0 turns flood control off).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub chat_flood_penalty: Duration,
    /// IRC flood control: how far ahead the penalty timer may run before commands wait.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub chat_flood_burst: Duration,
    /// IRC: most channels one client may join.
    #[arg(long, default_value_t = ServerConfig::default().max_channels)]
    pub chat_max_channels: usize,
    /// IRC: failed logins (SASL or PASS) one connection may make before it is closed.
    #[arg(long, default_value_t = ServerConfig::default().max_auth_failures)]
    pub chat_max_auth_failures: u32,
    /// IRC operator: `OPER NAME PASSWORD` makes a client an operator when PASSWORD is the
    /// password of ACCOUNT (default NAME) in the accounts store (`sockit account add`) and
    /// the client's user@host matches MASK (default `*`). Repeatable.
    #[arg(long, value_name = "NAME[=ACCOUNT][@USER@HOST]", value_parser = parse_oper)]
    pub chat_oper: Vec<OperBlock>,
    /// IRC history (draft/chathistory): messages older than this many days are deleted
    /// (0: no age limit). Kept in ROOT/state/chat-history.sqlite.
    #[arg(long, default_value_t = sockit_chat::irc::HISTORY_MAX_DAYS, value_name = "DAYS")]
    pub chat_history_days: u32,
    /// IRC history: most messages kept in all, the oldest deleted first (0: store none).
    #[arg(long, default_value_t = sockit_chat::irc::HISTORY_MAX_MESSAGES, value_name = "N")]
    pub chat_history_max: usize,
    /// IRC: let clients create accounts with `REGISTER` (draft/account-registration).
    /// Off by default: the accounts are the server's, shared with the reader.
    #[arg(long)]
    pub chat_registration: bool,
    /// IRC channel registration (ChanServ, as in Ergo): a logged-in channel operator may
    /// `/CS REGISTER #chan`; its topic, modes and lists then survive restarts (kept in
    /// ROOT/state/chat-channels.sqlite). `off` also frees the nick ChanServ.
    #[arg(
        long,
        default_value = "on",
        value_name = "on|off",
        value_parser = parse_on_off,
        action = clap::ArgAction::Set
    )]
    pub chat_channel_registration: bool,
    /// IRC channel registration: most channels one account may register.
    #[arg(long, default_value_t = ServerConfig::default().max_registered_channels, value_name = "N")]
    pub chat_max_registered_channels: usize,
    /// IRC over WebSocket: a browser page from ORIGIN (`https://host[:port]`) may connect.
    /// Repeatable; without it every origin may (logins are per connection, never by
    /// cookie, so a foreign page gains nothing a direct client would not have).
    #[arg(long, value_name = "ORIGIN")]
    pub chat_ws_origin: Vec<String>,
    /// IRC cluster: make this server one node of a network over NATS (JetStream on, for
    /// network-wide nicks): `nats://HOST:PORT[,nats://HOST:PORT...]`. The node's name is
    /// `--chat-name`, which must differ on every node. See docs/chat-cluster.md.
    #[arg(long, value_name = "nats://HOST:PORT[,...]", value_delimiter = ',')]
    pub chat_cluster: Vec<String>,
    /// IRC cluster: a node silent this long is gone, and its users quit (netsplit).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub chat_node_timeout: Duration,
    /// UDP chat room: a participant silent this long stops receiving the room.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub udp_chat_idle: Duration,
}

/// What the chat services run with.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// Clients may create accounts with `REGISTER`.
    pub registration: bool,
    /// The IRC server (its name is also the discovery name).
    pub irc: ServerConfig,
    /// Which browser origins the WebSocket ports accept.
    pub ws_origins: sockit_chat::irc::OriginPolicy,
    /// The UDP chat room.
    pub room: RoomConfig,
    /// The IRC cluster this server is a node of, if any (`--chat-cluster`).
    pub cluster: Option<sockit_chat::irc::ClusterConfig>,
}

impl ChatSettings {
    /// The IRC server's configuration, its registered channels kept under the data
    /// root's state directory `state` (`None`: in memory, e.g. when chat is not served).
    pub fn irc_config(&self, state: Option<&std::path::Path>) -> ServerConfig {
        let mut cfg = self.irc.clone();
        if cfg.channel_registration {
            cfg.channels = state.map(channel_store);
        }
        cfg
    }
}

/// Where the registered channels are kept under the state directory `state`.
pub fn channel_store(state: &std::path::Path) -> sockit_chat::irc::ChannelStoreConfig {
    sockit_chat::irc::ChannelStoreConfig {
        path: state.join("chat-channels.sqlite"),
    }
}

impl ChatArgs {
    /// The history store under the data root's state directory `state`.
    pub fn history(&self, state: &std::path::Path) -> sockit_chat::irc::HistoryConfig {
        sockit_chat::irc::HistoryConfig {
            path: state.join("chat-history.sqlite"),
            max_days: self.chat_history_days,
            max_messages: self.chat_history_max,
        }
    }

    /// Resolves the flags (reads the MOTD file).
    pub fn settings(&self) -> anyhow::Result<ChatSettings> {
        let defaults = ServerConfig::default();
        let motd = match &self.chat_motd {
            None => defaults.motd.clone(),
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read --chat-motd {}", p.display()))?
                    .lines()
                    .map(str::to_owned)
                    .collect(),
            ),
        };
        let name = self
            .chat_name
            .clone()
            .unwrap_or_else(sockit_chat::default_server_name);
        if name.is_empty() || name.contains([' ', ':', '!', '@']) {
            return Err(crate::exit::UsageError(format!(
                "--chat-name `{name}` is not a valid server name (no spaces, ':', '!' or '@')"
            ))
            .into());
        }
        let cluster = (!self.chat_cluster.is_empty()).then(|| sockit_chat::irc::ClusterConfig {
            servers: self.chat_cluster.clone(),
            node_timeout: self.chat_node_timeout.max(Duration::from_millis(100)),
        });
        Ok(ChatSettings {
            cluster,
            registration: self.chat_registration,
            ws_origins: sockit_chat::irc::OriginPolicy {
                allowed: self.chat_ws_origin.clone(),
            },
            irc: ServerConfig {
                name,
                password: self.chat_password.clone(),
                motd,
                ping_interval: self.chat_ping_interval,
                ping_timeout: self.chat_ping_timeout,
                sendq: self.chat_sendq.max(1),
                recvq: self.chat_recvq.max(1),
                flood: FloodConfig {
                    penalty: self.chat_flood_penalty,
                    burst: self.chat_flood_burst,
                },
                max_channels: self.chat_max_channels.max(1),
                max_auth_failures: self.chat_max_auth_failures.max(1),
                opers: self.chat_oper.clone(),
                channel_registration: self.chat_channel_registration,
                max_registered_channels: self.chat_max_registered_channels.max(1),
                ..defaults
            },
            room: RoomConfig {
                idle: self.udp_chat_idle,
                ..RoomConfig::default()
            },
        })
    }
}

/// Parses `on` / `off`.
fn parse_on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("`{text}`: want on or off")),
    }
}

/// Parses `--chat-oper NAME[=ACCOUNT][@USER@HOST]`.
fn parse_oper(text: &str) -> Result<OperBlock, String> {
    let (who, mask) = match text.split_once('@') {
        Some((who, mask)) if !mask.is_empty() => (who, mask),
        Some(_) => return Err("the mask after `@` is empty (use `*` for anyone)".into()),
        None => (text, "*"),
    };
    let (name, account) = who.split_once('=').unwrap_or((who, who));
    let valid = |s: &str| !s.is_empty() && !s.contains([' ', ',', '*', '?', '!']);
    if !valid(name) || !valid(account) {
        return Err(format!("`{text}`: want NAME[=ACCOUNT][@USER@HOST]"));
    }
    Ok(OperBlock {
        name: name.to_owned(),
        account: account.to_owned(),
        mask: mask.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_on_off, parse_oper};

    #[test]
    fn on_off() {
        assert_eq!(parse_on_off("on"), Ok(true));
        assert_eq!(parse_on_off("off"), Ok(false));
        assert!(parse_on_off("yes").is_err());
    }

    #[test]
    fn oper_blocks() {
        let o = parse_oper("root").unwrap();
        assert_eq!(
            (o.name.as_str(), o.account.as_str(), o.mask.as_str()),
            ("root", "root", "*")
        );
        let o = parse_oper("root=alice@~alice@127.0.0.1").unwrap();
        assert_eq!(
            (o.name.as_str(), o.account.as_str(), o.mask.as_str()),
            ("root", "alice", "~alice@127.0.0.1")
        );
        assert!(parse_oper("root@").is_err());
        assert!(parse_oper("=x").is_err());
        assert!(parse_oper("a b").is_err());
    }
}
