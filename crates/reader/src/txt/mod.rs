//! Plain-text books: encoding detection and decoding ([`decode`]), then paging on line
//! and character boundaries ([`pages`]).

pub mod decode;
pub mod pages;
