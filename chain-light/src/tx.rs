//! Transactions and the signed objects that travel inside them (docs/chain.md §Messages).
//!
//! A transaction is `Tx { chain_id, from, nonce, fee, msg }` signed with EIP-712: the
//! primary type is the message's name, its fields are `address from,uint64 nonce,uint256
//! fee` followed by the message's own fields. Messages a person signs in a wallet
//! (transfers, deals, staking) have typed fields; messages daemons sign (proofs, evidence,
//! registrations) carry their canonical encoding as `bytes body`.

use serde::{Deserialize, Serialize};

use crate::bytes::{Address, Blob, G1Bytes, Sig65, H256};
use crate::crypto::{self, hash_struct, typed_digest, Field, SecretKey, SigError};
use crate::params::Params;
use crate::Amount;

/// An unsigned transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tx {
    /// Chain id (also in the EIP-712 domain).
    pub chain_id: u64,
    /// Sender; the signature must recover to it.
    pub from: Address,
    /// The sender's next nonce.
    pub nonce: u64,
    /// Fee offered (≥ `Params::min_fee`).
    #[serde(with = "crate::amount")]
    pub fee: Amount,
    /// What to do.
    pub msg: Msg,
}

/// A signed transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTx {
    /// The transaction.
    pub tx: Tx,
    /// EIP-712 signature by `tx.from`.
    pub sig: Sig65,
}

/// A storage proof for one challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofItem {
    /// Deal.
    pub deal: u64,
    /// Slot.
    pub slot: u32,
    /// Challenge ordinal in the epoch.
    pub ordinal: u32,
    /// `wasm_core::proof::TripleProof::to_bytes`.
    pub proof: Blob,
}

/// A reader's cumulative receipt for one (deal, provider): everything received so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Deal.
    pub deal: u64,
    /// Provider that served.
    pub provider: Address,
    /// Deputy that fetched on the reader's behalf (zero if none).
    pub deputy: Address,
    /// Verified blobs received, cumulative.
    pub blobs: u64,
    /// Verified bytes received, cumulative.
    pub bytes: u64,
    /// Strictly increasing per (deal, provider).
    pub nonce: u64,
}

impl Receipt {
    /// EIP-712 type string.
    pub const TYPE: &'static str = "Receipt(uint64 deal,address provider,address deputy,uint64 blobs,uint64 bytes,uint64 nonce)";

    /// The digest the reader signs.
    pub fn digest(&self, chain_id: u64) -> H256 {
        typed_digest(
            chain_id,
            &hash_struct(
                Self::TYPE,
                &[
                    Field::U64(self.deal),
                    Field::Address(&self.provider),
                    Field::Address(&self.deputy),
                    Field::U64(self.blobs),
                    Field::U64(self.bytes),
                    Field::U64(self.nonce),
                ],
            ),
        )
    }
}

/// What a provider signs when it serves bytes of a leaf: the basis of fraud evidence. It
/// names the content the bytes claim to be — the deal's generation and the MDU's root —
/// so that a statement about earlier content can never be judged against later content
/// (the chain rebuilds it from the deal's current generation and the MDU root the
/// evidence opens in the current manifest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    /// Deal.
    pub deal: u64,
    /// The deal generation the stored shard belongs to.
    pub generation: u64,
    /// Slot.
    pub slot: u32,
    /// MDU index.
    pub mdu: u32,
    /// `mdu_root_fr` of the MDU the provider stores.
    pub mdu_root: H256,
    /// Leaf index in the MDU.
    pub leaf: u32,
    /// BLAKE3 of the bytes served.
    pub blake3: H256,
}

impl Served {
    /// EIP-712 type string.
    pub const TYPE: &'static str = "Served(uint64 deal,uint64 generation,uint32 slot,uint32 mdu,bytes32 mdu_root,uint32 leaf,bytes32 blake3)";

