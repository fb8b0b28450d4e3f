//! Chain state: records and tables that remember which keys a block changed, so the
//! authenticated store ([`crate::auth`]) gets exactly the writes of each block.
//!
//! Every table is a persistent ordered map (`imbl::OrdMap`): iteration is in key order,
//! never hash order, and cloning a whole state is O(1) (structural sharing), so consensus can
//! execute proposed blocks speculatively on a copy.

use std::collections::BTreeMap;

use imbl::{OrdMap, OrdSet};

use serde::{Deserialize, Serialize};

use crate::bytes::{Address, Blob, G1Bytes, H256};
use crate::codec;
use crate::params::Params;
use crate::Amount;

/// A table: a sorted map that records the keys written since the last
/// [`Table::take_changes`].
#[derive(Clone, Debug)]
pub struct Table<K: Ord + Clone, V: Clone> {
    map: OrdMap<K, V>,
    dirty: OrdSet<K>,
}

impl<K: Ord + Clone, V: Clone> Default for Table<K, V> {
    fn default() -> Self {
        Table {
            map: OrdMap::new(),
            dirty: OrdSet::new(),
        }
    }
}

impl<K: Ord + Clone + Serialize, V: Clone + Serialize> Table<K, V> {
    /// Reads a record.
    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    /// Whether a record exists.
    pub fn contains(&self, k: &K) -> bool {
        self.map.contains_key(k)
    }

    /// A record to modify (marked as written).
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let v = self.map.get_mut(k)?;
        self.dirty.insert(k.clone());
        Some(v)
    }

    /// Writes a record.
    pub fn insert(&mut self, k: K, v: V) {
        self.dirty.insert(k.clone());
        self.map.insert(k, v);
    }

    /// Deletes a record.
    pub fn remove(&mut self, k: &K) -> Option<V> {
        let v = self.map.remove(k)?;
        self.dirty.insert(k.clone());
        Some(v)
    }

    /// All records in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    /// Records with keys in a range, in key order.
    pub fn range<R: std::ops::RangeBounds<K>>(&self, r: R) -> impl Iterator<Item = (&K, &V)> {
        self.map.range(r)
    }

    /// Keys in a range, collected (so the caller may then modify the table).
    pub fn keys_in<R: std::ops::RangeBounds<K>>(&self, r: R) -> Vec<K> {
        self.map.range(r).map(|(k, _)| k.clone()).collect()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The writes since the last call, as `(encoded key, encoded value or None)`, in key
    /// order, prefixed with the table's tag.
    pub fn take_changes(&mut self, tag: u8, out: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>) {
        for k in std::mem::take(&mut self.dirty).into_iter() {
            let v = self.map.get(&k).map(codec::encode);
            out.push((state_key(tag, &k), v));
        }
    }
}

/// The key of a record in the authenticated store: `tag ‖ encode(key)`.
pub fn state_key<K: Serialize>(tag: u8, k: &K) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend(codec::encode(k));
    v
}

/// Table tags in the authenticated store.
pub mod tag {
    /// Chain-wide values ([`super::Globals`]).
    pub const GLOBALS: u8 = 0;
    /// Accounts by address.
    pub const ACCOUNT: u8 = 1;
    /// Providers by address.
    pub const PROVIDER: u8 = 2;
    /// Deputies by address.
    pub const DEPUTY: u8 = 3;
    /// Deals by id.
    pub const DEAL: u8 = 4;
    /// Validators by account.
    pub const VALIDATOR: u8 = 5;
    /// Delegations by (validator, delegator).
    pub const DELEGATION: u8 = 6;
    /// Unbonding entries by (release epoch, sequence).
    pub const UNBONDING: u8 = 7;
    /// Receipt state by (deal, provider).
    pub const RECEIPT: u8 = 8;
    /// This epoch's proof work by (deal, slot).
    pub const WORK: u8 = 9;
    /// Attestations by (deal, slot, epoch).
    pub const ATTEST: u8 = 10;
    /// Evidence already used, by hash.
    pub const EVIDENCE: u8 = 11;
}

