//! The NilStore wire protocols: names, messages, limits and typed errors.
//!
//! Every protocol is a libp2p request/response protocol named `/nilstore/<name>/<version>`.
//! Messages are postcard-encoded (strictly: bounded, canonical, no trailing bytes), framed
//! by a 4-byte big-endian length, and bounded per protocol ([`Protocol::max_request`],
//! [`Protocol::max_response`]). A response is `Result<T, NetError>`: servers answer bad
//! input with a typed error, never by dropping the stream.

use chain_light::bytes::{Address, Blob, G1Bytes, Sig65, H256};
use chain_light::tx::{Attestation, Receipt, Served};
use serde::{Deserialize, Serialize};

/// Encoded bytes of one blob (4096 × 32).
pub const BLOB_BYTES: usize = 131_072;
/// Blobs in an MDU.
pub const BLOBS_PER_MDU: usize = 64;
/// Headroom for headers, leaves and signatures around blob payloads.
const OVERHEAD: usize = 64 << 10;

/// The protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Client → provider: one slot's shard of one MDU, with the MDU's leaves.
    Upload,
    /// Anyone → provider: a blob, a range of one, a whole shard, or a metadata blob.
    Fetch,
    /// Anyone → provider: a triple proof for a challenge.
    Proof,
    /// Reader → relay: fetch from a provider under a fresh identity, or attest failure.
    Deputy,
    /// Reader → provider: a signed cumulative receipt.
    Receipt,
    /// Browser → relay: who serves a deal (from proven chain state).
    Locate,
}

impl Protocol {
    /// Every protocol.
    pub const ALL: [Protocol; 6] = [
        Protocol::Upload,
        Protocol::Fetch,
        Protocol::Proof,
        Protocol::Deputy,
        Protocol::Receipt,
        Protocol::Locate,
    ];

    /// The libp2p protocol name.
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Upload => "/nilstore/upload/1",
            Protocol::Fetch => "/nilstore/fetch/1",
            Protocol::Proof => "/nilstore/proof/1",
            Protocol::Deputy => "/nilstore/deputy/1",
            Protocol::Receipt => "/nilstore/receipt/1",
            Protocol::Locate => "/nilstore/locate/1",
        }
    }

    /// Largest request accepted (bytes after the length prefix).
    pub const fn max_request(self) -> usize {
        match self {
            // A metadata MDU is stored whole: 64 blobs, plus 64 leaves.
            Protocol::Upload => BLOBS_PER_MDU * BLOB_BYTES + OVERHEAD,
            Protocol::Fetch
            | Protocol::Proof
            | Protocol::Deputy
            | Protocol::Receipt
            | Protocol::Locate => 16 << 10,
        }
    }

    /// How long one exchange may take (dial, request, response).
    pub const fn timeout(self) -> std::time::Duration {
        std::time::Duration::from_secs(match self {
            Protocol::Upload => 120,
            Protocol::Fetch | Protocol::Proof => 60,
            // A deputy waits for the provider first.
            Protocol::Deputy => 90,
            Protocol::Receipt | Protocol::Locate => 15,
        })
    }

    /// Streams (in and out) of this protocol per connection. Uploads carry up to 8 MiB
    /// each: a client keeps at most 8 in flight per provider, and 16 bound what one
    /// connection can make a provider hold while it reads them.
    pub const fn max_streams(self) -> usize {
        match self {
            Protocol::Upload => 16,
            Protocol::Fetch
            | Protocol::Proof
            | Protocol::Deputy
            | Protocol::Receipt
            | Protocol::Locate => 64,
        }
    }

    /// Largest response accepted.
    pub const fn max_response(self) -> usize {
        match self {
            Protocol::Upload | Protocol::Proof | Protocol::Receipt => 16 << 10,
            // 255 slots × a provider record with 8 endpoints.
            Protocol::Locate => 1 << 20,
            // A whole shard at K = 1 is an MDU.
            Protocol::Fetch | Protocol::Deputy => BLOBS_PER_MDU * BLOB_BYTES + OVERHEAD,
        }
    }
}

/// Why a request was refused (the wire form of an error; mirrors the HTTP status codes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum NetError {
    /// Malformed or inconsistent request (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Not allowed: wrong signer, slot not assigned, expired authorization (403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Unknown deal, slot, MDU or blob (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// Conflicts with stored or chain state: other content already committed (409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Too large (413).
    #[error("too large: {0}")]
    TooLarge(String),
    /// Per-peer rate or concurrency limit (429).
    #[error("rate limited; retry after {retry_ms} ms")]
    RateLimited {
        /// Suggested wait.
        retry_ms: u64,
    },
    /// The data does not verify against its commitments (422-like; refused, not stored).
    #[error("verification failed: {0}")]
    Invalid(String),
    /// Temporarily unable (chain unreachable, shutting down) (503).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or I/O failure on the server (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl NetError {
    /// The HTTP status the same error gets on HTTP APIs.
    pub fn http_status(&self) -> u16 {
        match self {
            NetError::BadRequest(_) | NetError::Invalid(_) => 400,
            NetError::Forbidden(_) => 403,
            NetError::NotFound(_) => 404,
            NetError::Conflict(_) => 409,
            NetError::TooLarge(_) => 413,
            NetError::RateLimited { .. } => 429,
            NetError::Unavailable(_) => 503,
            NetError::Internal(_) => 500,
        }
    }
}

