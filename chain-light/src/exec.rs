//! The state transition function (docs/chain.md): blocks, transactions, epochs.
//!
//! Execution is a total, deterministic function of (state, block): no clock, no randomness
//! but the beacon, no hash-map iteration. A transaction that fails its envelope checks
//! (signature, chain id, nonce, fee) is `Invalid` and changes nothing; one whose message
//! fails is `Failed`: it pays its fee and uses its nonce, and its message changes nothing
//! (every handler checks everything before its first write).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasm_core::kzg::KzgSettings;
use wasm_core::proof::{self, FraudVerdict, TripleProof};

use crate::bytes::{Address, Blob, G1Bytes, Sig65, H256};
use crate::crypto::{self, SigError};
use crate::params::{bps_of, mul_div, Params};
use crate::state::{
    Account, Deal, Deputy, Provider, ProviderStatus, ReceiptState, SetMember, Slot, SlotStatus,
    State, Unbonding, Validator,
};
use crate::tx::{Attestation, FraudEvidence, Msg, ProofItem, Receipt, Served, SignedTx};
use crate::Amount;

/// Verifies consensus-fault evidence for a validator (the seam to the consensus engine,
/// whose signature scheme defines what evidence is).
pub trait FaultVerifier: Send + Sync {
    /// Checks that `evidence` proves a fault by the validator with `consensus_key`, signed
    /// in one of the consensus epochs still open to evidence (`sets`: epoch and its
    /// validator set). Returns a stable id of the fault (the same fault always gives the same
    /// id, however it is encoded, so it is punished once).
    fn verify(
        &self,
        chain_id: u64,
        sets: &[(u64, &[SetMember])],
        consensus_key: &[u8],
        evidence: &[u8],
    ) -> Result<H256, String>;
}

/// A verifier that accepts no evidence (for chains whose engine reports none).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoFaults;

impl FaultVerifier for NoFaults {
    fn verify(
        &self,
        _: u64,
        _: &[(u64, &[SetMember])],
        _: &[u8],
        _: &[u8],
    ) -> Result<H256, String> {
        Err("this chain's engine has no fault evidence verifier".into())
    }
}

/// What execution needs besides the state.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// KZG settings (the Ethereum setup).
    pub kzg: &'a KzgSettings,
    /// Consensus fault verifier.
    pub faults: &'a dyn FaultVerifier,
}

/// Why a transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", content = "detail", rename_all = "snake_case")]
pub enum TxError {
    /// Bad signature.
    #[error("bad signature: {0}")]
    Signature(String),
    /// Wrong chain id.
    #[error("wrong chain id: {got}, this chain is {want}")]
    WrongChain {
        /// This chain.
        want: u64,
        /// The transaction's.
        got: u64,
    },
    /// Nonce is not the account's next.
    #[error("bad nonce: expected {want}, got {got}")]
    Nonce {
        /// Expected.
        want: u64,
        /// Given.
        got: u64,
    },
    /// Fee below the minimum.
    #[error("fee {got} below the minimum {min}")]
    FeeTooLow {
        /// Minimum.
        #[serde(with = "crate::amount")]
        min: Amount,
        /// Given.
        #[serde(with = "crate::amount")]
        got: Amount,
    },
    /// Not enough funds.
    #[error("insufficient {what}: need {need}, have {have}")]
    Insufficient {
        /// Balance, escrow, stake…
        what: String,
        /// Needed.
        #[serde(with = "crate::amount")]
        need: Amount,
        /// Available.
        #[serde(with = "crate::amount")]
        have: Amount,
    },
    /// The encoded transaction is too large.
    #[error("transaction too large: {got} > {limit} bytes")]
    TooLarge {
        /// Size.
        got: usize,
        /// Limit.
        limit: usize,
    },
    /// Something named does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The sender may not do this.
    #[error("not allowed: {0}")]
    Unauthorized(String),
    /// An argument is out of range or malformed.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// Conflicts with current state (exists already, stale generation, replayed evidence).
    #[error("conflict: {0}")]
    Conflict(String),
    /// No placement satisfies the deal.
    #[error("not enough eligible providers: need {need} distinct operators, have {have}")]
    NoPlacement {
        /// Slots.
        need: usize,
        /// Eligible operators.
        have: usize,
    },
    /// A proof or evidence does not verify.
    #[error("proof rejected: {0}")]
    BadProof(String),
    /// Arithmetic would overflow.
    #[error("amount overflow")]
    Overflow,
}

impl From<SigError> for TxError {
    fn from(e: SigError) -> TxError {
        TxError::Signature(e.to_string())
    }
}

/// Outcome of one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Applied.
    Ok,
    /// Fee and nonce taken; the message changed nothing.
    Failed {
        /// Why.
        error: TxError,
    },
    /// Refused at the envelope; nothing changed.
    Invalid {
        /// Why.
        error: TxError,
    },
}

/// Why a slot was evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvictReason {
    /// Health fell through missing proofs.
    MissedProofs,
    /// Proven fraud (bad bytes) or a wrong proof.
    Fraud,
    /// Deputies proved non-response.
    NonResponse,
}

/// Events for feeds and clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A new epoch began.
    EpochStarted {
        /// Epoch.
        epoch: u64,
        /// Its beacon.
        beacon: H256,
    },
    /// A deal was created and placed.
    DealCreated {
        /// Deal.
        deal: u64,
        /// Owner.
        owner: Address,
        /// Providers by slot.
        providers: Vec<Address>,
        /// Rent of the reserved capacity for the term, moved from escrow to reserved rent.
        #[serde(with = "crate::amount")]
        rent: Amount,
    },
    /// New content committed.
    ContentCommitted {
        /// Deal.
        deal: u64,
        /// Generation.
        generation: u64,
        /// Manifest root.
        manifest_root: G1Bytes,
        /// Total MDUs.
        total_mdus: u64,
    },
    /// A deal ended (expired or cancelled); providers may delete its data.
    DealEnded {
        /// Deal.
        deal: u64,
        /// Cancelled by the owner (else expired).
        cancelled: bool,
        /// Refunded to the owner.
        #[serde(with = "crate::amount")]
        refund: Amount,
    },
    /// Storage proofs accepted.
    Proven {
        /// Provider.
        provider: Address,
        /// Proofs accepted.
        count: u32,
    },
    /// A provider was slashed.
    ProviderSlashed {
        /// Provider.
        provider: Address,
        /// Amount taken.
        #[serde(with = "crate::amount")]
        amount: Amount,
        /// Why.
        reason: EvictReason,
    },
    /// A slot left its provider and entered repair.
    SlotEvicted {
        /// Deal.
        deal: u64,
        /// Slot.
        slot: u32,
        /// Provider evicted.
        provider: Address,
        /// Why.
        reason: EvictReason,
        /// The replacement, if one was placed.
        pending: Option<Address>,
    },
    /// A repairing slot got a replacement provider later.
    RepairAssigned {
        /// Deal.
        deal: u64,
        /// Slot.
        slot: u32,
        /// New provider.
        pending: Address,
    },
    /// A repair completed; the slot is active again.
    RepairCompleted {
        /// Deal.
        deal: u64,
        /// Slot.
        slot: u32,
        /// Provider now responsible.
        provider: Address,
    },
    /// A receipt was redeemed.
    ReceiptRedeemed {
        /// Deal.
        deal: u64,
        /// Provider.
        provider: Address,
        /// Paid from escrow.
        #[serde(with = "crate::amount")]
        paid: Amount,
        /// Burned of it.
        #[serde(with = "crate::amount")]
        burned: Amount,
    },
    /// A deputy attestation was counted.
    Attested {
        /// Deal.
        deal: u64,
        /// Slot.
        slot: u32,
        /// Deputy.
        deputy: Address,
        /// Distinct attestations so far this window.
        count: u32,
    },
    /// A validator was slashed and jailed.
    ValidatorSlashed {
        /// Validator.
        validator: Address,
        /// Taken from self-stake and delegations.
        #[serde(with = "crate::amount")]
        amount: Amount,
        /// Jailed until (exclusive).
        jailed_until: u64,
    },
    /// The active validator set changed.
    ValidatorSetChanged {
        /// New set.
        validators: Vec<SetMember>,
    },
    /// Parameters changed.
    ParamsChanged,
}

/// The result of one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxResult {
    /// Transaction hash.
    pub hash: H256,
    /// Outcome.
    pub outcome: Outcome,
    /// Events it caused.
    pub events: Vec<Event>,
}

