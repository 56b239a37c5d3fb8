//! Writes the seed corpus of the `frame_decoder` fuzz target (net/fuzz/corpus/frame_decoder):
//! `cargo run -p ccbft-net --example fuzz_corpus -- net/fuzz/corpus/frame_decoder`.
//! Each file is: body-maximum byte (x64), chunk-size byte, then a frame stream.

use bytes::{Bytes, BytesMut};
use ccbft_net::frame::encode_into;
use ccbft_net::{Frame, FrameKind};

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "net/fuzz/corpus/frame_decoder".into());
    std::fs::create_dir_all(&dir)?;
    let frame = |k, b: &[u8]| Frame::new(k, Bytes::copy_from_slice(b));
    let stream = |frames: &[Frame]| {
        let mut w = BytesMut::new();
        for f in frames {
            encode_into(f, &mut w);
        }
        w.to_vec()
    };
    let valid = stream(&[
        frame(FrameKind::Consensus, b"vote"),
        frame(FrameKind::Bulk, &[7u8; 300]),
        frame(FrameKind::Ping, &1u64.to_le_bytes()),
        frame(FrameKind::Pong, &1u64.to_le_bytes()),
        frame(FrameKind::ClientRequest, b"tx"),
        frame(FrameKind::ClientResponse, b""),
    ]);
    let mut bad_sum = valid.clone();
    bad_sum[24] ^= 1;
    let seeds: Vec<(&str, u8, u8, Vec<u8>)> = vec![
        ("valid-whole", 255, 255, valid.clone()),
        ("valid-bytewise", 255, 1, valid.clone()),
        ("valid-small-max", 1, 7, valid.clone()),
        ("truncated", 255, 13, valid[..valid.len() - 5].to_vec()),
        ("bad-checksum", 255, 64, bad_sum),
        ("garbage", 255, 3, b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        ("empty-body", 0, 1, stream(&[frame(FrameKind::Ping, b"")])),
    ];
    for (name, max, chunk, bytes) in seeds {
        let mut data = vec![max, chunk];
        data.extend_from_slice(&bytes);
        std::fs::write(format!("{dir}/{name}"), data)?;
    }
    Ok(())
}
