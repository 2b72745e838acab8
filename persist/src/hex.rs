//! Lower-case hex, the one spelling of digests, key ids and signatures in messages, `node.pub`
//! and `committed.log`.

use crate::Hash;

/// `bytes` as lower-case hex, two digits per byte.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Text that is not a 32-byte digest in hex: the message says what is wrong (the length, or
/// the first character that is not a hex digit).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HexError(String);

/// A 32-byte digest or key from exactly 64 hex digits (either case); the error says what is
/// wrong (length or the first bad character).
pub fn hash_from_hex(text: &str) -> Result<Hash, HexError> {
    blake3::Hash::from_hex(text)
        .map(|h| *h.as_bytes())
        .map_err(|e| HexError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::{hash_from_hex, to_hex};

    #[test]
    fn hex_is_lower_case_and_two_digits_per_byte() {
        assert_eq!(to_hex(&[0x00, 0xab, 0x0f]), "00ab0f");
    }

    #[test]
    fn a_digest_round_trips_and_bad_text_is_refused() {
        let h = [0x5au8; 32];
        assert_eq!(hash_from_hex(&to_hex(&h)).unwrap(), h);
        assert_eq!(hash_from_hex(&to_hex(&h).to_uppercase()).unwrap(), h);
        assert!(hash_from_hex("ab").is_err());
        assert!(hash_from_hex(&format!("{}g", &to_hex(&h)[1..])).is_err());
        assert!(hash_from_hex(&format!("+{}", &to_hex(&h)[1..])).is_err());
    }
}
