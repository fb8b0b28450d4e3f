//! Genesis, blocks and the chain: executing, proposing and importing blocks atomically
//! against the authenticated store.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::{AuthError, AuthStore, StateProof};
use crate::bytes::{Address, Blob, H256};
use crate::codec;
use crate::exec::{Env, Event, Outcome, TxResult};
use crate::params::Params;
use crate::state::{Account, State, Validator};
use crate::tx::SignedTx;
use crate::Amount;

/// A funded account at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisAccount {
    /// Address.
    pub address: Address,
    /// Balance.
    #[serde(with = "crate::amount")]
    pub balance: Amount,
}

/// A validator at genesis (its stake is minted with it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisValidator {
    /// Account.
    pub account: Address,
    /// Consensus public key.
    pub consensus_key: Blob,
    /// Self-stake.
    #[serde(with = "crate::amount")]
    pub stake: Amount,
}

/// The genesis document (`genesis.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Chain id.
    pub chain_id: u64,
    /// Genesis time (milliseconds since the Unix epoch), the lower bound of block times.
    pub time_ms: u64,
    /// Parameters.
    pub params: Params,
    /// Funded accounts.
    pub accounts: Vec<GenesisAccount>,
    /// Validators.
    pub validators: Vec<GenesisValidator>,
}

/// Largest encoded block, header and transactions: the one byte budget for building,
/// checking, storing, serving and syncing blocks (a proposer packs transactions up to it;
/// every checker refuses a block above it; the block log and sync read blocks back with
/// it). A transaction is at most 16 MiB (`Params::validate`), so any admissible
/// transaction fits into a block of its own.
pub const MAX_BLOCK_BYTES: usize = 32 << 20;

/// Room kept for the header and the framing of the transaction list when packing.
const BLOCK_FRAMING: usize = 4096;

/// Errors of genesis and block import.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The genesis document is inconsistent.
    #[error("bad genesis: {0}")]
    Genesis(String),
    /// The block does not extend the tip.
    #[error("block {got} does not extend the tip at {tip}")]
    NotNext {
        /// Tip height.
        tip: u64,
        /// Block height.
        got: u64,
    },
    /// A header field disagrees with execution.
    #[error("header mismatch: {0}")]
    Mismatch(&'static str),
    /// A transaction in the block is invalid.
    #[error("transaction {index} invalid: {reason}")]
    InvalidTx {
        /// Position.
        index: usize,
        /// Why.
        reason: String,
    },
    /// Too many transactions or time going backwards.
    #[error("block rejected: {0}")]
    Rejected(String),
    /// The authenticated store failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// A block header. Its hash is what consensus finalizes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Chain id.
    pub chain_id: u64,
    /// Height (genesis is 0).
    pub height: u64,
    /// Hash of the parent header (the genesis hash for height 1).
    pub parent: H256,
    /// The proposing validator's account.
    pub proposer: Address,
    /// Proposer's time in milliseconds; never below the parent's.
    pub time_ms: u64,
    /// `H(tx_hash_1 ‖ … ‖ tx_hash_n)`.
    pub tx_root: H256,
    /// `H(encode(results))`.
    pub results_root: H256,
    /// Root of the state after this block.
    pub state_root: H256,
    /// Hash of the active validator set after this block (signs the next blocks).
    pub validators_hash: H256,
    /// Consensus epoch after this block (`set_epoch`): the simplex instance that finalizes
    /// the next blocks. A block whose epoch differs from its parent's is the last one its
    /// epoch's instance finalizes.
    pub consensus_epoch: u64,
}

impl Header {
    /// The header hash: SHA-256 of its canonical encoding.
    pub fn hash(&self) -> H256 {
        H256(Sha256::digest(codec::encode(self)).into())
    }
}

/// A block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Header.
    pub header: Header,
    /// Transactions.
    pub txs: Vec<SignedTx>,
}

/// `H(tx_hash_1 ‖ … ‖ tx_hash_n)`.
pub fn tx_root(txs: &[SignedTx]) -> H256 {
    let mut h = Sha256::new();
    for t in txs {
        h.update(t.hash().0);
    }
    H256(h.finalize().into())
}

fn results_root(r: &[TxResult]) -> H256 {
    H256(Sha256::digest(codec::encode(r)).into())
}

/// Hash of a validator set.
pub fn validators_hash(set: &[crate::state::SetMember]) -> H256 {
    H256(Sha256::digest(codec::encode(set)).into())
}

