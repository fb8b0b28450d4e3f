//! Fixed-size byte strings with a canonical serde form: raw bytes in binary encodings,
//! `0x`-prefixed hex in JSON.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! fixed_bytes {
    ($(#[$doc:meta])* $name:ident, $n:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $n]);

        impl $name {
            /// The all-zero value.
            pub const ZERO: $name = $name([0u8; $n]);
            /// Length in bytes.
            pub const LEN: usize = $n;

            /// Parses `0x`-prefixed or bare hex of exactly the right length.
            pub fn from_hex(s: &str) -> Result<$name, crate::bytes::HexError> {
                let s = s.strip_prefix("0x").unwrap_or(s);
                let v = hex::decode(s).map_err(|_| crate::bytes::HexError::NotHex)?;
                let a: [u8; $n] = v
                    .try_into()
                    .map_err(|v: Vec<u8>| crate::bytes::HexError::Length { want: $n, got: v.len() })?;
                Ok($name(a))
            }

            /// `0x`-prefixed lower-case hex.
            pub fn to_hex(&self) -> String {
                format!("0x{}", hex::encode(self.0))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    s.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    $name::from_hex(&s).map_err(D::Error::custom)
                } else {
                    let v: &[u8] = <&[u8]>::deserialize(d)?;
                    let a: [u8; $n] = v
                        .try_into()
                        .map_err(|_| D::Error::invalid_length(v.len(), &stringify!($n)))?;
                    Ok($name(a))
                }
            }
        }
    };
}

/// Hex parse errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// Not hexadecimal.
    #[error("not hexadecimal")]
    NotHex,
    /// Wrong number of bytes.
    #[error("expected {want} bytes, got {got}")]
    Length {
        /// Expected.
        want: usize,
        /// Given.
        got: usize,
    },
}

fixed_bytes!(
    /// A 32-byte hash or digest.
    H256,
    32
);
fixed_bytes!(
    /// A 48-byte compressed BLS12-381 G1 point (commitment or proof), not yet validated.
    G1Bytes,
    48
);
fixed_bytes!(
    /// A 65-byte secp256k1 recoverable signature `r ‖ s ‖ v` (v ∈ {0, 1, 27, 28}).
    Sig65,
    65
);
fixed_bytes!(
    /// A 20-byte Ethereum-style address: the last 20 bytes of keccak256 of the
    /// uncompressed public key.
    Address,
    20
);

/// Variable-length bytes: raw in binary encodings, `0x` hex in JSON.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Blob(pub Vec<u8>);

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.len() <= 64 {
            write!(f, "0x{}", hex::encode(&self.0))
        } else {
            write!(f, "<{} bytes>", self.0.len())
        }
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&format!("0x{}", hex::encode(&self.0)))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Blob, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            let s = s.strip_prefix("0x").unwrap_or(&s);
            hex::decode(s).map(Blob).map_err(D::Error::custom)
        } else {
            let v: Vec<u8> = serde_bytes_vec(d)?;
            Ok(Blob(v))
        }
    }
}

fn serde_bytes_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
    }
    d.deserialize_bytes(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_binary_round_trip() {
        let a = Address([7u8; 20]);
        let j = serde_json::to_string(&a).unwrap();
        assert_eq!(j, format!("\"0x{}\"", "07".repeat(20)));
        assert_eq!(serde_json::from_str::<Address>(&j).unwrap(), a);
        let b = postcard::to_allocvec(&a).unwrap();
        assert_eq!(postcard::from_bytes::<Address>(&b).unwrap(), a);
        let blob = Blob(vec![1, 2, 3]);
        let b = postcard::to_allocvec(&blob).unwrap();
        assert_eq!(postcard::from_bytes::<Blob>(&b).unwrap(), blob);
        assert_eq!(
            Address::from_hex("0x0102"),
            Err(HexError::Length { want: 20, got: 2 })
        );
        assert_eq!(H256::from_hex("zz"), Err(HexError::NotHex));
    }
}
