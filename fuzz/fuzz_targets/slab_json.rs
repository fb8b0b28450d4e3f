//! Opening a slab from files someone else wrote (`slabdir::open_files`: a slab directory
//! handed over, an upload job's slab in the browser's store): each slot's `slab.json`,
//! then its manifest blob and metadata MDUs, all from the input.
//!
//! Input: files separated by `0xFF`: `slot-0/slab.json`, `slot-1/slab.json`,
//! `slot-0/manifest.blob`, `slot-0/mdu-000000.bin` (each missing when its part is absent
//! or empty). JSON that the fuzzer left valid (`0xFF` never occurs in UTF-8) reaches the
//! size checks; a manifest shorter than a blob is padded with zeros to reach the parsing
//! of its roots.
//!
//! Properties: nothing panics, whatever the sizes a `slab.json` names (they are outside
//! bytes, checked before any arithmetic); a slab that opens has a metadata copy whose
//! manifest matches the root `slab.json` commits to, so a made-up one never opens.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use libfuzzer_sys::fuzz_target;
use nilstore_client::slabdir::{open_files, SlabFiles, SlotMeta};
use wasm_core::constants::BYTES_PER_BLOB;
use wasm_core::kzg::KzgSettings;

#[derive(Default)]
struct Files(Mutex<BTreeMap<String, Vec<u8>>>);

impl SlabFiles for Files {
    fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.0.lock().unwrap().insert(name.to_string(), bytes.to_vec());
        Ok(())
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.0.lock().unwrap().get(name).cloned())
    }

    fn slots(&self) -> Result<Vec<String>> {
        let files = self.0.lock().unwrap();
        let mut slots: Vec<String> = files
            .keys()
            .filter_map(|k| k.split_once('/').map(|(d, _)| d.to_string()))
            .collect();
        slots.dedup();
        Ok(slots)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0xFF);
    let files = Files::default();
    let names = [
        "slot-0/slab.json",
        "slot-1/slab.json",
        "slot-0/manifest.blob",
        "slot-0/mdu-000000.bin",
    ];
    for name in names {
        let Some(part) = parts.next().filter(|p| !p.is_empty()) else {
            continue;
        };
        let mut bytes = part.to_vec();
        if name.ends_with(".blob") && bytes.len() < BYTES_PER_BLOB {
            bytes.resize(BYTES_PER_BLOB, 0);
        }
        files.write(name, &bytes).unwrap();
    }
    let json = files.read("slot-0/slab.json").unwrap();
    let files = Arc::new(files);
    if let Ok(slab) = open_files(KzgSettings::ethereum(), files.clone()) {
        // Opening checked the manifest against the committed root: the fuzzer cannot
        // make a blob commit to a root of its choosing, so only the genuine case opens.
        let meta: SlotMeta = serde_json::from_slice(&json.expect("slot 0 opened")).unwrap();
        assert_eq!(slab.meta, meta);
        let manifest = files.read("slot-0/manifest.blob").unwrap().expect("present");
        let poly = wasm_core::kzg::Polynomial::from_blob(&manifest).expect("parsed");
        assert_eq!(
            KzgSettings::ethereum().commit_poly(&poly).to_compressed(),
            meta.manifest_root().unwrap(),
            "a slab opened whose manifest does not commit to its root"
        );
    }
});
