//! The end-to-end scenarios (issue 5), small forms by default, full forms with
//! `E2E_FULL=1`. Each writes `target/evidence/<name>.json`.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use chain_light::state::{ReceiptState, SlotStatus, Work};
use nilstore_e2e::{full, random_file, scenario, send_signal, Action, Bins, Devnet};
use serde_json::json;

fn id(v: &serde_json::Value) -> Result<u64> {
    v["deal_id"].as_u64().context("no deal_id")
}

/// Scenario 1: Happy path: a file across RS(8,4) on 12 providers comes back byte-identical; an
/// upload killed mid-way (`kill -9` of the CLI) finishes with `nilstore resume`.
#[test]
fn s1_happy_path_and_resume() -> Result<()> {
    scenario("s1_happy_path", |ev| {
        let bins = Bins::locate()?;
        let mib = if full() { 256 } else { 24 };
        let d = Devnet::up(&bins, "s1", 12, 0, 250)?;
        ev.step(
            Action::Up {
                providers: 12,
                relays: 0,
            },
            json!(d.info.api),
        );
        let files = d.dir.join("files");
        std::fs::create_dir_all(&files)?;
        let big = files.join("big.bin");
        let h = random_file(&big, mib << 20, 1)?;
        let put = d.cli(
            ev,
            &["put", big.to_str().context("path")?, "--k", "8", "--m", "4"],
        )?;
        let deal = id(&put)?;
        let rec = d.deal(deal)?;
        ensure!(rec.slots.len() == 12, "12 slots");
        let mut who: Vec<_> = rec.slots.iter().map(|s| s.provider).collect();
        who.sort();
        who.dedup();
        ensure!(who.len() == 12, "12 distinct providers");
        ensure!(
            rec.manifest_root.map(|r| hex::encode(r.0))
                == put["manifest_root"].as_str().map(str::to_string),
            "the chain holds the manifest root the client committed"
        );
        let get = d.get_check(ev, deal, "big.bin", &h, &[])?;
        let mb = (mib << 20) as f64 / 1e6;
        ev.set("file_mib", json!(mib));
        ev.set(
            "put_mb_per_s",
            json!(mb / put["seconds"].as_f64().unwrap_or(f64::NAN)),
        );
        ev.set(
            "get_mb_per_s",
            json!(mb / get["seconds"].as_f64().unwrap_or(f64::NAN)),
        );
        ev.set("get_first_byte_ms", get["first_byte_ms"].clone());

        // A range read of the middle of the (encrypted) file fetches only the MDU with the
        // stream header and the one holding the range, and gives exactly those bytes.
        let (off, len) = ((10u64 << 20) + 12_345, 200_000u64);
        let part = d.dir.join("big.part");
        let range = d.cli(
            ev,
            &[
                "get",
                &deal.to_string(),
                "big.bin",
                "--out",
                part.to_str().context("path")?,
                "--offset",
                &off.to_string(),
                "--length",
                &len.to_string(),
            ],
        )?;
        let whole = std::fs::read(&big)?;
        ensure!(
            std::fs::read(&part)? == whole[off as usize..(off + len) as usize],
            "the range read differs from the file's bytes"
        );
        ensure!(
            range["mdus"].as_u64() == Some(2) && get["mdus"].as_u64() > Some(2),
            "a range read fetches the header's and the range's MDUs only: {range} vs {get}"
        );
        ev.set("range_read_mdus", range["mdus"].clone());

        // Interrupt an append as soon as one shard is acknowledged, then resume.
        let second = files.join("second.bin");
        let h2 = random_file(&second, 16 << 20, 2)?;
        let mut child = d
            .command(&[
                "put",
                second.to_str().context("path")?,
                "--deal",
                &deal.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let log = d
            .home
            .join("uploads")
            .join(format!("deal-{deal}-g1"))
            .join("acked.log");
        let t0 = std::time::Instant::now();
        while std::fs::read_to_string(&log).map_or(true, |s| s.lines().count() < 3) {
            ensure!(
                child.try_wait()?.is_none(),
                "the upload ended before it could be interrupted"
            );
            ensure!(
                t0.elapsed() < Duration::from_secs(120),
                "no acknowledgement within 120 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        send_signal(child.id(), "KILL")?;
        let _ = child.wait();
        let acked = std::fs::read_to_string(&log)?.lines().count();
        ev.step(
            Action::Interrupt {
                what: "nilstore put (kill -9) after acknowledgements".into(),
            },
            json!({ "acked": acked }),
        );
        ensure!(
            d.deal(deal)?.generation == 0,
            "nothing committed before the resume"
        );
        let resumed = d.cli(ev, &["resume"])?;
        ensure!(
            resumed[0]["generation"] == 1,
            "the resumed job commits generation 1: {resumed}"
        );
        d.get_check(ev, deal, "second.bin", &h2, &[])?;
        d.get_check(ev, deal, "big.bin", &h, &[])?;
        let ls = d.cli(ev, &["ls", &deal.to_string()])?;
        ensure!(
            ls["files"].as_array().map(Vec::len) == Some(2),
            "two files listed: {ls}"
        );
        ev.set("resumed_after_acks", json!(acked));

        // A delegate home that cannot be written is found out before anything is signed:
        // no delegate is authorized (the funds and rights used to go out first, to a key
        // that was then lost).
        let blocked = d.dir.join("not-a-directory");
        std::fs::write(&blocked, b"a file where the home's parent should be")?;
        let bad_home = blocked.join("job-home");
        let delegates = d.deal(deal)?.delegates.len();
        let refused = d.cli(
            ev,
            &[
                "delegate",
                &deal.to_string(),
                "--out",
                bad_home.to_str().context("path")?,
            ],
        );
        ensure!(refused.is_err(), "delegate to an unwritable home succeeded");
        ensure!(
            d.deal(deal)?.delegates.len() == delegates,
            "a delegate was authorized although its key could not be kept"
        );

        // A delegate: a scoped, funded, expiring key in its own client home appends a file
        // the owner reads back (the deal key travels with the job's home).
        let job = d.dir.join("job-home");
        let job_s = job.to_str().context("path")?;
        let del = d.cli(ev, &["delegate", &deal.to_string(), "--out", job_s])?;
        let key_file = job.join("account.key");
        let third = d.dir.join("third.bin");
        let h3 = random_file(&third, 3 << 20, 3)?;
        let put3 = d.cli_as(
            ev,
            &job,
            &key_file,
            &[
                "put",
                third.to_str().context("path")?,
                "--deal",
                &deal.to_string(),
            ],
        )?;
        ensure!(
            put3["generation"] == 2,
            "the delegate committed generation 2: {put3}"
        );
        d.get_check(ev, deal, "third.bin", &h3, &[])?;
        ev.set("delegate", del["delegate"].clone());
        Ok(())
    })
}

/// Scenario 2: Lose M providers (`kill -9`): reads go on from parity, the chain evicts them, spares
/// rebuild the slots bit-exactly (readiness proofs) and the slots are ACTIVE again; reads
/// never fail in between.
#[test]
fn s2_lose_m_providers_and_repair() -> Result<()> {
    scenario("s2_lose_m", |ev| {
        let d = Devnet::start(ev, "s2", 8, 1, 100)?;
        let (deal, h) = d.put_random(ev, "data.bin", 12 << 20, 3)?;
        let before = d.deal(deal)?;
        let lost: Vec<usize> = (0..2)
            .map(|s| d.provider_of(&before, s))
            .collect::<Result<_>>()?;
        for &p in &lost {
            d.kill(ev, p)?;
        }
        let read = |ev: &mut nilstore_e2e::Evidence| -> Result<serde_json::Value> {
            let r = d.get_check(ev, deal, "data.bin", &h, &[])?;
            Ok(r)
        };
        let r = read(ev)?;
        ensure!(
            r["reconstructed_mdus"].as_u64() > Some(0),
            "two data slots lost: parity rebuilt the rows"
        );
        let mut reads = 1u32;
        let lost_accounts: Vec<_> = lost.iter().map(|&p| d.provider(p).account).collect();
        // Until both slots are ACTIVE with new providers, read every few seconds: reads
        // must never fail in between.
        let t0 = std::time::Instant::now();
        let repaired = loop {
            let now = d.deal(deal)?;
            let done = (0..2).all(|s| {
                now.slots[s].status == SlotStatus::Active
                    && !lost_accounts.contains(&now.slots[s].provider)
            });
            if done {
                break now;
            }
            ensure!(
                t0.elapsed() < Duration::from_secs(300),
                "slots not repaired within 300 s: {:?}",
                now.slots
            );
            read(ev)?;
            reads += 1;
            std::thread::sleep(Duration::from_secs(2));
        };
        ev.step(
            Action::Wait {
                what: "both slots repaired by new providers and ACTIVE".into(),
            },
            json!({ "seconds": t0.elapsed().as_secs_f64(), "reads_meanwhile": reads - 1 }),
        );
        let r = read(ev)?;
        reads += 1;
        ev.set("reads", json!(reads));
        ev.set("final_read", r);
        ev.set(
            "new_providers",
            json!([repaired.slots[0].provider, repaired.slots[1].provider]),
        );
        Ok(())
    })
}

/// Scenario 3: A ghosting provider (SIGSTOP: answers nothing): reads succeed from the other slots,
/// deputies attest its silence; one deputy's attestation slashes nobody, three distinct
/// deputies' do.
#[test]
fn s3_ghost_provider_deputies_and_slash() -> Result<()> {
    scenario("s3_ghost", |ev| {
        // 500 ms blocks: 10 s epochs, so the paused provider is not yet evicted for
        // missed proofs while the reads run (deputies attest an active slot only).
        let d = Devnet::start(ev, "s3", 6, 3, 500)?;
        let (deal, h) = d.put_random(ev, "data.bin", 4 << 20, 4)?;
        let rec = d.deal(deal)?;
        let ghost = d.provider_of(&rec, 0)?;
        let account = d.provider(ghost).account;
        let chain = d.chain()?;
        let stake0 = chain.provider(&account)?.context("registered")?.stake;
        d.pause(ev, ghost)?;
        let attested = |d: &Devnet| -> u64 {
            d.info
                .relays
                .iter()
                .map(|r| Devnet::metric(r, "nilstore_relay_attestations_total"))
                .sum()
        };

        // One deputy: the read succeeds, one attestation, no slash.
        let r = d.get_check(ev, deal, "data.bin", &h, &["--deputies", "1"])?;
        ensure!(
            r["fallbacks"].as_u64() > Some(0),
            "the ghost's slot was read elsewhere: {r}"
        );
        ensure!(attested(&d) == 1, "one deputy attested");
        let height = d.chain()?.trusted()?.height;
        d.wait(
            ev,
            "the attestation is included (3 blocks)",
            Duration::from_secs(60),
            |d| Ok((d.chain()?.trusted()?.height >= height + 3).then_some(())),
        )?;
        let p = d.chain()?.provider(&account)?.context("registered")?;
        ensure!(p.stake == stake0, "one deputy alone slashed the provider");
        ev.step(
            Action::Check {
                what: "a single deputy cannot cause a slash".into(),
            },
            json!({ "stake": p.stake.to_string() }),
        );

        // Every deputy: three distinct attestations cross the threshold.
        let r = d.get_check(ev, deal, "data.bin", &h, &[])?;
        ev.set("read_with_ghost", r);
        let slashed = d.wait(
            ev,
            "the ghost is slashed for non-response",
            Duration::from_secs(60),
            |d| {
                let p = d.chain()?.provider(&account)?.context("registered")?;
                Ok((p.stake < stake0).then_some(p))
            },
        )?;
        ev.set("attestations", json!(attested(&d)));
        ev.set("stake_before", json!(stake0.to_string()));
        ev.set("stake_after", json!(slashed.stake.to_string()));
        d.unpause(ev, ghost)?;
        Ok(())
    })
}

/// Scenario 4: A byzantine provider (a flipped byte on its disk serves wrong bytes): the reader
/// rejects the blob, reads elsewhere and submits fraud evidence; the chain slashes and
/// evicts it.
#[test]
fn s4_byzantine_provider_fraud() -> Result<()> {
    scenario("s4_byzantine", |ev| {
        let d = Devnet::start(ev, "s4", 7, 1, 100)?;
        let (deal, h) = d.put_random(ev, "data.bin", 4 << 20, 5)?;
        let rec = d.deal(deal)?;
        let bad = d.provider_of(&rec, 0)?;
        let account = d.provider(bad).account;
        let stake0 = d.chain()?.provider(&account)?.context("registered")?.stake;
        let w = rec.witness_mdus as u32;
        let shard = d
            .shard_files(bad, deal)?
            .into_iter()
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("0-{}-", w + 1)))
            })
            .context("slot 0's shard of the first user MDU")?;
        let mut bytes = std::fs::read(&shard)?;
        bytes[1000] ^= 0x55;
        std::fs::write(&shard, &bytes)?;
        ev.step(
            Action::Corrupt {
                provider: bad,
                file: shard.display().to_string(),
            },
            json!({ "offset": 1000 }),
        );
        let r = d.get_check(ev, deal, "data.bin", &h, &[])?;
        ensure!(
            r["fraud_reports"].as_u64() >= Some(1),
            "fraud evidence submitted: {r}"
        );
        let (p, now) = d.wait(
            ev,
            "the provider is slashed and its slot evicted",
            Duration::from_secs(60),
            |d| {
                let p = d.chain()?.provider(&account)?.context("registered")?;
                let now = d.deal(deal)?;
                let evicted = now.slots[0].provider != account
                    || now.slots[0].status == SlotStatus::Repairing;
                Ok((p.stake < stake0 && evicted).then_some((p, now)))
            },
        )?;
        ev.set("read", r);
        ev.set("stake_before", json!(stake0.to_string()));
        ev.set("stake_after", json!(p.stake.to_string()));
        ev.set("slot0_after", serde_json::to_value(&now.slots[0])?);
        Ok(())
    })
}