/// The chain: current state, authenticated store and tip.
pub struct Chain {
    /// Current state.
    pub state: State,
    /// Authenticated store (all versions).
    pub auth: AuthStore,
    /// Genesis hash.
    pub genesis_hash: H256,
    /// Hash of the height-0 header (the first consensus epoch builds on it).
    pub genesis_header_hash: H256,
    /// Tip header.
    pub tip: Header,
}

/// A block executed against the tip but not committed (a proposal or a block under
/// verification); [`Chain::commit`] makes it the tip.
pub struct Candidate {
    /// The block.
    pub block: Block,
    /// The state after it.
    pub state: State,
    staged: crate::auth::Staged,
    /// Results of its transactions.
    pub results: Vec<TxResult>,
    /// Events of the block before its transactions.
    pub block_events: Vec<Event>,
}

/// What a block executes on.
struct Base<'a> {
    state: &'a State,
    tip: &'a Header,
    layers: Vec<&'a crate::auth::Staged>,
}

/// An executed block with its results.
#[derive(Clone, Debug)]
pub struct Executed {
    /// The block.
    pub block: Block,
    /// Results of its transactions.
    pub results: Vec<TxResult>,
    /// Events of the block (epoch processing) before its transactions.
    pub block_events: Vec<Event>,
}

impl Chain {
    /// The chain at genesis (height 0, version 0 of the store).
    pub fn from_genesis(g: &Genesis) -> Result<Chain, BlockError> {
        g.params
            .validate()
            .map_err(|e| BlockError::Genesis(e.into()))?;
        let mut st = State::new(g.chain_id, g.params.clone());
        let mut supply: Amount = 0;
        for a in &g.accounts {
            if st.accounts.contains(&a.address) {
                return Err(BlockError::Genesis(format!("account {} twice", a.address)));
            }
            supply = supply
                .checked_add(a.balance)
                .ok_or_else(|| BlockError::Genesis("supply overflows".into()))?;
            st.accounts.insert(
                a.address,
                Account {
                    balance: a.balance,
                    ..Account::default()
                },
            );
        }
        for v in &g.validators {
            if st.validators.contains(&v.account) {
                return Err(BlockError::Genesis(format!(
                    "validator {} twice",
                    v.account
                )));
            }
            crate::light::parse_consensus_key(&v.consensus_key.0)
                .map_err(|e| BlockError::Genesis(format!("validator {}: {e}", v.account)))?;
            supply = supply
                .checked_add(v.stake)
                .ok_or_else(|| BlockError::Genesis("supply overflows".into()))?;
            st.validators.insert(
                v.account,
                Validator {
                    consensus_key: v.consensus_key.clone(),
                    self_stake: v.stake,
                    delegated: 0,
                    commission_bps: 0,
                    jailed_until: 0,
                    offences: 0,
                },
            );
        }
        st.g.supply = supply;
        st.g.validators = st.next_validator_set();
        crate::light::participants(&st.g.validators)
            .map_err(|e| BlockError::Genesis(e.to_string()))?;
        if st.g.validators.is_empty() {
            return Err(BlockError::Genesis(
                "no validator has the minimum self-stake".into(),
            ));
        }
        let genesis_hash = H256(Sha256::digest(codec::encode(g)).into());
        st.g.beacon = H256(
            Sha256::new()
                .chain_update(b"nilstore/beacon/v1/genesis")
                .chain_update(genesis_hash.0)
                .finalize()
                .into(),
        );
        st.g.next_epoch_height = g.params.epoch_blocks;
        let mut auth = AuthStore::default();
        let changes = st.take_changes();
        let state_root = auth.commit(changes, 0)?;
        let tip = Header {
            chain_id: g.chain_id,
            height: 0,
            parent: genesis_hash,
            proposer: Address::ZERO,
            time_ms: g.time_ms,
            tx_root: tx_root(&[]),
            results_root: results_root(&[]),
            state_root,
            validators_hash: validators_hash(&st.g.validators),
            consensus_epoch: st.g.set_epoch,
        };
        Ok(Chain {
            state: st,
            auth,
            genesis_hash,
            genesis_header_hash: tip.hash(),
            tip,
        })
    }

