//! Fuzzes the NTP packet parsers and the server: any bytes must parse or fail cleanly,
//! a parsed header must re-encode to the same bytes, and whatever the server answers
//! must be a mode-4 reply no larger than the request, echoing its transmit timestamp.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use sockit_ntp::ClockState;
use sockit_ntp::packet::{parse_extension_fields, Header, HEADER_LEN, MODE_SERVER};
use sockit_ntp::server::{NtpServer, ServerConfig};
use sockit_runtime::udp::{Arrival, UdpService};

fn server() -> &'static NtpServer {
    static SERVER: OnceLock<NtpServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        NtpServer::new(ServerConfig::default()).with_clock_state(ClockState::UNSYNCHRONIZED)
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = Header::parse(data) {
        assert_eq!(header.to_bytes(), data[..HEADER_LEN]);
    }
    if let Ok(fields) = parse_extension_fields(data) {
        for f in &fields {
            assert!(f.offset >= HEADER_LEN && f.offset + 4 + f.value.len() <= data.len());
        }
    }
    let peer: SocketAddr = ([192, 0, 2, 1], 123).into();
    let arrival = Arrival {
        at: SystemTime::now(),
        from_kernel: true,
    };
    let limit = 3 * data.len();
    for reply in [
        server().respond_at(data, peer, limit, arrival),
        server().over_rate(data, peer, limit),
    ]
    .into_iter()
    .flatten()
    {
        assert!(reply.len() <= data.len(), "reply larger than the request");
        let request = Header::parse(data).expect("only requests with a header are answered");
        let h = Header::parse(&reply).expect("replies parse");
        assert_eq!(h.mode, MODE_SERVER);
        assert_eq!(h.version, request.version);
        assert_eq!(h.origin_ts, request.transmit_ts);
    }
});