/// Scenario 5: Challenges: every slot's provider proves each epoch; organic reads with receipts
/// lower a slot's synthetic challenges; a provider that deleted its data fails its proofs
/// and is evicted.
#[test]
fn s5_challenges_receipts_and_deleted_data() -> Result<()> {
    scenario("s5_challenges", |ev| {
        // A credit per 16 blobs read: a data slot that served one of the four MDUs earns one,
        // even if the read hedged other MDUs to parity slots.
        let genesis_params = json!({ "blobs_per_credit": 16 });
        let d = Devnet::start_params(ev, "s5", (7, 0, 1), 100, Some(&genesis_params))?;
        let f = d.dir.join("data.bin");
        // 4 user MDUs: each data slot serves 16 blobs of each MDU it is read from.
        let h = random_file(&f, 24 << 20, 6)?;
        let deal = id(&d.cli(ev, &["put", f.to_str().context("path")?])?)?;
        let rec = d.deal(deal)?;
        let slot_providers: Vec<usize> = (0..rec.slots.len())
            .map(|s| d.provider_of(&rec, s))
            .collect::<Result<_>>()?;
        d.wait(
            ev,
            "every slot's provider has proofs accepted in two epochs",
            Duration::from_secs(90),
            |d| {
                Ok(slot_providers
                    .iter()
                    .all(|&p| {
                        Devnet::metric(d.provider(p), "nilstore_provider_proofs_submitted_total")
                            >= 2
                    })
                    .then_some(()))
            },
        )?;
        let params = d.chain()?.globals()?.params;
        d.get_check(ev, deal, "data.bin", &h, &[])?;
        // The redemption is durable (receipt state); the credit it gives lives in the slot's
        // work for the rest of that epoch only, so it is read at the inclusion height.
        let (slot, provider) = d.wait(
            ev,
            "a data slot's provider redeems a receipt",
            Duration::from_secs(120),
            |d| {
                let c = d.chain()?;
                for s in 0..rec.k {
                    let a = rec.slots[s as usize].provider;
                    let r = c.receipt_state(deal, &a)?;
                    if r.nonce > 0 && r.blobs >= params.blobs_per_credit {
                        return Ok(Some((s, a)));
                    }
                }
                Ok(None)
            },
        )?;
        let receipt_path = format!("/state/receipt/{deal}/{provider}");
        let redeemed_at = |h: u64| -> Result<Option<ReceiptState>> {
            Ok(d.state_at::<ReceiptState>(&receipt_path, h)?
                .filter(|r| r.nonce > 0))
        };
        // Binary search for the block that included the first redemption: not redeemed at
        // `lo`, redeemed (`first`) at `hi`.
        let (mut lo, mut hi) = (0, d.chain()?.trusted()?.height);
        let mut first = redeemed_at(hi)?.context("redeemed at the tip")?;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match redeemed_at(mid)? {
                Some(r) => (hi, first) = (mid, r),
                None => lo = mid,
            }
        }
        let work: Work = d
            .state_at(&format!("/state/work/{deal}/{slot}"), hi)?
            .unwrap_or_default();
        ensure!(
            work.credit_blobs >= first.blobs,
            "slot {slot}'s credit at height {hi} is {} blobs, below the {} redeemed",
            work.credit_blobs,
            first.blobs
        );
        ev.set("redeemed_at_height", json!(hi));
        let quota = params
            .challenges_per_slot
            .saturating_sub((work.credit_blobs / params.blobs_per_credit) as u32)
            .max(params.min_challenges);
        ensure!(
            quota < params.challenges_per_slot,
            "credits lower the synthetic challenges"
        );
        ev.set("credited_slot", json!(slot));
        ev.set("credit_blobs", json!(work.credit_blobs));
        ev.set(
            "challenges_without_reads",
            json!(params.challenges_per_slot),
        );
        ev.set("challenges_with_reads", json!(quota));

        // Slot 5's provider loses its data.
        let victim = slot_providers[5];
        let account = d.provider(victim).account;
        let files = d.shard_files(victim, deal)?;
        ensure!(!files.is_empty(), "the provider stores shards");
        for p in &files {
            std::fs::remove_file(p)?;
        }
        ev.step(
            Action::DeleteData {
                provider: victim,
                deal,
            },
            json!({ "files": files.len() }),
        );
        let now = d.wait(
            ev,
            "the provider fails its proofs and is evicted",
            Duration::from_secs(120),
            |d| {
                let now = d.deal(deal)?;
                Ok((now.slots[5].provider != account
                    || now.slots[5].status == SlotStatus::Repairing)
                    .then_some(now))
            },
        )?;
        ev.set("slot5_after", serde_json::to_value(&now.slots[5])?);
        ev.set(
            "victim_proofs_failed",
            json!(Devnet::metric(
                d.provider(victim),
                "nilstore_provider_proofs_failed_total"
            )),
        );
        Ok(())
    })
}

