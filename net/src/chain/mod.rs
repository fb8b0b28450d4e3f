//! A node's view of the chain: a light client over a validator's HTTP API, natively (the
//! provider, the relay, the CLI: `HttpChain`) and in the browser ([`ChainView`] over
//! `FetchApi`). Headers are trusted only with a finalization certificate from the
//! validator set the client already trusts (following set changes through
//! `validators_hash` and a proven `Globals` record); deals, accounts and globals are read
//! with state proofs against the trusted header. A lying API can withhold data, never
//! forge it.
//!
//! The protocol logic lives once, in [`ChainView`], generic over how requests travel
//! ([`ChainApi`]): ureq natively, the browser's `fetch` on wasm32.

use std::future::Future;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context as _, Result};
use chain_light::auth::StateProof;
use chain_light::block::{Chain, Genesis, Header};
use chain_light::bytes::Address;
use chain_light::crypto::SecretKey;
use chain_light::light::LightClient;
use chain_light::state::{
    state_key, tag, Account, Deal, Deputy, Globals, Provider, ReceiptState, Work,
};
use chain_light::tx::{Msg, SignedTx, Tx};
use serde::de::DeserializeOwned;
use serde_json::Value;

#[cfg(target_arch = "wasm32")]
mod fetch;
#[cfg(not(target_arch = "wasm32"))]
mod http;

#[cfg(target_arch = "wasm32")]
pub use fetch::FetchApi;
#[cfg(not(target_arch = "wasm32"))]
pub use http::{account_key, read_genesis, HttpChain, UreqApi};

/// Largest record decoded from a proof.
const MAX_RECORD: usize = 16 << 20;

/// Largest API answer read (a header with its certificate, a proof, a block).
pub const MAX_RESPONSE: usize = 32 << 20;

/// How a light client reaches a validator's HTTP API. Paths begin with `/`; answers are
/// JSON. Implementations bound the size of an answer ([`MAX_RESPONSE`]) and its time.
pub trait ChainApi {
    /// GETs `path`: the JSON answer, or `None` when the API answers 404.
    fn get(&self, path: &str) -> impl Future<Output = Result<Option<Value>>>;

    /// POSTs `body` as JSON to `path`: the JSON answer. Any status but success is an error
    /// that carries the API's explanation.
    fn post(&self, path: &str, body: Value) -> impl Future<Output = Result<Value>>;
}

/// A light client following a validator's API through `A`.
pub struct ChainView<A> {
    api: A,
    state: Mutex<Followed>,
    /// One [`ChainView::sync`] at a time: two interleaved walks would each fetch the
    /// header after the trusted one, and the slower would find it no longer above it.
    syncing: futures::lock::Mutex<()>,
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

/// How many heights below the tip [`ChainView::sync`] looks for a certified header to skip
/// to (finality certificates can be implicit for a few blocks with several validators).
const SKIP_PROBES: u64 = 8;

/// What a light client trusts, to pick up from after a restart instead of genesis: a
/// header it verified and the validator set that header names, with the hash of the
/// genesis header it descends from. A node keeps it on its own disk, so it is trusted like
/// the genesis document; an API that lags or lies after the restart cannot take the node
/// back below it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The genesis header's hash (a checkpoint of another chain does not apply).
    pub genesis: chain_light::bytes::H256,
    /// The trusted header.
    pub header: Header,
    /// The validator set it names.
    pub validators: Vec<chain_light::state::SetMember>,
}

/// What the API says about a submitted transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// Waiting in the mempool (or unknown to this node).
    Pending,
    /// Included at a height; `Ok(())` if it executed, else the chain's error.
    Included(u64, std::result::Result<(), String>),
}

impl<A: ChainApi> ChainView<A> {
    /// Follows the chain of `genesis` through `api`, trusting its genesis header and
    /// validator set.
    pub fn new(api: A, genesis: &Genesis) -> Result<ChainView<A>> {
        let chain = Chain::from_genesis(genesis).context("genesis")?;
        let lc = LightClient::new(chain.tip.clone(), chain.state.g.validators.clone())
            .context("light client")?;
        Ok(ChainView {
            api,
            state: Mutex::new(Followed { lc, epoch: 0 }),
            syncing: futures::lock::Mutex::new(()),
        })
    }

