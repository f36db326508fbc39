//! One module per client subcommand.

pub mod bench_services;
pub mod chat;
pub mod daytime;
pub mod discover;
pub mod echo;
pub mod greet;
pub mod keygen;
pub mod lab;
pub mod ping;
pub mod read;
pub mod tftp;
pub mod time;
pub mod udp;
