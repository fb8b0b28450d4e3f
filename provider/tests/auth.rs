//! Upload authorization: owner and unexpired delegates only, for slots the chain assigns to
//! this provider (or that it is repairing), the deal's next generation, within the plan,
//! unexpired, with a signature over exactly this content.
#![allow(clippy::unwrap_used)]

mod common;

use chain_light::bytes::{Address, Blob, Sig65};
use chain_light::crypto::SecretKey;
use chain_light::state::SlotStatus;
use common::{deal, owner};
use nilstore_net::proto::{NetError, UploadAuth, UploadShard};
use nilstore_provider::auth::{authorize_upload, AuthContext};

fn up(key: &SecretKey, slot: u32, mdu: u32, generation: u64, expires: u64) -> UploadShard {
    UploadShard {
        chain_id: 5,
        deal: 1,
        slot,
        mdu,
        generation,
        leaves: Vec::new(),
        blobs: vec![Blob(vec![1, 2, 3])],
        auth: UploadAuth {
            signer: Address::ZERO,
            expires_ms: 0,
            sig: Sig65([0; 65]),
        },
    }
    .sign(key, expires)
}

fn code(r: Result<(), NetError>) -> u16 {
    r.unwrap_err().http_status()
}

#[test]
fn owner_and_delegates_only_for_assigned_slots() {
    let owner = owner();
    let me = SecretKey::from_seed(b"me").address();
    let other = SecretKey::from_seed(b"other");
    let del = SecretKey::from_seed(b"delegate");
    let mut d = deal(me);
    let cx = AuthContext {
        chain_id: 5,
        me,
        epoch: 3,
        now_ms: 1_000,
    };
    authorize_upload(&d, &up(&owner, 0, 2, 0, 2_000), &cx).unwrap();
    // Not the owner; then an authorized delegate; then an expired delegation.
    assert_eq!(
        code(authorize_upload(&d, &up(&other, 0, 2, 0, 2_000), &cx)),
        403
    );
    d.delegates.insert(del.address(), 3);
    authorize_upload(&d, &up(&del, 0, 2, 0, 2_000), &cx).unwrap();
    let later = AuthContext { epoch: 4, ..cx };
    assert_eq!(
        code(authorize_upload(&d, &up(&del, 0, 2, 0, 2_000), &later)),
        403
    );
    // Expired authorization, stale generation, MDU past the plan, unknown slot.
    assert_eq!(
        code(authorize_upload(&d, &up(&owner, 0, 2, 0, 999), &cx)),
        403
    );
    assert_eq!(
        code(authorize_upload(&d, &up(&owner, 0, 2, 1, 2_000), &cx)),
        409
    );
    assert_eq!(
        code(authorize_upload(&d, &up(&owner, 0, 6, 0, 2_000), &cx)),
        400
    );
    assert_eq!(
        code(authorize_upload(&d, &up(&owner, 6, 2, 0, 2_000), &cx)),
        400
    );
    // Forged: the claimed signer is the owner, the signature is someone else's.
    let mut forged = up(&other, 0, 2, 0, 2_000);
    forged.auth.signer = owner.address();
    assert_eq!(code(authorize_upload(&d, &forged, &cx)), 403);
    // Content changed after signing (a replay with other bytes).
    let mut replayed = up(&owner, 0, 2, 0, 2_000);
    replayed.blobs[0].0[0] ^= 1;
    assert_eq!(code(authorize_upload(&d, &replayed, &cx)), 403);
    // Another chain.
    let mut wrong = up(&owner, 0, 2, 0, 2_000);
    wrong.chain_id = 6;
    assert_eq!(code(authorize_upload(&d, &wrong, &cx)), 400);
    // A slot assigned to someone else; a repairing slot whose pending provider is me.
    d.slots[1].provider = other.address();
    assert_eq!(
        code(authorize_upload(&d, &up(&owner, 1, 2, 0, 2_000), &cx)),
        403
    );
    d.slots[1].status = SlotStatus::Repairing;
    d.slots[1].pending = Some(me);
    authorize_upload(&d, &up(&owner, 1, 2, 0, 2_000), &cx).unwrap();
}
