//! The consensus seam and the light client.
//!
//! The chain runs on commonware simplex with the `bls12381_multisig` scheme (attributable
//! BLS signatures, MinSig: 48-byte signatures, 96-byte public keys). Everything engine-specific
//! that the state machine and light clients need lives here: the consensus-key format, the
//! signing namespace, finalization-certificate verification, and the light client that
//! follows headers and verifies state proofs. Swapping the engine means replacing this module
//! and the validator's `node.rs`.
//!
//! A consensus key (a validator's `consensus_key`) is
//! `ed25519 identity (32) ‖ BLS public key (96) ‖ BLS proof of possession (48)`; the proof is
//! checked whenever a key enters the chain, which rules out rogue-key attacks on aggregates.

use commonware_codec::{Copying, Decode, Encode, ReadExt};
use commonware_consensus::simplex::scheme::bls12381_multisig;
use commonware_consensus::simplex::types::Finalization;
use commonware_cryptography::bls12381::primitives::group::Private;
use commonware_cryptography::bls12381::primitives::ops;
use commonware_cryptography::bls12381::primitives::variant::{MinSig, Variant};
use commonware_cryptography::certificate::Verifier as _;
use commonware_cryptography::{ed25519, sha256, Signer as _};
use commonware_parallel::Sequential;
use commonware_utils::ordered::BiMap;
use rand10::SeedableRng;

use crate::auth::StateProof;
use crate::block::{validators_hash, Header};
use crate::bytes::{Blob, H256};
use crate::state::SetMember;

/// Identity key (p2p identity and signer order).
pub type PublicKey = ed25519::PublicKey;
/// BLS public key (MinSig: G2).
pub type BlsPublic = <MinSig as Variant>::Public;
/// The signing scheme.
pub type Scheme = bls12381_multisig::Scheme<PublicKey, MinSig>;
/// The digest consensus orders: a header hash.
pub type Digest = sha256::Digest;

/// Length of an encoded consensus key.
pub const CONSENSUS_KEY_LEN: usize = 32 + 96 + 48;
const POP_NAMESPACE: &[u8] = b"nilstore/consensus-pop/v1";

/// Errors of the consensus seam and the light client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LightError {
    /// A consensus key does not parse or its proof of possession fails.
    #[error("bad consensus key: {0}")]
    BadKey(String),
    /// Two validators share an identity or BLS key.
    #[error("duplicate consensus key in the validator set")]
    DuplicateKey,
    /// The certificate does not decode.
    #[error("malformed finalization certificate")]
    MalformedCertificate,
    /// The certificate finalizes another header.
    #[error("certificate finalizes another header")]
    WrongPayload,
    /// The signatures do not verify against the trusted validator set (or lack a quorum).
    #[error("certificate does not verify against the trusted validator set")]
    BadCertificate,
    /// The header is not newer than the trusted one, or is for another chain.
    #[error("header rejected: {0}")]
    BadHeader(String),
    /// The header changes the validator set, and the new set was not supplied or does not
    /// match its hash.
    #[error("validator set does not match the header's validators_hash")]
    ValidatorSetMismatch,
    /// A state proof does not verify against the trusted state root.
    #[error("state proof: {0}")]
    BadProof(String),
}

/// The signing namespace of a chain (validators and light clients must agree).
pub fn namespace(chain_id: u64) -> Vec<u8> {
    let mut v = b"nilstore/consensus/v1/".to_vec();
    v.extend_from_slice(&chain_id.to_be_bytes());
    v
}

/// A parsed consensus key.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsensusKey {
    /// ed25519 identity.
    pub identity: PublicKey,
    /// BLS public key.
    pub bls: BlsPublic,
}

