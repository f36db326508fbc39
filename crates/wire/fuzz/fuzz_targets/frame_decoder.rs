//! Fuzzes the frame decoder: any bytes, split at a fuzzer-chosen point, must decode to
//! frames or a clean error (never a panic), and a decoded header must re-encode to bytes
//! that decode to the same header.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sockit_wire::codec::{encode_header, Frame, FrameCodec};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = (split as usize).min(rest.len());
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    for piece in [&rest[..cut], &rest[cut..]] {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(Frame::Header(h))) => {
                    // Re-encoding may lengthen numbers (1e2 → 100.0) past the cap; that
                    // is a refusal to send, not a decoder bug.
                    if let Ok(mut again) = encode_header(&h) {
                        let decoded = FrameCodec::new()
                            .decode(&mut again)
                            .expect("re-encoded header decodes");
                        assert_eq!(decoded, Some(Frame::Header(h)));
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    let _ = codec.decode_eof(&mut buf);
});