    /// Follows the chain of `genesis` from `checkpoint` (a state this node trusted before):
    /// refused when the checkpoint belongs to another genesis, is below genesis, or its set
    /// does not hash to its header's.
    pub fn resume(api: A, genesis: &Genesis, checkpoint: &Checkpoint) -> Result<ChainView<A>> {
        let chain = Chain::from_genesis(genesis).context("genesis")?;
        if checkpoint.genesis != chain.tip.hash() {
            bail!("the checkpoint belongs to another chain (another genesis)");
        }
        if checkpoint.header.chain_id != chain.tip.chain_id
            || checkpoint.header.height < chain.tip.height
        {
            bail!("the checkpoint is not a header of this chain");
        }
        let lc = LightClient::new(checkpoint.header.clone(), checkpoint.validators.clone())
            .map_err(|e| anyhow!("checkpoint: {e}"))?;
        Ok(ChainView {
            api,
            state: Mutex::new(Followed { lc, epoch: 0 }),
            syncing: futures::lock::Mutex::new(()),
        })
    }

    /// What this view trusts now, for [`ChainView::resume`] after a restart.
    pub fn checkpoint(&self, genesis: &Genesis) -> Result<Checkpoint> {
        let chain = Chain::from_genesis(genesis).context("genesis")?;
        let f = self.lock()?;
        Ok(Checkpoint {
            genesis: chain.tip.hash(),
            header: f.lc.trusted().clone(),
            validators: f.lc.validators().to_vec(),
        })
    }