/// Parses a consensus key and checks its proof of possession.
pub fn parse_consensus_key(bytes: &[u8]) -> Result<ConsensusKey, LightError> {
    if bytes.len() != CONSENSUS_KEY_LEN {
        return Err(LightError::BadKey(format!(
            "{} bytes, expected {CONSENSUS_KEY_LEN}",
            bytes.len()
        )));
    }
    let identity = PublicKey::read(&mut Copying(&bytes[..32]))
        .map_err(|e| LightError::BadKey(format!("identity: {e}")))?;
    let bls = BlsPublic::read(&mut Copying(&bytes[32..128]))
        .map_err(|e| LightError::BadKey(format!("BLS key: {e}")))?;
    let pop = <MinSig as Variant>::Signature::read(&mut Copying(&bytes[128..]))
        .map_err(|e| LightError::BadKey(format!("proof of possession: {e}")))?;
    ops::verify_proof_of_possession::<MinSig>(&bls, POP_NAMESPACE, &pop)
        .map_err(|_| LightError::BadKey("proof of possession does not verify".into()))?;
    Ok(ConsensusKey { identity, bls })
}

/// Encodes a validator's consensus key from its private keys (with the proof of possession).
pub fn make_consensus_key(identity: &ed25519::PrivateKey, bls: &Private) -> Blob {
    let mut v = identity.public_key().encode().to_vec();
    v.extend_from_slice(&ops::compute_public::<MinSig>(bls).encode());
    v.extend_from_slice(&ops::sign_proof_of_possession::<MinSig>(bls, POP_NAMESPACE).encode());
    Blob(v)
}

/// The participant map of a validator set (identity → BLS key; the identity order is the
/// signer order in certificates).
pub fn participants(set: &[SetMember]) -> Result<BiMap<PublicKey, BlsPublic>, LightError> {
    let pairs = set
        .iter()
        .map(|m| parse_consensus_key(&m.consensus_key.0).map(|k| (k.identity, k.bls)))
        .collect::<Result<Vec<_>, _>>()?;
    BiMap::try_from(pairs).map_err(|_| LightError::DuplicateKey)
}

/// The digest consensus finalizes for a header.
pub fn header_digest(h: &Header) -> Digest {
    Digest::from(h.hash().0)
}

/// Verifies that `cert` (an encoded simplex `Finalization`) finalizes `header` with a quorum
/// of `set`. Returns the consensus view.
pub fn verify_finalization(
    chain_id: u64,
    set: &[SetMember],
    header: &Header,
    cert: &[u8],
) -> Result<u64, LightError> {
    let verifier = Scheme::verifier(&namespace(chain_id), participants(set)?);
    let fin = Finalization::<Scheme, Digest>::decode_cfg(
        Copying(cert),
        &verifier.certificate_codec_config(),
    )
    .map_err(|_| LightError::MalformedCertificate)?;
    if fin.proposal.payload != header_digest(header) {
        return Err(LightError::WrongPayload);
    }
    // Multisig certificates use no randomness; the API wants a CryptoRng anyway.
    let mut rng = rand10::rngs::StdRng::seed_from_u64(0);
    if !fin.verify(&mut rng, &verifier, &Sequential) {
        return Err(LightError::BadCertificate);
    }
    Ok(fin.proposal.round.view().get())
}

/// A light client: trusts a header only when a quorum of the validator set it already trusts
/// finalized it, follows validator-set changes through the headers' `validators_hash`, and
/// checks state proofs against the trusted state root.
#[derive(Clone, Debug)]
pub struct LightClient {
    chain_id: u64,
    validators: Vec<SetMember>,
    trusted: Header,
}

impl LightClient {
    /// Starts from a trusted header (e.g. the genesis header, computed from the genesis
    /// document) and the validator set it names.
    pub fn new(trusted: Header, validators: Vec<SetMember>) -> Result<LightClient, LightError> {
        if validators_hash(&validators) != trusted.validators_hash {
            return Err(LightError::ValidatorSetMismatch);
        }
        participants(&validators)?;
        Ok(LightClient {
            chain_id: trusted.chain_id,
            validators,
            trusted,
        })
    }

    /// The trusted header.
    pub fn trusted(&self) -> &Header {
        &self.trusted
    }