    /// The state, header and unwritten tree layers a new block builds on.
    fn base<'a>(&'a self, ancestors: &[&'a Candidate]) -> Result<Base<'a>, BlockError> {
        let mut tip = &self.tip;
        for a in ancestors {
            if a.block.header.parent != tip.hash() || a.block.header.height != tip.height + 1 {
                return Err(BlockError::Mismatch("ancestors do not chain to the tip"));
            }
            tip = &a.block.header;
        }
        Ok(Base {
            state: ancestors.last().map_or(&self.state, |a| &a.state),
            tip,
            layers: ancestors.iter().map(|a| &a.staged).collect(),
        })
    }

    /// Executes `txs` on a copy of the state as block `height`; returns the new state, its
    /// store changes, the results and the block events.
    fn run(
        base: &Base<'_>,
        env: &Env<'_>,
        height: u64,
        txs: &[SignedTx],
        keep_invalid: bool,
    ) -> (State, Vec<TxResult>, Vec<Event>, Vec<SignedTx>) {
        let mut st = base.state.clone();
        let block_events = st.begin_block(height, &base.tip.hash());
        let mut results = Vec::with_capacity(txs.len());
        let mut kept = Vec::with_capacity(txs.len());
        for t in txs {
            let len = codec::encode(t).len();
            let r = st.apply_tx(env, t, len);
            if !keep_invalid && matches!(r.outcome, Outcome::Invalid { .. }) {
                continue;
            }
            results.push(r);
            kept.push(t.clone());
        }
        (st, results, block_events, kept)
    }

    /// Builds and executes the next block from candidate transactions (invalid ones are
    /// left out, at most `max_block_txs` and [`MAX_BLOCK_BYTES`] are taken) without
    /// committing it.
    pub fn build(
        &self,
        env: &Env<'_>,
        proposer: Address,
        time_ms: u64,
        candidates: &[SignedTx],
    ) -> Result<Candidate, BlockError> {
        self.build_on(&[], env, proposer, time_ms, candidates)
    }

    /// [`Chain::build`] on top of executed, uncommitted ancestors (oldest first; the first
    /// extends the tip): proposing on a notarized parent that is not final yet.
    pub fn build_on(
        &self,
        ancestors: &[&Candidate],
        env: &Env<'_>,
        proposer: Address,
        time_ms: u64,
        candidates: &[SignedTx],
    ) -> Result<Candidate, BlockError> {
        let base = self.base(ancestors)?;
        let height = base.tip.height + 1;
        let max = base.state.g.params.max_block_txs as usize;
        // Within the byte budget, in order (later transactions of a sender need the earlier
        // ones): each costs its encoding and at most 10 bytes of length prefix.
        let mut room = MAX_BLOCK_BYTES - BLOCK_FRAMING;
        let fits = candidates
            .iter()
            .take(max)
            .take_while(|t| {
                let len = codec::encode(*t).len() + 10;
                let ok = len <= room;
                room = room.saturating_sub(len);
                ok
            })
            .count();
        let take = &candidates[..fits];
        let (mut st, results, block_events, txs) = Chain::run(&base, env, height, take, false);
        let (state_root, staged) = self
            .auth
            .stage_on(&base.layers, st.take_changes(), height)?;
        let header = Header {
            chain_id: st.g.chain_id,
            height,
            parent: base.tip.hash(),
            proposer,
            time_ms: time_ms.max(base.tip.time_ms),
            tx_root: tx_root(&txs),
            results_root: results_root(&results),
            state_root,
            validators_hash: validators_hash(&st.g.validators),
            consensus_epoch: st.g.set_epoch,
        };
        Ok(Candidate {
            block: Block { header, txs },
            state: st,
            staged,
            results,
            block_events,
        })
    }

    /// Builds and commits the next block (single-node and tests).
    pub fn propose(
        &mut self,
        env: &Env<'_>,
        proposer: Address,
        time_ms: u64,
        candidates: &[SignedTx],
    ) -> Result<Executed, BlockError> {
        let c = self.build(env, proposer, time_ms, candidates)?;
        self.commit(c)
    }

    /// Checks a block against the tip by re-executing it; returns it executed but not
    /// committed.
    pub fn check(&self, env: &Env<'_>, block: &Block) -> Result<Candidate, BlockError> {
        self.check_on(&[], env, block)
    }

    /// [`Chain::check`] on top of executed, uncommitted ancestors (oldest first).
    pub fn check_on(
        &self,
        ancestors: &[&Candidate],
        env: &Env<'_>,
        block: &Block,
    ) -> Result<Candidate, BlockError> {
        let base = self.base(ancestors)?;
        let h = &block.header;
        if h.height != base.tip.height + 1 {
            return Err(BlockError::NotNext {
                tip: base.tip.height,
                got: h.height,
            });
        }
        if h.chain_id != base.state.g.chain_id {
            return Err(BlockError::Mismatch("chain id"));
        }
        if h.parent != base.tip.hash() {
            return Err(BlockError::Mismatch("parent"));
        }
        if h.time_ms < base.tip.time_ms {
            return Err(BlockError::Rejected("time goes backwards".into()));
        }
        if block.txs.len() > base.state.g.params.max_block_txs as usize {
            return Err(BlockError::Rejected("too many transactions".into()));
        }
        let bytes = codec::encode(block).len();
        if bytes > MAX_BLOCK_BYTES {
            return Err(BlockError::Rejected(format!(
                "block of {bytes} bytes, above {MAX_BLOCK_BYTES}"
            )));
        }
        if h.tx_root != tx_root(&block.txs) {
            return Err(BlockError::Mismatch("tx root"));
        }
        let (mut st, results, block_events, _) = Chain::run(&base, env, h.height, &block.txs, true);
        if let Some((index, r)) = results
            .iter()
            .enumerate()
            .find(|(_, r)| matches!(r.outcome, Outcome::Invalid { .. }))
        {
            return Err(BlockError::InvalidTx {
                index,
                reason: format!("{:?}", r.outcome),
            });
        }
        if h.results_root != results_root(&results) {
            return Err(BlockError::Mismatch("results root"));
        }
        if h.validators_hash != validators_hash(&st.g.validators) {
            return Err(BlockError::Mismatch("validators hash"));
        }
        if h.consensus_epoch != st.g.set_epoch {
            return Err(BlockError::Mismatch("consensus epoch"));
        }
        let (root, staged) = self
            .auth
            .stage_on(&base.layers, st.take_changes(), h.height)?;
        if root != h.state_root {
            return Err(BlockError::Mismatch("state root"));
        }
        Ok(Candidate {
            block: block.clone(),
            state: st,
            staged,
            results,
            block_events,
        })
    }

    /// Commits an executed candidate that extends the tip.
    pub fn commit(&mut self, c: Candidate) -> Result<Executed, BlockError> {
        let h = &c.block.header;
        if h.height != self.tip.height + 1 || h.parent != self.tip.hash() {
            return Err(BlockError::NotNext {
                tip: self.tip.height,
                got: h.height,
            });
        }
        self.auth.write(c.staged, h.height, h.state_root)?;
        self.state = c.state;
        self.tip = c.block.header.clone();
        Ok(Executed {
            block: c.block,
            results: c.results,
            block_events: c.block_events,
        })
    }

    /// Imports a block (from consensus or the block log): checks it extends the tip,
    /// re-executes it, and commits only if every header field matches.
    pub fn import(&mut self, env: &Env<'_>, block: &Block) -> Result<Executed, BlockError> {
        let c = self.check(env, block)?;
        self.commit(c)
    }

    /// A state record with its proof at `height`.
    pub fn prove(&self, key: &[u8], height: u64) -> Result<StateProof, AuthError> {
        self.auth.prove(key, height)
    }
}

/// Block sync between validators (p2p channel 4): a validator that is behind asks peers
/// for the finalized blocks after its tip (`Want`) and they answer with (block,
/// certificate) pairs in height order (`Have`), each block in its canonical encoding and a
/// certificate on the last block of each run. Defined here, beside the block, so that every
/// reader of these bytes (the validator, the fuzzer) decodes them one way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncMessage {
    /// Send the finalized blocks from this height on.
    Want {
        /// First height wanted.
        from: u64,
    },
    /// Finalized blocks in height order, with the certificates the sender holds.
    Have {
        /// (canonical block, finalization certificate) pairs.
        blocks: Vec<(Blob, Option<Blob>)>,
    },
}