/// Scenario 7: four validators; one is killed (`kill -9`) in the middle of an upload, the
/// upload completes on the other three; restarted, it catches up and agrees.
#[test]
fn s7_validator_fault_mid_upload() -> Result<()> {
    scenario("s7_validator_fault", |ev| {
        let bins = Bins::locate()?;
        let mut d = Devnet::up_with(&bins, "s7", 6, 0, 250, 4)?;
        ev.step(
            Action::Up {
                providers: 6,
                relays: 0,
            },
            json!({ "validators": 4 }),
        );
        let f = d.dir.join("data.bin");
        let h = random_file(&f, 24 << 20, 7)?;
        let mut child = d
            .command(&["put", f.to_str().context("path")?])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        // Mid-upload: once providers have acknowledged shards.
        let uploads = d.home.join("uploads");
        let t0 = std::time::Instant::now();
        loop {
            let acked = std::fs::read_dir(&uploads)
                .ok()
                .into_iter()
                .flatten()
                .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("acked.log")).ok())
                .map(|s| s.lines().count())
                .sum::<usize>();
            if acked >= 3 {
                break;
            }
            ensure!(
                child.try_wait()?.is_none(),
                "the upload ended before the fault"
            );
            ensure!(
                t0.elapsed() < Duration::from_secs(180),
                "no acknowledgement within 180 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        d.kill_validator(ev, 3)?;
        let out = child.wait_with_output()?;
        ensure!(
            out.status.success(),
            "the upload failed with a validator down"
        );
        let put: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        ev.step(
            Action::Check {
                what: "the upload completed with 3 of 4 validators".into(),
            },
            put.clone(),
        );
        let deal = id(&put)?;
        d.get_check(ev, deal, "data.bin", &h, &[])?;
        let h0 = d.validator_height(0);
        d.restart_validator(ev, 3)?;
        d.wait(
            ev,
            "the restarted validator catches up and agrees",
            Duration::from_secs(180),
            |d| {
                if d.validator_height(3) < h0 {
                    return Ok(None);
                }
                let a = d.validator_get(0, &format!("/headers/{h0}"))?;
                let b = d.validator_get(3, &format!("/headers/{h0}"))?;
                Ok((a["hash"].is_string() && a["hash"] == b["hash"]).then_some(()))
            },
        )?;
        ev.set("caught_up_to", json!(h0));
        ev.set("deal", json!(deal));
        Ok(())
    })
}

