//! Payload unpacking (wasm_core::packing) and the precomputed MSM table cache
//! (wasm_core::msm), both read back from storage the browser or disk may have mangled.
//!
//! ```text
//!   unpack:     | m: 0..=3 | len u64 | encoded bytes ...                            |
//!   cache:      | m: 4..=6 | cache bytes ... (checked against fingerprint [0; 32])   |
//!   round trip: | m: 7     | bases | window | scalar | tamper | at | bits |         |
//! ```
//! (`m` is the first byte modulo [`MODES`]; the round trip builds tables, so it is slow
//! and gets the smallest share of inputs.)
//!
//! Properties: `unpack` never panics and, when it accepts, returns exactly `len` bytes,
//! byte 1..32 of each element in order; `from_cache_bytes` never panics; a real cache (a
//! few multiples of G1) decodes to the same table and MSM, and any flipped byte is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nilstore_fuzz::Input;
use wasm_core::constants::{BYTES_PER_FIELD_ELEMENT, PAYLOAD_BYTES_PER_ELEMENT};
use wasm_core::curve::{Fr, G1};
use wasm_core::msm::FixedBaseMsm;
use wasm_core::packing::unpack;

/// Input modes, picked by the first byte (see the layout above).
const MODES: u8 = 8;
/// Fingerprint the fuzzed caches are checked against (no real setup has it).
const FUZZ_FINGERPRINT: [u8; 32] = [0; 32];
/// Window widths `FixedBaseMsm::new` accepts.
const MIN_WINDOW_BITS: u32 = 2;
const MAX_WINDOW_BITS: u32 = 16;
/// Round-trip tables have 1..=MAX_BASES bases (small: `new` does n · 256 doublings).
const MAX_BASES: u8 = 4;

fn check_unpack(mut input: Input<'_>) {
    let len = input.u64() as usize;
    let encoded = input.rest();
    let Ok(out) = unpack(encoded, len) else {
        return;
    };
    assert_eq!(out.len(), len, "unpack returned the wrong length");
    for (i, &b) in out.iter().enumerate() {
        let element = i / PAYLOAD_BYTES_PER_ELEMENT;
        let at = element * BYTES_PER_FIELD_ELEMENT + 1 + i % PAYLOAD_BYTES_PER_ELEMENT;
        assert_eq!(
            encoded[element * BYTES_PER_FIELD_ELEMENT],
            0,
            "unpacked a non-payload element"
        );
        assert_eq!(b, encoded[at], "unpacked byte {i} from the wrong place");
    }
}

fn check_cache_round_trip(mut input: Input<'_>) {
    let n = 1 + u64::from(input.u8() % MAX_BASES);
    let window_bits =
        MIN_WINDOW_BITS + u32::from(input.u8()) % (MAX_WINDOW_BITS - MIN_WINDOW_BITS + 1);
    let scalar = Fr::from_bytes_be_reduced(&input.take::<BYTES_PER_FIELD_ELEMENT>());
    let (tamper, at, bits) = (input.u8() & 1 == 1, input.u32() as usize, input.u8() | 1);
    let bases: Vec<_> = (1..=n)
        .map(|k| G1::generator().mul(&Fr::from_u64(k)).to_affine())
        .collect();
    let table = FixedBaseMsm::new(&bases, window_bits);
    let cache = table.to_cache_bytes();
    let back =
        FixedBaseMsm::from_cache_bytes(&cache, table.fingerprint()).expect("a fresh cache decodes");
    assert_eq!(back.to_cache_bytes(), cache, "cache round trip differs");
    let scalars = vec![scalar; bases.len()];
    assert_eq!(
        back.msm(&scalars),
        table.msm(&scalars),
        "decoded table computes differently"
    );
    if tamper {
        let mut bad = cache.clone();
        bad[at % cache.len()] ^= bits;
        assert!(
            FixedBaseMsm::from_cache_bytes(&bad, table.fingerprint()).is_err(),
            "cache with byte {} flipped accepted",
            at % cache.len()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    match input.u8() % MODES {
        0..=3 => check_unpack(input),
        4..=6 => {
            let _ = FixedBaseMsm::from_cache_bytes(input.rest(), &FUZZ_FINGERPRINT);
        }
        _ => check_cache_round_trip(input),
    }
});