    /// The digest the provider signs.
    pub fn digest(&self, chain_id: u64) -> H256 {
        typed_digest(
            chain_id,
            &hash_struct(
                Self::TYPE,
                &[
                    Field::U64(self.deal),
                    Field::U64(self.generation),
                    Field::U64(self.slot as u64),
                    Field::U64(self.mdu as u64),
                    Field::B32(&self.mdu_root.0),
                    Field::U64(self.leaf as u64),
                    Field::B32(&self.blake3.0),
                ],
            ),
        )
    }
}

/// Evidence that a provider served bytes that do not match their leaf (SPEC §7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FraudEvidence {
    /// Deal.
    pub deal: u64,
    /// Slot of the accused provider.
    pub slot: u32,
    /// MDU index.
    pub mdu: u32,
    /// Leaf index in the MDU (belongs to `slot`).
    pub leaf_index: u32,
    /// The leaf's KZG commitment.
    pub leaf_commitment: G1Bytes,
    /// The leaf's BLAKE3.
    pub leaf_blake3: H256,
    /// Sibling path, bottom up.
    pub path: Vec<H256>,
    /// `mdu_root_fr` of the MDU.
    pub mdu_root: H256,
    /// KZG opening of the manifest at element `mdu` (to `mdu_root`).
    pub manifest_proof: G1Bytes,
    /// The bytes served.
    pub bytes: Blob,
    /// The provider's signature over [`Served`] for these bytes.
    pub served_sig: Sig65,
}

/// A deputy's signed statement that a provider did not answer (SPEC §7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    /// Deal.
    pub deal: u64,
    /// Slot.
    pub slot: u32,
    /// MDU requested.
    pub mdu: u32,
    /// Leaf requested.
    pub leaf: u32,
    /// The provider that did not answer.
    pub provider: Address,
    /// The epoch (time window) of the attempt.
    pub epoch: u64,
    /// Hash of the deputy's transcript of the attempt.
    pub transcript: H256,
}

impl Attestation {
    /// EIP-712 type string.
    pub const TYPE: &'static str = "Attestation(uint64 deal,uint32 slot,uint32 mdu,uint32 leaf,address provider,uint64 epoch,bytes32 transcript)";

    /// The digest the deputy signs.
    pub fn digest(&self, chain_id: u64) -> H256 {
        typed_digest(
            chain_id,
            &hash_struct(
                Self::TYPE,
                &[
                    Field::U64(self.deal),
                    Field::U64(self.slot as u64),
                    Field::U64(self.mdu as u64),
                    Field::U64(self.leaf as u64),
                    Field::Address(&self.provider),
                    Field::U64(self.epoch),
                    Field::B32(&self.transcript.0),
                ],
            ),
        )
    }
}

