//! `nilstore-validator`: a NilStore chain validator on commonware simplex.
//!
//! ```text
//! nilstore-validator start --home DIR [--api 127.0.0.1:26657] [--chain-id N] [--block-ms MS]
//! nilstore-validator genesis --validators N --out DIR [--chain-id N]
//! ```
//! `start` with a fresh `DIR` writes a dev genesis (one validator: this one, funded dev
//! accounts in `DIR/dev-keys.json`) and runs the embedded single-validator chain. State is
//! rebuilt on start by replaying the block log, so `kill -9` and restart resume with the same
//! state roots.

#[cfg(not(target_arch = "wasm32"))]
mod run;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    run::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