    /// The transport.
    pub fn api(&self) -> &A {
        &self.api
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.api
            .get(path)
            .await?
            .ok_or_else(|| anyhow!("GET {path}: not found"))
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

    /// The chain id of the trusted header.
    pub fn chain_id(&self) -> u64 {
        self.lock().map_or(0, |f| f.lc.trusted().chain_id)
    }

    /// The epoch of the trusted state (updated by [`ChainView::sync`]).
    pub fn epoch(&self) -> u64 {
        self.lock().map_or(0, |f| f.epoch)
    }

    /// Reads a proven record at the trusted height (asking again when the trusted header
    /// advanced while the answer was on its way).
    async fn proven<T: serde::Serialize + DeserializeOwned>(
        &self,
        path: &str,
        key: Vec<u8>,
    ) -> Result<Option<T>> {
        loop {
            let height = self.trusted()?.height;
            let v = self.get(&format!("{path}?height={height}")).await?;
            let p = proof_of(&v)?;
            if p.key != key {
                bail!("the API proved another key");
            }
            let value = {
                let f = self.lock()?;
                if f.lc.trusted().height != height {
                    continue;
                }
                f.lc.verify_state(&p).map_err(|e| anyhow!("{e}"))?
            };
            return value
                .map(|b| chain_light::codec::decode(&b, MAX_RECORD).map_err(|e| anyhow!("{e}")))
                .transpose();
        }
    }

    /// Advances to the newest certified header; returns the trusted height.
    ///
    /// When a certified header near the tip names the trusted validator set, it is checked
    /// against that set directly and the headers in between are skipped (the set that
    /// signed it is the one we trust, so its certificate is as good as a walk through every
    /// ancestor); a connect after a long time offline costs a few requests, not one per
    /// block. Otherwise, or when the set changed, every header is walked in order so each
    /// change of the set is verified by the set before it.
    ///
    /// Concurrent calls (a page refreshing its status while an upload waits for its commit)
    /// run one after the other; the later ones start from where the earlier left off.
    pub async fn sync(&self) -> Result<u64> {
        let _one = self.syncing.lock().await;
        let tip = self.get("/status").await?["height"]
            .as_u64()
            .ok_or_else(|| anyhow!("/status without a height"))?;
        let verified = self.trusted()?.height;
        if tip < verified {
            // Reads would be answered at a height this view is past: refuse rather than
            // act on a stale picture (a provider skips its round, and so its GC).
            bail!("the API reports height {tip}, below the verified height {verified}: it lags or lies");
        }
        self.skip_towards(tip).await?;
        let mut h = self.trusted()?.height + 1;
        while h <= tip {
            let v = self.get(&format!("/headers/{h}")).await?;
            let header: Header = serde_json::from_value(v["header"].clone()).context("header")?;
            let cert = match &v["finalization"] {
                Value::Null => {
                    h += 1; // final as an ancestor of a certified descendant
                    continue;
                }
                c => hex_bytes(c)?,
            };
            let changes = {
                let f = self.lock()?;
                if header.validators_hash == f.lc.trusted().validators_hash {
                    false
                } else {
                    // The set changes after this header: verify the header first, then the
                    // new set against its state root.
                    chain_light::light::verify_finalization(
                        header.chain_id,
                        f.lc.validators(),
                        &header,
                        &cert,
                    )
                    .map_err(|e| anyhow!("header {h}: {e}"))?;
                    true
                }
            };
            let next = if changes {
                let g = self.get(&format!("/state/globals?height={h}")).await?;
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
                Some(globals.validators)
            } else {
                None
            };
            self.lock()?
                .lc
                .advance(&header, &cert, next.as_deref())
                .map_err(|e| anyhow!("header {h}: {e}"))?;
            h += 1;
        }
        let globals: Option<Globals> = self.proven("/state/globals", vec![tag::GLOBALS]).await?;
        let epoch = globals.ok_or_else(|| anyhow!("no globals"))?.epoch;
        let mut f = self.lock()?;
        f.epoch = epoch;
        Ok(f.lc.trusted().height)
    }

    /// Jumps to the newest certified header among the last [`SKIP_PROBES`] heights up to
    /// `tip` if it names the trusted validator set (see [`ChainView::sync`]); leaves the
    /// trusted header alone otherwise.
    async fn skip_towards(&self, tip: u64) -> Result<()> {
        let trusted = self.trusted()?;
        if tip <= trusted.height + 1 {
            return Ok(());
        }
        let low = tip.saturating_sub(SKIP_PROBES).max(trusted.height + 2);
        for h in (low..=tip).rev() {
            let v = self.get(&format!("/headers/{h}")).await?;
            let header: Header = serde_json::from_value(v["header"].clone()).context("header")?;
            if header.validators_hash != trusted.validators_hash {
                return Ok(()); // the set changed on the way: walk every header
            }
            let cert = match &v["finalization"] {
                Value::Null => continue,
                c => hex_bytes(c)?,
            };
            if header.height != h {
                bail!("header {h}: the API answered height {}", header.height);
            }
            // A certificate the trusted set did not sign (the set changed and changed back
            // in between, or the API lies) is not an error here: the walk decides.
            let _skipped = self.lock()?.lc.advance(&header, &cert, None).is_ok();
            return Ok(());
        }
        Ok(())
    }

    /// A deal, proven (None: no such deal — ended, cancelled or never created).
    pub async fn deal(&self, id: u64) -> Result<Option<Deal>> {
        self.proven(&format!("/state/deal/{id}"), state_key(tag::DEAL, &id))
            .await
    }

    /// Chain-wide values, proven.
    pub async fn globals(&self) -> Result<Globals> {
        self.proven("/state/globals", vec![tag::GLOBALS])
            .await?
            .ok_or_else(|| anyhow!("no globals"))
    }

    /// This epoch's proof work of a slot, proven (default when nothing happened yet).
    pub async fn work(&self, deal: u64, slot: u32) -> Result<Work> {
        Ok(self
            .proven(
                &format!("/state/work/{deal}/{slot}"),
                state_key(tag::WORK, &(deal, slot)),
            )
            .await?
            .unwrap_or_default())
    }

    /// The redeemed-receipt state of (deal, provider), proven.
    pub async fn receipt_state(&self, deal: u64, provider: &Address) -> Result<ReceiptState> {
        Ok(self
            .proven(
                &format!("/state/receipt/{deal}/{provider}"),
                state_key(tag::RECEIPT, &(deal, *provider)),
            )
            .await?
            .unwrap_or_default())
    }

    /// A provider record, proven.
    pub async fn provider(&self, a: &Address) -> Result<Option<Provider>> {
        self.proven(&format!("/state/provider/{a}"), state_key(tag::PROVIDER, a))
            .await
    }

    /// A deputy record, proven.
    pub async fn deputy(&self, a: &Address) -> Result<Option<Deputy>> {
        self.proven(&format!("/state/deputy/{a}"), state_key(tag::DEPUTY, a))
            .await
    }

    /// An account, proven (default when absent).
    pub async fn account(&self, a: &Address) -> Result<Account> {
        Ok(self
            .proven(&format!("/state/account/{a}"), state_key(tag::ACCOUNT, a))
            .await?
            .unwrap_or_default())
    }

    /// Submits a signed transaction; returns its hash.
    pub async fn submit(&self, tx: &SignedTx) -> Result<String> {
        let body = serde_json::to_value(tx).context("encode the transaction")?;
        let v = self.api.post("/tx", body).await?;
        v["hash"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("POST /tx: no hash"))
    }

    /// The status of a submitted transaction (as the API reports it: a hint; effects are
    /// read back through proven state).
    pub async fn tx_status(&self, hash: &str) -> Result<TxStatus> {
        let Some(v) = self.api.get(&format!("/tx/{hash}")).await? else {
            return Ok(TxStatus::Pending);
        };
        if v["status"] != "included" {
            return Ok(TxStatus::Pending);
        }
        let height = v["height"].as_u64().unwrap_or(0);
        let outcome = &v["result"]["outcome"];
        Ok(TxStatus::Included(
            height,
            if outcome["status"] == "ok" {
                Ok(())
            } else {
                Err(outcome.to_string())
            },
        ))
    }

    /// The result of an included transaction as the API reports it (`{outcome, events}`):
    /// a hint (a new deal's id, say), to be confirmed by proven reads.
    pub async fn tx_result(&self, hash: &str) -> Result<Value> {
        let v = self.get(&format!("/tx/{hash}")).await?;
        if v["status"] != "included" {
            bail!("transaction {hash} is not included");
        }
        Ok(v["result"].clone())
    }
}

/// Transactions sent but not yet seen on chain, at most, before nonces restart from the
/// chain's (a transaction dropped from a mempool must not block the account for ever).
const MAX_UNCONFIRMED: u64 = 16;

/// Signs and submits an account's transactions, tracking its nonce across transactions that
/// are still in the mempool.
pub struct Signer {
    key: SecretKey,
    /// Held while a transaction is signed and submitted, so two never take one nonce.
    next: futures::lock::Mutex<Option<u64>>,
}

impl Signer {
    /// A signer for `key`.
    pub fn new(key: SecretKey) -> Signer {
        Signer {
            key,
            next: futures::lock::Mutex::new(None),
        }
    }

    /// The account.
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// The key.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    /// Signs `msg` with the next nonce and the chain's minimum fee, and submits it through
    /// `chain`; returns the transaction's hash.
    pub async fn send_via<A: ChainApi>(&self, chain: &ChainView<A>, msg: Msg) -> Result<String> {
        let fee = chain.globals().await?.params.min_fee;
        let on_chain = chain.account(&self.key.address()).await?.nonce;
        let mut next = self.next.lock().await;
        let nonce = match *next {
            Some(n) if n >= on_chain && n < on_chain + MAX_UNCONFIRMED => n,
            _ => on_chain,
        };
        let tx = Tx {
            chain_id: chain.chain_id(),
            from: self.key.address(),
            nonce,
            fee,
            msg,
        }
        .sign(&self.key);
        match chain.submit(&tx).await {
            Ok(hash) => {
                *next = Some(nonce + 1);
                Ok(hash)
            }
            Err(e) => {
                *next = None;
                Err(e)
            }
        }
    }
}
