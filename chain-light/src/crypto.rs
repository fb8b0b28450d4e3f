//! secp256k1 keys, Ethereum-style addresses and EIP-712 typed-data hashing.
//!
//! Every signed object (transactions, receipts, provider responses, deputy attestations)
//! is an EIP-712 struct flat under one domain
//! `EIP712Domain(string name,string version,uint256 chainId)` with `name = "NilStore"`,
//! `version = "1"`, so a browser wallet (`eth_signTypedData_v4`) or the app's own key can
//! sign it and anyone can check it by address recovery.

use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use sha3::{Digest, Keccak256};

use crate::bytes::{Address, Sig65, H256};

/// keccak256.
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// Signature errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// The signature does not parse (r or s out of range, bad v).
    #[error("malformed signature")]
    Malformed,
    /// No public key recovers from it.
    #[error("signature does not recover to a public key")]
    Unrecoverable,
    /// It recovers to another address.
    #[error("signed by {got}, expected {want}")]
    WrongSigner {
        /// The expected signer.
        want: Address,
        /// Who signed.
        got: Address,
    },
    /// The secret key bytes are not a valid secp256k1 scalar.
    #[error("invalid secret key")]
    BadSecret,
}

/// A secp256k1 secret key. Its bytes never appear in `Debug` output.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.address())
    }
}

impl SecretKey {
    /// From 32 big-endian bytes.
    pub fn from_bytes(b: &[u8; 32]) -> Result<SecretKey, SigError> {
        SigningKey::from_bytes(b.into())
            .map(SecretKey)
            .map_err(|_| SigError::BadSecret)
    }

    /// A deterministic key for tests and dev genesis: keccak256(label) as the scalar
    /// (re-hashed in the negligible case it is out of range).
    pub fn from_seed(label: &[u8]) -> SecretKey {
        let mut h = keccak256(label);
        loop {
            if let Ok(k) = SecretKey::from_bytes(&h) {
                return k;
            }
            h = keccak256(&h);
        }
    }

    /// The secret scalar, big-endian. Handle with care.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes().into()
    }

    /// The Ethereum-style address.
    pub fn address(&self) -> Address {
        address_of(self.0.verifying_key())
    }

    /// Signs a 32-byte digest (already EIP-712 hashed): `r ‖ s ‖ v` with v ∈ {27, 28}.
    pub fn sign_digest(&self, digest: &H256) -> Sig65 {
        // RFC 6979 deterministic nonces: signing cannot fail for a valid key and a 32-byte
        // prehash, so the error arm is unreachable in practice; map it to a zero signature
        // that never verifies instead of panicking.
        match self.0.sign_prehash_recoverable(&digest.0) {
            Ok((sig, rec)) => {
                let mut out = [0u8; 65];
                out[..64].copy_from_slice(&sig.to_bytes());
                out[64] = 27 + rec.to_byte();
                Sig65(out)
            }
            Err(_) => Sig65([0u8; 65]),
        }
    }
}

fn address_of(vk: &VerifyingKey) -> Address {
    let point = vk.to_encoded_point(false);
    let h = keccak256(&point.as_bytes()[1..]);
    let mut a = [0u8; 20];
    a.copy_from_slice(&h[12..]);
    Address(a)
}

/// Recovers the signer's address of a digest. Rejects high-s signatures (EIP-2) and any v
/// but 27 or 28 (what wallets and [`SecretKey::sign_digest`] write), so a signature has
/// exactly one valid encoding: a transaction has one hash, and a statement cannot be
/// submitted twice under two encodings.
pub fn recover(digest: &H256, sig: &Sig65) -> Result<Address, SigError> {
    let v = match sig.0[64] {
        27 => 0,
        28 => 1,
        _ => return Err(SigError::Malformed),
    };
    let s = Signature::from_slice(&sig.0[..64]).map_err(|_| SigError::Malformed)?;
    if s.normalize_s().is_some() {
        return Err(SigError::Malformed);
    }
    let rec = RecoveryId::from_byte(v).ok_or(SigError::Malformed)?;
    let vk = VerifyingKey::recover_from_prehash(&digest.0, &s, rec)
        .map_err(|_| SigError::Unrecoverable)?;
    Ok(address_of(&vk))
}

/// Checks that `sig` over `digest` was made by `want`.
pub fn verify(digest: &H256, sig: &Sig65, want: &Address) -> Result<(), SigError> {
    let got = recover(digest, sig)?;
    if &got == want {
        Ok(())
    } else {
        Err(SigError::WrongSigner { want: *want, got })
    }
}

