//! The chat services' flags of `sockit serve` (IRC server, UDP chat room, discovery).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use sockit_chat::irc::flood::FloodConfig;
use sockit_chat::irc::ServerConfig;
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
    /// UDP chat room: a participant silent this long stops receiving the room.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub udp_chat_idle: Duration,
}

/// What the chat services run with.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// The IRC server (its name is also the discovery name).
    pub irc: ServerConfig,
    /// The UDP chat room.
    pub room: RoomConfig,
}

impl ChatArgs {
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
        Ok(ChatSettings {
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
                ..defaults
            },
            room: RoomConfig {
                idle: self.udp_chat_idle,
                ..RoomConfig::default()
            },
        })
    }
}
