//! Payload packing: 31 payload bytes per field element (docs/spec.md §2).
//!
//! ```text
//!  payload:  p0 p1 ... p30 | p31 ... p61 | ...
//!  element:  00 p0 ... p30 | 00 p31 ... p61 | ...   (32 bytes each, big-endian, < r)
//! ```
//! Every element so produced is canonical, whatever the payload. Decoders take the byte
//! length recorded elsewhere (file table, region length) and strip the zero padding.

use crate::constants::{
    BYTES_PER_BLOB, BYTES_PER_FIELD_ELEMENT, PAYLOAD_BYTES_PER_BLOB, PAYLOAD_BYTES_PER_ELEMENT,
};

/// Why encoded bytes could not be unpacked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    /// The encoded length is not a whole number of elements.
    #[error("encoded length {got} is not a multiple of {element} bytes")]
    Ragged {
        /// Bytes given.
        got: usize,
        /// Element size.
        element: usize,
    },
    /// An element's first byte was not zero, so it is not packed payload.
    #[error("element {index} has a non-zero first byte")]
    NotPacked {
        /// Index of the element.
        index: usize,
    },
    /// The requested payload length exceeds what the encoded bytes carry.
    #[error("payload length {want} exceeds the {have} bytes carried")]
    TooShort {
        /// Bytes requested.
        want: usize,
        /// Bytes available.
        have: usize,
    },
}

/// Encoded bytes needed to carry `payload_len` payload bytes (whole elements).
pub const fn encoded_len(payload_len: usize) -> usize {
    payload_len.div_ceil(PAYLOAD_BYTES_PER_ELEMENT) * BYTES_PER_FIELD_ELEMENT
}

/// Whole blobs needed to carry `payload_len` payload bytes (at least one).
pub const fn blobs_for(payload_len: usize) -> usize {
    let n = payload_len.div_ceil(PAYLOAD_BYTES_PER_BLOB);
    if n == 0 {
        1
    } else {
        n
    }
}

/// Packs `payload` into `out`, which must hold [`encoded_len`] bytes; the rest of `out`
/// is left untouched (callers pass zeroed buffers).
pub fn pack_into(payload: &[u8], out: &mut [u8]) {
    for (chunk, element) in payload
        .chunks(PAYLOAD_BYTES_PER_ELEMENT)
        .zip(out.chunks_exact_mut(BYTES_PER_FIELD_ELEMENT))
    {
        element[0] = 0;
        element[1..1 + chunk.len()].copy_from_slice(chunk);
        element[1 + chunk.len()..].fill(0);
    }
}

/// Packs `payload` into a fresh buffer of [`encoded_len`] bytes.
pub fn pack(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; encoded_len(payload.len())];
    pack_into(payload, &mut out);
    out
}

/// Packs `payload` (at most one blob's worth) into a zero-padded blob.
pub fn pack_blob(payload: &[u8]) -> Option<Vec<u8>> {
    if payload.len() > PAYLOAD_BYTES_PER_BLOB {
        return None;
    }
    let mut out = vec![0u8; BYTES_PER_BLOB];
    pack_into(payload, &mut out);
    Some(out)
}

/// Unpacks the first `len` payload bytes of `encoded`, checking that every element used
/// is packed payload.
pub fn unpack(encoded: &[u8], len: usize) -> Result<Vec<u8>, PackError> {
    // `len` is untrusted: capacity is reserved only after it is checked (unpack_append).
    let mut out = Vec::new();
    unpack_append(encoded, len, &mut out)?;
    Ok(out)
}

