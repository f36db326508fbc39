//! Full-screen terminal front ends (ratatui). The protocol work they drive lives in the
//! service crates (`sockit_chat::client`, `sockit_reader::client`); these modules only
//! draw and map keys.

pub mod chat;
pub mod chat_log;
pub mod chat_view;
pub mod keys;
pub mod read;
pub mod read_html;
pub mod read_list;
pub mod read_load;
pub mod read_marks;
pub mod read_pages;
pub mod read_text;
pub mod read_view;