/// One EIP-712 field value.
#[derive(Clone, Debug)]
pub enum Field<'a> {
    /// `address`.
    Address(&'a Address),
    /// `uint64` (or any unsigned integer type that fits).
    U64(u64),
    /// `uint256` holding a u128 amount.
    U128(u128),
    /// `bytes32`.
    B32(&'a [u8; 32]),
    /// `bytes` (hashed).
    Bytes(&'a [u8]),
    /// `string` (hashed).
    Str(&'a str),
    /// `bool`.
    Bool(bool),
}

impl Field<'_> {
    fn word(&self) -> [u8; 32] {
        let mut w = [0u8; 32];
        match self {
            Field::Address(a) => w[12..].copy_from_slice(&a.0),
            Field::U64(v) => w[24..].copy_from_slice(&v.to_be_bytes()),
            Field::U128(v) => w[16..].copy_from_slice(&v.to_be_bytes()),
            Field::B32(b) => w.copy_from_slice(&b[..]),
            Field::Bytes(b) => w = keccak256(b),
            Field::Str(s) => w = keccak256(s.as_bytes()),
            Field::Bool(b) => w[31] = u8::from(*b),
        }
        w
    }
}

/// `hashStruct(s) = keccak256(typeHash ‖ encodeData(s))` for a flat struct whose type string
/// is `type_string` (e.g. `"Transfer(address from,uint64 nonce,uint256 fee,address to,uint256 amount)"`)
/// and whose field values are `fields`, in the same order.
pub fn hash_struct(type_string: &str, fields: &[Field<'_>]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(32 * (fields.len() + 1));
    buf.extend_from_slice(&keccak256(type_string.as_bytes()));
    for f in fields {
        buf.extend_from_slice(&f.word());
    }
    keccak256(&buf)
}

/// The domain separator for `chain_id`.
pub fn domain_separator(chain_id: u64) -> [u8; 32] {
    hash_struct(
        "EIP712Domain(string name,string version,uint256 chainId)",
        &[
            Field::Str("NilStore"),
            Field::Str("1"),
            Field::U64(chain_id),
        ],
    )
}

/// The EIP-712 signing digest `keccak256(0x1901 ‖ domainSeparator ‖ hashStruct)`.
pub fn typed_digest(chain_id: u64, struct_hash: &[u8; 32]) -> H256 {
    let mut buf = Vec::with_capacity(66);
    buf.extend_from_slice(&[0x19, 0x01]);
    buf.extend_from_slice(&domain_separator(chain_id));
    buf.extend_from_slice(struct_hash);
    H256(keccak256(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_and_address_match_ethereum() {
        // keccak256("") from the Keccak team's vectors.
        assert_eq!(
            hex::encode(keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
        // Secret key 1 → the well-known address of the generator point.
        let mut one = [0u8; 32];
        one[31] = 1;
        let k = SecretKey::from_bytes(&one).unwrap();
        assert_eq!(
            k.address().to_hex(),
            "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
        );
    }

    #[test]
    fn eip712_mail_example() {
        // The example of EIP-712 itself (Mail from Cow to Bob, chainId 1, with its
        // verifyingContract), recomputed with our flat struct hashing.
        let person = |name: &str, wallet: &str| {
            let w = Address::from_hex(wallet).unwrap();
            hash_struct(
                "Person(string name,address wallet)",
                &[Field::Str(name), Field::Address(&w)],
            )
        };
        let from = person("Cow", "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826");
        let to = person("Bob", "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB");
        let mail = hash_struct(
            "Mail(Person from,Person to,string contents)Person(string name,address wallet)",
            &[
                Field::B32(&from),
                Field::B32(&to),
                Field::Str("Hello, Bob!"),
            ],
        );
        assert_eq!(
            hex::encode(mail),
            "c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e"
        );
        let contract = Address::from_hex("0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC").unwrap();
        let domain = hash_struct(
            "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)",
            &[
                Field::Str("Ether Mail"),
                Field::Str("1"),
                Field::U64(1),
                Field::Address(&contract),
            ],
        );
        assert_eq!(
            hex::encode(domain),
            "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"
        );
        let mut buf = vec![0x19, 0x01];
        buf.extend_from_slice(&domain);
        buf.extend_from_slice(&mail);
        assert_eq!(
            hex::encode(keccak256(&buf)),
            "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
        );
    }

    #[test]
    fn sign_recover_and_reject() {
        let k = SecretKey::from_seed(b"alice");
        let d = typed_digest(7, &[9u8; 32]);
        let sig = k.sign_digest(&d);
        assert_eq!(recover(&d, &sig).unwrap(), k.address());
        verify(&d, &sig, &k.address()).unwrap();
        let other = SecretKey::from_seed(b"bob").address();
        assert!(matches!(
            verify(&d, &sig, &other),
            Err(SigError::WrongSigner { .. })
        ));
        // Another digest recovers someone else.
        let d2 = typed_digest(8, &[9u8; 32]);
        assert_ne!(recover(&d2, &sig).unwrap(), k.address());
        // Bad v, and high-s malleated twins, are refused.
        let mut bad = sig;
        bad.0[64] = 5;
        assert_eq!(recover(&d, &bad), Err(SigError::Malformed));
        // The same signature with v as a bare parity bit (0 or 1) is a second encoding:
        // refused, so one signed transaction has one hash.
        let mut parity = sig;
        parity.0[64] -= 27;
        assert_eq!(recover(&d, &parity), Err(SigError::Malformed));
        let s = Signature::from_slice(&sig.0[..64]).unwrap();
        let (r, s_) = s.split_scalars();
        let high = Signature::from_scalars(r, -*s_).unwrap();
        let mut hs = sig;
        hs.0[..64].copy_from_slice(&high.to_bytes());
        hs.0[64] = if sig.0[64] == 27 { 28 } else { 27 };
        assert_eq!(recover(&d, &hs), Err(SigError::Malformed));
        assert_eq!(recover(&d, &Sig65([0u8; 65])), Err(SigError::Malformed));
    }
}