/// Every state-changing message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Msg {
    /// Move tokens.
    Transfer {
        /// Recipient.
        to: Address,
        /// Amount.
        #[serde(with = "crate::amount")]
        amount: Amount,
    },
    /// Register the sender as a storage provider, locking `stake`.
    RegisterProvider {
        /// Stake locked from the balance.
        #[serde(with = "crate::amount")]
        stake: Amount,
        /// Capacity in MDUs (each assigned slot reserves the deal's whole MDU count).
        capacity_mdus: u64,
        /// Operator identity for placement diversity (one operator, many providers).
        operator: Address,
        /// libp2p peer id.
        peer_id: String,
        /// Multiaddrs.
        endpoints: Vec<String>,
    },
    /// Change a provider's endpoints or capacity, or add stake.
    UpdateProvider {
        /// New capacity.
        capacity_mdus: u64,
        /// New endpoints.
        endpoints: Vec<String>,
        /// Stake to add.
        #[serde(with = "crate::amount")]
        add_stake: Amount,
    },
    /// Leave: allowed with no assigned or pending slots; the stake unbonds.
    ExitProvider {},
    /// Register the sender as a deputy (relay), locking `stake`.
    RegisterDeputy {
        /// Stake.
        #[serde(with = "crate::amount")]
        stake: Amount,
        /// libp2p peer id.
        peer_id: String,
        /// Multiaddrs.
        endpoints: Vec<String>,
    },
    /// Leave the deputy set; the stake unbonds.
    ExitDeputy {},
    /// Create a deal; the chain places its slots.
    CreateDeal {
        /// Data slots K.
        k: u32,
        /// Parity slots M.
        m: u32,
        /// Planned user MDUs (fixes the witness MDUs).
        capacity_mdus: u64,
        /// Term in epochs.
        term_epochs: u64,
        /// Escrow moved from the balance.
        #[serde(with = "crate::amount")]
        escrow: Amount,
        /// Most receipts may pay per epoch.
        #[serde(with = "crate::amount")]
        spend_cap: Amount,
    },
    /// Commit new content (owner or an authorised delegate).
    CommitContent {
        /// Deal.
        deal: u64,
        /// The slab generation: 0 for the first commit, then the deal's generation + 1.
        generation: u64,
        /// New manifest root.
        manifest_root: G1Bytes,
        /// Total MDUs (never shrinks).
        total_mdus: u64,
        /// Stored bytes.
        size_bytes: u64,
    },
    /// Add escrow to any deal (sponsoring).
    AddCredit {
        /// Deal.
        deal: u64,
        /// Amount.
        #[serde(with = "crate::amount")]
        amount: Amount,
    },
    /// Extend the term; the rent for the current content is reserved now.
    ExtendDeal {
        /// Deal.
        deal: u64,
        /// Extra epochs.
        epochs: u64,
    },
    /// Cancel: unreleased rent minus the penalty and the escrow go back to the owner.
    CancelDeal {
        /// Deal.
        deal: u64,
    },
    /// Authorise a delegate key to commit content and sign receipts until an epoch.
    Authorize {
        /// Deal.
        deal: u64,
        /// Delegate address.
        delegate: Address,
        /// Last epoch (inclusive) the delegation holds.
        until_epoch: u64,
    },
    /// Revoke a delegate.
    Revoke {
        /// Deal.
        deal: u64,
        /// Delegate.
        delegate: Address,
    },
    /// Storage proofs for the current epoch's challenges (batched).
    SubmitProofs {
        /// Challenge epoch (must be the current one).
        epoch: u64,
        /// Proofs.
        items: Vec<ProofItem>,
    },
    /// Redeem a reader's cumulative receipt.
    RedeemReceipt {
        /// The receipt.
        receipt: Receipt,
        /// Signature by the deal owner or a delegate.
        sig: Sig65,
    },
    /// Fraud evidence against a provider.
    SubmitFraud {
        /// The evidence.
        evidence: Box<FraudEvidence>,
    },
    /// A deputy's failure attestation.
    SubmitAttestation {
        /// The attestation.
        att: Attestation,
        /// The deputy's signature.
        sig: Sig65,
    },
    /// The pending provider of a repairing slot proves it holds the slot.
    CompleteRepair {
        /// Deal.
        deal: u64,
        /// Slot.
        slot: u32,
        /// `repair_proofs` triple proofs for the repair challenges.
        proofs: Vec<Blob>,
    },
    /// Move accumulated rewards to the balance.
    Withdraw {},
    /// Become a validator candidate with a consensus key and self-stake.
    CreateValidator {
        /// Consensus public key (engine-specific bytes).
        consensus_key: Blob,
        /// Self-stake.
        #[serde(with = "crate::amount")]
        stake: Amount,
        /// Commission on delegators' rewards (bps).
        commission_bps: u32,
    },
    /// Delegate stake to a validator (also adds self-stake when `validator == from`).
    Delegate {
        /// Validator's account.
        validator: Address,
        /// Amount.
        #[serde(with = "crate::amount")]
        amount: Amount,
    },
    /// Start unbonding a delegation (or self-stake).
    Undelegate {
        /// Validator's account.
        validator: Address,
        /// Amount.
        #[serde(with = "crate::amount")]
        amount: Amount,
    },
    /// Leave jail after the jail term.
    Unjail {},
    /// Evidence of a consensus fault by a validator (checked by the engine's verifier).
    ReportValidatorFault {
        /// Validator's account.
        validator: Address,
        /// Engine-specific evidence.
        evidence: Blob,
    },
    /// Replace the parameters (governor only).
    SetParams {
        /// New parameters.
        params: Box<Params>,
    },
}

