//! The light client in headless Chromium ([`ChainView`] over [`FetchApi`]) against a
//! devnet validator started by `scripts/browser-chain.sh`, which passes the API's URL, the
//! genesis document and a funded dev key at build time: it syncs to certified headers,
//! reads proven records, sends a signed transfer and reads its effect back proven, and
//! refuses an API that tampers with a proof or a certificate.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

use anyhow::Result;
use chain_light::block::Genesis;
use chain_light::bytes::Address;
use chain_light::crypto::SecretKey;
use chain_light::tx::Msg;
use nilstore_net::chain::{ChainApi, ChainView, FetchApi, Signer, TxStatus};
use serde_json::Value;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn var(v: Option<&'static str>, name: &str) -> &'static str {
    v.unwrap_or_else(|| panic!("{name} is unset: run this test through scripts/browser-chain.sh"))
}

fn api() -> FetchApi {
    FetchApi::new(var(option_env!("NILSTORE_CHAIN_API"), "NILSTORE_CHAIN_API"))
}

fn genesis() -> Genesis {
    serde_json::from_str(var(
        option_env!("NILSTORE_CHAIN_GENESIS"),
        "NILSTORE_CHAIN_GENESIS",
    ))
    .unwrap()
}

fn dev_key() -> SecretKey {
    let hex_key = var(option_env!("NILSTORE_CHAIN_KEY"), "NILSTORE_CHAIN_KEY");
    let b: [u8; 32] = hex::decode(hex_key.trim_start_matches("0x"))
        .unwrap()
        .try_into()
        .unwrap();
    SecretKey::from_bytes(&b).unwrap()
}

async fn sleep_ms(ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .unwrap();
    });
    wasm_bindgen_futures::JsFuture::from(p).await.unwrap();
}

/// An API that lies: it flips one hex digit of every answer's field at `pointer` on
/// paths starting with `prefix`.
struct Tamper {
    inner: FetchApi,
    prefix: &'static str,
    pointer: &'static str,
}

impl ChainApi for Tamper {
    async fn get(&self, path: &str) -> Result<Option<Value>> {
        let mut v = self.inner.get(path).await?;
        if path.starts_with(self.prefix) {
            if let Some(Value::String(s)) = v.as_mut().and_then(|v| v.pointer_mut(self.pointer)) {
                let last = s.pop().unwrap();
                s.push(if last == '0' { '1' } else { '0' });
            }
        }
        Ok(v)
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.inner.post(path, body).await
    }
}

#[wasm_bindgen_test]
async fn follows_the_chain_reads_proven_state_and_sends_a_transaction() {
    let g = genesis();
    let chain = ChainView::new(api(), &g).unwrap();
    let height = chain.sync().await.unwrap();
    assert!(height >= 1, "synced to {height}");
    assert_eq!(chain.trusted().unwrap().height, height);
    assert_eq!(chain.chain_id(), g.chain_id);

    // Proven reads: the dev account is funded; a fresh address is empty.
    let signer = Signer::new(dev_key());
    let before = chain.account(&signer.address()).await.unwrap();
    assert!(before.balance > 0, "the dev account has no funds");
    let globals = chain.globals().await.unwrap();
    let to = Address([0x5a; 20]);
    let to_before = chain.account(&to).await.unwrap().balance;

    // A signed transfer, included, and its effect read back proven.
    let amount = 1_000_000;
    let hash = signer
        .send_via(&chain, Msg::Transfer { to, amount })
        .await
        .unwrap();
    let mut included = None;
    for _ in 0..600 {
        if let TxStatus::Included(h, r) = chain.tx_status(&hash).await.unwrap() {
            included = Some((h, r));
            break;
        }
        sleep_ms(100).await;
    }
    let (at, outcome) = included.expect("the transfer was not included within 60 s");
    assert_eq!(outcome, Ok(()));
    while chain.sync().await.unwrap() < at {
        sleep_ms(100).await;
    }
    assert_eq!(
        chain.account(&to).await.unwrap().balance,
        to_before + amount
    );
    let after = chain.account(&signer.address()).await.unwrap();
    assert_eq!(after.nonce, before.nonce + 1);
    assert_eq!(
        after.balance,
        before.balance - amount - globals.params.min_fee
    );
}

/// Syncs started together (a page's status refresh while an upload waits for its commit)
/// all succeed: they take turns instead of walking the same headers at once.
#[wasm_bindgen_test]
async fn concurrent_syncs_take_turns() {
    let chain = ChainView::new(api(), &genesis()).unwrap();
    for _ in 0..3 {
        // New blocks since the last round, so each round has headers to walk.
        sleep_ms(1_500).await;
        let heights = futures::future::join_all((0..6).map(|_| chain.sync())).await;
        let heights: Vec<u64> = heights.into_iter().map(|h| h.unwrap()).collect();
        assert!(
            heights.windows(2).all(|w| w[0] <= w[1]),
            "later syncs never go back: {heights:?}"
        );
        assert_eq!(chain.trusted().unwrap().height, *heights.last().unwrap());
    }
}

#[wasm_bindgen_test]
async fn refuses_a_tampered_proof_and_a_tampered_certificate() {
    let g = genesis();
    let key = dev_key();

    // A record whose proven value was changed does not verify against the state root.
    let lying = ChainView::new(
        Tamper {
            inner: api(),
            prefix: "/state/account/",
            pointer: "/proof/value",
        },
        &g,
    )
    .unwrap();
    lying.sync().await.unwrap();
    let e = format!("{:#}", lying.account(&key.address()).await.unwrap_err());
    assert!(e.contains("state proof"), "{e}");
    let honest = ChainView::new(api(), &g).unwrap();
    honest.sync().await.unwrap();
    assert!(honest.account(&key.address()).await.unwrap().balance > 0);

    // A header whose certificate was changed is never trusted.
    let forged = ChainView::new(
        Tamper {
            inner: api(),
            prefix: "/headers/",
            pointer: "/finalization",
        },
        &g,
    )
    .unwrap();
    let genesis_height = forged.trusted().unwrap().height;
    match forged.sync().await {
        Err(e) => {
            let e = format!("{e:#}");
            assert!(e.contains("certificate"), "{e}");
        }
        Ok(h) => panic!("synced to {h} on forged certificates"),
    }
    assert_eq!(forged.trusted().unwrap().height, genesis_height);
}
