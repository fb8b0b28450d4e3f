//! The canonical binary encoding (postcard) of chain objects, with bounded, strict decoding.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Decoding errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Input longer than allowed.
    #[error("encoding too large: {got} bytes > {limit}")]
    TooLarge {
        /// Size.
        got: usize,
        /// Limit.
        limit: usize,
    },
    /// Not a valid encoding.
    #[error("malformed encoding: {0}")]
    Malformed(String),
    /// Bytes left after the value.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// Valid but not the canonical encoding of its value (e.g. overlong varints).
    #[error("non-canonical encoding")]
    NonCanonical,
}

/// Encodes a chain object canonically.
pub fn encode<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    // postcard fails only on serde features it does not support (maps of unknown length,
    // `deserialize_any`); chain objects use none, which the round-trip tests cover.
    postcard::to_allocvec(v).expect("chain objects always encode")
}

/// Decodes exactly one value from `bytes` (at most `limit` bytes), rejecting trailing bytes
/// and non-canonical encodings, so every value has exactly one encoding (and one hash).
pub fn decode<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
) -> Result<T, CodecError> {
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            got: bytes.len(),
            limit,
        });
    }
    let (v, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing(rest.len()));
    }
    if encode(&v) != bytes {
        return Err(CodecError::NonCanonical);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_decoding() {
        let v: (u64, Vec<u8>) = (300, vec![1, 2]);
        let b = encode(&v);
        assert_eq!(decode::<(u64, Vec<u8>)>(&b, 64).unwrap(), v);
        assert!(matches!(
            decode::<(u64, Vec<u8>)>(&b, 2),
            Err(CodecError::TooLarge { .. })
        ));
        let mut t = b.clone();
        t.push(0);
        assert_eq!(
            decode::<(u64, Vec<u8>)>(&t, 64),
            Err(CodecError::Trailing(1))
        );
        assert!(matches!(
            decode::<(u64, Vec<u8>)>(&b[..b.len() - 1], 64),
            Err(CodecError::Malformed(_))
        ));
        // 1 encoded as an overlong varint [0x81, 0x00].
        assert_eq!(
            decode::<u64>(&[0x81, 0x00], 64),
            Err(CodecError::NonCanonical)
        );
    }
}