impl Msg {
    /// The message's name (EIP-712 primary type).
    pub fn name(&self) -> &'static str {
        match self {
            Msg::Transfer { .. } => "Transfer",
            Msg::RegisterProvider { .. } => "RegisterProvider",
            Msg::UpdateProvider { .. } => "UpdateProvider",
            Msg::ExitProvider {} => "ExitProvider",
            Msg::RegisterDeputy { .. } => "RegisterDeputy",
            Msg::ExitDeputy {} => "ExitDeputy",
            Msg::CreateDeal { .. } => "CreateDeal",
            Msg::CommitContent { .. } => "CommitContent",
            Msg::AddCredit { .. } => "AddCredit",
            Msg::ExtendDeal { .. } => "ExtendDeal",
            Msg::CancelDeal { .. } => "CancelDeal",
            Msg::Authorize { .. } => "Authorize",
            Msg::Revoke { .. } => "Revoke",
            Msg::SubmitProofs { .. } => "SubmitProofs",
            Msg::RedeemReceipt { .. } => "RedeemReceipt",
            Msg::SubmitFraud { .. } => "SubmitFraud",
            Msg::SubmitAttestation { .. } => "SubmitAttestation",
            Msg::CompleteRepair { .. } => "CompleteRepair",
            Msg::Withdraw {} => "Withdraw",
            Msg::CreateValidator { .. } => "CreateValidator",
            Msg::Delegate { .. } => "Delegate",
            Msg::Undelegate { .. } => "Undelegate",
            Msg::Unjail {} => "Unjail",
            Msg::ReportValidatorFault { .. } => "ReportValidatorFault",
            Msg::SetParams { .. } => "SetParams",
        }
    }
}

const COMMON: &str = "address from,uint64 nonce,uint256 fee";

impl Tx {
    /// The EIP-712 type string of this transaction's message.
    pub fn type_string(&self) -> String {
        let own = match &self.msg {
            Msg::Transfer { .. } => "address to,uint256 amount",
            Msg::CreateDeal { .. } => "uint32 k,uint32 m,uint64 capacityMdus,uint64 termEpochs,uint256 escrow,uint256 spendCap",
            Msg::CommitContent { .. } => "uint64 deal,uint64 generation,bytes manifestRoot,uint64 totalMdus,uint64 sizeBytes",
            Msg::AddCredit { .. } => "uint64 deal,uint256 amount",
            Msg::ExtendDeal { .. } => "uint64 deal,uint64 epochs",
            Msg::CancelDeal { .. } => "uint64 deal",
            Msg::Authorize { .. } => "uint64 deal,address delegate,uint64 untilEpoch",
            Msg::Revoke { .. } => "uint64 deal,address delegate",
            Msg::Withdraw {} | Msg::ExitProvider {} | Msg::ExitDeputy {} | Msg::Unjail {} => "",
            Msg::Delegate { .. } | Msg::Undelegate { .. } => "address validator,uint256 amount",
            _ => "bytes body",
        };
        if own.is_empty() {
            format!("{}({COMMON})", self.msg.name())
        } else {
            format!("{}({COMMON},{own})", self.msg.name())
        }
    }

