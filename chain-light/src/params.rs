//! Governance-set parameters (docs/chain.md §Parameters).

use serde::{Deserialize, Serialize};

use crate::bytes::Address;
use crate::Amount;

/// Chain parameters. Changed only by `Msg::SetParams` from `governor`, effective from the
/// next block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The account allowed to change parameters.
    pub governor: Address,
    /// Blocks per epoch.
    pub epoch_blocks: u64,
    /// Minimum fee per transaction.
    #[serde(with = "crate::amount")]
    pub min_fee: Amount,
    /// Share of every fee that is burned (basis points); the rest goes to the epoch's
    /// validator reward pool.
    pub fee_burn_bps: u32,
    /// Newly minted tokens per block, added to the validator reward pool.
    #[serde(with = "crate::amount")]
    pub block_reward: Amount,
    /// Minimum stake of a provider.
    #[serde(with = "crate::amount")]
    pub min_provider_stake: Amount,
    /// Minimum stake of a deputy (relay).
    #[serde(with = "crate::amount")]
    pub min_deputy_stake: Amount,
    /// Minimum self-stake of a validator.
    #[serde(with = "crate::amount")]
    pub min_validator_stake: Amount,
    /// Largest active validator set.
    pub max_validators: u32,
    /// Epochs between undelegation/exit and the release of the stake.
    pub unbonding_epochs: u64,
    /// Storage rent per MDU per epoch (for the whole deal, all slots).
    #[serde(with = "crate::amount")]
    pub rent_per_mdu_epoch: Amount,
    /// Longest deal term in epochs.
    pub max_term_epochs: u64,
    /// Price of one retrieved blob, paid from escrow through receipts.
    #[serde(with = "crate::amount")]
    pub price_per_blob: Amount,
    /// Share of each receipt payment that is burned (bps).
    pub receipt_burn_bps: u32,
    /// Share of a deputy-served receipt payment that goes to the deputy (bps).
    pub deputy_premium_bps: u32,
    /// Share of the unreleased rent kept (and burned) when an owner cancels (bps).
    pub cancel_penalty_bps: u32,
    /// Synthetic challenges per active slot per epoch before receipt credits.
    pub challenges_per_slot: u32,
    /// Floor of synthetic challenges, whatever the credits.
    pub min_challenges: u32,
    /// Blobs of redeemed receipts that cancel one synthetic challenge.
    pub blobs_per_credit: u64,
    /// Health lost per epoch with missing proofs (health is 0..=100).
    pub miss_penalty: u32,
    /// Health regained per fully proven epoch.
    pub health_recovery: u32,
    /// Health at or below which a slot is evicted into repair.
    pub evict_health: u32,
    /// Proofs the new provider submits to complete a repair.
    pub repair_proofs: u32,
    /// Share of a provider's stake slashed for fraud or a wrong proof (bps).
    pub fraud_slash_bps: u32,
    /// Share of a provider's stake slashed for proven non-response (bps).
    pub nonresponse_slash_bps: u32,
    /// Share of a slash paid to whoever submitted the evidence (bps); the rest is burned.
    pub reporter_reward_bps: u32,
    /// Deputies drawn by the beacon per (deal, slot, epoch).
    pub deputy_committee: u32,
    /// Distinct committee attestations in one epoch that prove non-response.
    pub deputy_threshold: u32,
    /// Base slash of a validator fault (bps); the n-th offence slashes n times this, capped
    /// at `validator_slash_cap_bps`.
    pub validator_slash_bps: u32,
    /// Cap of one validator slash (bps).
    pub validator_slash_cap_bps: u32,
    /// Epochs a faulty validator stays jailed.
    pub jail_epochs: u64,
    /// Largest encoded transaction.
    pub max_tx_bytes: u32,
    /// Most transactions per block.
    pub max_block_txs: u32,
    /// Most storage proofs in one transaction.
    pub max_proofs_per_tx: u32,
}

impl Params {
    /// Devnet defaults: short epochs, small stakes.
    pub fn devnet(governor: Address) -> Params {
        Params {
            governor,
            epoch_blocks: 20,
            min_fee: 1_000,
            fee_burn_bps: 5_000,
            block_reward: 1_000_000,
            min_provider_stake: 1_000_000_000,
            min_deputy_stake: 100_000_000,
            min_validator_stake: 1_000_000_000,
            max_validators: 32,
            unbonding_epochs: 3,
            rent_per_mdu_epoch: 10_000,
            max_term_epochs: 1_000_000,
            price_per_blob: 100,
            receipt_burn_bps: 1_000,
            deputy_premium_bps: 2_000,
            cancel_penalty_bps: 1_000,
            challenges_per_slot: 2,
            min_challenges: 1,
            blobs_per_credit: 64,
            miss_penalty: 25,
            health_recovery: 10,
            evict_health: 25,
            repair_proofs: 2,
            fraud_slash_bps: 5_000,
            nonresponse_slash_bps: 1_000,
            reporter_reward_bps: 1_000,
            deputy_committee: 5,
            deputy_threshold: 3,
            validator_slash_bps: 100,
            validator_slash_cap_bps: 3_300,
            jail_epochs: 2,
            max_tx_bytes: 1 << 20,
            max_block_txs: 2_000,
            max_proofs_per_tx: 256,
        }
    }