/// An account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Spendable balance.
    #[serde(with = "crate::amount")]
    pub balance: Amount,
    /// Next transaction nonce.
    pub nonce: u64,
    /// Rewards earned (provider rent and receipts, deputy premiums, staking), withdrawable.
    #[serde(with = "crate::amount")]
    pub rewards: Amount,
}

/// Provider status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderStatus {
    /// Takes new slots.
    Active,
    /// Slashed below the minimum stake: keeps serving, gets no new slots.
    Underbonded,
}

/// A storage provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// Placement diversity group.
    pub operator: Address,
    /// Locked stake.
    #[serde(with = "crate::amount")]
    pub stake: Amount,
    /// Capacity in MDUs.
    pub capacity_mdus: u64,
    /// MDUs reserved by assigned and pending slots.
    pub used_mdus: u64,
    /// Slots assigned or pending.
    pub slots: u32,
    /// libp2p peer id.
    pub peer_id: String,
    /// Multiaddrs.
    pub endpoints: Vec<String>,
    /// Status.
    pub status: ProviderStatus,
    /// Times slashed.
    pub offences: u32,
}

/// A deputy (relay).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deputy {
    /// Locked stake.
    #[serde(with = "crate::amount")]
    pub stake: Amount,
    /// libp2p peer id.
    pub peer_id: String,
    /// Multiaddrs.
    pub endpoints: Vec<String>,
}

/// Slot status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotStatus {
    /// Stored and proven by `provider`.
    Active,
    /// Being rebuilt by `pending`; reads use the other slots.
    Repairing,
}

/// One slot of a deal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The provider responsible (the evicted one while repairing, until replaced).
    pub provider: Address,
    /// Status.
    pub status: SlotStatus,
    /// The replacement provider while repairing (None while none is available).
    pub pending: Option<Address>,
    /// Health 0..=100.
    pub health: u32,
}

/// A storage deal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deal {
    /// Owner.
    pub owner: Address,
    /// Data slots.
    pub k: u32,
    /// Parity slots.
    pub m: u32,
    /// Planned user MDUs.
    pub capacity_mdus: u64,
    /// Witness MDUs (fixed at creation from the capacity).
    pub witness_mdus: u64,
    /// MDUs each slot reserves at its provider: `1 + W + capacity`.
    pub reserved_mdus: u64,
    /// Current manifest root (None before the first commit).
    pub manifest_root: Option<G1Bytes>,
    /// Total MDUs of the current content.
    pub total_mdus: u64,
    /// Stored bytes.
    pub size_bytes: u64,
    /// Slab generation of the current content (0 for the first commit; meaningless while
    /// `manifest_root` is None).
    pub generation: u64,
    /// Epoch of the latest commit (challenges start the epoch after).
    pub content_epoch: u64,
    /// First epoch of the term.
    pub start_epoch: u64,
    /// First epoch after the term.
    pub end_epoch: u64,
    /// Unreserved escrow.
    #[serde(with = "crate::amount")]
    pub escrow: Amount,
    /// Rent reserved for the rest of the term, released to providers epoch by epoch.
    #[serde(with = "crate::amount")]
    pub rent_reserved: Amount,
    /// Receipts may pay at most this per epoch.
    #[serde(with = "crate::amount")]
    pub spend_cap: Amount,
    /// Epoch of `spent`.
    pub spent_epoch: u64,
    /// Paid through receipts in `spent_epoch`.
    #[serde(with = "crate::amount")]
    pub spent: Amount,
    /// Slots.
    pub slots: Vec<Slot>,
    /// Delegates and the last epoch each may act.
    pub delegates: BTreeMap<Address, u64>,
}

impl Deal {
    /// Rows per MDU (64 / K).
    pub fn rows(&self) -> u64 {
        64 / self.k.max(1) as u64
    }

    /// User MDUs of the current content.
    pub fn user_mdus(&self) -> u64 {
        self.total_mdus.saturating_sub(1 + self.witness_mdus)
    }

