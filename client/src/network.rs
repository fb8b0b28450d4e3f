//! The description of a network a client uses (`devnet.json`, written by `nilstore devnet
//! up`): the chain id, the validator API, the registered daemons, and where the funded
//! dev accounts lie.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _, Result};
use chain_light::bytes::Address;
use chain_light::crypto::SecretKey;
use serde::{Deserialize, Serialize};

/// One daemon of the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its chain account.
    pub account: Address,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Its multiaddrs.
    pub addrs: Vec<String>,
    /// Its HTTP API (`/health`, `/metrics`).
    pub http: String,
    /// Its home directory.
    #[serde(default)]
    pub home: PathBuf,
    /// Its process id when it runs as a child process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// `DIR/devnet.json`: what the other commands need to use the devnet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// Chain id.
    pub chain_id: u64,
    /// Validator API base URL.
    pub api: String,
    /// Genesis document.
    pub genesis: PathBuf,
    /// Funded dev accounts (JSON: name, address, secret), mode 0600.
    pub dev_keys: PathBuf,
    /// Dev accounts the daemons use (the others are free for users).
    pub reserved_dev_accounts: Vec<usize>,
    /// Providers.
    pub providers: Vec<NodeInfo>,
    /// Relays.
    pub relays: Vec<NodeInfo>,
    /// Validators (`http` is each one's API; the first is `api`).
    #[serde(default)]
    pub validators: Vec<NodeInfo>,
    /// The web app's URL, when the devnet serves it (`devnet up --web`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<String>,
}

impl NetworkInfo {
    /// Reads `devnet.json`.
    pub fn read(path: &Path) -> Result<NetworkInfo> {
        serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("read {}", path.display()))?,
        )
        .with_context(|| format!("parse {}", path.display()))
    }
}

/// Dev accounts in a validator home's `dev-keys.json` (a secret file: mode 0600).
#[cfg(not(target_arch = "wasm32"))]
pub fn dev_keys(path: &Path) -> Result<Vec<SecretKey>> {
    let raw = chain_light::secret_file::read(path).map_err(anyhow::Error::msg)?;
    parse_dev_keys(&raw)
}

/// The dev accounts of a `dev-keys.json` document (a browser is handed the document).
pub fn parse_dev_keys(raw: &[u8]) -> Result<Vec<SecretKey>> {
    let v: serde_json::Value = serde_json::from_slice(raw).context("dev-keys.json")?;
    v.as_array()
        .ok_or_else(|| anyhow!("dev-keys.json: not a list"))?
        .iter()
        .map(|a| {
            let s = a["secret"]
                .as_str()
                .ok_or_else(|| anyhow!("dev-keys.json: secret"))?;
            let b: [u8; 32] = hex::decode(s.trim_start_matches("0x"))?
                .try_into()
                .map_err(|_| anyhow!("dev-keys.json: 32-byte secret"))?;
            SecretKey::from_bytes(&b).map_err(|e| anyhow!("dev-keys.json: {e}"))
        })
        .collect()
}
