//! The provider's view of the chain: a light client over a validator's HTTP API. Headers
//! are trusted only with a finalization certificate from the validator set the client
//! already trusts (following set changes through `validators_hash` and a proven `Globals`
//! record); deals and globals are read with state proofs against the trusted header. A
//! lying API can withhold data, never forge it.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use chain_light::auth::StateProof;
use chain_light::block::{Chain, Genesis, Header};
use chain_light::light::LightClient;
use chain_light::state::{state_key, tag, Deal, Globals};
use nilstore_net::proto::NetError;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::service::ChainView;

/// Largest record decoded from a proof.
const MAX_RECORD: usize = 16 << 20;

/// A light client following a validator's API.
pub struct HttpChain {
    base: String,
    agent: ureq::Agent,
    state: Mutex<Followed>,
}

struct Followed {
    lc: LightClient,
    epoch: u64,
}

fn hex_bytes(v: &Value) -> Result<Vec<u8>> {
    let s = v.as_str().ok_or_else(|| anyhow!("expected a hex string"))?;
    hex::decode(s.trim_start_matches("0x")).context("hex")
}

fn proof_of(v: &Value) -> Result<StateProof> {
    let p = &v["proof"];
    Ok(StateProof {
        key: hex_bytes(&p["key"])?,
        value: match &p["value"] {
            Value::Null => None,
            x => Some(hex_bytes(x)?),
        },
        proof: hex_bytes(&p["proof"])?,
    })
}

impl HttpChain {
    /// Follows the chain of `genesis` through the API at `base` (e.g. `http://127.0.0.1:26657`).
    pub fn new(base: &str, genesis: &Genesis) -> Result<HttpChain> {
        let chain = Chain::from_genesis(genesis).context("genesis")?;
        let lc = LightClient::new(chain.tip.clone(), chain.state.g.validators.clone())
            .context("light client")?;
        Ok(HttpChain {
            base: base.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(10))
                .build(),
            state: Mutex::new(Followed { lc, epoch: 0 }),
        })
    }

    fn get(&self, path: &str) -> Result<Value> {
        let r = self
            .agent
            .get(&format!("{}{path}", self.base))
            .call()
            .map_err(|e| anyhow!("GET {path}: {e}"))?;
        r.into_json().with_context(|| format!("GET {path}: JSON"))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Followed>> {
        self.state
            .lock()
            .map_err(|_| anyhow!("chain view poisoned"))
    }

    /// The trusted header.
    pub fn trusted(&self) -> Result<Header> {
        Ok(self.lock()?.lc.trusted().clone())
    }

    /// Reads a proven record at the trusted height.
    fn proven<T: serde::Serialize + DeserializeOwned>(
        &self,
        path: &str,
        key: Vec<u8>,
    ) -> Result<Option<T>> {
        let height = self.trusted()?.height;
        let v = self.get(&format!("{path}?height={height}"))?;
        let p = proof_of(&v)?;
        if p.key != key {
            bail!("the API proved another key");
        }
        let f = self.lock()?;
        if f.lc.trusted().height != height {
            drop(f);
            return self.proven(path, key); // advanced meanwhile: ask again at the new height
        }
        let value = f.lc.verify_state(&p).map_err(|e| anyhow!("{e}"))?;
        value
            .map(|b| chain_light::codec::decode(&b, MAX_RECORD).map_err(|e| anyhow!("{e}")))
            .transpose()
    }

    /// Advances to the newest certified header; returns the trusted height.
    pub fn sync(&self) -> Result<u64> {
        let tip = self.get("/status")?["height"]
            .as_u64()
            .ok_or_else(|| anyhow!("/status without a height"))?;
        let mut h = self.trusted()?.height + 1;
        while h <= tip {
            let v = self.get(&format!("/headers/{h}"))?;
            let header: Header = serde_json::from_value(v["header"].clone()).context("header")?;
            let cert = match &v["finalization"] {
                Value::Null => {
                    h += 1; // final as an ancestor of a certified descendant
                    continue;
                }
                c => hex_bytes(c)?,
            };
            let mut f = self.lock()?;
            let next = if header.validators_hash != f.lc.trusted().validators_hash {
                // The set changes after this header: verify the header first, then the new
                // set against its state root.
                chain_light::light::verify_finalization(
                    header.chain_id,
                    f.lc.validators(),
                    &header,
                    &cert,
                )
                .map_err(|e| anyhow!("header {h}: {e}"))?;
                drop(f);
                let g = self.get(&format!("/state/globals?height={h}"))?;
                let p = proof_of(&g)?;
                p.verify(&header.state_root)
                    .map_err(|e| anyhow!("globals at {h}: {e}"))?;
                let globals: Globals = chain_light::codec::decode(
                    p.value
                        .as_deref()
                        .ok_or_else(|| anyhow!("globals absent"))?,
                    MAX_RECORD,
                )
                .map_err(|e| anyhow!("{e}"))?;
                f = self.lock()?;
                Some(globals.validators)
            } else {
                None
            };
            f.lc.advance(&header, &cert, next.as_deref())
                .map_err(|e| anyhow!("header {h}: {e}"))?;
            h += 1;
        }
        let globals: Option<Globals> = self.proven("/state/globals", vec![tag::GLOBALS])?;
        let epoch = globals.ok_or_else(|| anyhow!("no globals"))?.epoch;
        let mut f = self.lock()?;
        f.epoch = epoch;
        Ok(f.lc.trusted().height)
    }
}

impl ChainView for HttpChain {
    fn chain_id(&self) -> u64 {
        self.lock().map_or(0, |f| f.lc.trusted().chain_id)
    }

    fn epoch(&self) -> u64 {
        self.lock().map_or(0, |f| f.epoch)
    }

    fn deal(&self, id: u64) -> Result<Option<Deal>, NetError> {
        self.proven(&format!("/state/deal/{id}"), state_key(tag::DEAL, &id))
            .map_err(|e| NetError::Unavailable(format!("chain: {e:#}")))
    }
}