    /// Challenge `ordinal` of `slot` of this deal (id `deal_id`) under the epoch beacon
    /// (SPEC §6.2): the one derivation that the chain checks proofs against and that
    /// providers answer.
    pub fn challenge(
        &self,
        deal_id: u64,
        slot: u32,
        ordinal: u32,
        beacon: &H256,
    ) -> Result<wasm_core::proof::Challenge, wasm_core::proof::ProofError> {
        wasm_core::proof::derive_challenge(&wasm_core::proof::ChallengeInput {
            beacon: &beacon.0,
            deal_id,
            generation: self.generation,
            slot,
            ordinal,
            witness_mdus: self.witness_mdus,
            user_mdus: self.user_mdus(),
            rows: self.rows(),
        })
    }

    /// Whether `who` may act for the owner at `epoch`.
    pub fn is_authorized(&self, who: &Address, epoch: u64) -> bool {
        *who == self.owner || self.delegates.get(who).is_some_and(|&until| epoch <= until)
    }

    /// The generation the next content commit must carry: 0 for the first, then one more
    /// than the committed one.
    pub fn next_generation(&self) -> u64 {
        if self.manifest_root.is_none() {
            0
        } else {
            self.generation + 1
        }
    }
}

/// A validator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    /// Consensus public key.
    pub consensus_key: Blob,
    /// Self-stake.
    #[serde(with = "crate::amount")]
    pub self_stake: Amount,
    /// Sum of delegations by others.
    #[serde(with = "crate::amount")]
    pub delegated: Amount,
    /// Commission (bps) on delegators' rewards.
    pub commission_bps: u32,
    /// Jailed until this epoch (exclusive); 0 when free.
    pub jailed_until: u64,
    /// Faults so far (graduated slashing).
    pub offences: u32,
}

impl Validator {
    /// Voting power.
    pub fn power(&self) -> Amount {
        self.self_stake.saturating_add(self.delegated)
    }
}

/// An unbonding entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unbonding {
    /// Who gets it.
    pub owner: Address,
    /// Amount.
    #[serde(with = "crate::amount")]
    pub amount: Amount,
    /// The validator whose stake (self-stake or a delegation) this was: until released it
    /// is slashed with that validator's faults, so unbonding is no escape from a fault
    /// committed while bonded. None for provider and deputy stake.
    pub validator: Option<Address>,
}

/// Receipt redemption state per (deal, provider).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptState {
    /// Highest nonce redeemed.
    pub nonce: u64,
    /// Blobs acknowledged by the latest receipt.
    pub blobs: u64,
    /// Blobs paid so far.
    pub paid_blobs: u64,
}

/// Proof work of one slot in the current epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Work {
    /// Bit i set: challenge i proven.
    pub proven: u64,
    /// Blobs of receipts redeemed this epoch.
    pub credit_blobs: u64,
}

/// A member of the active validator set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetMember {
    /// Validator account.
    pub account: Address,
    /// Consensus key.
    pub consensus_key: Blob,
    /// Voting power.
    #[serde(with = "crate::amount")]
    pub power: Amount,
}

/// Chain-wide values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Globals {
    /// Chain id.
    pub chain_id: u64,
    /// Parameters.
    pub params: Params,
    /// Height of the last executed block.
    pub height: u64,
    /// Current epoch.
    pub epoch: u64,
    /// First height of the next epoch.
    pub next_epoch_height: u64,
    /// Beacon of the current epoch.
    pub beacon: H256,
    /// Beacon of the previous epoch (attestations may refer to it).
    pub prev_beacon: H256,
    /// Next deal id.
    pub next_deal: u64,
    /// Next unbonding sequence number.
    pub next_unbonding: u64,
    /// Tokens in existence.
    #[serde(with = "crate::amount")]
    pub supply: Amount,
    /// Minted since genesis.
    #[serde(with = "crate::amount")]
    pub minted: Amount,
    /// Burned since genesis.
    #[serde(with = "crate::amount")]
    pub burned: Amount,
    /// Validator rewards collected this epoch (fees and block rewards).
    #[serde(with = "crate::amount")]
    pub reward_pool: Amount,
    /// The active validator set.
    pub validators: Vec<SetMember>,
    /// Consensus epoch: how many times the set's membership (its consensus keys) changed.
    /// The validator runs one simplex instance per consensus epoch.
    pub set_epoch: u64,
    /// Height of the block whose execution started the current consensus epoch (0: genesis).
    pub set_start_height: u64,
    /// The previous consensus epoch's set: consensus-fault evidence from it is still
    /// accepted, older evidence has expired.
    pub prev_validators: Vec<SetMember>,
}