/// Most blocks in one `Have`.
pub const SYNC_MAX_BLOCKS: u64 = 64;

/// Largest certificate a `Have` carries with a block (a finalization signed by the
/// validator set: an aggregate signature and a signer bitmap, far below this).
pub const MAX_CERT_BYTES: usize = 64 << 10;

/// Largest sync message: one block of the full budget with its certificate (a `Have`
/// carries several blocks only while they fit into [`MAX_BLOCK_BYTES`] together), plus
/// the framing. So every block the chain can finalize also syncs.
pub const MAX_SYNC_BYTES: usize = MAX_BLOCK_BYTES + MAX_CERT_BYTES + 4096;

impl SyncMessage {
    /// Decodes a peer's message (strictly: one encoding per message).
    pub fn decode(bytes: &[u8]) -> Result<SyncMessage, codec::CodecError> {
        codec::decode(bytes, MAX_SYNC_BYTES)
    }

    /// The answer to `Want { from }`: consecutive blocks from `from` that `lookup` has
    /// (canonical block, certificate), at most [`SYNC_MAX_BLOCKS`], and together at most
    /// [`MAX_BLOCK_BYTES`] unless the first alone is that large — so the answer always
    /// fits into [`MAX_SYNC_BYTES`]. `None` when `lookup` has no block at `from`, or its
    /// block or certificate there is above the budget (which the chain never finalizes).
    pub fn have(
        from: u64,
        mut lookup: impl FnMut(u64) -> Option<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Option<SyncMessage> {
        let mut blocks = Vec::new();
        let mut size = 0usize;
        for h in from..from.saturating_add(SYNC_MAX_BLOCKS) {
            let Some((b, c)) = lookup(h) else { break };
            let cert_len = c.as_ref().map_or(0, Vec::len);
            if b.len() > MAX_BLOCK_BYTES || cert_len > MAX_CERT_BYTES {
                break;
            }
            let len = b.len() + cert_len;
            if !blocks.is_empty() && size + len > MAX_BLOCK_BYTES {
                break;
            }
            size += len;
            blocks.push((Blob(b), c.map(Blob)));
        }
        (!blocks.is_empty()).then_some(SyncMessage::Have { blocks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks_of(msg: &SyncMessage) -> usize {
        match msg {
            SyncMessage::Have { blocks } => blocks.len(),
            SyncMessage::Want { .. } => 0,
        }
    }

    /// Regression (issue 17 item 3): sync messages were capped at 8 MiB while a block may
    /// take 32 MiB, so a validator behind a large block could never sync past it.
    #[test]
    fn the_largest_block_syncs() {
        let big = vec![7u8; MAX_BLOCK_BYTES];
        let cert = vec![1u8; MAX_CERT_BYTES];
        let msg = SyncMessage::have(5, |h| (h == 5).then(|| (big.clone(), Some(cert.clone()))))
            .expect("one block");
        let bytes = codec::encode(&msg);
        assert!(bytes.len() <= MAX_SYNC_BYTES, "{} bytes", bytes.len());
        assert_eq!(SyncMessage::decode(&bytes), Ok(msg));
    }

    #[test]
    fn a_have_stays_within_the_budget_and_the_block_count() {
        // Blocks of a third of the budget: three fit only if the certificates do not push
        // them over, so the answer stops at the byte budget, not the count.
        let third = vec![0u8; MAX_BLOCK_BYTES / 3];
        let msg = SyncMessage::have(1, |_| Some((third.clone(), Some(vec![2u8; 96])))).unwrap();
        assert_eq!(blocks_of(&msg), 2);
        let bytes = codec::encode(&msg);
        assert!(bytes.len() <= MAX_SYNC_BYTES);
        assert_eq!(SyncMessage::decode(&bytes), Ok(msg));
        // Small blocks stop at the count; a gap stops the run; nothing at `from` is None.
        let msg = SyncMessage::have(1, |_| Some((vec![1u8; 100], None))).unwrap();
        assert_eq!(blocks_of(&msg) as u64, SYNC_MAX_BLOCKS);
        let msg = SyncMessage::have(1, |h| (h < 4).then(|| (vec![1u8; 100], None))).unwrap();
        assert_eq!(blocks_of(&msg), 3);
        assert_eq!(SyncMessage::have(1, |_| None), None);
        // A block above the budget (never finalized) is not sent, and ends the run.
        let msg = SyncMessage::have(1, |h| {
            Some((
                vec![0u8; if h == 2 { MAX_BLOCK_BYTES + 1 } else { 10 }],
                None,
            ))
        })
        .unwrap();
        assert_eq!(blocks_of(&msg), 1);
        // Heights near u64::MAX do not overflow.
        let msg = SyncMessage::have(u64::MAX - 1, |_| Some((vec![1u8], None)));
        assert_eq!(msg.as_ref().map(blocks_of), Some(1));
    }
}
