//! A native node's view of the chain (provider, relay, CLI): a light client over a validator's HTTP API. Headers
//! are trusted only with a finalization certificate from the validator set the client
//! already trusts (following set changes through `validators_hash` and a proven `Globals`
//! record); deals and globals are read with state proofs against the trusted header. A
//! lying API can withhold data, never forge it.

use std::sync::Mutex;
use std::time::Duration;

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
    ///
    /// When a certified header near the tip names the trusted validator set, it is checked
    /// against that set directly and the headers in between are skipped (the set that
    /// signed it is the one we trust, so its certificate is as good as a walk through every
    /// ancestor); a connect after a long time offline costs a few requests, not one per
    /// block. Otherwise, or when the set changed, every header is walked in order so each
    /// change of the set is verified by the set before it.
    pub fn sync(&self) -> Result<u64> {
        let tip = self.get("/status")?["height"]
            .as_u64()
            .ok_or_else(|| anyhow!("/status without a height"))?;
        self.skip_towards(tip)?;
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

    /// Jumps to the newest certified header among the last [`SKIP_PROBES`] heights up to
    /// `tip` if it names the trusted validator set (see [`HttpChain::sync`]); leaves the
    /// trusted header alone otherwise.
    fn skip_towards(&self, tip: u64) -> Result<()> {
        let trusted = self.trusted()?;
        if tip <= trusted.height + 1 {
            return Ok(());
        }
        let low = tip.saturating_sub(SKIP_PROBES).max(trusted.height + 2);
        for h in (low..=tip).rev() {
            let v = self.get(&format!("/headers/{h}"))?;
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
}

/// How many heights below the tip [`HttpChain::sync`] looks for a certified header to skip
/// to (finality certificates can be implicit for a few blocks with several validators).
const SKIP_PROBES: u64 = 8;

/// What the API says about a submitted transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// Waiting in the mempool (or unknown to this node).
    Pending,
    /// Included at a height; `Ok(())` if it executed, else the chain's error.
    Included(u64, std::result::Result<(), String>),
}

impl HttpChain {
    /// The chain id of the trusted header.
    pub fn chain_id(&self) -> u64 {
        self.lock().map_or(0, |f| f.lc.trusted().chain_id)
    }

    /// The epoch of the trusted state (updated by [`HttpChain::sync`]).
    pub fn epoch(&self) -> u64 {
        self.lock().map_or(0, |f| f.epoch)
    }

    /// A deal, proven (None: no such deal — ended, cancelled or never created).
    pub fn deal(&self, id: u64) -> Result<Option<Deal>> {
        self.proven(&format!("/state/deal/{id}"), state_key(tag::DEAL, &id))
    }

    /// Chain-wide values, proven.
    pub fn globals(&self) -> Result<Globals> {
        self.proven("/state/globals", vec![tag::GLOBALS])?
            .ok_or_else(|| anyhow!("no globals"))
    }

    /// This epoch's proof work of a slot, proven (default when nothing happened yet).
    pub fn work(&self, deal: u64, slot: u32) -> Result<Work> {
        Ok(self
            .proven(
                &format!("/state/work/{deal}/{slot}"),
                state_key(tag::WORK, &(deal, slot)),
            )?
            .unwrap_or_default())
    }

    /// The redeemed-receipt state of (deal, provider), proven.
    pub fn receipt_state(&self, deal: u64, provider: &Address) -> Result<ReceiptState> {
        Ok(self
            .proven(
                &format!("/state/receipt/{deal}/{provider}"),
                state_key(tag::RECEIPT, &(deal, *provider)),
            )?
            .unwrap_or_default())
    }

    /// A provider record, proven.
    pub fn provider(&self, a: &Address) -> Result<Option<Provider>> {
        self.proven(&format!("/state/provider/{a}"), state_key(tag::PROVIDER, a))
    }

    /// A deputy record, proven.
    pub fn deputy(&self, a: &Address) -> Result<Option<Deputy>> {
        self.proven(&format!("/state/deputy/{a}"), state_key(tag::DEPUTY, a))
    }

    /// An account, proven (default when absent).
    pub fn account(&self, a: &Address) -> Result<Account> {
        Ok(self
            .proven(&format!("/state/account/{a}"), state_key(tag::ACCOUNT, a))?
            .unwrap_or_default())
    }

    /// Submits a signed transaction; returns its hash.
    pub fn submit(&self, tx: &SignedTx) -> Result<String> {
        let body = serde_json::to_value(tx).context("encode the transaction")?;
        let r = match self
            .agent
            .post(&format!("{}/tx", self.base))
            .send_json(body)
        {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let why = r.into_string().unwrap_or_default();
                bail!("POST /tx: {code}: {why}");
            }
            Err(e) => bail!("POST /tx: {e}"),
        };
        let v: Value = r.into_json().context("POST /tx: JSON")?;
        v["hash"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("POST /tx: no hash"))
    }

    /// The status of a submitted transaction (as the API reports it: a hint; effects are
    /// read back through proven state).
    pub fn tx_status(&self, hash: &str) -> Result<TxStatus> {
        let v = match self.agent.get(&format!("{}/tx/{hash}", self.base)).call() {
            Ok(r) => r.into_json::<Value>().context("GET /tx: JSON")?,
            Err(ureq::Error::Status(404, _)) => return Ok(TxStatus::Pending),
            Err(e) => bail!("GET /tx/{hash}: {e}"),
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
    pub fn tx_result(&self, hash: &str) -> Result<Value> {
        let v = self
            .agent
            .get(&format!("{}/tx/{hash}", self.base))
            .call()
            .with_context(|| format!("GET /tx/{hash}"))?
            .into_json::<Value>()
            .context("GET /tx: JSON")?;
        if v["status"] != "included" {
            bail!("transaction {hash} is not included");
        }
        Ok(v["result"].clone())
    }

    /// Follows the validator's event feed (`GET /events`, server-sent events), calling `f`
    /// with each block's JSON until the stream ends or `f` returns false. Events are hints:
    /// act on them only after reading the named records with proofs.
    pub fn follow_events(&self, mut f: impl FnMut(&Value) -> bool) -> Result<()> {
        use std::io::BufRead as _;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(60)) // the feed sends keep-alives every 15 s
            .build();
        let r = agent
            .get(&format!("{}/events", self.base))
            .call()
            .map_err(|e| anyhow!("GET /events: {e}"))?;
        let mut reader = std::io::BufReader::new(r.into_reader());
        let mut line = String::new();
        loop {
            line.clear();
            let n = std::io::Read::take(&mut reader, MAX_RECORD as u64)
                .read_line(&mut line)
                .context("event feed")?;
            if n == 0 {
                break; // the feed ended
            }
            if !line.ends_with('\n') && n >= MAX_RECORD {
                bail!("event feed line too long");
            }
            if let Some(data) = line.strip_prefix("data:") {
                let Ok(v) = serde_json::from_str::<Value>(data.trim()) else {
                    continue;
                };
                if !f(&v) {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Transactions sent but not yet seen on chain, at most, before nonces restart from the
/// chain's (a transaction dropped from a mempool must not block the account for ever).
const MAX_UNCONFIRMED: u64 = 16;

/// Signs and submits an account's transactions, tracking its nonce across transactions that
/// are still in the mempool.
pub struct Signer {
    key: SecretKey,
    next: Mutex<Option<u64>>,
}

impl Signer {
    /// A signer for `key`.
    pub fn new(key: SecretKey) -> Signer {
        Signer {
            key,
            next: Mutex::new(None),
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

    /// Signs `msg` with the next nonce and the chain's minimum fee, and submits it.
    pub fn send(&self, chain: &HttpChain, msg: Msg) -> Result<String> {
        let fee = chain.globals()?.params.min_fee;
        let on_chain = chain.account(&self.key.address())?.nonce;
        let mut next = self.next.lock().map_err(|_| anyhow!("signer poisoned"))?;
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
        match chain.submit(&tx) {
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

/// An account key: from the environment variable `env` (hex) if set, else from `path`
/// (hex, mode 0600), created with a fresh random key when absent. Never logged.
pub fn account_key(env: &str, path: &std::path::Path) -> Result<SecretKey> {
    let hex_key = match std::env::var(env) {
        Ok(k) => k,
        Err(_) => {
            if !path.exists() {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let key = loop {
                    let b: [u8; 32] = rand10::random();
                    if let Ok(k) = SecretKey::from_bytes(&b) {
                        break k;
                    }
                };
                chain_light::secret_file::write(path, hex::encode(key.to_bytes()).as_bytes())?;
            }
            String::from_utf8(chain_light::secret_file::read(path).map_err(anyhow::Error::msg)?)?
        }
    };
    let bytes: [u8; 32] = hex::decode(hex_key.trim().trim_start_matches("0x"))
        .context("account key: hex")?
        .try_into()
        .map_err(|_| anyhow!("account key: 32 bytes"))?;
    SecretKey::from_bytes(&bytes).map_err(|e| anyhow!("account key: {e}"))
}

/// Reads a genesis document.
pub fn read_genesis(path: &std::path::Path) -> Result<Genesis> {
    serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("read {}", path.display()))?,
    )
    .with_context(|| format!("parse {}", path.display()))
}
