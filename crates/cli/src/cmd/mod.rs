//! One module per client subcommand.

pub mod daytime;
pub mod echo;
pub mod greet;
pub mod keygen;
pub mod ping;
pub mod time;
pub mod udp;