/// One leaf of an MDU (SPEC §3.4): the blob's commitment and BLAKE3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaf {
    /// KZG commitment.
    pub commitment: G1Bytes,
    /// BLAKE3 of the encoded blob.
    pub blake3: H256,
}

impl From<wasm_core::merkle::Leaf> for Leaf {
    fn from(l: wasm_core::merkle::Leaf) -> Leaf {
        Leaf {
            commitment: G1Bytes(l.commitment),
            blake3: H256(l.blake3),
        }
    }
}

impl From<Leaf> for wasm_core::merkle::Leaf {
    fn from(l: Leaf) -> wasm_core::merkle::Leaf {
        wasm_core::merkle::Leaf {
            commitment: l.commitment.0,
            blake3: l.blake3.0,
        }
    }
}

/// Who authorizes an upload: the deal owner or a delegate, signing the upload digest
/// ([`UploadShard::digest`]) with an expiry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadAuth {
    /// Signer (owner or delegate).
    pub signer: Address,
    /// Milliseconds since the Unix epoch after which the authorization is void.
    pub expires_ms: u64,
    /// secp256k1 signature over the digest.
    pub sig: Sig65,
}

/// One slot's shard of one MDU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadShard {
    /// Chain id.
    pub chain_id: u64,
    /// Deal.
    pub deal: u64,
    /// Slot.
    pub slot: u32,
    /// MDU index in the slab.
    pub mdu: u32,
    /// The deal generation this content will be committed as.
    pub generation: u64,
    /// Every leaf of the MDU (all slots), so the receiver checks parity commitments and
    /// can later prove against the MDU root.
    pub leaves: Vec<Leaf>,
    /// This slot's blobs in row order (a metadata MDU: all 64).
    pub blobs: Vec<Blob>,
    /// Authorization.
    pub auth: UploadAuth,
}

/// A provider's acknowledgement: it verified and durably stored the shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadAck {
    /// Root of the MDU's leaves (`mdu_root_fr`) as the provider computed it.
    pub mdu_root: H256,
    /// Bytes stored.
    pub bytes: u64,
    /// False when the identical shard was already stored (idempotent retry).
    pub fresh: bool,
}

/// What to fetch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchWhat {
    /// One blob of the slot's shard (`row`); a metadata MDU's blob by index.
    Blob {
        /// Row (blob index within the shard).
        row: u32,
    },
    /// A byte range inside one blob.
    Range {
        /// Row.
        row: u32,
        /// Offset in the encoded blob.
        offset: u32,
        /// Length.
        len: u32,
    },
    /// The whole shard (every row).
    Shard,
    /// The MDU's leaves (for readers that do not have the witness MDUs yet).
    Leaves,
}

/// A fetch request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    /// Deal.
    pub deal: u64,
    /// Slot.
    pub slot: u32,
    /// MDU.
    pub mdu: u32,
    /// What.
    pub what: FetchWhat,
}

/// A fetch answer: the bytes and, per whole blob, the provider's signed statement of what
/// it served (fraud evidence if the bytes do not match the leaf).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchResponse {
    /// The bytes (blobs concatenated in row order for a shard).
    pub bytes: Blob,
    /// Leaves (for [`FetchWhat::Leaves`]).
    pub leaves: Vec<Leaf>,
    /// Per whole blob served: the statement and the provider's signature over it.
    pub served: Vec<(Served, Sig65)>,
}

/// A storage-proof request for one challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofRequest {
    /// Deal.
    pub deal: u64,
    /// Slot.
    pub slot: u32,
    /// MDU.
    pub mdu: u32,
    /// Row within the slot's shard.
    pub row: u32,
    /// Evaluation point (canonical Fr, big-endian).
    pub z: H256,
}

/// The proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofResponse {
    /// Encoded triple proof.
    pub proof: Blob,
}

/// A reader asks a deputy to fetch from a provider on its behalf.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeputyRequest {
    /// Chain id.
    pub chain_id: u64,
    /// The provider's account (the chain names its endpoints).
    pub provider: Address,
    /// The fetch to perform (one blob).
    pub fetch: FetchRequest,
    /// The reader's account and signature over the request digest (binds the premium).
    pub reader: Address,
    /// Signature.
    pub sig: Sig65,
    /// Unique per request (replays are refused).
    pub nonce: u64,
}

