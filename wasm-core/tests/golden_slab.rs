//! Golden vectors for our own formats, run natively **and** in headless Chromium (the same
//! file, two targets): a fixed input gives a fixed manifest root, leaf set and shard
//! hashes. Native and browser builds must agree; changing a value here is a reviewed
//! format change (docs/spec.md §12).
//!
//! ```text
//!  input:   RS(2, 1), capacity 1 user MDU, files in this order:
//!           "docs/golden.txt"  200,000 bytes, byte i = (i·7 + i/251) mod 256
//!           "secret.bin"       70,000 bytes of 0x5a, encrypted: root secret [0x11; 32],
//!                              deal 7, nonce [0x22; 19], AAD = path
//!  outputs: manifest_root, BLAKE3 over all user leaves (commitment ‖ blake3, in leaf
//!           order), BLAKE3 of each slot's shard, every MDU root
//! ```

use wasm_core::aead::{self, DealKey, KeyPurpose};
use wasm_core::kzg::KzgSettings;
use wasm_core::rs::Profile;
use wasm_core::slab::table::FLAG_ENCRYPTED;
use wasm_core::slab::{EncodedMdu, Layout, ShardSink, SlabBuilder, SlabError};

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const MANIFEST_ROOT: &str = "992ef19ec8b99bca1e4a2f9b2ffacfb2ef308cddc64465beb5021f0dc9cd8f4c3f74ab08968acbc7fc5bc2b12382afb7";
const LEAVES_BLAKE3: &str = "825f2795905d059990a2946f4b63a165a2a85e8bb793857b1d72d298a71ff493";
const SHARDS_BLAKE3: [&str; 3] = [
    "99e3670a2869ca43c3fe811708f0562386ed9e1e4359d24c8d6fb4fb52b542c5",
    "11275277272406dafa76ce90cc09fd947833f5b96f3443774a1fd6ccc368eca6",
    "1f8154a846691b44bbcaba744bf7d4c969f6b12c07fcf65bb35d5314d807442b",
];
const MDU_ROOTS: [&str; 3] = [
    "009099cfa50dc9cefb32ee8dabd7415a43cd388a2dd069452d4c9b31eddce1cb",
    "00d6401f4716dd42f333d3ec9fcb6782e50473a193544b7d75e2c473cf32ef07",
    "000006b2ffebf0834cac8262ab7b1585470639acd57eaeeba29d708dddc77d5a",
];

#[derive(Default)]
struct Hashes(Vec<String>);

impl ShardSink for Hashes {
    type Error = SlabError;
    fn user_mdu(&mut self, _: u64, e: &EncodedMdu) -> Result<(), SlabError> {
        self.0 = e
            .shards
            .iter()
            .map(|s| blake3::hash(s).to_hex().to_string())
            .collect();
        Ok(())
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn golden_slab() {
    let settings = KzgSettings::ethereum();
    let layout = Layout::new(Profile::new(2, 1).expect("valid profile"), 1).expect("fits");
    let mut b = SlabBuilder::new(settings, layout);
    let mut sink = Hashes::default();
    let text: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    b.begin_file("docs/golden.txt", 1_700_000_000, 0)
        .expect("new file");
    b.write(&text, &mut sink).expect("fits");
    b.end_file().expect("closes");
    let key = DealKey::derive(&[0x11; 32], 7, KeyPurpose::FileData);
    let ct = aead::encrypt(&key, &[0x22; 19], b"secret.bin", &[0x5a; 70_000]);
    b.begin_file("secret.bin", 1_700_000_001, FLAG_ENCRYPTED)
        .expect("new file");
    b.write(&ct, &mut sink).expect("fits");
    b.end_file().expect("closes");
    let out = b.finish(&mut sink).expect("finishes");

    let mut leaves = blake3::Hasher::new();
    for l in out.user_leaves.iter().flatten() {
        leaves.update(&l.commitment);
        leaves.update(&l.blake3);
    }
    let roots: Vec<String> = out.mdu_roots.iter().map(hex::encode).collect();
    let got = format!(
        "manifest {}\nleaves {}\nshards {:?}\nroots {:?}",
        hex::encode(out.manifest_root),
        leaves.finalize().to_hex(),
        sink.0,
        roots
    );
    // Scenario 8 (scripts/parity.sh) compares this line from a native and a Chromium run.
    let parity = format!(
        "PARITY manifest_root={} leaves={}",
        hex::encode(out.manifest_root),
        leaves_hex(&out)
    );
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_test::console_log!("{parity}");
    #[cfg(not(target_arch = "wasm32"))]
    println!("{parity}");
    let want = format!(
        "manifest {MANIFEST_ROOT}\nleaves {LEAVES_BLAKE3}\nshards {:?}\nroots {:?}",
        SHARDS_BLAKE3.to_vec(),
        MDU_ROOTS.to_vec()
    );
    assert_eq!(got, want);
}

fn leaves_hex(out: &wasm_core::slab::SlabOutput) -> String {
    let mut h = blake3::Hasher::new();
    for l in out.user_leaves.iter().flatten() {
        h.update(&l.commitment);
        h.update(&l.blake3);
    }
    h.finalize().to_hex().to_string()
}
