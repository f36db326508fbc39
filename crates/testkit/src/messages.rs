//! Checks of the framed protocol's typed messages: a message survives being sent as a
//! request and as a reply, and headers read from and written as the JSON on the wire.

use std::fmt::Debug;

use sockit_wire::header::Message;
use sockit_wire::Header;

/// A header parsed from its JSON text (as it stands in docs/protocol.md).
///
/// # Panics
/// When `json` is not a header.
pub fn header(json: &str) -> Header {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("not a header: {e}: {json}"))
}

/// A header's JSON text, as it goes on the wire.
///
/// # Panics
/// Never for a header built by the protocol's own types.
pub fn text(h: &Header) -> String {
    serde_json::to_string(h).unwrap_or_else(|e| panic!("cannot write a header: {e}"))
}

/// Asserts that `msg` comes back equal from a request header and from a reply header.
///
/// # Panics
/// When encoding or decoding fails or changes the message.
pub fn roundtrip<T: Message + PartialEq + Debug>(msg: T) {
    let request = Header::encode(&msg).unwrap_or_else(|e| panic!("encode {msg:?}: {e}"));
    assert_eq!(request.decode::<T>().expect("decode the request"), msg);
    let reply = Header::reply(&msg).unwrap_or_else(|e| panic!("reply {msg:?}: {e}"));
    assert_eq!(reply.decode::<T>().expect("decode the reply"), msg);
}
