//! The EIP-4844 vector runner (nilstore_cli::vectors) on arbitrary YAML.
//!
//! ```text
//!   data: | function selector (1) | data.yaml text (UTF-8, lossy) ... |
//! ```
//!
//! Property: `run_file` returns `Ok` or a typed `Err` for any text and any of the six
//! functions, never panics (malformed hex, wrong lengths, bad points, odd YAML).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nilstore_cli::vectors::{run_file, FUNCTIONS};
use nilstore_fuzz::Input;
use wasm_core::kzg::KzgSettings;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let function = FUNCTIONS[usize::from(input.u8()) % FUNCTIONS.len()];
    let text = String::from_utf8_lossy(input.rest());
    let _ = run_file(KzgSettings::ethereum(), function, &text);
});
