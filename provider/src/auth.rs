//! Who may upload what (SPEC §5, §11): a shard is accepted only for a slot the chain assigns
//! to this provider, only from the deal's owner or a delegate the owner authorized on chain
//! (unexpired), only for the deal's next content generation, and only within the deal's
//! planned MDUs. Pure: the chain state and the time are passed in.

use chain_light::bytes::Address;
use chain_light::state::{Deal, SlotStatus};
use nilstore_net::proto::{NetError, UploadShard};

/// What the check needs besides the deal.
#[derive(Clone, Copy, Debug)]
pub struct AuthContext {
    /// This chain's id.
    pub chain_id: u64,
    /// This provider's account.
    pub me: Address,
    /// The chain's current epoch (delegations hold through `until_epoch`).
    pub epoch: u64,
    /// Now, in milliseconds since the Unix epoch.
    pub now_ms: u64,
}

/// Checks an upload's authorization against the deal. Signature recovery is the costly
/// part and runs last.
pub fn authorize_upload(deal: &Deal, up: &UploadShard, cx: &AuthContext) -> Result<(), NetError> {
    if up.chain_id != cx.chain_id {
        return Err(NetError::BadRequest(format!(
            "upload for chain {}, this is chain {}",
            up.chain_id, cx.chain_id
        )));
    }
    let slot = deal
        .slots
        .get(up.slot as usize)
        .ok_or_else(|| NetError::BadRequest(format!("deal has no slot {}", up.slot)))?;
    let assigned = match slot.status {
        SlotStatus::Active => slot.provider == cx.me,
        // A repairing slot is rebuilt by its pending provider.
        SlotStatus::Repairing => slot.pending == Some(cx.me),
    };
    if !assigned {
        return Err(NetError::Forbidden(format!(
            "slot {} of deal {} is not assigned to this provider",
            up.slot, up.deal
        )));
    }
    let planned = 1 + deal.witness_mdus + deal.capacity_mdus;
    if u64::from(up.mdu) >= planned {
        return Err(NetError::BadRequest(format!(
            "MDU {} beyond the deal's {planned}",
            up.mdu
        )));
    }
    if up.generation != deal.generation + 1 {
        return Err(NetError::Conflict(format!(
            "upload for generation {}, the deal's next is {}",
            up.generation,
            deal.generation + 1
        )));
    }
    if up.auth.expires_ms < cx.now_ms {
        return Err(NetError::Forbidden("upload authorization expired".into()));
    }
    let allowed = up.auth.signer == deal.owner
        || deal
            .delegates
            .get(&up.auth.signer)
            .is_some_and(|until| *until >= cx.epoch);
    if !allowed {
        return Err(NetError::Forbidden(
            "signer is neither the deal owner nor an authorized delegate".into(),
        ));
    }
    chain_light::crypto::verify(&up.digest(), &up.auth.sig, &up.auth.signer)
        .map_err(|e| NetError::Forbidden(format!("upload signature: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chain_light::bytes::{Blob, Sig65};
    use chain_light::crypto::SecretKey;
    use chain_light::state::Slot;
    use nilstore_net::proto::UploadAuth;

    fn deal(owner: Address, provider: Address) -> Deal {
        Deal {
            owner,
            k: 1,
            m: 1,
            capacity_mdus: 4,
            witness_mdus: 1,
            reserved_mdus: 0,
            manifest_root: None,
            total_mdus: 0,
            size_bytes: 0,
            generation: 0,
            content_epoch: 0,
            start_epoch: 0,
            end_epoch: 10,
            escrow: 0,
            rent_reserved: 0,
            spend_cap: 0,
            spent_epoch: 0,
            spent: 0,
            slots: vec![
                Slot {
                    provider,
                    status: SlotStatus::Active,
                    pending: None,
                    health: 100,
                };
                2
            ],
            delegates: Default::default(),
        }
    }

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

    #[test]
    fn owner_and_delegates_only_for_assigned_slots() {
        let owner = SecretKey::from_seed(b"owner");
        let me = SecretKey::from_seed(b"me").address();
        let other = SecretKey::from_seed(b"other");
        let del = SecretKey::from_seed(b"delegate");
        let mut d = deal(owner.address(), me);
        let cx = AuthContext {
            chain_id: 5,
            me,
            epoch: 3,
            now_ms: 1_000,
        };
        authorize_upload(&d, &up(&owner, 0, 2, 1, 2_000), &cx).unwrap();
        let code = |r: Result<(), NetError>| r.unwrap_err().http_status();
        // Not the owner; then an authorized delegate; then an expired delegation.
        assert_eq!(
            code(authorize_upload(&d, &up(&other, 0, 2, 1, 2_000), &cx)),
            403
        );
        d.delegates.insert(del.address(), 3);
        authorize_upload(&d, &up(&del, 0, 2, 1, 2_000), &cx).unwrap();
        let later = AuthContext { epoch: 4, ..cx };
        assert_eq!(
            code(authorize_upload(&d, &up(&del, 0, 2, 1, 2_000), &later)),
            403
        );
        // Expired authorization, stale generation, MDU past the plan, unknown slot.
        assert_eq!(
            code(authorize_upload(&d, &up(&owner, 0, 2, 1, 999), &cx)),
            403
        );
        assert_eq!(
            code(authorize_upload(&d, &up(&owner, 0, 2, 0, 2_000), &cx)),
            409
        );
        assert_eq!(
            code(authorize_upload(&d, &up(&owner, 0, 6, 1, 2_000), &cx)),
            400
        );
        assert_eq!(
            code(authorize_upload(&d, &up(&owner, 2, 2, 1, 2_000), &cx)),
            400
        );
        // Forged: the claimed signer is the owner, the signature is someone else's.
        let mut forged = up(&other, 0, 2, 1, 2_000);
        forged.auth.signer = owner.address();
        assert_eq!(code(authorize_upload(&d, &forged, &cx)), 403);
        // Content changed after signing (a replay with other bytes).
        let mut replayed = up(&owner, 0, 2, 1, 2_000);
        replayed.blobs[0].0[0] ^= 1;
        assert_eq!(code(authorize_upload(&d, &replayed, &cx)), 403);
        // Another chain.
        let mut wrong = up(&owner, 0, 2, 1, 2_000);
        wrong.chain_id = 6;
        assert_eq!(code(authorize_upload(&d, &wrong, &cx)), 400);
        // A slot assigned to someone else; a repairing slot whose pending provider is me.
        d.slots[1].provider = other.address();
        assert_eq!(
            code(authorize_upload(&d, &up(&owner, 1, 2, 1, 2_000), &cx)),
            403
        );
        d.slots[1].status = SlotStatus::Repairing;
        d.slots[1].pending = Some(me);
        authorize_upload(&d, &up(&owner, 1, 2, 1, 2_000), &cx).unwrap();
    }
}
