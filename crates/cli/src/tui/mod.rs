//! Full-screen terminal front ends (ratatui). The protocol work they drive lives in the
//! service crates (`sockit_chat::client`); these modules only draw and map keys.

pub mod chat;
pub mod chat_log;
pub mod chat_view;
