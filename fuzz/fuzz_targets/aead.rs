//! Streaming decryption (wasm_core::aead) of hostile ciphertexts under a fixed key.
//!
//! ```text
//!   mode 0 (raw):    | 0 | split plan | ciphertext bytes ...                          |
//!   mode 1 (sealed): | 1 | chunks | adjust | nonce | tamper | split plan | seed ...  |
//! ```
//! Raw mode feeds arbitrary bytes (headers, lengths, garbage). Sealed mode encrypts a
//! plaintext of 0..=2 chunks ± 32 KiB (so exact chunk boundaries are easy to reach), then
//! optionally cuts, flips or extends the ciphertext: a fuzzer cannot forge tags, so this is
//! how it reaches the chunk, final-flag and truncation logic behind authentication.
//!
//! Properties: `Decryptor` never panics for any bytes in any chunking; after its first
//! error every call repeats that error; its answer equals one-shot `decrypt`; an untouched
//! ciphertext decrypts to the plaintext and any changed one is rejected.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nilstore_fuzz::{split, Input};
use wasm_core::aead::{
    decrypt, encrypt, AeadError, DealKey, Decryptor, StreamNonce, AEAD_CHUNK, KEY_LEN,
};

const KEY: DealKey = DealKey::from_bytes([0x4b; KEY_LEN]);
const AAD: &[u8] = b"nilstore/fuzz/aead";
/// Cuts per input: enough to split the header, a chunk boundary and a tag.
const MAX_CUTS: u8 = 8;
/// Bytes of a split plan: a count, then one `u32` per cut.
const PLAN_LEN: usize = 1 + 4 * MAX_CUTS as usize;
/// Sealed plaintexts span up to this many whole chunks (plus or minus the adjustment):
/// two is enough for a middle chunk, a final chunk and a cut at their boundary.
const MAX_WHOLE_CHUNKS: u8 = 2;
/// Most bytes appended by the "extend" tamper.
const MAX_APPEND: usize = 64;

/// Streams `pieces` through a `Decryptor`, checking that errors are sticky.
fn decrypt_streaming(pieces: &[&[u8]]) -> Result<Vec<u8>, AeadError> {
    let mut dec = Decryptor::new(&KEY, AAD);
    let mut out = Vec::new();
    let mut first: Option<AeadError> = None;
    for piece in pieces {
        match (dec.push(piece, &mut out), &first) {
            (Ok(()), None) => {}
            (Ok(()), Some(err)) => panic!("push succeeded after {err:?}"),
            (Err(err), None) => first = Some(err),
            (Err(err), Some(was)) => assert_eq!(&err, was, "error not sticky"),
        }
    }
    let finish = dec.finish(&mut out);
    if let Some(err) = first {
        assert_eq!(finish, Err(err.clone()), "finish forgot the push error");
        return Err(err);
    }
    finish.map(|()| out)
}

/// Decrypts `ciphertext` streamed in the chunking of `plan` and in one shot; they agree.
fn decrypt_both(plan: &[u8; PLAN_LEN], ciphertext: &[u8]) -> Result<Vec<u8>, AeadError> {
    let pieces = split(&mut Input::new(plan), ciphertext, MAX_CUTS);
    let streamed = decrypt_streaming(&pieces);
    let whole = decrypt(&KEY, AAD, ciphertext);
    assert_eq!(
        streamed, whole,
        "streaming and one-shot decryption disagree"
    );
    whole
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    if input.u8() & 1 == 0 {
        let plan = input.take();
        let _ = decrypt_both(&plan, input.rest());
        return;
    }
    let whole = usize::from(input.u8() % (MAX_WHOLE_CHUNKS + 1));
    let adjust = i64::from(i16::from_be_bytes(input.take()));
    let len = usize::try_from((whole * AEAD_CHUNK) as i64 + adjust).unwrap_or(0);
    let nonce: StreamNonce = input.take();
    let (tamper, at, bits) = (input.u8() % 4, input.u32() as usize, input.u8() | 1);
    let plan = input.take();
    let seed = input.rest();
    let plain: Vec<u8> = (0..len)
        .map(|i| seed.get(i % seed.len().max(1)).copied().unwrap_or(i as u8))
        .collect();
    let sealed = encrypt(&KEY, &nonce, AAD, &plain);
    let mut bytes = sealed.clone();
    match tamper {
        1 => bytes.truncate(at % sealed.len()),
        2 => bytes[at % sealed.len()] ^= bits,
        3 => bytes.extend(std::iter::repeat_n(bits, 1 + at % MAX_APPEND)),
        _ => {}
    }
    let got = decrypt_both(&plan, &bytes);
    if bytes == sealed {
        assert_eq!(got, Ok(plain), "untouched ciphertext did not decrypt");
    } else {
        assert!(
            got.is_err(),
            "modified ciphertext accepted (tamper {tamper})"
        );
    }
});
