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
    if up.generation != deal.next_generation() {
        return Err(NetError::Conflict(format!(
            "upload for generation {}, the deal's next is {}",
            up.generation,
            deal.next_generation()
        )));
    }
    if up.auth.expires_ms < cx.now_ms {
        return Err(NetError::Forbidden("upload authorization expired".into()));
    }
    if !deal.is_authorized(&up.auth.signer, cx.epoch) {
        return Err(NetError::Forbidden(
            "signer is neither the deal owner nor an authorized delegate".into(),
        ));
    }
    chain_light::crypto::verify(&up.digest(), &up.auth.sig, &up.auth.signer)
        .map_err(|e| NetError::Forbidden(format!("upload signature: {e}")))?;
    Ok(())
}