    /// The EIP-712 digest the sender signs.
    pub fn digest(&self) -> H256 {
        let body;
        let mut f: Vec<Field<'_>> = vec![
            Field::Address(&self.from),
            Field::U64(self.nonce),
            Field::U128(self.fee),
        ];
        match &self.msg {
            Msg::Transfer { to, amount } => {
                f.extend([Field::Address(to), Field::U128(*amount)]);
            }
            Msg::CreateDeal {
                k,
                m,
                capacity_mdus,
                term_epochs,
                escrow,
                spend_cap,
            } => f.extend([
                Field::U64(*k as u64),
                Field::U64(*m as u64),
                Field::U64(*capacity_mdus),
                Field::U64(*term_epochs),
                Field::U128(*escrow),
                Field::U128(*spend_cap),
            ]),
            Msg::CommitContent {
                deal,
                generation,
                manifest_root,
                total_mdus,
                size_bytes,
            } => f.extend([
                Field::U64(*deal),
                Field::U64(*generation),
                Field::Bytes(&manifest_root.0),
                Field::U64(*total_mdus),
                Field::U64(*size_bytes),
            ]),
            Msg::AddCredit { deal, amount } => f.extend([Field::U64(*deal), Field::U128(*amount)]),
            Msg::ExtendDeal { deal, epochs } => f.extend([Field::U64(*deal), Field::U64(*epochs)]),
            Msg::CancelDeal { deal } => f.push(Field::U64(*deal)),
            Msg::Authorize {
                deal,
                delegate,
                until_epoch,
            } => f.extend([
                Field::U64(*deal),
                Field::Address(delegate),
                Field::U64(*until_epoch),
            ]),
            Msg::Revoke { deal, delegate } => {
                f.extend([Field::U64(*deal), Field::Address(delegate)])
            }
            Msg::Withdraw {} | Msg::ExitProvider {} | Msg::ExitDeputy {} | Msg::Unjail {} => {}
            Msg::Delegate { validator, amount } | Msg::Undelegate { validator, amount } => {
                f.extend([Field::Address(validator), Field::U128(*amount)])
            }
            other => {
                body = crate::codec::encode(other);
                f.push(Field::Bytes(&body));
            }
        }
        typed_digest(self.chain_id, &hash_struct(&self.type_string(), &f))
    }

    /// Signs with `key` (whose address should be `from`).
    pub fn sign(self, key: &SecretKey) -> SignedTx {
        let sig = key.sign_digest(&self.digest());
        SignedTx { tx: self, sig }
    }
}

impl SignedTx {
    /// Checks the signature against `tx.from`.
    pub fn verify_signature(&self) -> Result<(), SigError> {
        crypto::verify(&self.tx.digest(), &self.sig, &self.tx.from)
    }

    /// The transaction hash: keccak256 of the canonical encoding.
    pub fn hash(&self) -> H256 {
        H256(crypto::keccak256(&crate::codec::encode(self)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_every_field() {
        let k = SecretKey::from_seed(b"alice");
        let tx = Tx {
            chain_id: 9,
            from: k.address(),
            nonce: 3,
            fee: 1000,
            msg: Msg::Transfer {
                to: Address([1; 20]),
                amount: 5,
            },
        };
        assert_eq!(
            tx.type_string(),
            "Transfer(address from,uint64 nonce,uint256 fee,address to,uint256 amount)"
        );
        let s = tx.clone().sign(&k);
        s.verify_signature().unwrap();
        for mutate in [
            |t: &mut Tx| t.chain_id += 1,
            |t: &mut Tx| t.nonce += 1,
            |t: &mut Tx| t.fee += 1,
            |t: &mut Tx| {
                t.msg = Msg::Transfer {
                    to: Address([1; 20]),
                    amount: 6,
                }
            },
        ] {
            let mut bad = s.clone();
            mutate(&mut bad.tx);
            assert!(bad.verify_signature().is_err());
        }
        // Body-encoded messages bind their body too.
        let p = Tx {
            msg: Msg::SubmitProofs {
                epoch: 1,
                items: vec![],
            },
            ..tx
        };
        assert_eq!(
            p.type_string(),
            "SubmitProofs(address from,uint64 nonce,uint256 fee,bytes body)"
        );
        let s = p.clone().sign(&k);
        s.verify_signature().unwrap();
        let mut bad = s;
        bad.tx.msg = Msg::SubmitProofs {
            epoch: 2,
            items: vec![],
        };
        assert!(bad.verify_signature().is_err());
    }
}