/// Scenario 6: economics, exact, under three parameter sets: the owner pays exactly
/// escrow plus fees; creating the deal reserves exactly the rent of its reserved MDUs for
/// the term (the commit costs nothing more); receipts move exactly `paid blobs × price` out of escrow, of which
/// `receipt_burn_bps` is burned; supply changes exactly by minted minus burned.
#[test]
fn s6_economics_three_parameter_sets() -> Result<()> {
    scenario("s6_economics", |ev| {
        let sets = [
            json!({}),
            json!({ "min_fee": 5000, "rent_per_mdu_epoch": 1, "price_per_blob": 1000,
                    "receipt_burn_bps": 5000, "fee_burn_bps": 10000 }),
            json!({ "min_fee": 1, "rent_per_mdu_epoch": 250000, "price_per_blob": 7,
                    "receipt_burn_bps": 0, "fee_burn_bps": 0 }),
        ];
        let mut results = Vec::new();
        for (i, set) in sets.iter().enumerate() {
            let d = Devnet::start_params(ev, &format!("s6-{i}"), (6, 0, 1), 100, Some(set))?;
            let chain = d.chain()?;
            let p = chain.globals()?.params;
            let owner = chain_light::crypto::SecretKey::from_bytes(&{
                let keys = nilstore_client::network::dev_keys(&d.info.dev_keys)?;
                let free = (0..keys.len())
                    .find(|i| !d.info.reserved_dev_accounts.contains(i))
                    .context("a free dev account")?;
                keys[free].to_bytes()
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .address();
            let g0 = chain.globals()?;
            let a0 = chain.account(&owner)?;

            let f = d.dir.join("data.bin");
            let h = random_file(&f, 24 << 20, 60 + i as u64)?;
            let deal = id(&d.cli(ev, &["put", f.to_str().context("path")?])?)?;
            let chain = d.chain()?;
            let rec = chain.deal(deal)?.context("deal")?;
            let a1 = chain.account(&owner)?;
            let txs = (a1.nonce - a0.nonce) as u128;
            // The CLI's default escrow: rent of the whole reservation for the term plus a
            // read budget of 2^20 blobs.
            let term = (rec.end_epoch - rec.start_epoch) as u128;
            let escrow0 = p.rent_per_mdu_epoch * rec.reserved_mdus as u128 * term
                + p.price_per_blob * (1 << 20);
            ensure!(
                a0.balance - a1.balance == escrow0 + txs * p.min_fee,
                "the owner paid {} (expected escrow {escrow0} + {txs} fees of {})",
                a0.balance - a1.balance,
                p.min_fee
            );
            let rent = rec.reserved_mdus as u128
                * p.rent_per_mdu_epoch
                * (rec.end_epoch - rec.start_epoch) as u128;
            ensure!(
                txs == 2,
                "a put is two transactions (create, commit): {txs}"
            );
            ensure!(
                rec.escrow == escrow0 - rent,
                "escrow after commit {} != deposited {escrow0} - reservation rent {rent}",
                rec.escrow
            );

            d.get_check(ev, deal, "data.bin", &h, &[])?;
            let providers: Vec<_> = rec.slots.iter().map(|s| s.provider).collect();
            let k = rec.k as usize;
            let (paid_blobs, now) = d.wait(
                ev,
                "every data slot's receipt is redeemed",
                Duration::from_secs(60),
                |d| {
                    let c = d.chain()?;
                    for a in &providers[..k] {
                        if c.receipt_state(deal, a)?.paid_blobs == 0 {
                            return Ok(None);
                        }
                    }
                    let mut all = 0u64;
                    for a in &providers {
                        all += c.receipt_state(deal, a)?.paid_blobs;
                    }
                    Ok(Some((all, c.deal(deal)?.context("deal")?)))
                },
            )?;
            let paid = paid_blobs as u128 * p.price_per_blob;
            ensure!(
                rec.escrow - now.escrow == paid,
                "escrow fell by {} for {paid_blobs} paid blobs at {} (expected {paid})",
                rec.escrow - now.escrow,
                p.price_per_blob
            );
            let g1 = d.chain()?.globals()?;
            ensure!(
                g1.supply + (g1.burned - g0.burned) == g0.supply + (g1.minted - g0.minted),
                "supply identity broken: {} + burned {} != {} + minted {}",
                g1.supply,
                g1.burned - g0.burned,
                g0.supply,
                g1.minted - g0.minted
            );
            results.push(json!({
                "params": set,
                "escrow_deposited": escrow0.to_string(),
                "rent_reserved_at_commit": rent.to_string(),
                "fees": (txs * p.min_fee).to_string(),
                "paid_blobs": paid_blobs,
                "paid": paid.to_string(),
                "receipt_burn": (paid * p.receipt_burn_bps as u128 / 10_000).to_string(),
                "minted": (g1.minted - g0.minted).to_string(),
                "burned": (g1.burned - g0.burned).to_string(),
            }));
        }
        ev.set("sets", json!(results));
        Ok(())
    })
}
