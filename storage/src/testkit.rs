//! Helpers shared by the crash-test child binary, the tests and the benchmark. Not part of
//! the replica's API.

/// splitmix64: a small deterministic generator for test payloads.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The payload the crash child appends for `id`: the id, then bytes derived from it, of a
/// length derived from it (16..2064 bytes).
pub fn crash_payload(id: u64) -> Vec<u8> {
    let mut state = id;
    let len = 16 + (splitmix64(&mut state) % 2048) as usize;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&id.to_le_bytes());
    while out.len() < len {
        out.extend_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The id a crash payload carries, if it is one.
pub fn crash_payload_id(payload: &[u8]) -> Option<u64> {
    let id = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    (crash_payload(id) == payload).then_some(id)
}