fn h256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The beacon of the repair challenges of (deal, slot) under the epoch beacon:
/// `SHA-256("nilstore/repair/v1" ‖ beacon ‖ deal ‖ slot)` (big-endian integers).
pub fn repair_beacon(beacon: &H256, deal: u64, slot: u32) -> H256 {
    H256(h256(&[
        b"nilstore/repair/v1",
        &beacon.0,
        &deal.to_be_bytes(),
        &slot.to_be_bytes(),
    ]))
}

const MAX_ENDPOINTS: usize = 8;
const MAX_ENDPOINT_LEN: usize = 256;
const MAX_PEER_ID_LEN: usize = 128;
const MAX_DELEGATES: usize = 16;

fn check_endpoints(peer_id: &str, endpoints: &[String]) -> Result<(), TxError> {
    if peer_id.is_empty() || peer_id.len() > MAX_PEER_ID_LEN || !peer_id.is_ascii() {
        return Err(TxError::Invalid("peer id: 1..=128 ASCII characters".into()));
    }
    if endpoints.is_empty() || endpoints.len() > MAX_ENDPOINTS {
        return Err(TxError::Invalid(format!("1..={MAX_ENDPOINTS} endpoints")));
    }
    for e in endpoints {
        if !e.starts_with('/')
            || e.len() > MAX_ENDPOINT_LEN
            || !e.is_ascii()
            || e.chars()
                .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        {
            return Err(TxError::Invalid(format!(
                "endpoint {e:?} is not a multiaddr (≤ {MAX_ENDPOINT_LEN} ASCII, starting with '/')"
            )));
        }
    }
    Ok(())
}

fn add(a: Amount, b: Amount) -> Result<Amount, TxError> {
    a.checked_add(b).ok_or(TxError::Overflow)
}

fn mul(a: Amount, b: Amount) -> Result<Amount, TxError> {
    a.checked_mul(b).ok_or(TxError::Overflow)
}

impl State {
    fn params(&self) -> &Params {
        &self.g.params
    }

    fn balance(&self, a: &Address) -> Amount {
        self.accounts.get(a).map_or(0, |x| x.balance)
    }

    fn need_balance(&self, a: &Address, need: Amount) -> Result<(), TxError> {
        let have = self.balance(a);
        if have < need {
            return Err(TxError::Insufficient {
                what: "balance".into(),
                need,
                have,
            });
        }
        Ok(())
    }

    /// Takes `amount` from a balance checked beforehand (saturating: never negative).
    fn take(&mut self, a: &Address, amount: Amount) {
        if amount == 0 {
            return;
        }
        if let Some(acc) = self.accounts.get_mut(a) {
            acc.balance = acc.balance.saturating_sub(amount);
        }
    }

    /// The account of `a`, created empty if it does not exist yet.
    fn account_mut(&mut self, a: &Address) -> &mut Account {
        if !self.accounts.contains(a) {
            self.accounts.insert(*a, Account::default());
        }
        self.accounts
            .get_mut(a)
            .expect("the account exists: inserted just above")
    }

    fn give(&mut self, a: &Address, amount: Amount) {
        if amount > 0 {
            let acc = self.account_mut(a);
            acc.balance = acc.balance.saturating_add(amount);
        }
    }

    fn reward(&mut self, a: &Address, amount: Amount) {
        if amount > 0 {
            let acc = self.account_mut(a);
            acc.rewards = acc.rewards.saturating_add(amount);
        }
    }

    /// Takes a stake of at least `min` from `from`'s balance (checked first).
    fn lock_stake(
        &mut self,
        from: &Address,
        stake: Amount,
        min: Amount,
        what: &str,
    ) -> Result<(), TxError> {
        if stake < min {
            return Err(TxError::Insufficient {
                what: what.into(),
                need: min,
                have: stake,
            });
        }
        self.need_balance(from, stake)?;
        self.take(from, stake);
        Ok(())
    }

    fn burn(&mut self, amount: Amount) {
        self.g.supply -= amount.min(self.g.supply);
        self.g.burned = self.g.burned.saturating_add(amount);
    }

    fn mint_to_pool(&mut self, amount: Amount) {
        self.g.supply = self.g.supply.saturating_add(amount);
        self.g.minted = self.g.minted.saturating_add(amount);
        self.g.reward_pool = self.g.reward_pool.saturating_add(amount);
    }

    /// Queues `amount` for `owner` after the unbonding period; `validator` is the validator
    /// whose stake it was (it stays slashable for that validator's faults until released).
    fn unbond(&mut self, owner: Address, amount: Amount, validator: Option<Address>) {
        if amount == 0 {
            return;
        }
        let release = self.g.epoch.saturating_add(self.params().unbonding_epochs);
        let seq = self.g.next_unbonding;
        self.g.next_unbonding += 1;
        self.unbonding.insert(
            (release, seq),
            Unbonding {
                owner,
                amount,
                validator,
            },
        );
    }

    fn deal(&self, id: u64) -> Result<&Deal, TxError> {
        self.deals
            .get(&id)
            .ok_or_else(|| TxError::NotFound(format!("deal {id}")))
    }

    /// Rendezvous placement: eligible providers ranked by
    /// `H("nilstore/place/v1" ‖ beacon ‖ deal ‖ address)`, taking at most one per operator.
    fn place(
        &self,
        deal: u64,
        n: usize,
        reserved: u64,
        exclude: &[Address],
        exclude_ops: &[Address],
    ) -> Vec<Address> {
        let min = self.params().min_provider_stake;
        let mut ranked: Vec<([u8; 32], Address, Address)> = self
            .providers
            .iter()
            .filter(|(a, p)| {
                p.status == ProviderStatus::Active
                    && p.stake >= min
                    && p.capacity_mdus.saturating_sub(p.used_mdus) >= reserved
                    && !exclude.contains(a)
                    && !exclude_ops.contains(&p.operator)
            })
            .map(|(a, p)| {
                (
                    h256(&[
                        b"nilstore/place/v1",
                        &self.g.beacon.0,
                        &deal.to_be_bytes(),
                        &a.0,
                    ]),
                    *a,
                    p.operator,
                )
            })
            .collect();
        ranked.sort();
        let mut ops: Vec<Address> = Vec::new();
        let mut out = Vec::new();
        for (_, a, op) in ranked {
            if out.len() == n {
                break;
            }
            if !ops.contains(&op) {
                ops.push(op);
                out.push(a);
            }
        }
        out
    }

    /// The deputy committee for (deal, slot) under `beacon`.
    pub fn committee(&self, beacon: &H256, deal: u64, slot: u32) -> Vec<Address> {
        let min = self.params().min_deputy_stake;
        let mut ranked: Vec<([u8; 32], Address)> = self
            .deputies
            .iter()
            .filter(|(_, d)| d.stake >= min)
            .map(|(a, _)| {
                (
                    h256(&[
                        b"nilstore/deputy/v1",
                        &beacon.0,
                        &deal.to_be_bytes(),
                        &slot.to_be_bytes(),
                        &a.0,
                    ]),
                    *a,
                )
            })
            .collect();
        ranked.sort();
        ranked
            .into_iter()
            .take(self.params().deputy_committee as usize)
            .map(|(_, a)| a)
            .collect()
    }

    /// Synthetic challenges of a slot this epoch, after receipt credits.
    pub fn quota(&self, deal: u64, slot: u32) -> u32 {
        let p = self.params();
        let credits = self
            .work
            .get(&(deal, slot))
            .map_or(0, |w| w.credit_blobs / p.blobs_per_credit);
        let credits = u32::try_from(credits).unwrap_or(u32::MAX);
        p.challenges_per_slot
            .saturating_sub(credits)
            .max(p.min_challenges)
    }

    /// The challenge `ordinal` of (deal, slot) this epoch.
    pub fn challenge(
        &self,
        deal: &Deal,
        deal_id: u64,
        slot: u32,
        ordinal: u32,
        beacon: &H256,
    ) -> Result<proof::Challenge, TxError> {
        deal.challenge(deal_id, slot, ordinal, beacon)
            .map_err(|e| TxError::Invalid(e.to_string()))
    }

    /// The beacon of the repair challenges of (deal, slot) this epoch.
    pub fn repair_beacon(&self, deal: u64, slot: u32) -> H256 {
        repair_beacon(&self.g.beacon, deal, slot)
    }