    /// The validator set that must sign the next header.
    pub fn validators(&self) -> &[SetMember] {
        &self.validators
    }

    /// Accepts a newer header finalized by the trusted set. When the header changes the set,
    /// `next_validators` must be the new set. Nothing changes on error.
    pub fn advance(
        &mut self,
        header: &Header,
        cert: &[u8],
        next_validators: Option<&[SetMember]>,
    ) -> Result<(), LightError> {
        if header.chain_id != self.chain_id {
            return Err(LightError::BadHeader("another chain".into()));
        }
        if header.height <= self.trusted.height {
            return Err(LightError::BadHeader(format!(
                "height {} not above the trusted {}",
                header.height, self.trusted.height
            )));
        }
        verify_finalization(self.chain_id, &self.validators, header, cert)?;
        let next = if header.validators_hash == self.trusted.validators_hash {
            self.validators.clone()
        } else {
            let set = next_validators.ok_or(LightError::ValidatorSetMismatch)?;
            if validators_hash(set) != header.validators_hash {
                return Err(LightError::ValidatorSetMismatch);
            }
            participants(set)?;
            set.to_vec()
        };
        self.validators = next;
        self.trusted = header.clone();
        Ok(())
    }

    /// Verifies a state proof against the trusted header's state root and returns the
    /// record's encoding (None: proven absent).
    pub fn verify_state(&self, proof: &StateProof) -> Result<Option<Vec<u8>>, LightError> {
        self.verify_state_at(proof, &self.trusted.state_root)
    }

    fn verify_state_at(
        &self,
        proof: &StateProof,
        root: &H256,
    ) -> Result<Option<Vec<u8>>, LightError> {
        proof
            .verify(root)
            .map_err(|e| LightError::BadProof(e.to_string()))?;
        Ok(proof.value.clone())
    }
}

/// Consensus-fault evidence of the simplex engine: an encoded simplex `Activity` that is
/// `ConflictingNotarize` (two notarize votes for different proposals in one round),
/// `ConflictingFinalize` (two finalize votes likewise) or `NullifyFinalize` (a nullify and a
/// finalize vote in one round). Both signatures are checked against the set of the epoch the
/// votes name, and the signer must be the accused validator. The fault id is
/// `SHA-256(kind ‖ epoch ‖ view)` (per validator in the state machine), so the same
/// equivocation, in whatever order or pairing, is punished once.
#[derive(Debug, Default, Clone, Copy)]
pub struct SimplexFaults;

impl SimplexFaults {
    /// Encodes an engine fault activity as evidence (None for activities that are not faults).
    pub fn evidence(
        activity: &commonware_consensus::simplex::types::Activity<Scheme, Digest>,
    ) -> Option<Blob> {
        use commonware_consensus::simplex::types::Activity;
        match activity {
            Activity::ConflictingNotarize(_)
            | Activity::ConflictingFinalize(_)
            | Activity::NullifyFinalize(_) => Some(Blob(activity.encode().to_vec())),
            _ => None,
        }
    }

    /// The accused signer's identity in an evidence blob (signatures not checked here).
    pub fn accused(evidence: &[u8], sets: &[(u64, &[SetMember])]) -> Option<PublicKey> {
        let (_, f) = decode_fault(evidence)?;
        let (_, set) = sets.iter().find(|(e, _)| *e == f.epoch)?;
        participants(set).ok()?.get(f.signer as usize).cloned()
    }
}

type FaultActivity = commonware_consensus::simplex::types::Activity<Scheme, Digest>;

/// Who signed conflicting votes, where.
struct FaultMeta {
    kind: u8,
    epoch: u64,
    view: u64,
    signer: u32,
}

