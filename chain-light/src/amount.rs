//! Serde for token amounts: a decimal string in human-readable formats (JSON: amounts exceed
//! 2^53, which JavaScript numbers cannot hold), a plain u128 in binary encodings.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

use crate::Amount;

/// Serializes an amount.
pub fn serialize<S: Serializer>(v: &Amount, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&v.to_string())
    } else {
        s.serialize_u128(*v)
    }
}

/// Deserializes an amount (JSON: a decimal string, or a plain integer).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
    if d.is_human_readable() {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            S(String),
            N(u64),
        }
        match Either::deserialize(d)? {
            Either::S(s) => {
                if s.is_empty() || s.len() > 39 || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(D::Error::custom(format!(
                        "amount {s:?} is not a decimal integer"
                    )));
                }
                s.parse().map_err(D::Error::custom)
            }
            Either::N(n) => Ok(n as Amount),
        }
    } else {
        u128::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct T {
        #[serde(with = "super")]
        a: u128,
    }

    #[test]
    fn json_strings_binary_ints() {
        let t = T { a: u128::MAX };
        let j = serde_json::to_string(&t).unwrap();
        assert_eq!(j, format!("{{\"a\":\"{}\"}}", u128::MAX));
        assert_eq!(serde_json::from_str::<T>(&j).unwrap(), t);
        assert_eq!(serde_json::from_str::<T>("{\"a\":5}").unwrap(), T { a: 5 });
        assert!(serde_json::from_str::<T>("{\"a\":\"-1\"}").is_err());
        assert!(serde_json::from_str::<T>("{\"a\":\"1e3\"}").is_err());
        let b = postcard::to_allocvec(&t).unwrap();
        assert_eq!(postcard::from_bytes::<T>(&b).unwrap(), t);
    }
}