    /// Checks that the parameters make sense together.
    pub fn validate(&self) -> Result<(), &'static str> {
        let bps = [
            self.fee_burn_bps,
            self.receipt_burn_bps,
            self.deputy_premium_bps,
            self.cancel_penalty_bps,
            self.fraud_slash_bps,
            self.nonresponse_slash_bps,
            self.reporter_reward_bps,
            self.validator_slash_bps,
            self.validator_slash_cap_bps,
        ];
        if bps.iter().any(|&b| b > 10_000) {
            return Err("basis points above 10000");
        }
        if self.receipt_burn_bps + self.deputy_premium_bps > 10_000 {
            return Err("receipt burn + deputy premium above 10000 bps");
        }
        if self.epoch_blocks == 0 || self.epoch_blocks > 1_000_000 {
            return Err("epoch_blocks out of range");
        }
        if self.max_validators == 0 || self.max_block_txs == 0 || self.max_proofs_per_tx == 0 {
            return Err("zero limit");
        }
        if self.min_challenges > self.challenges_per_slot || self.challenges_per_slot > 64 {
            return Err("challenge counts out of range");
        }
        if self.blobs_per_credit == 0 {
            return Err("blobs_per_credit is zero");
        }
        if self.health_recovery > 100 || self.miss_penalty > 100 || self.evict_health >= 100 {
            return Err("health parameters out of range");
        }
        if self.deputy_threshold > self.deputy_committee {
            return Err("deputy threshold above the committee");
        }
        // Also with a committee of one: no single deputy may ever cause a slash.
        if self.deputy_threshold < 2 {
            return Err("a single deputy must never cause a slash (threshold >= 2)");
        }
        if self.deputy_committee > MAX_COMMITTEE {
            return Err("deputy committee above 64");
        }
        if self.repair_proofs == 0 || self.repair_proofs > 64 {
            return Err("repair_proofs out of range");
        }
        if self.max_tx_bytes < 1024 || self.max_tx_bytes > 16 << 20 {
            return Err("max_tx_bytes out of range");
        }
        if self.max_term_epochs == 0 {
            return Err("max_term_epochs is zero");
        }
        // Epoch counts are added to the current epoch (a deal's end, an unbonding's release,
        // a jail term): bounded so that no sum can overflow in any chain's lifetime.
        if [
            self.max_term_epochs,
            self.unbonding_epochs,
            self.jail_epochs,
        ]
        .iter()
        .any(|&e| e > MAX_EPOCH_SPAN)
        {
            return Err("an epoch count above 2^32");
        }
        Ok(())
    }
}

/// Largest deputy committee.
pub const MAX_COMMITTEE: u32 = 64;

/// Largest number of epochs a parameter may span (a deal's term, unbonding, jail).
pub const MAX_EPOCH_SPAN: u64 = 1 << 32;

/// `amount · bps / 10000`, rounding down, without overflow for any u128 amount.
pub fn bps_of(amount: Amount, bps: u32) -> Amount {
    let bps = bps.min(10_000) as u128;
    (amount / 10_000) * bps + (amount % 10_000) * bps / 10_000
}

/// `a · b` as a 256-bit number `(high, low)`.
pub fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    const M: u128 = u64::MAX as u128;
    let (a1, a0) = (a >> 64, a & M);
    let (b1, b0) = (b >> 64, b & M);
    let (p00, p01, p10, p11) = (a0 * b0, a0 * b1, a1 * b0, a1 * b1);
    // At most 3·(2^64 − 1): no overflow.
    let mid = (p00 >> 64) + (p01 & M) + (p10 & M);
    let low = (p00 & M) | (mid << 64);
    let high = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (high, low)
}