/// A deputy's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeputyResponse {
    /// The provider answered with bytes that verify against the leaf.
    Data(FetchResponse),
    /// The provider did not answer in time: the signed attestation (also submitted).
    Failed {
        /// Attestation.
        attestation: Attestation,
        /// The deputy's signature.
        sig: Sig65,
    },
}

/// A cumulative receipt for a provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptSubmit {
    /// Receipt.
    pub receipt: Receipt,
    /// The reader's signature.
    pub sig: Sig65,
}

/// Acknowledgement of a receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptAck {
    /// The highest nonce the provider holds for this reader and deal.
    pub nonce: u64,
}

/// Which providers serve a deal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocateRequest {
    /// Deal.
    pub deal: u64,
}

/// One slot of a deal and where to reach its provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotLocation {
    /// Slot index.
    pub slot: u32,
    /// The provider's account.
    pub provider: Address,
    /// Whether the slot is active (false: being repaired; read the others).
    pub active: bool,
    /// The provider's libp2p peer id.
    pub peer_id: String,
    /// Its registered multiaddrs.
    pub endpoints: Vec<String>,
}

/// The answer: the deal's slots at a verified height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocateResponse {
    /// Chain height the relay's light client verified the records at.
    pub height: u64,
    /// Data slots K (any K slots rebuild the data).
    pub k: u32,
    /// Slots in order.
    pub slots: Vec<SlotLocation>,
}

impl UploadShard {
    /// EIP-712 type string of the upload authorization.
    pub const TYPE: &'static str = "Upload(uint64 deal,uint32 slot,uint32 mdu,uint64 generation,bytes32 content,uint64 expires)";

    /// `SHA-256("nilstore/upload/v1" ‖ leaves ‖ BLAKE3 of each blob)`: binds the exact
    /// content the signer authorized.
    pub fn content_hash(&self) -> H256 {
        use sha2::{Digest as _, Sha256};
        let mut h = Sha256::new();
        h.update(b"nilstore/upload/v1");
        for l in &self.leaves {
            h.update(l.commitment.0);
            h.update(l.blake3.0);
        }
        for b in &self.blobs {
            h.update(blake3::hash(&b.0).as_bytes());
        }
        H256(h.finalize().into())
    }

    /// The digest the owner or delegate signs (EIP-712, so wallets can sign it).
    pub fn digest(&self) -> H256 {
        use chain_light::crypto::{hash_struct, typed_digest, Field};
        let content = self.content_hash();
        typed_digest(
            self.chain_id,
            &hash_struct(
                Self::TYPE,
                &[
                    Field::U64(self.deal),
                    Field::U64(self.slot as u64),
                    Field::U64(self.mdu as u64),
                    Field::U64(self.generation),
                    Field::B32(&content.0),
                    Field::U64(self.auth.expires_ms),
                ],
            ),
        )
    }

    /// Signs the upload with `key` (owner or delegate), valid until `expires_ms`.
    pub fn sign(mut self, key: &chain_light::crypto::SecretKey, expires_ms: u64) -> Self {
        self.auth.signer = key.address();
        self.auth.expires_ms = expires_ms;
        self.auth.sig = key.sign_digest(&self.digest());
        self
    }
}

impl DeputyRequest {
    /// EIP-712 type string.
    pub const TYPE: &'static str =
        "DeputyFetch(address provider,uint64 deal,uint32 slot,uint32 mdu,uint32 row,uint64 nonce)";

    /// The blob row asked for (deputies fetch whole blobs only).
    pub fn row(&self) -> Option<u32> {
        match self.fetch.what {
            FetchWhat::Blob { row } => Some(row),
            _ => None,
        }
    }

    /// The digest the reader signs.
    pub fn digest(&self) -> H256 {
        use chain_light::crypto::{hash_struct, typed_digest, Field};
        typed_digest(
            self.chain_id,
            &hash_struct(
                Self::TYPE,
                &[
                    Field::Address(&self.provider),
                    Field::U64(self.fetch.deal),
                    Field::U64(self.fetch.slot as u64),
                    Field::U64(self.fetch.mdu as u64),
                    Field::U64(self.row().unwrap_or(u32::MAX) as u64),
                    Field::U64(self.nonce),
                ],
            ),
        )
    }
}

/// Encodes a message (postcard).
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    chain_light::codec::encode(v)
}

/// Decodes a message strictly (bounded by `max`, canonical, no trailing bytes).
pub fn decode<T: Serialize + serde::de::DeserializeOwned>(
    bytes: &[u8],
    max: usize,
) -> Result<T, NetError> {
    chain_light::codec::decode(bytes, max).map_err(|e| NetError::BadRequest(e.to_string()))
}
