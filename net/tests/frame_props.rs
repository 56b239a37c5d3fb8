//! Property tests of the frame decoder (the suite's counterpart of the cargo-fuzz target).

use bytes::{Bytes, BytesMut};
use ccbft_net::frame::{encode_into, FRAME_BODY_BYTES_MAX};
use ccbft_net::{Frame, FrameDecoder, FrameKind};
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = FrameKind> {
    (1u8..=6).prop_map(|k| FrameKind::from_u8(k).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes, fed in any chunks: the decoder returns frames or one error, never panics,
    /// and never hands out a frame after an error.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096),
                                   cuts in proptest::collection::vec(1usize..64, 1..64),
                                   max in 0u32..2048) {
        let mut d = FrameDecoder::new(max);
        let mut at = 0;
        let mut cut = cuts.iter().cycle();
        'outer: while at < data.len() {
            let n = (*cut.next().unwrap()).min(data.len() - at);
            d.extend(&data[at..at + n]);
            at += n;
            loop {
                match d.decode() {
                    Ok(Some(f)) => prop_assert!(f.body.len() <= max as usize),
                    Ok(None) => break,
                    Err(_) => break 'outer,
                }
            }
        }
    }

    /// Valid frames split at arbitrary points decode to themselves, in order; flipping any
    /// one byte of the stream is either detected or (in a length field) changes framing,
    /// never panics.
    #[test]
    fn valid_frames_round_trip(frames in proptest::collection::vec(
                                   (kind(), proptest::collection::vec(any::<u8>(), 0..3000)), 1..12),
                               cuts in proptest::collection::vec(1usize..5000, 1..16),
                               flip in any::<prop::sample::Index>()) {
        let frames: Vec<Frame> = frames.into_iter()
            .map(|(k, b)| Frame::new(k, Bytes::from(b))).collect();
        let mut wire = BytesMut::new();
        for f in &frames { encode_into(f, &mut wire); }
        let mut d = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
        let mut out = Vec::new();
        let mut at = 0;
        let mut cut = cuts.iter().cycle();
        while at < wire.len() {
            let n = (*cut.next().unwrap()).min(wire.len() - at);
            d.extend(&wire[at..at + n]);
            at += n;
            while let Some(f) = d.decode().unwrap() { out.push(f); }
        }
        prop_assert_eq!(&out, &frames);
        prop_assert!(d.finish().is_ok());

        let mut bad = wire.to_vec();
        let i = flip.index(bad.len());
        bad[i] ^= 0x5a;
        let mut d = FrameDecoder::new(FRAME_BODY_BYTES_MAX);
        d.extend(&bad);
        let mut n = 0;
        let mut failed = false;
        loop {
            match d.decode() {
                Ok(Some(_)) => n += 1,
                Ok(None) => break,
                Err(_) => { failed = true; break }
            }
        }
        // A flipped byte is caught (checksum, header check) or leaves a frame unfinished.
        prop_assert!(failed || d.finish().is_err() || n < frames.len(),
                     "corruption at byte {} went unnoticed", i);
    }
}
