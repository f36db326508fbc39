//! The retry flags of the UDP clients (the exchange itself is
//! [`sockit_basic::client::udp_exchange`]).

use std::time::Duration;

use sockit_basic::client::Retry;

/// Flags of a UDP exchange.
#[derive(Debug, Clone, clap::Args)]
pub struct UdpArgs {
    /// How long to wait for each UDP reply.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// How many times to resend a UDP request that got no reply.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
}

impl UdpArgs {
    /// The retry policy these flags ask for.
    pub fn retry(&self) -> Retry {
        Retry {
            timeout: self.timeout,
            retries: self.retries,
        }
    }
}