/// Decodes evidence into a fault activity and its metadata (None: not a fault).
fn decode_fault(evidence: &[u8]) -> Option<(FaultActivity, FaultMeta)> {
    use commonware_consensus::simplex::types::{Activity, Attributable as _};
    use commonware_consensus::{Epochable as _, Viewable as _};
    // Fault activities carry votes, not certificates: the certificate config (a signer
    // bound) is never consulted for them.
    let activity = FaultActivity::decode_cfg(Copying(evidence), &usize::MAX).ok()?;
    let (kind, epoch, view, signer) = match &activity {
        Activity::ConflictingNotarize(f) => (7, f.epoch(), f.view(), f.signer()),
        Activity::ConflictingFinalize(f) => (8, f.epoch(), f.view(), f.signer()),
        Activity::NullifyFinalize(f) => (9, f.epoch(), f.view(), f.signer()),
        _ => return None,
    };
    let meta = FaultMeta {
        kind,
        epoch: epoch.get(),
        view: view.get(),
        signer: signer.get(),
    };
    Some((activity, meta))
}

impl crate::exec::FaultVerifier for SimplexFaults {
    fn verify(
        &self,
        chain_id: u64,
        sets: &[(u64, &[SetMember])],
        consensus_key: &[u8],
        evidence: &[u8],
    ) -> Result<H256, String> {
        use commonware_consensus::simplex::types::Activity;
        let accused = parse_consensus_key(consensus_key).map_err(|e| e.to_string())?;
        let (activity, f) = decode_fault(evidence)
            .ok_or("evidence is not an encoded simplex fault (conflicting votes)")?;
        let (_, set) = sets.iter().find(|(e, _)| *e == f.epoch).ok_or_else(|| {
            format!(
                "evidence from consensus epoch {} has expired or is from the future",
                f.epoch
            )
        })?;
        let members = participants(set).map_err(|e| e.to_string())?;
        if members.get(f.signer as usize) != Some(&accused.identity) {
            return Err("the votes were not signed by the accused validator".into());
        }
        let verifier = Scheme::verifier(&namespace(chain_id), members);
        // Multisig attestations use no randomness; the API wants a CryptoRng anyway.
        let mut rng = rand10::rngs::StdRng::seed_from_u64(0);
        let ok = match &activity {
            Activity::ConflictingNotarize(x) => x.verify(&mut rng, &verifier, &Sequential),
            Activity::ConflictingFinalize(x) => x.verify(&mut rng, &verifier, &Sequential),
            Activity::NullifyFinalize(x) => x.verify(&mut rng, &verifier, &Sequential),
            _ => false,
        };
        if !ok {
            return Err("a conflicting vote's signature does not verify".into());
        }
        let mut bytes = vec![f.kind];
        bytes.extend_from_slice(&f.epoch.to_be_bytes());
        bytes.extend_from_slice(&f.view.to_be_bytes());
        Ok(H256(<sha2::Sha256 as sha2::Digest>::digest(&bytes).into()))
    }
}

/// Deterministic development keys for validator `i` of a dev network (never for production:
/// the seed is public).
pub fn dev_keys(chain_id: u64, i: u64) -> (ed25519::PrivateKey, Private) {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&chain_id.to_be_bytes());
    seed[8..16].copy_from_slice(&i.to_be_bytes());
    consensus_keys(seed)
}

/// A validator's consensus keys (p2p identity, BLS share) from a 32-byte seed: secret
/// when the seed is (OS randomness), public when it is not ([`dev_keys`]).
pub fn consensus_keys(seed: [u8; 32]) -> (ed25519::PrivateKey, Private) {
    use commonware_math::algebra::Random as _;
    let mut rng = rand10::rngs::StdRng::from_seed(seed);
    let identity = ed25519::PrivateKey::random(&mut rng);
    let bls = Private::random(&mut rng);
    (identity, bls)
}

/// Re-exported so callers can decode keys without naming commonware's codec.
pub fn decode_ed25519(bytes: &[u8]) -> Option<ed25519::PrivateKey> {
    ed25519::PrivateKey::decode_cfg(Copying(bytes), &()).ok()
}

/// Decodes a BLS private key (32-byte scalar, non-zero).
pub fn decode_bls(bytes: &[u8]) -> Option<Private> {
    Private::decode_cfg(Copying(bytes), &()).ok()
}
