//! The frame decoder on arbitrary input, fed in arbitrary chunks.
//!
//! Run from net/fuzz: `cargo +nightly fuzz run frame_decoder corpus/frame_decoder -- -max_total_time=60`
//!
//! Byte 0 picks the body maximum, byte 1 the chunk size; the rest is the stream. Every frame
//! handed out must respect the maximum and its checksum, and re-encoding the frames that
//! decoded must give back the prefix of the stream they came from.

#![no_main]

use bytes::BytesMut;
use ccbft_net::frame::{encode_into, FRAME_HEADER_BYTES};
use ccbft_net::FrameDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let max = u32::from(data[0]) * 64;
    let chunk = usize::from(data[1]).max(1);
    let stream = &data[2..];
    let mut dec = FrameDecoder::new(max);
    let mut reencoded = BytesMut::new();
    let mut failed = false;
    'feed: for piece in stream.chunks(chunk) {
        dec.extend(piece);
        loop {
            match dec.decode() {
                Ok(Some(f)) => {
                    assert!(f.body.len() <= max as usize);
                    encode_into(&f, &mut reencoded);
                }
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break 'feed;
                }
            }
        }
    }
    assert!(reencoded.len() <= stream.len());
    assert_eq!(&reencoded[..], &stream[..reencoded.len()]);
    if !failed {
        assert_eq!(dec.buffered(), stream.len() - reencoded.len());
        assert!(dec.buffered() > 0 || dec.finish().is_ok());
        let _ = FRAME_HEADER_BYTES;
    }
});
