//! Every layout fact, named once and derived (docs/spec.md §2).
//!
//! ```text
//!  element  = 32 bytes, big-endian, byte 0 = 0x00, bytes 1..32 = 31 payload bytes
//!  blob     = 4096 elements           = 128 KiB encoded = 126,976 payload bytes
//!  MDU      = 64 blobs                = 8 MiB encoded   = 8,126,464 payload bytes
//!  deal     ≤ 4096 MDUs (the manifest is one blob: element j = root of MDU j)
//! ```

/// Bytes in one encoded BLS12-381 scalar field element.
pub const BYTES_PER_FIELD_ELEMENT: usize = 32;
/// Payload bytes per field element: byte 0 stays zero so every element is < r (SPEC §2).
pub const PAYLOAD_BYTES_PER_ELEMENT: usize = BYTES_PER_FIELD_ELEMENT - 1;
/// log2 of [`FIELD_ELEMENTS_PER_BLOB`].
pub const LOG2_FIELD_ELEMENTS_PER_BLOB: usize = 12;
/// Field elements in one blob (EIP-4844).
pub const FIELD_ELEMENTS_PER_BLOB: usize = 1 << LOG2_FIELD_ELEMENTS_PER_BLOB;
/// Encoded bytes in one blob.
pub const BYTES_PER_BLOB: usize = FIELD_ELEMENTS_PER_BLOB * BYTES_PER_FIELD_ELEMENT;
/// Payload bytes carried by one blob.
pub const PAYLOAD_BYTES_PER_BLOB: usize = FIELD_ELEMENTS_PER_BLOB * PAYLOAD_BYTES_PER_ELEMENT;
/// Bytes of a compressed G1 point (commitments and proofs).
pub const BYTES_PER_G1: usize = 48;
/// Bytes of a compressed G2 point.
pub const BYTES_PER_G2: usize = 96;
/// Bytes of a commitment.
pub const BYTES_PER_COMMITMENT: usize = BYTES_PER_G1;
/// Bytes of a KZG proof.
pub const BYTES_PER_PROOF: usize = BYTES_PER_G1;
/// G2 points in the Ethereum setup (monomial `[τ^i]₂`, i < 65).
pub const NUM_G2_POINTS: usize = 65;
/// Blobs in one MDU.
pub const BLOBS_PER_MDU: usize = 64;
/// Encoded bytes in one MDU.
pub const BYTES_PER_MDU: usize = BLOBS_PER_MDU * BYTES_PER_BLOB;
/// Payload bytes in one MDU.
pub const PAYLOAD_BYTES_PER_MDU: usize = BLOBS_PER_MDU * PAYLOAD_BYTES_PER_BLOB;
/// Maximum MDUs in a v1 deal: one manifest blob has one element per MDU.
pub const MAX_MDUS_PER_DEAL: usize = FIELD_ELEMENTS_PER_BLOB;
/// Most slots a profile may have (K + M).
pub const MAX_SLOTS: usize = 32;
/// Bytes of a BLAKE3 hash.
pub const BYTES_PER_BLAKE3: usize = 32;
/// Bytes of a SHA-256 hash.
pub const BYTES_PER_HASH: usize = 32;
/// One witness entry per leaf: commitment then BLAKE3 of the blob (SPEC §4).
pub const BYTES_PER_WITNESS_ENTRY: usize = BYTES_PER_COMMITMENT + BYTES_PER_BLAKE3;

const _: () = assert!(BYTES_PER_BLOB == 128 * 1024);
const _: () = assert!(PAYLOAD_BYTES_PER_BLOB == 126_976);
const _: () = assert!(BYTES_PER_MDU == 8 * 1024 * 1024);
const _: () = assert!(PAYLOAD_BYTES_PER_MDU == 8_126_464);
const _: () = assert!(MAX_MDUS_PER_DEAL == 4096);
