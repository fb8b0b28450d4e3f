//! The native transport of the light client ([`UreqApi`]) and [`HttpChain`], the
//! blocking facade the provider, the relay and the CLI use over [`ChainView`].

use std::io::Read as _;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use chain_light::block::{Genesis, Header};
use chain_light::bytes::Address;
use chain_light::crypto::SecretKey;
use chain_light::state::{Account, Deal, Deputy, Globals, Provider, ReceiptState, Work};
use chain_light::tx::{Msg, SignedTx};
use futures::executor::block_on;
use serde_json::Value;

use super::{ChainApi, ChainView, Signer, TxStatus, MAX_RECORD, MAX_RESPONSE};

/// A validator's HTTP API over ureq (blocking: each request completes before its future is
/// first polled, so [`HttpChain`] drives the view with `block_on`).
pub struct UreqApi {
    base: String,
    agent: ureq::Agent,
}

impl UreqApi {
    /// The API at `base` (e.g. `http://127.0.0.1:26657`); each request times out after 10 s.
    pub fn new(base: &str) -> UreqApi {
        UreqApi {
            base: base.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(10))
                .build(),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn answer(
        what: &str,
        r: std::result::Result<ureq::Response, ureq::Error>,
    ) -> Result<Option<Value>> {
        match r {
            Ok(r) => {
                let v = serde_json::from_reader(r.into_reader().take(MAX_RESPONSE as u64))
                    .with_context(|| format!("{what}: JSON (at most {MAX_RESPONSE} bytes)"))?;
                Ok(Some(v))
            }
            Err(ureq::Error::Status(404, _)) => Ok(None),
            Err(ureq::Error::Status(code, r)) => {
                let mut why = String::new();
                let _ = r.into_reader().take(4096).read_to_string(&mut why);
                bail!("{what}: {code}: {why}")
            }
            Err(e) => bail!("{what}: {e}"),
        }
    }
}

impl ChainApi for UreqApi {
    fn get(&self, path: &str) -> impl std::future::Future<Output = Result<Option<Value>>> {
        let r = self.agent.get(&format!("{}{path}", self.base)).call();
        std::future::ready(Self::answer(&format!("GET {path}"), r))
    }

    fn post(&self, path: &str, body: Value) -> impl std::future::Future<Output = Result<Value>> {
        let what = format!("POST {path}");
        let r = self
            .agent
            .post(&format!("{}{path}", self.base))
            .send_json(body);
        std::future::ready(
            Self::answer(&what, r).and_then(|v| v.ok_or_else(|| anyhow!("{what}: not found"))),
        )
    }
}

/// A light client following a validator's API, blocking: [`ChainView`] over [`UreqApi`].
pub struct HttpChain {
    view: ChainView<UreqApi>,
}

impl HttpChain {
    /// Follows the chain of `genesis` through the API at `base` (e.g. `http://127.0.0.1:26657`).
    pub fn new(base: &str, genesis: &Genesis) -> Result<HttpChain> {
        Ok(HttpChain {
            view: ChainView::new(UreqApi::new(base), genesis)?,
        })
    }

    /// Follows the chain of `genesis` through `base` from `checkpoint` (see
    /// [`ChainView::resume`]).
    pub fn resume(
        base: &str,
        genesis: &Genesis,
        checkpoint: &super::Checkpoint,
    ) -> Result<HttpChain> {
        Ok(HttpChain {
            view: ChainView::resume(UreqApi::new(base), genesis, checkpoint)?,
        })
    }

    /// What this view trusts now (see [`ChainView::checkpoint`]).
    pub fn checkpoint(&self, genesis: &Genesis) -> Result<super::Checkpoint> {
        self.view.checkpoint(genesis)
    }

    /// The asynchronous view underneath.
    pub fn view(&self) -> &ChainView<UreqApi> {
        &self.view
    }

    /// The trusted header.
    pub fn trusted(&self) -> Result<Header> {
        self.view.trusted()
    }

    /// Advances to the newest certified header; returns the trusted height (see
    /// [`ChainView::sync`]).
    pub fn sync(&self) -> Result<u64> {
        block_on(self.view.sync())
    }

    /// The chain id of the trusted header.
    pub fn chain_id(&self) -> u64 {
        self.view.chain_id()
    }

    /// The epoch of the trusted state (updated by [`HttpChain::sync`]).
    pub fn epoch(&self) -> u64 {
        self.view.epoch()
    }

    /// A deal, proven (None: no such deal — ended, cancelled or never created).
    pub fn deal(&self, id: u64) -> Result<Option<Deal>> {
        block_on(self.view.deal(id))
    }

    /// Chain-wide values, proven.
    pub fn globals(&self) -> Result<Globals> {
        block_on(self.view.globals())
    }

    /// This epoch's proof work of a slot, proven (default when nothing happened yet).
    pub fn work(&self, deal: u64, slot: u32) -> Result<Work> {
        block_on(self.view.work(deal, slot))
    }

    /// The redeemed-receipt state of (deal, provider), proven.
    pub fn receipt_state(&self, deal: u64, provider: &Address) -> Result<ReceiptState> {
        block_on(self.view.receipt_state(deal, provider))
    }

    /// A provider record, proven.
    pub fn provider(&self, a: &Address) -> Result<Option<Provider>> {
        block_on(self.view.provider(a))
    }

    /// A deputy record, proven.
    pub fn deputy(&self, a: &Address) -> Result<Option<Deputy>> {
        block_on(self.view.deputy(a))
    }

    /// An account, proven (default when absent).
    pub fn account(&self, a: &Address) -> Result<Account> {
        block_on(self.view.account(a))
    }

    /// Submits a signed transaction; returns its hash.
    pub fn submit(&self, tx: &SignedTx) -> Result<String> {
        block_on(self.view.submit(tx))
    }

    /// The status of a submitted transaction (as the API reports it: a hint; effects are
    /// read back through proven state).
    pub fn tx_status(&self, hash: &str) -> Result<TxStatus> {
        block_on(self.view.tx_status(hash))
    }

    /// The result of an included transaction as the API reports it (`{outcome, events}`):
    /// a hint (a new deal's id, say), to be confirmed by proven reads.
    pub fn tx_result(&self, hash: &str) -> Result<Value> {
        block_on(self.view.tx_result(hash))
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
            .get(&format!("{}/events", self.view.api().base()))
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

impl Signer {
    /// Signs `msg` with the next nonce and the chain's minimum fee, and submits it.
    pub fn send(&self, chain: &HttpChain, msg: Msg) -> Result<String> {
        block_on(self.send_via(chain.view(), msg))
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