    fn release_reservation(&mut self, provider: &Address, reserved: u64) {
        if let Some(p) = self.providers.get_mut(provider) {
            p.used_mdus = p.used_mdus.saturating_sub(reserved);
            p.slots = p.slots.saturating_sub(1);
        }
    }

    fn reserve(&mut self, provider: &Address, reserved: u64) {
        if let Some(p) = self.providers.get_mut(provider) {
            p.used_mdus = p.used_mdus.saturating_add(reserved);
            p.slots = p.slots.saturating_add(1);
        }
    }

    /// Slashes a provider's stake; `reporter` gets its share, the rest burns.
    fn slash_provider(
        &mut self,
        provider: &Address,
        bps: u32,
        reporter: Option<&Address>,
        reason: EvictReason,
        events: &mut Vec<Event>,
    ) {
        let min = self.params().min_provider_stake;
        let reporter_bps = self.params().reporter_reward_bps;
        let Some(p) = self.providers.get_mut(provider) else {
            return;
        };
        let amount = bps_of(p.stake, bps);
        p.stake -= amount;
        p.offences += 1;
        if p.stake < min {
            p.status = ProviderStatus::Underbonded;
        }
        let to_reporter = reporter.map_or(0, |_| bps_of(amount, reporter_bps));
        if let Some(r) = reporter {
            self.reward(r, to_reporter);
        }
        self.burn(amount - to_reporter);
        events.push(Event::ProviderSlashed {
            provider: *provider,
            amount,
            reason,
        });
    }

    /// Moves an active slot into repair and places a replacement if one is eligible.
    fn evict(&mut self, deal_id: u64, slot: u32, reason: EvictReason, events: &mut Vec<Event>) {
        let Some(deal) = self.deals.get(&deal_id) else {
            return;
        };
        let Some(s) = deal.slots.get(slot as usize) else {
            return;
        };
        if s.status != SlotStatus::Active {
            return;
        }
        let old = s.provider;
        let reserved = deal.reserved_mdus;
        let (exclude, exclude_ops) = self.deal_members(deal);
        let pending = self
            .place(deal_id, 1, reserved, &exclude, &exclude_ops)
            .first()
            .copied();
        self.release_reservation(&old, reserved);
        if let Some(p) = pending {
            self.reserve(&p, reserved);
        }
        if let Some(d) = self.deals.get_mut(&deal_id) {
            if let Some(s) = d.slots.get_mut(slot as usize) {
                s.status = SlotStatus::Repairing;
                s.pending = pending;
                s.health = 0;
            }
        }
        self.work.remove(&(deal_id, slot));
        // Attestations were against the evicted provider: none may count against whoever
        // serves the slot next (new ones need an active slot with the new provider).
        for k in self
            .attestations
            .keys_in((deal_id, slot, 0)..=(deal_id, slot, u64::MAX))
        {
            self.attestations.remove(&k);
        }
        events.push(Event::SlotEvicted {
            deal: deal_id,
            slot,
            provider: old,
            reason,
            pending,
        });
    }

    /// Providers of a deal (current and pending) and their operators: a replacement must be
    /// none of them.
    fn deal_members(&self, deal: &Deal) -> (Vec<Address>, Vec<Address>) {
        let mut ps = Vec::new();
        for s in &deal.slots {
            ps.push(s.provider);
            if let Some(p) = s.pending {
                ps.push(p);
            }
        }
        let ops = deal
            .slots
            .iter()
            .filter(|s| s.status == SlotStatus::Active)
            .map(|s| s.provider)
            .chain(deal.slots.iter().filter_map(|s| s.pending))
            .filter_map(|a| self.providers.get(&a).map(|p| p.operator))
            .collect();
        (ps, ops)
    }

    /// Removes a deal and everything keyed by it; returns its record.
    fn remove_deal(&mut self, id: u64) -> Option<Deal> {
        let deal = self.deals.remove(&id)?;
        for s in &deal.slots {
            match s.status {
                SlotStatus::Active => self.release_reservation(&s.provider, deal.reserved_mdus),
                SlotStatus::Repairing => {
                    if let Some(p) = s.pending {
                        self.release_reservation(&p, deal.reserved_mdus);
                    }
                }
            }
        }
        for k in self.work.keys_in((id, 0)..(id.saturating_add(1), 0)) {
            self.work.remove(&k);
        }
        for k in self
            .receipts
            .keys_in((id, Address::ZERO)..(id.saturating_add(1), Address::ZERO))
        {
            self.receipts.remove(&k);
        }
        for k in self
            .attestations
            .keys_in((id, 0, 0)..(id.saturating_add(1), 0, 0))
        {
            self.attestations.remove(&k);
        }
        Some(deal)
    }

    /// Verifies decoded triple proofs against one manifest root, batched; on failure,
    /// returns which ones fail.
    fn verify_proofs(env: &Env<'_>, items: &[(G1Bytes, TripleProof)]) -> Result<(), Vec<usize>> {
        let refs: Vec<(&[u8; 48], &TripleProof)> = items.iter().map(|(r, p)| (&r.0, p)).collect();
        if proof::verify_batch(env.kzg, &refs).is_ok() {
            return Ok(());
        }
        Err(items
            .iter()
            .enumerate()
            .filter(|(_, (r, p))| proof::verify(env.kzg, &r.0, p).is_err())
            .map(|(i, _)| i)
            .collect())
    }
}

/// Block-level execution.
impl State {
    /// Starts block `height` (whose parent has hash `parent`): epoch transition when due,
    /// block reward.
    pub fn begin_block(&mut self, height: u64, parent: &H256) -> Vec<Event> {
        let mut events = Vec::new();
        self.g.height = height;
        if height >= self.g_next_epoch_height() {
            self.end_epoch(&mut events);
            self.g.prev_beacon = self.g.beacon;
            self.g.beacon = H256(h256(&[b"nilstore/beacon/v1", &self.g.beacon.0, &parent.0]));
            self.g.epoch += 1;
            self.g.next_epoch_height = height + self.params().epoch_blocks;
            events.push(Event::EpochStarted {
                epoch: self.g.epoch,
                beacon: self.g.beacon,
            });
        }
        let reward = self.params().block_reward;
        self.mint_to_pool(reward);
        events
    }

    fn g_next_epoch_height(&self) -> u64 {
        self.g.next_epoch_height
    }

    /// Applies one signed transaction (`encoded_len` is its wire size).
    pub fn apply_tx(&mut self, env: &Env<'_>, stx: &SignedTx, encoded_len: usize) -> TxResult {
        let hash = stx.hash();
        match self.check_envelope(stx, encoded_len) {
            Err(error) => TxResult {
                hash,
                outcome: Outcome::Invalid { error },
                events: Vec::new(),
            },
            Ok(()) => {
                let tx = &stx.tx;
                // Fee and nonce first: they stand even if the message fails.
                self.take(&tx.from, tx.fee);
                self.account_mut(&tx.from).nonce += 1;
                let burn = bps_of(tx.fee, self.params().fee_burn_bps);
                self.burn(burn);
                self.g.reward_pool += tx.fee - burn;
                let mut events = Vec::new();
                let outcome = match self.apply_msg(env, &tx.from, &tx.msg, &mut events) {
                    Ok(()) => Outcome::Ok,
                    Err(error) => {
                        events.clear();
                        Outcome::Failed { error }
                    }
                };
                TxResult {
                    hash,
                    outcome,
                    events,
                }
            }
        }
    }

    /// The checks that decide whether a transaction may enter a block at all.
    pub fn check_envelope(&self, stx: &SignedTx, encoded_len: usize) -> Result<(), TxError> {
        self.check_envelope_ahead(stx, encoded_len, 0)
    }

    /// [`State::check_envelope`] for a mempool: the nonce may run up to `window` ahead of
    /// the account's next one (the balance check is then only indicative).
    pub fn check_envelope_ahead(
        &self,
        stx: &SignedTx,
        encoded_len: usize,
        window: u64,
    ) -> Result<(), TxError> {
        self.check_envelope_fields(stx, encoded_len, window)?;
        stx.verify_signature()?;
        Ok(())
    }

