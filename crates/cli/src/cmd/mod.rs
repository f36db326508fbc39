//! One module per client subcommand.

pub mod account;
pub mod bench_services;
pub mod chat;
pub mod daytime;
pub mod discover;
pub mod echo;
pub mod exec;
pub mod framed_conn;
pub mod get;
pub mod greet;
pub mod keygen;
pub mod lab;
pub mod ls;
pub mod mkdir;
pub mod ntp;
pub mod ping;
pub mod progress;
pub mod put;
pub mod read;
pub mod rm;
pub mod stat;
pub mod sync;
pub mod tftp;
pub mod time;
pub mod udp;
