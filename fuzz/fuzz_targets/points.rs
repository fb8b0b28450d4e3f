//! Point and scalar decoders (wasm_core::curve): compressed G1 (48 bytes), compressed G2
//! (96 bytes) and canonical Fr (32 bytes), each on a prefix of the input.
//!
//! Properties: never panic; an accepted G1 point or scalar re-encodes to exactly the input
//! bytes (one encoding per value). `G2Affine` has no encoder, so for G2 we check what the
//! encoding rules imply instead: the identity has exactly one encoding, and flipping the
//! sign bit of an accepted non-identity point gives its negation, which is accepted and
//! differs (the subgroup has odd order, so no point other than the identity has y = 0).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasm_core::constants::{BYTES_PER_FIELD_ELEMENT, BYTES_PER_G1, BYTES_PER_G2};
use wasm_core::curve::{Fr, G1Affine, G2Affine};

/// Flag bits of the first byte of a compressed point (ZCash serialisation, as in blst).
const FLAG_COMPRESSED: u8 = 0x80;
const FLAG_INFINITY: u8 = 0x40;
const FLAG_SIGN: u8 = 0x20;

fn prefix<const N: usize>(data: &[u8]) -> Option<[u8; N]> {
    data.get(..N)?.try_into().ok()
}

fn canonical_infinity<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    b[0] = FLAG_COMPRESSED | FLAG_INFINITY;
    b
}

fuzz_target!(|data: &[u8]| {
    if let Some(b) = prefix::<BYTES_PER_G1>(data) {
        if let Ok(p) = G1Affine::from_compressed(&b) {
            assert_eq!(p.to_compressed(), b, "G1 re-compression differs");
            assert_eq!(
                p.is_identity(),
                b == canonical_infinity(),
                "G1 identity encoding"
            );
        }
    }
    if let Some(b) = prefix::<BYTES_PER_G2>(data) {
        if let Ok(p) = G2Affine::from_compressed(&b) {
            assert_ne!(
                b[0] & FLAG_COMPRESSED,
                0,
                "G2 accepted without compression flag"
            );
            let identity = p == G2Affine::default();
            assert_eq!(identity, b == canonical_infinity(), "G2 identity encoding");
            if !identity {
                let mut flipped = b;
                flipped[0] ^= FLAG_SIGN;
                let q = G2Affine::from_compressed(&flipped).expect("the negation is in G2");
                assert_ne!(p, q, "G2 sign bit ignored");
            }
            assert_eq!(
                G2Affine::from_compressed(&b),
                Ok(p),
                "G2 decoding not deterministic"
            );
        }
    }
    if let Some(b) = prefix::<BYTES_PER_FIELD_ELEMENT>(data) {
        if let Ok(x) = Fr::from_bytes_be(&b) {
            assert_eq!(x.to_bytes_be(), b, "Fr re-encoding differs");
        }
    }
});