/// The whole state.
#[derive(Clone, Debug)]
pub struct State {
    /// Chain-wide values.
    pub g: Globals,
    /// Accounts.
    pub accounts: Table<Address, Account>,
    /// Providers.
    pub providers: Table<Address, Provider>,
    /// Deputies.
    pub deputies: Table<Address, Deputy>,
    /// Deals.
    pub deals: Table<u64, Deal>,
    /// Validators.
    pub validators: Table<Address, Validator>,
    /// Delegations (validator, delegator) → amount.
    pub delegations: Table<(Address, Address), Amount>,
    /// Unbonding (release epoch, seq) → entry.
    pub unbonding: Table<(u64, u64), Unbonding>,
    /// Receipts (deal, provider).
    pub receipts: Table<(u64, Address), ReceiptState>,
    /// This epoch's work (deal, slot).
    pub work: Table<(u64, u32), Work>,
    /// Attestations (deal, slot, epoch) → deputies.
    pub attestations: Table<(u64, u32, u64), Vec<Address>>,
    /// Evidence used.
    pub evidence: Table<H256, u64>,
}

impl State {
    /// An empty state for `chain_id` with `params`.
    pub fn new(chain_id: u64, params: Params) -> State {
        State {
            g: Globals {
                chain_id,
                params,
                height: 0,
                epoch: 0,
                next_epoch_height: 0,
                beacon: H256::ZERO,
                prev_beacon: H256::ZERO,
                next_deal: 1,
                next_unbonding: 0,
                supply: 0,
                minted: 0,
                burned: 0,
                reward_pool: 0,
                validators: Vec::new(),
                set_epoch: 0,
                set_start_height: 0,
                prev_validators: Vec::new(),
            },
            accounts: Table::default(),
            providers: Table::default(),
            deputies: Table::default(),
            deals: Table::default(),
            validators: Table::default(),
            delegations: Table::default(),
            unbonding: Table::default(),
            receipts: Table::default(),
            work: Table::default(),
            attestations: Table::default(),
            evidence: Table::default(),
        }
    }

    /// Every write since the last call (globals always included), for the authenticated
    /// store.
    pub fn take_changes(&mut self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut out = vec![(vec![tag::GLOBALS], Some(codec::encode(&self.g)))];
        self.accounts.take_changes(tag::ACCOUNT, &mut out);
        self.providers.take_changes(tag::PROVIDER, &mut out);
        self.deputies.take_changes(tag::DEPUTY, &mut out);
        self.deals.take_changes(tag::DEAL, &mut out);
        self.validators.take_changes(tag::VALIDATOR, &mut out);
        self.delegations.take_changes(tag::DELEGATION, &mut out);
        self.unbonding.take_changes(tag::UNBONDING, &mut out);
        self.receipts.take_changes(tag::RECEIPT, &mut out);
        self.work.take_changes(tag::WORK, &mut out);
        self.attestations.take_changes(tag::ATTEST, &mut out);
        self.evidence.take_changes(tag::EVIDENCE, &mut out);
        out
    }

    /// Every token the state holds anywhere. Equals `g.supply` after every block (the
    /// conservation invariant, checked in tests).
    pub fn accounted_supply(&self) -> Amount {
        let mut t: Amount = self.g.reward_pool;
        for (_, a) in self.accounts.iter() {
            t += a.balance + a.rewards;
        }
        for (_, p) in self.providers.iter() {
            t += p.stake;
        }
        for (_, d) in self.deputies.iter() {
            t += d.stake;
        }
        for (_, d) in self.deals.iter() {
            t += d.escrow + d.rent_reserved;
        }
        for (_, v) in self.validators.iter() {
            t += v.self_stake;
        }
        for (_, a) in self.delegations.iter() {
            t += *a;
        }
        for (_, u) in self.unbonding.iter() {
            t += u.amount;
        }
        t
    }
}
