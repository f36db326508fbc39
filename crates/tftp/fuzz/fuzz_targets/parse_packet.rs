//! Fuzzes the TFTP packet parser: any bytes must parse or fail cleanly, and whatever
//! parses must re-encode to bytes that parse to the same packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockit_tftp::options::RequestedOptions;
use sockit_tftp::packets::{Packet, Request};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::parse(data) else {
        return;
    };
    if let Packet::Rrq(Request { options, .. }) | Packet::Wrq(Request { options, .. }) = &packet {
        let _ = RequestedOptions::from_raw(options);
    }
    let encoded = packet.to_bytes();
    let again = Packet::parse(&encoded).expect("re-encoded packet parses");
    assert_eq!(again, packet);
});
