//! NilStore's chain, `chain-light`: the deterministic state machine, its transactions
//! and signatures, the authenticated state, blocks, and the light client.
//!
//! This library compiles to wasm32 (the browser follows the chain as a light client); the
//! validator (feature `validator`, native only, on by default) adds consensus, storage and
//! the API; crates that only follow the chain take `default-features = false`.
//!
//! ```text
//!  SignedTx ──check_envelope──► fee + nonce ──apply_msg──► State tables (dirty keys)
//!  Block: begin_block (epoch end: proofs, rent, rewards, unbonding, validator set)
//!         → txs → AuthStore (jmt) version = height → Header.state_root
//! ```

pub mod amount;
pub mod auth;
pub mod block;
pub mod bytes;
pub mod codec;
pub mod crypto;
pub mod exec;
#[cfg(feature = "http-server")]
pub mod http_server;
pub mod light;
pub mod params;
#[cfg(not(target_arch = "wasm32"))]
pub mod secret_file;
pub mod state;
pub mod tx;
#[cfg(feature = "validator")]
pub mod validator;

/// Token amounts in base units.
pub type Amount = u128;

pub use block::{Block, Chain, Genesis, Header};
pub use bytes::{Address, H256};
pub use exec::{Env, Event, NoFaults, Outcome, TxError, TxResult};
pub use state::State;
pub use tx::{Msg, SignedTx, Tx};
