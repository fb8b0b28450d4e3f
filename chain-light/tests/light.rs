//! The light client against data recorded from a real `nilstore-validator`
//! (`tests/data/light.json`, written by `tests/validator.rs` with NILSTORE_RECORD_LIGHT=1):
//! the genesis document, a finalized header with its simplex finalization certificate, and
//! state proofs at that height. Runs natively and in headless Chromium
//! (wasm-bindgen-test), with the same assertions.
#![allow(clippy::unwrap_used)]

use chain_light::auth::StateProof;
use chain_light::block::{Chain, Genesis, Header};
use chain_light::light::{self, LightClient, LightError};
use serde_json::Value;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const FIXTURE: &str = include_str!("data/light.json");

struct Fixture {
    genesis: Genesis,
    header: Header,
    cert: Vec<u8>,
    account: Value,
    absent: Value,
}

fn hexb(v: &Value) -> Vec<u8> {
    hex::decode(&v.as_str().unwrap()[2..]).unwrap()
}

fn fixture() -> Fixture {
    let j: Value = serde_json::from_str(FIXTURE).unwrap();
    Fixture {
        genesis: serde_json::from_value(j["genesis"].clone()).unwrap(),
        header: serde_json::from_value(j["header"].clone()).unwrap(),
        cert: hexb(&j["finalization"]),
        account: j["account"].clone(),
        absent: j["absent_deal"].clone(),
    }
}

fn proof(j: &Value) -> StateProof {
    let p = &j["proof"];
    StateProof {
        key: hexb(&p["key"]),
        value: p["value"].as_str().map(|_| hexb(&p["value"])),
        proof: hexb(&p["proof"]),
    }
}

fn client(f: &Fixture) -> LightClient {
    let g = Chain::from_genesis(&f.genesis).unwrap();
    LightClient::new(g.tip.clone(), g.state.g.validators.clone()).unwrap()
}

#[test]
fn recorded_certificate_and_state_proofs_verify() {
    let f = fixture();
    let mut lc = client(&f);
    lc.advance(&f.header, &f.cert, None).unwrap();
    assert_eq!(lc.trusted(), &f.header);
    // The account record, decoded from the proven bytes, matches the API's JSON.
    let bytes = lc.verify_state(&proof(&f.account)).unwrap().unwrap();
    let acct: chain_light::state::Account = chain_light::codec::decode(&bytes, 1 << 20).unwrap();
    assert_eq!(
        f.account["value"]["balance"].as_str().unwrap(),
        acct.balance.to_string()
    );
    // A proof of absence.
    assert_eq!(lc.verify_state(&proof(&f.absent)).unwrap(), None);
    // A forged value is refused.
    let mut forged = proof(&f.account);
    forged.value.as_mut().unwrap()[3] ^= 1;
    assert!(matches!(
        lc.verify_state(&forged),
        Err(LightError::BadProof(_))
    ));
    // The same header again is not newer.
    assert!(matches!(
        lc.advance(&f.header, &f.cert, None),
        Err(LightError::BadHeader(_))
    ));
}

#[test]
fn forged_headers_and_certificates_are_refused() {
    let f = fixture();
    // Another state root under the same certificate: the certificate finalizes another
    // header.
    let mut lc = client(&f);
    let mut h = f.header.clone();
    h.state_root.0[0] ^= 1;
    assert_eq!(lc.advance(&h, &f.cert, None), Err(LightError::WrongPayload));
    // A flipped signature bit.
    let mut cert = f.cert.clone();
    let n = cert.len();
    cert[n - 2] ^= 0x10;
    assert!(lc.advance(&f.header, &cert, None).is_err());
    // Truncated.
    assert_eq!(
        lc.advance(&f.header, &f.cert[..f.cert.len() - 5], None),
        Err(LightError::MalformedCertificate)
    );
    // Signed by a validator set the client does not trust (another chain's dev keys).
    let mut other = f.genesis.clone();
    let (id, bls) = light::dev_keys(other.chain_id + 1, 0);
    other.validators[0].consensus_key = light::make_consensus_key(&id, &bls);
    let g = Chain::from_genesis(&other).unwrap();
    let mut stranger = LightClient::new(g.tip.clone(), g.state.g.validators.clone()).unwrap();
    assert_eq!(
        stranger.advance(&f.header, &f.cert, None),
        Err(LightError::BadCertificate)
    );
    // A header that changes the validator set needs the new set, matching its hash.
    let mut lc = client(&f);
    let mut h = f.header.clone();
    h.validators_hash.0[0] ^= 1;
    assert!(lc.advance(&h, &f.cert, None).is_err());
    assert_eq!(lc.trusted().height, 0);
    // Consensus keys with a bad proof of possession never enter a set.
    let mut key = f.genesis.validators[0].consensus_key.clone();
    let last = key.0.len() - 1;
    key.0[last] ^= 1;
    assert!(light::parse_consensus_key(&key.0).is_err());
}