/// `⌊a · b / c⌋`, exact for every u128 input (a 256-bit intermediate); `None` when `c` is
/// zero or the quotient does not fit in a u128 (never when `b ≤ c`).
pub fn mul_div(a: Amount, b: Amount, c: Amount) -> Option<Amount> {
    if c == 0 {
        return None;
    }
    if let Some(x) = a.checked_mul(b) {
        return Some(x / c);
    }
    let (high, low) = mul_wide(a, b);
    if high >= c {
        return None;
    }
    // Long division of (high, low) by c, one bit of `low` at a time; the remainder stays
    // below c, so doubling it needs one extra bit (`carry`).
    let (mut rem, mut q) = (high, 0u128);
    for i in (0..128).rev() {
        let carry = rem >> 127;
        rem = (rem << 1) | ((low >> i) & 1);
        q <<= 1;
        if carry == 1 || rem >= c {
            rem = rem.wrapping_sub(c);
            q |= 1;
        }
    }
    Some(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `(h, l) − (h2, l2)` for `(h, l) ≥ (h2, l2)`.
    fn sub_wide((h, l): (u128, u128), (h2, l2): (u128, u128)) -> (u128, u128) {
        let (low, borrow) = l.overflowing_sub(l2);
        (h - h2 - borrow as u128, low)
    }

    /// The widening product against plain u128 products and against identities that
    /// involve the top bits.
    /// Parameter sets a governor could send that would let one deputy slash, or push epoch
    /// arithmetic towards overflow, are refused.
    #[test]
    fn validation_refuses_single_deputy_slashing_and_huge_epoch_spans() {
        let ok = Params::devnet(Address([1; 20]));
        assert_eq!(ok.validate(), Ok(()));
        let with = |f: fn(&mut Params)| {
            let mut p = ok.clone();
            f(&mut p);
            p.validate()
        };
        assert!(with(|p| {
            p.deputy_committee = 1;
            p.deputy_threshold = 1;
        })
        .is_err());
        assert!(with(|p| p.deputy_threshold = 1).is_err());
        assert!(with(|p| p.deputy_threshold = 0).is_err());
        assert!(with(|p| p.deputy_threshold = 6).is_err());
        assert!(with(|p| {
            p.deputy_committee = 65;
            p.deputy_threshold = 3;
        })
        .is_err());
        assert_eq!(
            with(|p| {
                p.deputy_committee = 2;
                p.deputy_threshold = 2;
            }),
            Ok(())
        );
        for f in [
            (|p: &mut Params| p.max_term_epochs = u64::MAX) as fn(&mut Params),
            |p| p.unbonding_epochs = u64::MAX,
            |p| p.jail_epochs = MAX_EPOCH_SPAN + 1,
        ] {
            assert_eq!(with(f), Err("an epoch count above 2^32"));
        }
        assert_eq!(with(|p| p.jail_epochs = MAX_EPOCH_SPAN), Ok(()));
    }

    #[test]
    fn mul_wide_is_exact() {
        assert_eq!(
            mul_wide(u64::MAX as u128, u64::MAX as u128),
            (0, (u64::MAX as u128).pow(2))
        );
        // (2^128 − 1)^2 = 2^256 − 2^129 + 1.
        assert_eq!(mul_wide(u128::MAX, u128::MAX), (u128::MAX - 1, 1));
        assert_eq!(mul_wide(1 << 127, 2), (1, 0));
        assert_eq!(mul_wide(u128::MAX, 0), (0, 0));
    }

    /// The case that used to mint ~u128::MAX: both `a·b` and `(a mod c)·b` overflow.
    #[test]
    fn mul_div_exact_where_both_products_overflow() {
        let (pool, power, total) = (1u128 << 90, 1u128 << 100, 3u128 << 100);
        assert_eq!(mul_div(pool, power, total), Some(pool / 3));
        assert_eq!(mul_div(u128::MAX, u128::MAX, u128::MAX), Some(u128::MAX));
        assert_eq!(
            mul_div(u128::MAX, u128::MAX - 1, u128::MAX),
            Some(u128::MAX - 1)
        );
        assert_eq!(mul_div(u128::MAX, 2, 1), None);
        assert_eq!(mul_div(5, 7, 0), None);
    }

    proptest! {
        /// `q = mul_div(a, b, c)` is the floor: `q·c ≤ a·b < (q + 1)·c`, checked in 256
        /// bits; and `None` exactly when the quotient exceeds u128.
        #[test]
        fn mul_div_is_the_floor(a in any::<u128>(), b in any::<u128>(), c in 1..=u128::MAX,
                                small in any::<bool>()) {
            let b = if small { b % c.saturating_add(1) } else { b };
            let ab = mul_wide(a, b);
            match mul_div(a, b, c) {
                Some(q) => {
                    let qc = mul_wide(q, c);
                    prop_assert!(qc <= ab);
                    let rem = sub_wide(ab, qc);
                    prop_assert!(rem.0 == 0 && rem.1 < c);
                }
                None => {
                    prop_assert!(b > c);
                    // The quotient is at least 2^128: c·2^128 ≤ a·b.
                    prop_assert!(ab.0 >= c);
                }
            }
            // Commutative in a and b, and agrees with u128 arithmetic where that is exact.
            prop_assert_eq!(mul_div(a, b, c), mul_div(b, a, c));
            if let Some(x) = a.checked_mul(b) {
                prop_assert_eq!(mul_div(a, b, c), Some(x / c));
            }
        }

        /// The widening product distributes: a·b = a·(b − 1) + a.
        #[test]
        fn mul_wide_distributes(a in any::<u128>(), b in 1..=u128::MAX) {
            let (h, l) = mul_wide(a, b - 1);
            let (low, carry) = l.overflowing_add(a);
            prop_assert_eq!(mul_wide(a, b), (h + carry as u128, low));
        }
    }

    #[test]
    fn devnet_params_are_valid_and_bps_is_exact() {
        Params::devnet(Address::ZERO).validate().unwrap();
        assert_eq!(bps_of(10_000, 2_500), 2_500);
        assert_eq!(bps_of(3, 5_000), 1);
        assert_eq!(bps_of(u128::MAX, 10_000), u128::MAX);
        assert_eq!(bps_of(u128::MAX, 0), 0);
        let mut p = Params::devnet(Address::ZERO);
        p.deputy_threshold = 1;
        assert!(p.validate().is_err());
    }
}
