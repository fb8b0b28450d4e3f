//! File-table decoding (wasm_core::slab::table), the payload of MDU #0.
//!
//! Properties: `decode` never panics; an accepted table encodes to bytes that decode to
//! the same table. `decode` accepts trailing padding after the records, so `encode` may be
//! shorter than the input: we compare tables, not bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasm_core::slab::table::FileTable;

fuzz_target!(|data: &[u8]| {
    let Ok(table) = FileTable::decode(data) else {
        return;
    };
    let encoded = table.encode();
    let again = FileTable::decode(&encoded).expect("an encoded table decodes");
    assert_eq!(again, table, "FileTable round trip differs");
    assert_eq!(again.encode(), encoded, "FileTable encoding is not stable");
});
