//! Lower-case hexadecimal, for key files and logs.

use crate::error::CryptoError;

/// Longest hex input accepted by [`decode`], in characters (covers an ML-DSA-65 signature).
pub const HEX_CHARS_MAX: usize = 16 * 1024;

/// Encodes bytes as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Decodes lower- or upper-case hex (no prefix, no whitespace).
pub fn decode(text: &str) -> Result<Vec<u8>, CryptoError> {
    let mut out = Vec::new();
    decode_into(text, &mut out)?;
    Ok(out)
}

/// Decodes into `out`, reserved once to the exact size before any byte is written (so a
/// secret is never reallocated and copied).
pub(crate) fn decode_into(text: &str, out: &mut Vec<u8>) -> Result<(), CryptoError> {
    const KIND: &str = "hex";
    if text.len() > HEX_CHARS_MAX {
        return Err(CryptoError::TooMany {
            kind: "hex characters",
            got: text.len(),
            max: HEX_CHARS_MAX,
        });
    }
    if !text.len().is_multiple_of(2) {
        return Err(CryptoError::NonCanonical { kind: KIND });
    }
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let vec = out;
    vec.reserve_exact(text.len() / 2);
    for pair in text.as_bytes().chunks_exact(2) {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(hi), Some(lo)) => vec.push((hi << 4) | lo),
            _ => return Err(CryptoError::NonCanonical { kind: KIND }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(super::decode(&super::encode(&bytes)).unwrap(), bytes);
        assert!(super::decode("abc").is_err());
        assert!(super::decode("zz").is_err());
    }
}