    /// Every envelope check but the signature (for callers that verified it already,
    /// outside a lock).
    pub fn check_envelope_fields(
        &self,
        stx: &SignedTx,
        encoded_len: usize,
        window: u64,
    ) -> Result<(), TxError> {
        let p = self.params();
        let tx = &stx.tx;
        if encoded_len > p.max_tx_bytes as usize {
            return Err(TxError::TooLarge {
                got: encoded_len,
                limit: p.max_tx_bytes as usize,
            });
        }
        if tx.chain_id != self.g.chain_id {
            return Err(TxError::WrongChain {
                want: self.g.chain_id,
                got: tx.chain_id,
            });
        }
        if tx.fee < p.min_fee {
            return Err(TxError::FeeTooLow {
                min: p.min_fee,
                got: tx.fee,
            });
        }
        let want = self.accounts.get(&tx.from).map_or(0, |a| a.nonce);
        if tx.nonce < want || tx.nonce - want > window {
            return Err(TxError::Nonce {
                want,
                got: tx.nonce,
            });
        }
        self.need_balance(&tx.from, tx.fee)
    }

    fn apply_msg(
        &mut self,
        env: &Env<'_>,
        from: &Address,
        msg: &Msg,
        ev: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        match msg {
            Msg::Transfer { to, amount } => {
                if *amount == 0 {
                    return Err(TxError::Invalid("zero amount".into()));
                }
                self.need_balance(from, *amount)?;
                self.take(from, *amount);
                self.give(to, *amount);
                Ok(())
            }
            Msg::RegisterProvider {
                stake,
                capacity_mdus,
                operator,
                peer_id,
                endpoints,
            } => {
                if self.providers.contains(from) {
                    return Err(TxError::Conflict("already a provider".into()));
                }
                check_endpoints(peer_id, endpoints)?;
                if *capacity_mdus == 0 {
                    return Err(TxError::Invalid("zero capacity".into()));
                }
                let min = self.params().min_provider_stake;
                self.lock_stake(from, *stake, min, "provider stake")?;
                self.providers.insert(
                    *from,
                    Provider {
                        operator: *operator,
                        stake: *stake,
                        capacity_mdus: *capacity_mdus,
                        used_mdus: 0,
                        slots: 0,
                        peer_id: peer_id.clone(),
                        endpoints: endpoints.clone(),
                        status: ProviderStatus::Active,
                        offences: 0,
                    },
                );
                Ok(())
            }
            Msg::UpdateProvider {
                capacity_mdus,
                endpoints,
                add_stake,
            } => {
                let p = self
                    .providers
                    .get(from)
                    .ok_or_else(|| TxError::NotFound("provider".into()))?;
                check_endpoints(&p.peer_id, endpoints)?;
                if *capacity_mdus < p.used_mdus {
                    return Err(TxError::Invalid(format!(
                        "capacity {capacity_mdus} below the {} MDUs in use",
                        p.used_mdus
                    )));
                }
                let stake = add(p.stake, *add_stake)?;
                self.need_balance(from, *add_stake)?;
                let min = self.params().min_provider_stake;
                self.take(from, *add_stake);
                if let Some(p) = self.providers.get_mut(from) {
                    p.capacity_mdus = *capacity_mdus;
                    p.endpoints = endpoints.clone();
                    p.stake = stake;
                    if stake >= min {
                        p.status = ProviderStatus::Active;
                    }
                }
                Ok(())
            }
            Msg::ExitProvider {} => {
                let p = self
                    .providers
                    .get(from)
                    .ok_or_else(|| TxError::NotFound("provider".into()))?;
                if p.slots > 0 {
                    return Err(TxError::Conflict(format!(
                        "provider still holds {} slots",
                        p.slots
                    )));
                }
                let stake = p.stake;
                self.providers.remove(from);
                self.unbond(*from, stake, None);
                Ok(())
            }
            Msg::RegisterDeputy {
                stake,
                peer_id,
                endpoints,
            } => {
                if self.deputies.contains(from) {
                    return Err(TxError::Conflict("already a deputy".into()));
                }
                check_endpoints(peer_id, endpoints)?;
                let min = self.params().min_deputy_stake;
                self.lock_stake(from, *stake, min, "deputy stake")?;
                self.deputies.insert(
                    *from,
                    Deputy {
                        stake: *stake,
                        peer_id: peer_id.clone(),
                        endpoints: endpoints.clone(),
                    },
                );
                Ok(())
            }
            Msg::ExitDeputy {} => {
                let d = self
                    .deputies
                    .remove(from)
                    .ok_or_else(|| TxError::NotFound("deputy".into()))?;
                self.unbond(*from, d.stake, None);
                Ok(())
            }
            Msg::CreateDeal {
                k,
                m,
                capacity_mdus,
                term_epochs,
                escrow,
                spend_cap,
            } => self.create_deal(
                from,
                *k,
                *m,
                *capacity_mdus,
                *term_epochs,
                *escrow,
                *spend_cap,
                ev,
            ),
            Msg::CommitContent {
                deal,
                generation,
                manifest_root,
                total_mdus,
                size_bytes,
            } => self.commit_content(
                from,
                *deal,
                *generation,
                manifest_root,
                *total_mdus,
                *size_bytes,
                ev,
            ),
            Msg::AddCredit { deal, amount } => {
                self.deal(*deal)?;
                if *amount == 0 {
                    return Err(TxError::Invalid("zero amount".into()));
                }
                self.need_balance(from, *amount)?;
                self.take(from, *amount);
                if let Some(d) = self.deals.get_mut(deal) {
                    d.escrow = d.escrow.saturating_add(*amount);
                }
                Ok(())
            }
            Msg::ExtendDeal { deal, epochs } => {
                let d = self.deal(*deal)?;
                if !d.is_authorized(from, self.g.epoch) {
                    return Err(TxError::Unauthorized(
                        "only the owner or a delegate extends".into(),
                    ));
                }
                if *epochs == 0 {
                    return Err(TxError::Invalid("zero epochs".into()));
                }
                let end = d.end_epoch.checked_add(*epochs).ok_or(TxError::Overflow)?;
                if end - d.start_epoch > self.params().max_term_epochs {
                    return Err(TxError::Invalid("term above max_term_epochs".into()));
                }
                let rent = mul(
                    mul(d.reserved_mdus as Amount, self.params().rent_per_mdu_epoch)?,
                    *epochs as Amount,
                )?;
                if d.escrow < rent {
                    return Err(TxError::Insufficient {
                        what: "escrow".into(),
                        need: rent,
                        have: d.escrow,
                    });
                }
                if let Some(d) = self.deals.get_mut(deal) {
                    d.escrow -= rent;
                    d.rent_reserved += rent;
                    d.end_epoch = end;
                }
                Ok(())
            }
            Msg::CancelDeal { deal } => {
                let d = self.deal(*deal)?;
                if d.owner != *from {
                    return Err(TxError::Unauthorized("only the owner cancels".into()));
                }
                let penalty = bps_of(d.rent_reserved, self.params().cancel_penalty_bps);
                let refund = d.escrow + d.rent_reserved - penalty;
                let owner = d.owner;
                self.remove_deal(*deal);
                self.burn(penalty);
                self.give(&owner, refund);
                ev.push(Event::DealEnded {
                    deal: *deal,
                    cancelled: true,
                    refund,
                });
                Ok(())
            }
            Msg::Authorize {
                deal,
                delegate,
                until_epoch,
            } => {
                let d = self.deal(*deal)?;
                if d.owner != *from {
                    return Err(TxError::Unauthorized("only the owner authorises".into()));
                }
                if d.delegates.len() >= MAX_DELEGATES && !d.delegates.contains_key(delegate) {
                    return Err(TxError::Invalid(format!(
                        "at most {MAX_DELEGATES} delegates"
                    )));
                }
                if *until_epoch < self.g.epoch {
                    return Err(TxError::Invalid("delegation already expired".into()));
                }
                if let Some(d) = self.deals.get_mut(deal) {
                    d.delegates.insert(*delegate, *until_epoch);
                }
                Ok(())
            }
            Msg::Revoke { deal, delegate } => {
                let d = self.deal(*deal)?;
                if d.owner != *from {
                    return Err(TxError::Unauthorized("only the owner revokes".into()));
                }
                if !d.delegates.contains_key(delegate) {
                    return Err(TxError::NotFound("delegate".into()));
                }
                if let Some(d) = self.deals.get_mut(deal) {
                    d.delegates.remove(delegate);
                }
                Ok(())
            }
            Msg::SubmitProofs { epoch, items } => self.submit_proofs(env, from, *epoch, items, ev),
            Msg::RedeemReceipt { receipt, sig } => self.redeem(receipt, sig, ev),
            Msg::SubmitFraud { evidence } => self.fraud(env, from, evidence, ev),
            Msg::SubmitAttestation { att, sig } => self.attest(from, att, sig, ev),
            Msg::CompleteRepair { deal, slot, proofs } => {
                self.complete_repair(env, from, *deal, *slot, proofs, ev)
            }
            Msg::Withdraw {} => {
                let r = self.accounts.get(from).map_or(0, |a| a.rewards);
                if r == 0 {
                    return Err(TxError::Invalid("no rewards to withdraw".into()));
                }
                if let Some(a) = self.accounts.get_mut(from) {
                    a.rewards = 0;
                    a.balance = a.balance.saturating_add(r);
                }
                Ok(())
            }
            Msg::CreateValidator {
                consensus_key,
                stake,
                commission_bps,
            } => {
                if self.validators.contains(from) {
                    return Err(TxError::Conflict("already a validator".into()));
                }
                crate::light::parse_consensus_key(&consensus_key.0)
                    .map_err(|e| TxError::Invalid(e.to_string()))?;
                let k = &consensus_key.0;
                if self.validators.iter().any(|(_, v)| {
                    let o = &v.consensus_key.0;
                    o.get(..32) == k.get(..32) || o.get(32..128) == k.get(32..128)
                }) {
                    return Err(TxError::Conflict("consensus key in use".into()));
                }
                if *commission_bps > 10_000 {
                    return Err(TxError::Invalid("commission above 10000 bps".into()));
                }
                let min = self.params().min_validator_stake;
                self.lock_stake(from, *stake, min, "validator stake")?;
                self.validators.insert(
                    *from,
                    Validator {
                        consensus_key: consensus_key.clone(),
                        self_stake: *stake,
                        delegated: 0,
                        commission_bps: *commission_bps,
                        jailed_until: 0,
                        offences: 0,
                    },
                );
                Ok(())
            }
            Msg::Delegate { validator, amount } => {
                let v = self
                    .validators
                    .get(validator)
                    .ok_or_else(|| TxError::NotFound(format!("validator {validator}")))?;
                if *amount == 0 {
                    return Err(TxError::Invalid("zero amount".into()));
                }
                add(v.power(), *amount)?;
                self.need_balance(from, *amount)?;
                self.take(from, *amount);
                if validator == from {
                    if let Some(v) = self.validators.get_mut(validator) {
                        v.self_stake += amount;
                    }
                } else {
                    let cur = self
                        .delegations
                        .get(&(*validator, *from))
                        .copied()
                        .unwrap_or(0);
                    self.delegations.insert((*validator, *from), cur + amount);
                    if let Some(v) = self.validators.get_mut(validator) {
                        v.delegated += amount;
                    }
                }
                Ok(())
            }
            Msg::Undelegate { validator, amount } => {
                let v = self
                    .validators
                    .get(validator)
                    .ok_or_else(|| TxError::NotFound(format!("validator {validator}")))?;
                if *amount == 0 {
                    return Err(TxError::Invalid("zero amount".into()));
                }
                if validator == from {
                    if *amount > v.self_stake {
                        return Err(TxError::Insufficient {
                            what: "self-stake".into(),
                            need: *amount,
                            have: v.self_stake,
                        });
                    }
                    let left = v.self_stake - amount;
                    if left != 0 && left < self.params().min_validator_stake {
                        return Err(TxError::Invalid(
                            "self-stake must stay above the minimum or go to zero".into(),
                        ));
                    }
                    if let Some(v) = self.validators.get_mut(validator) {
                        v.self_stake = left;
                    }
                } else {
                    let cur = self
                        .delegations
                        .get(&(*validator, *from))
                        .copied()
                        .unwrap_or(0);
                    if *amount > cur {
                        return Err(TxError::Insufficient {
                            what: "delegation".into(),
                            need: *amount,
                            have: cur,
                        });
                    }
                    if cur == *amount {
                        self.delegations.remove(&(*validator, *from));
                    } else {
                        self.delegations.insert((*validator, *from), cur - amount);
                    }
                    if let Some(v) = self.validators.get_mut(validator) {
                        v.delegated -= amount;
                    }
                }
                self.unbond(*from, *amount, Some(*validator));
                Ok(())
            }
            Msg::Unjail {} => {
                let v = self
                    .validators
                    .get(from)
                    .ok_or_else(|| TxError::NotFound("validator".into()))?;
                if v.jailed_until == 0 {
                    return Err(TxError::Conflict("not jailed".into()));
                }
                if self.g.epoch < v.jailed_until {
                    return Err(TxError::Conflict(format!(
                        "jailed until epoch {}",
                        v.jailed_until
                    )));
                }
                if let Some(v) = self.validators.get_mut(from) {
                    v.jailed_until = 0;
                }
                Ok(())
            }
            Msg::ReportValidatorFault {
                validator,
                evidence,
            } => self.validator_fault(env, from, validator, evidence, ev),
            Msg::SetParams { params } => {
                if *from != self.params().governor {
                    return Err(TxError::Unauthorized(
                        "only the governor sets parameters".into(),
                    ));
                }
                params.validate().map_err(|e| TxError::Invalid(e.into()))?;
                self.g.params = (**params).clone();
                ev.push(Event::ParamsChanged);
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create_deal(
        &mut self,
        from: &Address,
        k: u32,
        m: u32,
        capacity: u64,
        term: u64,
        escrow: Amount,
        spend_cap: Amount,
        ev: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        let profile = wasm_core::rs::Profile::new(k as usize, m as usize)
            .map_err(|e| TxError::Invalid(e.to_string()))?;
        if capacity == 0 {
            return Err(TxError::Invalid("zero capacity".into()));
        }
        if term == 0 || term > self.params().max_term_epochs {
            return Err(TxError::Invalid("term out of range".into()));
        }
        let layout = wasm_core::slab::Layout::new(profile, capacity)
            .map_err(|e| TxError::Invalid(e.to_string()))?;
        let reserved = 1 + layout.witness_mdus + capacity;
        self.need_balance(from, escrow)?;
        let id = self.g.next_deal;
        let n = (k + m) as usize;
        let placed = self.place(id, n, reserved, &[], &[]);
        if placed.len() < n {
            return Err(TxError::NoPlacement {
                need: n,
                have: placed.len(),
            });
        }
        // The reservation is paid for: the rent of every reserved MDU for the whole term
        // leaves the escrow now and is released to the providers holding the capacity
        // epoch by epoch (content or not), so capacity cannot be held for free.
        let rent = mul(
            mul(reserved as Amount, self.params().rent_per_mdu_epoch)?,
            term as Amount,
        )?;
        if escrow < rent {
            return Err(TxError::Insufficient {
                what: "escrow (the rent of the reserved capacity for the term)".into(),
                need: rent,
                have: escrow,
            });
        }
        self.take(from, escrow);
        for p in &placed {
            self.reserve(p, reserved);
        }
        self.g.next_deal += 1;
        let epoch = self.g.epoch;
        self.deals.insert(
            id,
            Deal {
                owner: *from,
                k,
                m,
                capacity_mdus: capacity,
                witness_mdus: layout.witness_mdus,
                reserved_mdus: reserved,
                manifest_root: None,
                total_mdus: 0,
                size_bytes: 0,
                generation: 0,
                content_epoch: epoch,
                start_epoch: epoch,
                end_epoch: epoch + term,
                escrow: escrow - rent,
                rent_reserved: rent,
                spend_cap,
                spent_epoch: epoch,
                spent: 0,
                slots: placed
                    .iter()
                    .map(|p| Slot {
                        provider: *p,
                        status: SlotStatus::Active,
                        pending: None,
                        health: 100,
                    })
                    .collect(),
                delegates: Default::default(),
            },
        );
        ev.push(Event::DealCreated {
            deal: id,
            owner: *from,
            providers: placed,
            rent,
        });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_content(
        &mut self,
        from: &Address,
        id: u64,
        generation: u64,
        root: &G1Bytes,
        total: u64,
        size: u64,
        ev: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        let epoch = self.g.epoch;
        let d = self.deal(id)?;
        if !d.is_authorized(from, epoch) {
            return Err(TxError::Unauthorized(
                "only the owner or a delegate commits".into(),
            ));
        }
        // Generations are the slab's: 0 for the first content, then +1 per commit.
        let next = d.next_generation();
        if generation != next {
            return Err(TxError::Conflict(format!(
                "stale generation {generation}: the next commit of this deal is generation {next}"
            )));
        }
        if epoch >= d.end_epoch {
            return Err(TxError::Conflict("deal term is over".into()));
        }
        let meta = 1 + d.witness_mdus;
        if total < d.total_mdus {
            return Err(TxError::Invalid(format!(
                "total_mdus may not shrink ({} → {total})",
                d.total_mdus
            )));
        }
        if total < meta || total > meta + d.capacity_mdus {
            return Err(TxError::Invalid(format!(
                "total_mdus {total} outside {meta}..={}",
                meta + d.capacity_mdus
            )));
        }
        let max_size = (total - meta) * wasm_core::constants::PAYLOAD_BYTES_PER_MDU as u64;
        if size > max_size {
            return Err(TxError::Invalid(format!(
                "size {size} does not fit in {} user MDUs",
                total - meta
            )));
        }
        wasm_core::curve::G1Affine::from_compressed(&root.0)
            .map_err(|e| TxError::Invalid(format!("manifest root: {e}")))?;
        // Rent was reserved with the capacity (create, extend): committing costs nothing.
        if let Some(d) = self.deals.get_mut(&id) {
            d.manifest_root = Some(*root);
            d.total_mdus = total;
            d.size_bytes = size;
            d.generation = generation;
            d.content_epoch = epoch;
        }
        ev.push(Event::ContentCommitted {
            deal: id,
            generation,
            manifest_root: *root,
            total_mdus: total,
        });
        Ok(())
    }

    fn submit_proofs(
        &mut self,
        env: &Env<'_>,
        from: &Address,
        epoch: u64,
        items: &[ProofItem],
        ev: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        if epoch != self.g.epoch {
            return Err(TxError::Conflict(format!(
                "proofs for epoch {epoch}, the chain is in epoch {}",
                self.g.epoch
            )));
        }
        let max = self.params().max_proofs_per_tx as usize;
        if items.is_empty() || items.len() > max {
            return Err(TxError::Invalid(format!(
                "1..={max} proofs per transaction"
            )));
        }
        let mut decoded = Vec::with_capacity(items.len());
        let mut seen: Vec<(u64, u32, u32)> = Vec::with_capacity(items.len());
        for it in items {
            let d = self.deal(it.deal)?;
            let s = d.slots.get(it.slot as usize).ok_or_else(|| {
                TxError::NotFound(format!("slot {} of deal {}", it.slot, it.deal))
            })?;
            if s.provider != *from || s.status != SlotStatus::Active {
                return Err(TxError::Unauthorized(format!(
                    "slot {} of deal {} is not an active slot of the sender",
                    it.slot, it.deal
                )));
            }
            let root = d
                .manifest_root
                .ok_or_else(|| TxError::Conflict(format!("deal {} has no content", it.deal)))?;
            if d.content_epoch >= epoch || d.user_mdus() == 0 {
                return Err(TxError::Conflict(format!(
                    "deal {} is not challenged this epoch",
                    it.deal
                )));
            }
            if it.ordinal >= self.quota(it.deal, it.slot) {
                return Err(TxError::Invalid(format!(
                    "ordinal {} beyond this epoch's quota",
                    it.ordinal
                )));
            }
            let proven = self.work.get(&(it.deal, it.slot)).map_or(0, |w| w.proven);
            let key = (it.deal, it.slot, it.ordinal);
            if proven & (1u64 << it.ordinal) != 0 || seen.contains(&key) {
                return Err(TxError::Conflict(format!(
                    "challenge {} of deal {} slot {} already proven",
                    it.ordinal, it.deal, it.slot
                )));
            }
            seen.push(key);
            let p = TripleProof::from_bytes(&it.proof.0)
                .map_err(|e| TxError::Invalid(format!("proof: {e}")))?;
            let c = self.challenge(d, it.deal, it.slot, it.ordinal, &self.g.beacon)?;
            if u64::from(p.mdu) != c.mdu
                || u64::from(p.leaf_index) != c.leaf
                || p.z != c.z.to_bytes_be()
            {
                return Err(TxError::Invalid(format!(
                    "proof answers another challenge than ordinal {} of deal {} slot {}",
                    it.ordinal, it.deal, it.slot
                )));
            }
            decoded.push((root, p));
        }
        let bad = match State::verify_proofs(env, &decoded) {
            Ok(()) => Vec::new(),
            Err(bad) => bad,
        };
        let mut good = 0u32;
        for (i, it) in items.iter().enumerate() {
            if bad.contains(&i) {
                continue;
            }
            good += 1;
            let mut w = self
                .work
                .get(&(it.deal, it.slot))
                .cloned()
                .unwrap_or_default();
            w.proven |= 1u64 << it.ordinal;
            self.work.insert((it.deal, it.slot), w);
        }
        if good > 0 {
            ev.push(Event::Proven {
                provider: *from,
                count: good,
            });
        }
        if !bad.is_empty() {
            // A wrong answer to a genuine challenge is slashed at once (SPEC §6.2).
            let bps = self.params().fraud_slash_bps;
            self.slash_provider(from, bps, None, EvictReason::Fraud, ev);
            for &i in &bad {
                if let Some(it) = items.get(i) {
                    self.evict(it.deal, it.slot, EvictReason::Fraud, ev);
                }
            }
        }
        Ok(())
    }

    fn redeem(&mut self, r: &Receipt, sig: &Sig65, ev: &mut Vec<Event>) -> Result<(), TxError> {
        let epoch = self.g.epoch;
        let d = self.deal(r.deal)?;
        let slot = d
            .slots
            .iter()
            .position(|s| s.provider == r.provider || s.pending == Some(r.provider))
            .ok_or_else(|| TxError::Unauthorized("provider holds no slot of this deal".into()))?;
        let reader = crypto::recover(&r.digest(self.g.chain_id), sig)?;
        if !d.is_authorized(&reader, epoch) {
            return Err(TxError::Unauthorized(format!(
                "receipt signed by {reader}, not the owner or a delegate"
            )));
        }
        if r.deputy != Address::ZERO && !self.deputies.contains(&r.deputy) {
            return Err(TxError::NotFound(format!("deputy {}", r.deputy)));
        }
        let st = self
            .receipts
            .get(&(r.deal, r.provider))
            .cloned()
            .unwrap_or_default();
        if r.nonce <= st.nonce {
            return Err(TxError::Conflict(format!(
                "receipt nonce {} not above {}",
                r.nonce, st.nonce
            )));
        }
        if r.blobs < st.blobs {
            return Err(TxError::Invalid("cumulative blobs decreased".into()));
        }
        let p = self.params();
        let price = p.price_per_blob;
        let owed_blobs = r.blobs - st.paid_blobs;
        let cap_left = if d.spent_epoch == epoch {
            d.spend_cap.saturating_sub(d.spent)
        } else {
            d.spend_cap
        };
        let budget = d.escrow.min(cap_left);
        let pay_blobs = match budget.checked_div(price) {
            None => owed_blobs,
            Some(affordable) => (owed_blobs as Amount).min(affordable) as u64,
        };
        let paid = mul(pay_blobs as Amount, price)?;
        let burned = bps_of(paid, p.receipt_burn_bps);
        let premium = if r.deputy == Address::ZERO {
            0
        } else {
            bps_of(paid, p.deputy_premium_bps)
        };
        let new_blobs = r.blobs - st.blobs;
        if let Some(d) = self.deals.get_mut(&r.deal) {
            d.escrow -= paid;
            if d.spent_epoch != epoch {
                d.spent_epoch = epoch;
                d.spent = 0;
            }
            d.spent += paid;
        }
        self.burn(burned);
        self.reward(&r.deputy, premium);
        self.reward(&r.provider, paid - burned - premium);
        self.receipts.insert(
            (r.deal, r.provider),
            ReceiptState {
                nonce: r.nonce,
                blobs: r.blobs,
                paid_blobs: st.paid_blobs + pay_blobs,
            },
        );
        let key = (r.deal, slot as u32);
        let mut w = self.work.get(&key).cloned().unwrap_or_default();
        w.credit_blobs = w.credit_blobs.saturating_add(new_blobs);
        self.work.insert(key, w);
        ev.push(Event::ReceiptRedeemed {
            deal: r.deal,
            provider: r.provider,
            paid,
            burned,
        });
        Ok(())
    }

    fn fraud(
        &mut self,
        env: &Env<'_>,
        from: &Address,
        e: &FraudEvidence,
        ev: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        let d = self.deal(e.deal)?;
        let s = d
            .slots
            .get(e.slot as usize)
            .ok_or_else(|| TxError::NotFound(format!("slot {}", e.slot)))?;
        let provider = s.provider;
        if s.status != SlotStatus::Active {
            return Err(TxError::Conflict("slot is already in repair".into()));
        }
        let root = d
            .manifest_root
            .ok_or_else(|| TxError::Conflict("deal has no content".into()))?;
        if e.bytes.0.len() > wasm_core::constants::BYTES_PER_BLOB {
            return Err(TxError::Invalid("served bytes larger than a blob".into()));
        }
        if u64::from(e.leaf_index) / d.rows() != u64::from(e.slot) {
            return Err(TxError::Invalid(
                "leaf does not belong to the accused slot".into(),
            ));
        }
        if u64::from(e.mdu) <= d.witness_mdus || u64::from(e.mdu) >= d.total_mdus {
            return Err(TxError::Invalid("MDU is not a user MDU of the deal".into()));
        }
        let blake = H256(*blake3::hash(&e.bytes.0).as_bytes());
        // Judged only as a statement about the current content: the generation is the
        // deal's, and the MDU root is the one the evidence opens in the current manifest.
        let served = Served {
            deal: e.deal,
            generation: d.generation,
            slot: e.slot,
            mdu: e.mdu,
            mdu_root: e.mdu_root,
            leaf: e.leaf_index,
            blake3: blake,
        };
        crypto::verify(&served.digest(self.g.chain_id), &e.served_sig, &provider)?;
        let id = H256(h256(&[
            b"nilstore/fraud/v1",
            &e.deal.to_be_bytes(),
            &e.slot.to_be_bytes(),
            &e.mdu.to_be_bytes(),
            &e.leaf_index.to_be_bytes(),
            &blake.0,
        ]));
        if self.evidence.contains(&id) {
            return Err(TxError::Conflict("evidence already used".into()));
        }
        proof::verify_manifest_opening(env.kzg, &root.0, e.mdu, &e.mdu_root.0, &e.manifest_proof.0)
            .map_err(|x| TxError::BadProof(format!("manifest opening: {x}")))?;
        let leaf = wasm_core::merkle::Leaf {
            commitment: e.leaf_commitment.0,
            blake3: e.leaf_blake3.0,
        };
        let path: Vec<wasm_core::merkle::Hash> = e.path.iter().map(|h| h.0).collect();
        match proof::check_fraud(
            &e.bytes.0,
            &leaf,
            e.leaf_index as usize,
            &path,
            &e.mdu_root.0,
        ) {
            FraudVerdict::Fraud => {}
            FraudVerdict::Honest => {
                return Err(TxError::BadProof(
                    "the bytes match the leaf: no fraud".into(),
                ))
            }
            FraudVerdict::Unproven => {
                return Err(TxError::BadProof(
                    "the leaf is not proven in the MDU".into(),
                ))
            }
        }
        let height = self.g.height;
        self.evidence.insert(id, height);
        let bps = self.params().fraud_slash_bps;
        self.slash_provider(&provider, bps, Some(from), EvictReason::Fraud, ev);
        self.evict(e.deal, e.slot, EvictReason::Fraud, ev);
        Ok(())
    }

    fn attest(
        &mut self,
        from: &Address,
        a: &Attestation,
        sig: &Sig65,
        ev: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        let beacon = if a.epoch == self.g.epoch {
            self.g.beacon
        } else if a.epoch.checked_add(1) == Some(self.g.epoch) {
            self.g.prev_beacon
        } else {
            return Err(TxError::Conflict(format!(
                "attestation for epoch {} outside the window",
                a.epoch
            )));
        };
        let d = self.deal(a.deal)?;
        let s = d
            .slots
            .get(a.slot as usize)
            .ok_or_else(|| TxError::NotFound(format!("slot {}", a.slot)))?;
        if s.status != SlotStatus::Active || s.provider != a.provider {
            return Err(TxError::Conflict(
                "slot is not active with that provider".into(),
            ));
        }
        let deputy = crypto::recover(&a.digest(self.g.chain_id), sig)?;
        if !self.committee(&beacon, a.deal, a.slot).contains(&deputy) {
            return Err(TxError::Unauthorized(format!(
                "{deputy} is not on the beacon's deputy committee for this slot"
            )));
        }
        let key = (a.deal, a.slot, a.epoch);
        let mut who = self.attestations.get(&key).cloned().unwrap_or_default();
        if who.contains(&deputy) {
            return Err(TxError::Conflict(
                "deputy already attested in this window".into(),
            ));
        }
        who.push(deputy);
        let count = who.len() as u32;
        self.attestations.insert(key, who);
        ev.push(Event::Attested {
            deal: a.deal,
            slot: a.slot,
            deputy,
            count,
        });
        if count >= self.params().deputy_threshold {
            let bps = self.params().nonresponse_slash_bps;
            self.slash_provider(&a.provider, bps, Some(from), EvictReason::NonResponse, ev);
            self.evict(a.deal, a.slot, EvictReason::NonResponse, ev);
            self.attestations.remove(&key);
        }
        Ok(())
    }

    fn complete_repair(
        &mut self,
        env: &Env<'_>,
        from: &Address,
        id: u64,
        slot: u32,
        proofs: &[Blob],
        ev: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        let d = self.deal(id)?;
        let s = d
            .slots
            .get(slot as usize)
            .ok_or_else(|| TxError::NotFound(format!("slot {slot}")))?;
        if s.status != SlotStatus::Repairing || s.pending != Some(*from) {
            return Err(TxError::Unauthorized(
                "sender is not the slot's pending provider".into(),
            ));
        }
        let want = self.params().repair_proofs as usize;
        if proofs.len() != want {
            return Err(TxError::Invalid(format!("{want} repair proofs required")));
        }
        let mut decoded = Vec::with_capacity(want);
        if let Some(root) = d.manifest_root.filter(|_| d.user_mdus() > 0) {
            let beacon = self.repair_beacon(id, slot);
            for (i, b) in proofs.iter().enumerate() {
                let p = TripleProof::from_bytes(&b.0)
                    .map_err(|e| TxError::Invalid(format!("proof: {e}")))?;
                let c = self.challenge(d, id, slot, i as u32, &beacon)?;
                if u64::from(p.mdu) != c.mdu
                    || u64::from(p.leaf_index) != c.leaf
                    || p.z != c.z.to_bytes_be()
                {
                    return Err(TxError::Invalid(format!(
                        "repair proof {i} answers another challenge"
                    )));
                }
                decoded.push((root, p));
            }
            if State::verify_proofs(env, &decoded).is_err() {
                return Err(TxError::BadProof("repair proofs do not verify".into()));
            }
        }
        if let Some(d) = self.deals.get_mut(&id) {
            if let Some(s) = d.slots.get_mut(slot as usize) {
                s.provider = *from;
                s.pending = None;
                s.status = SlotStatus::Active;
                s.health = 100;
            }
        }
        ev.push(Event::RepairCompleted {
            deal: id,
            slot,
            provider: *from,
        });
        Ok(())
    }

    fn validator_fault(
        &mut self,
        env: &Env<'_>,
        from: &Address,
        validator: &Address,
        evidence: &Blob,
        ev: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        let v = self
            .validators
            .get(validator)
            .ok_or_else(|| TxError::NotFound(format!("validator {validator}")))?;
        let id = env
            .faults
            .verify(
                self.g.chain_id,
                &self.open_fault_epochs(),
                &v.consensus_key.0,
                &evidence.0,
            )
            .map_err(TxError::BadProof)?;
        let id = H256(h256(&[b"nilstore/vfault/v1", &validator.0, &id.0]));
        if self.evidence.contains(&id) {
            return Err(TxError::Conflict("evidence already used".into()));
        }
        let p = self.params();
        let offences = v.offences + 1;
        let bps = p
            .validator_slash_bps
            .saturating_mul(offences)
            .min(p.validator_slash_cap_bps);
        let jailed_until = self.g.epoch.saturating_add(p.jail_epochs).saturating_add(1);
        let reporter_bps = p.reporter_reward_bps;
        let mut total = bps_of(v.self_stake, bps);
        let mut taken_delegated = 0;
        for k in self
            .delegations
            .keys_in((*validator, Address::ZERO)..=(*validator, Address([0xff; 20])))
        {
            if let Some(a) = self.delegations.get_mut(&k) {
                let cut = bps_of(*a, bps);
                *a -= cut;
                taken_delegated += cut;
            }
        }
        total += taken_delegated;
        // Stake on its way out (unbonding self-stake and undelegations) is slashed too.
        let leaving: Vec<(u64, u64)> = self
            .unbonding
            .iter()
            .filter(|(_, u)| u.validator == Some(*validator))
            .map(|(k, _)| *k)
            .collect();
        for k in leaving {
            if let Some(u) = self.unbonding.get_mut(&k) {
                let cut = bps_of(u.amount, bps);
                u.amount -= cut;
                total += cut;
            }
        }
        if let Some(v) = self.validators.get_mut(validator) {
            v.self_stake -= bps_of(v.self_stake, bps);
            v.delegated -= taken_delegated;
            v.offences = offences;
            v.jailed_until = jailed_until;
        }
        let height = self.g.height;
        self.evidence.insert(id, height);
        let to_reporter = bps_of(total, reporter_bps);
        self.reward(from, to_reporter);
        self.burn(total - to_reporter);
        ev.push(Event::ValidatorSlashed {
            validator: *validator,
            amount: total,
            jailed_until,
        });
        Ok(())
    }

    /// Closes the current epoch: proof accounting and health, rent release, expiry, repair
    /// placement, staking rewards, unbonding, the next validator set.
    fn end_epoch(&mut self, ev: &mut Vec<Event>) {
        let e = self.g.epoch;
        let p = self.params().clone();
        let ids: Vec<u64> = self.deals.iter().map(|(k, _)| *k).collect();
        for id in ids {
            let Some(deal) = self.deals.get(&id).cloned() else {
                continue;
            };
            let challenged =
                deal.manifest_root.is_some() && deal.user_mdus() > 0 && deal.content_epoch < e;
            let n = deal.slots.len();
            let mut paid = vec![false; n];
            for (i, s) in deal.slots.iter().enumerate() {
                if s.status != SlotStatus::Active {
                    continue;
                }
                if !challenged {
                    paid[i] = true;
                    continue;
                }
                let slot = i as u32;
                let proven = self
                    .work
                    .get(&(id, slot))
                    .map_or(0, |w| w.proven.count_ones());
                let quota = self.quota(id, slot);
                if proven >= quota {
                    paid[i] = true;
                    if let Some(d) = self.deals.get_mut(&id) {
                        d.slots[i].health = (d.slots[i].health + p.health_recovery).min(100);
                    }
                } else {
                    let health = s.health.saturating_sub(p.miss_penalty);
                    if let Some(d) = self.deals.get_mut(&id) {
                        d.slots[i].health = health;
                    }
                    if health <= p.evict_health {
                        self.evict(id, slot, EvictReason::MissedProofs, ev);
                    }
                }
            }
            // Rent release: an equal share of what is reserved for each remaining epoch.
            let Some(d) = self.deals.get(&id).cloned() else {
                continue;
            };
            let remaining = d.end_epoch.saturating_sub(e).max(1) as Amount;
            let release = d.rent_reserved / remaining;
            let share = release / n.max(1) as Amount;
            let mut back = 0;
            for (i, s) in d.slots.iter().enumerate() {
                if paid[i] {
                    self.reward(&s.provider, share);
                } else {
                    back += share;
                }
            }
            let used = share * n as Amount;
            if let Some(dm) = self.deals.get_mut(&id) {
                dm.rent_reserved -= used;
                dm.escrow += back;
            }
            if e + 1 >= d.end_epoch {
                if let Some(gone) = self.remove_deal(id) {
                    let refund = gone.escrow + gone.rent_reserved;
                    self.give(&gone.owner, refund);
                    ev.push(Event::DealEnded {
                        deal: id,
                        cancelled: false,
                        refund,
                    });
                }
                continue;
            }
            // Repairing slots still without a replacement: try again.
            for (i, s) in d.slots.iter().enumerate() {
                if s.status == SlotStatus::Repairing && s.pending.is_none() {
                    let Some(cur) = self.deals.get(&id) else {
                        break;
                    };
                    let (exclude, ops) = self.deal_members(cur);
                    if let Some(np) = self
                        .place(id, 1, d.reserved_mdus, &exclude, &ops)
                        .first()
                        .copied()
                    {
                        self.reserve(&np, d.reserved_mdus);
                        if let Some(dm) = self.deals.get_mut(&id) {
                            dm.slots[i].pending = Some(np);
                        }
                        ev.push(Event::RepairAssigned {
                            deal: id,
                            slot: i as u32,
                            pending: np,
                        });
                    }
                }
            }
        }
        for k in self.work.keys_in(..) {
            self.work.remove(&k);
        }
        let old: Vec<(u64, u32, u64)> = self
            .attestations
            .iter()
            .filter(|((_, _, ep), _)| *ep < e)
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            self.attestations.remove(&k);
        }
        self.distribute_rewards();
        for k in self.unbonding.keys_in(..=(e + 1, u64::MAX)) {
            if let Some(u) = self.unbonding.remove(&k) {
                self.give(&u.owner, u.amount);
            }
        }
        let set = self.next_validator_set();
        if set != self.g.validators {
            let keys = |s: &[SetMember]| -> Vec<Blob> {
                s.iter().map(|m| m.consensus_key.clone()).collect()
            };
            if keys(&set) != keys(&self.g.validators) {
                // New membership: a new consensus epoch starts after this block. (Power
                // alone does not change consensus: bls12381_multisig counts one vote each.)
                self.g.prev_validators = std::mem::take(&mut self.g.validators);
                self.g.set_epoch += 1;
                self.g.set_start_height = self.g.height;
            }
            self.g.validators = set.clone();
            ev.push(Event::ValidatorSetChanged { validators: set });
        }
    }

    /// The reward pool to the active set by power: commission to the validator, the rest
    /// pro rata to self-stake and delegations; rounding dust stays in the pool.
    fn distribute_rewards(&mut self) {
        let pool = self.g.reward_pool;
        // Powers are stakes, so their sum is within the supply; saturate all the same (a
        // saturated total only pays less).
        let total: Amount = self
            .g
            .validators
            .iter()
            .fold(0, |t: Amount, m| t.saturating_add(m.power));
        if pool == 0 || total == 0 {
            return;
        }
        let mut paid: Amount = 0;
        for m in self.g.validators.clone() {
            let Some(v) = self.validators.get(&m.account).cloned() else {
                continue;
            };
            let power = v.power();
            if power == 0 {
                continue;
            }
            // Exact (256-bit products): each quotient is at most its first operand, since
            // a member's power is part of the total and stakes are parts of the power.
            let share = mul_div(pool, m.power.min(power), total).unwrap_or(0);
            let commission = bps_of(share, v.commission_bps);
            let rest = share - commission;
            let mut given =
                commission.saturating_add(mul_div(rest, v.self_stake, power).unwrap_or(0));
            self.reward(&m.account, given);
            let dels: Vec<((Address, Address), Amount)> = self
                .delegations
                .range((m.account, Address::ZERO)..=(m.account, Address([0xff; 20])))
                .map(|(k, a)| (*k, *a))
                .collect();
            for ((_, who), amount) in dels {
                let r = mul_div(rest, amount, power).unwrap_or(0);
                self.reward(&who, r);
                given = given.saturating_add(r);
            }
            paid = paid.saturating_add(given);
        }
        self.g.reward_pool -= paid.min(pool);
    }

    /// The consensus epochs whose faults can still be punished, with their sets: the
    /// current one and the previous one.
    pub fn open_fault_epochs(&self) -> Vec<(u64, &[SetMember])> {
        let mut sets: Vec<(u64, &[SetMember])> = vec![(self.g.set_epoch, &self.g.validators)];
        if self.g.set_epoch > 0 {
            sets.push((self.g.set_epoch - 1, &self.g.prev_validators));
        }
        sets
    }

    /// The top validators by power: self-stake at least the minimum, not jailed.
    pub fn next_validator_set(&self) -> Vec<SetMember> {
        let p = self.params();
        let mut c: Vec<SetMember> = self
            .validators
            .iter()
            .filter(|(_, v)| v.self_stake >= p.min_validator_stake && v.jailed_until == 0)
            .map(|(a, v)| SetMember {
                account: *a,
                consensus_key: v.consensus_key.clone(),
                power: v.power(),
            })
            .collect();
        c.sort_by(|a, b| b.power.cmp(&a.power).then(a.account.cmp(&b.account)));
        c.truncate(p.max_validators as usize);
        c.sort_by_key(|m| m.account);
        c
    }
}