/// Like [`unpack`], appending to `out`.
pub fn unpack_append(encoded: &[u8], len: usize, out: &mut Vec<u8>) -> Result<(), PackError> {
    if !encoded.len().is_multiple_of(BYTES_PER_FIELD_ELEMENT) {
        return Err(PackError::Ragged {
            got: encoded.len(),
            element: BYTES_PER_FIELD_ELEMENT,
        });
    }
    let have = encoded.len() / BYTES_PER_FIELD_ELEMENT * PAYLOAD_BYTES_PER_ELEMENT;
    if len > have {
        return Err(PackError::TooShort { want: len, have });
    }
    out.reserve(len);
    let mut left = len;
    for (index, element) in encoded.chunks_exact(BYTES_PER_FIELD_ELEMENT).enumerate() {
        if left == 0 {
            break;
        }
        if element[0] != 0 {
            return Err(PackError::NotPacked { index });
        }
        let take = left.min(PAYLOAD_BYTES_PER_ELEMENT);
        out.extend_from_slice(&element[1..1 + take]);
        left -= take;
    }
    Ok(())
}

/// Streaming packer: feed payload bytes of any length in any chunking; it emits whole
/// encoded blobs to a sink, holding at most one blob in memory.
pub struct BlobPacker {
    blob: Vec<u8>,
    /// Payload bytes already placed in the current blob.
    filled: usize,
    /// Payload bytes accepted in total.
    total: u64,
}

impl Default for BlobPacker {
    fn default() -> Self {
        Self::new()
    }
}

impl BlobPacker {
    /// An empty packer.
    pub fn new() -> Self {
        BlobPacker {
            blob: vec![0u8; BYTES_PER_BLOB],
            filled: 0,
            total: 0,
        }
    }

    /// Payload bytes accepted so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether a partly filled blob is pending.
    pub fn has_partial(&self) -> bool {
        self.filled > 0
    }

    /// Adds payload bytes; calls `sink` with each completed blob.
    pub fn push<E>(
        &mut self,
        mut data: &[u8],
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.total += data.len() as u64;
        while !data.is_empty() {
            let take = (PAYLOAD_BYTES_PER_BLOB - self.filled).min(data.len());
            self.write(&data[..take]);
            data = &data[take..];
            if self.filled == PAYLOAD_BYTES_PER_BLOB {
                sink(&self.blob)?;
                self.blob.fill(0);
                self.filled = 0;
            }
        }
        Ok(())
    }

    fn write(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let element = self.filled / PAYLOAD_BYTES_PER_ELEMENT;
            let within = self.filled % PAYLOAD_BYTES_PER_ELEMENT;
            let take = (PAYLOAD_BYTES_PER_ELEMENT - within).min(data.len());
            let at = element * BYTES_PER_FIELD_ELEMENT + 1 + within;
            self.blob[at..at + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
        }
    }

    /// Emits the last, zero-padded blob if one is partly filled.
    pub fn finish<E>(mut self, sink: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if self.filled > 0 {
            sink(&self.blob)?;
            self.filled = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn roundtrip(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let enc = pack(&data);
            prop_assert_eq!(enc.len() % BYTES_PER_FIELD_ELEMENT, 0);
            prop_assert!(enc.chunks(32).all(|e| e[0] == 0));
            prop_assert_eq!(unpack(&enc, data.len()).unwrap(), data);
        }

        #[test]
        fn streaming_matches_one_shot(data in proptest::collection::vec(any::<u8>(), 0..300_000),
                                      cut in 1usize..70_000) {
            let mut blobs = Vec::new();
            let mut p = BlobPacker::new();
            let mut sink = |b: &[u8]| -> Result<(), ()> { blobs.extend_from_slice(b); Ok(()) };
            for chunk in data.chunks(cut) { p.push(chunk, &mut sink).unwrap(); }
            p.finish(&mut sink).unwrap();
            let mut expect = pack(&data);
            expect.resize(blobs_for(data.len()) * BYTES_PER_BLOB, 0);
            if data.is_empty() { expect.clear(); }
            prop_assert_eq!(blobs, expect);
        }
    }

    #[test]
    fn rejects_unpacked_and_short() {
        let mut enc = pack(b"hello world");
        assert!(matches!(unpack(&enc, 100), Err(PackError::TooShort { .. })));
        enc[0] = 1;
        assert_eq!(unpack(&enc, 5), Err(PackError::NotPacked { index: 0 }));
        assert!(matches!(
            unpack(&enc[..31], 5),
            Err(PackError::Ragged { .. })
        ));
    }
}
