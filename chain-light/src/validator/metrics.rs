//! Prometheus metrics of the validator (`GET /metrics`).

use crate::block::{Chain, Executed};
use crate::Outcome;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The validator's metrics.
pub struct Metrics {
    registry: Registry,
    /// Finalized height.
    pub height: Gauge,
    /// Current epoch.
    pub epoch: Gauge,
    /// Transactions waiting.
    pub mempool: Gauge,
    /// Live deals.
    pub deals: Gauge,
    /// Registered providers.
    pub providers: Gauge,
    /// Transactions applied.
    pub txs_ok: Counter,
    /// Transactions whose message failed (fee taken).
    pub txs_failed: Counter,
    /// Finalizations reported by consensus.
    pub finalizations: Counter,
    /// Notarizations reported by consensus.
    pub notarizations: Counter,
    /// Nullified views (timeouts).
    pub nullifications: Counter,
    /// Consensus faults observed and reported to the chain.
    pub faults_reported: Counter,
    /// The consensus epoch the engine runs (validator-set generation).
    pub consensus_epoch: Gauge,
    /// Transactions per block.
    pub block_txs: Histogram,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric under the `nilstore_chain_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("nilstore_chain");
        let m = Metrics {
            height: Gauge::default(),
            epoch: Gauge::default(),
            mempool: Gauge::default(),
            deals: Gauge::default(),
            providers: Gauge::default(),
            txs_ok: Counter::default(),
            txs_failed: Counter::default(),
            finalizations: Counter::default(),
            notarizations: Counter::default(),
            nullifications: Counter::default(),
            faults_reported: Counter::default(),
            consensus_epoch: Gauge::default(),
            block_txs: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            registry: Registry::default(),
        };
        registry.register("height", "Finalized block height", m.height.clone());
        registry.register("epoch", "Current epoch", m.epoch.clone());
        registry.register(
            "mempool_transactions",
            "Transactions waiting",
            m.mempool.clone(),
        );
        registry.register("deals", "Live deals", m.deals.clone());
        registry.register("providers", "Registered providers", m.providers.clone());
        registry.register(
            "transactions_applied",
            "Transactions applied",
            m.txs_ok.clone(),
        );
        registry.register(
            "transactions_failed",
            "Transactions whose message failed (fee and nonce taken)",
            m.txs_failed.clone(),
        );
        registry.register(
            "finalizations",
            "Finalizations reported by consensus",
            m.finalizations.clone(),
        );
        registry.register(
            "notarizations",
            "Notarizations reported by consensus",
            m.notarizations.clone(),
        );
        registry.register(
            "nullifications",
            "Views nullified (timeouts)",
            m.nullifications.clone(),
        );
        registry.register(
            "faults_reported",
            "Consensus faults (conflicting votes) observed and reported",
            m.faults_reported.clone(),
        );
        registry.register(
            "consensus_epoch",
            "Consensus epoch of the running engine (validator-set generation)",
            m.consensus_epoch.clone(),
        );
        registry.register(
            "block_transactions",
            "Transactions per block",
            m.block_txs.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Gauges from the tip.
    pub fn observe_tip(&self, chain: &Chain) {
        let st = &chain.state;
        self.height.set(chain.tip.height as i64);
        self.epoch.set(st.g.epoch as i64);
        self.deals.set(st.deals.len() as i64);
        self.providers.set(st.providers.len() as i64);
    }

    /// After a committed block.
    pub fn observe_block(&self, ex: &Executed, chain: &Chain, mempool: usize) {
        self.observe_tip(chain);
        self.mempool.set(mempool as i64);
        self.block_txs.observe(ex.block.txs.len() as f64);
        for r in &ex.results {
            match r.outcome {
                Outcome::Ok => self.txs_ok.inc(),
                _ => self.txs_failed.inc(),
            };
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
