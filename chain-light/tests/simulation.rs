//! Seeded deterministic simulation of a 4-validator network: the real validator node
//! (`chain_light::validator`) on commonware's deterministic runtime and simulated network,
//! through message loss, a 2–2 partition (no quorum: no progress; healed: progress), and a
//! crash with restart from the block log (catch-up by block sync). Every validator ends on
//! the same headers; the same seed gives the same run (runtime audit and state roots), a
//! different seed a different one. The seed is printed; `NILSTORE_SIM_SEED=N` reruns one.
#![allow(clippy::unwrap_used)]
#![cfg(feature = "validator")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chain_light::block::{Genesis, GenesisAccount, GenesisValidator};
use chain_light::bytes::H256;
use chain_light::crypto::SecretKey;
use chain_light::light::{self, PublicKey};
use chain_light::params::Params;
use chain_light::validator::metrics::Metrics;
use chain_light::validator::node::Node;
use chain_light::validator::store::Store;
use chain_light::validator::{replay, run_epochs, sync, EpochChannels};
use commonware_cryptography::Signer as _;
use commonware_p2p::simulated::{self, Link, Network, Oracle};
use commonware_p2p::utils::mux::Muxer;
use commonware_p2p::Receiver as _;
use commonware_runtime::{
    deterministic, Clock as _, Handle, Quota, Runner as _, Spawner as _, Supervisor as _,
};
use commonware_utils::{probability, NZUsize, NZU32};

const N: u64 = 4;
const CHAIN_ID: u64 = 9090;

fn account(i: u64) -> SecretKey {
    SecretKey::from_seed(format!("sim/val{i}").as_bytes())
}

/// Genesis with validators `0..n`; every node `0..nodes` has a funded account.
fn genesis_with(n: u64, nodes: u64) -> Genesis {
    let gov = SecretKey::from_seed(b"sim/gov");
    let mut accounts = vec![GenesisAccount {
        address: gov.address(),
        balance: 1 << 80,
    }];
    accounts.extend((0..nodes).map(|i| GenesisAccount {
        address: account(i).address(),
        balance: 1 << 70,
    }));
    Genesis {
        chain_id: CHAIN_ID,
        time_ms: 0,
        params: Params {
            epoch_blocks: 5,
            ..Params::devnet(gov.address())
        },
        accounts,
        validators: (0..n)
            .map(|i| {
                let (id, bls) = light::dev_keys(CHAIN_ID, i);
                GenesisValidator {
                    account: account(i).address(),
                    consensus_key: light::make_consensus_key(&id, &bls),
                    stake: 10_000_000_000,
                }
            })
            .collect(),
    }
}

fn genesis() -> Genesis {
    genesis_with(N, N)
}

struct Running {
    node: Node,
    tasks: Vec<Handle<()>>,
}

/// Starts node `i` over its block log in `dir` (replaying it, as after a restart): the
/// epoch orchestrator runs an engine whenever the chain elects it, block sync always.
async fn start_validator(
    ctx: &deterministic::Context,
    oracle: &Oracle<PublicKey, deterministic::Context>,
    g: &Genesis,
    i: u64,
    dir: &Path,
    incarnation: u32,
) -> Running {
    let (id, bls) = light::dev_keys(CHAIN_ID, i);
    let store = Arc::new(Store::open(dir).unwrap());
    let (chain, _) = replay(g, &store).unwrap();
    let node = Node::new(
        chain,
        store,
        Arc::new(Metrics::new()),
        account(i),
        Duration::from_millis(200),
    );
    let control = oracle.control(id.public_key());
    let quota = Quota::per_second(NZU32!(10_000));
    let (vote_tx, vote_rx) = control.register(0, quota).await.unwrap();
    let (cert_tx, cert_rx) = control.register(1, quota).await.unwrap();
    let (res_tx, res_rx) = control.register(2, quota).await.unwrap();
    let (block_tx, mut block_rx) = control.register(3, quota).await.unwrap();
    let (sync_tx, sync_rx) = control.register(4, quota).await.unwrap();
    let vctx = ctx
        .child("validator")
        .with_attribute("index", i)
        .with_attribute("run", incarnation);
    let receiver = node.clone();
    let blocks = vctx.child("blocks").spawn(move |_| async move {
        while let Ok((_, bytes)) = block_rx.recv().await {
            if let Ok(b) = chain_light::codec::decode(bytes.as_ref(), 64 << 20) {
                receiver.receive_block(b);
            }
        }
    });
    let [ask, serve] = sync::start(vctx.child("sync"), node.clone(), sync_tx, sync_rx);
    let (vote_mux, vote) = Muxer::new(vctx.child("vote_mux"), vote_tx, vote_rx);
    let (cert_mux, cert) = Muxer::new(vctx.child("cert_mux"), cert_tx, cert_rx);
    let (res_mux, resolver) = Muxer::new(vctx.child("resolver_mux"), res_tx, res_rx);
    let epochs = run_epochs(
        vctx.child("consensus"),
        node.clone(),
        bls,
        block_tx,
        control.clone(),
        format!("simplex-v{i}"),
        EpochChannels {
            vote,
            cert,
            resolver,
        },
    );
    let mut tasks = vec![epochs, blocks, ask, serve];
    // Each muxer runs inside a task of its own, so aborting the task stops it.
    tasks.push(vctx.child("mux").spawn(move |_| async move {
        let _ = vote_mux.run().await;
    }));
    tasks.push(vctx.child("mux").spawn(move |_| async move {
        let _ = cert_mux.run().await;
    }));
    tasks.push(vctx.child("mux").spawn(move |_| async move {
        let _ = res_mux.run().await;
    }));
    Running { node, tasks }
}

/// Crashes a node: every task stops at once (its block log stays on disk).
fn stop(r: Running) {
    for t in &r.tasks {
        t.abort();
    }
}

fn height(r: &Running) -> u64 {
    r.node.lock().chain.tip.height
}

fn header_hash(r: &Running, h: u64) -> Option<H256> {
    Some(r.node.store.block(h).ok()??.header.hash())
}

async fn wait_for(ctx: &deterministic::Context, what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..3_000 {
        if ok() {
            return;
        }
        ctx.sleep(Duration::from_millis(100)).await;
    }
    panic!("simulated time out: {what}");
}

/// A fresh scratch directory for one simulated run.
fn scratch(kind: &str, seed: u64) -> PathBuf {
    let base = std::env::temp_dir().join(format!(
        "nilstore-sim-{kind}-{}-{seed}-{}",
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&base);
    base
}

fn sim_config(seed: u64) -> deterministic::Config {
    deterministic::Config::new()
        .with_seed(seed)
        .with_timeout(Some(Duration::from_secs(1_200)))
}

/// A simulated network of nodes `0..n` (their identities), every pair linked both ways.
async fn mesh(
    ctx: &deterministic::Context,
    n: u64,
    link: Link,
) -> (Vec<PublicKey>, Oracle<PublicKey, deterministic::Context>) {
    let keys: Vec<PublicKey> = (0..n)
        .map(|i| light::dev_keys(CHAIN_ID, i).0.public_key())
        .collect();
    let (network, oracle) = Network::new_with_peers(
        ctx.child("network"),
        simulated::Config {
            max_size: 16 << 20,
            max_peers_per_set: NZUsize!(n as usize),
            disconnect_on_block: true,
            tracked_peer_sets: NZUsize!(1),
        },
        keys.clone(),
    )
    .await;
    network.start();
    for a in &keys {
        for b in &keys {
            if a != b {
                oracle
                    .add_link(a.clone(), b.clone(), link.clone())
                    .await
                    .unwrap();
            }
        }
    }
    (keys, oracle)
}

struct Outcome {
    audit: String,
    agreed_height: u64,
    agreed_hash: H256,
    agreed_root: H256,
}

fn run(seed: u64) -> Outcome {
    let base = scratch("main", seed);
    let root_dir = base.clone();
    let out = deterministic::Runner::new(sim_config(seed)).start(|ctx| async move {
        let base = root_dir;
        let g = genesis();
        // Lossy, jittery links.
        let link = Link {
            latency: Duration::from_millis(30),
            jitter: Duration::from_millis(20),
            success_rate: probability!(0.95),
        };
        let (keys, oracle) = mesh(&ctx, N, link.clone()).await;
        let connect = |a: usize, b: usize| {
            let (oracle, link, keys) = (oracle.clone(), link.clone(), keys.clone());
            async move {
                oracle
                    .add_link(keys[a].clone(), keys[b].clone(), link.clone())
                    .await
                    .unwrap();
                oracle
                    .add_link(keys[b].clone(), keys[a].clone(), link)
                    .await
                    .unwrap();
            }
        };
        let cut = |a: usize, b: usize| {
            let (oracle, keys) = (oracle.clone(), keys.clone());
            async move {
                let _ = oracle.remove_link(keys[a].clone(), keys[b].clone()).await;
                let _ = oracle.remove_link(keys[b].clone(), keys[a].clone()).await;
            }
        };
        let dirs: Vec<PathBuf> = (0..N).map(|i| base.join(format!("v{i}"))).collect();
        let mut vs = Vec::new();
        for i in 0..N {
            vs.push(start_validator(&ctx, &oracle, &g, i, &dirs[i as usize], 0).await);
        }
        wait_for(&ctx, "all reach height 5", || {
            vs.iter().all(|v| height(v) >= 5)
        })
        .await;

        // Partition 2–2: no quorum, no progress; heal: progress.
        for a in 0..2 {
            for b in 2..4 {
                cut(a, b).await;
            }
        }
        ctx.sleep(Duration::from_secs(2)).await;
        let during: Vec<u64> = vs.iter().map(height).collect();
        ctx.sleep(Duration::from_secs(10)).await;
        let after: Vec<u64> = vs.iter().map(height).collect();
        assert_eq!(during, after, "a 2–2 partition must not finalize");
        for a in 0..2 {
            for b in 2..4 {
                connect(a, b).await;
            }
        }
        let h = *after.iter().max().unwrap();
        wait_for(&ctx, "progress after healing", || {
            vs.iter().all(|v| height(v) >= h + 5)
        })
        .await;

        // Crash validator 3; the others go on.
        stop(vs.pop().unwrap());
        let h = height(&vs[0]);
        wait_for(&ctx, "three of four keep finalizing", || {
            vs.iter().all(|v| height(v) >= h + 5)
        })
        .await;
        // Let its in-flight helpers finish, then restart it from its block log.
        ctx.sleep(Duration::from_secs(5)).await;
        vs.push(start_validator(&ctx, &oracle, &g, 3, &dirs[3], 1).await);
        let target = height(&vs[0]);
        wait_for(&ctx, "the restarted validator catches up", || {
            height(&vs[3]) >= target + 2
        })
        .await;

        // Agreement at a common height.
        let agreed = vs.iter().map(height).min().unwrap();
        let hashes: Vec<Option<H256>> = vs.iter().map(|v| header_hash(v, agreed)).collect();
        assert!(
            hashes.iter().all(|x| x.is_some() && *x == hashes[0]),
            "{hashes:?}"
        );
        let root = vs[0]
            .node
            .store
            .block(agreed)
            .unwrap()
            .unwrap()
            .header
            .state_root;
        vs.into_iter().for_each(stop);
        Outcome {
            audit: ctx.auditor().state(),
            agreed_height: agreed,
            agreed_hash: hashes[0].unwrap(),
            agreed_root: root,
        }
    });
    let _ = std::fs::remove_dir_all(&base);
    out
}

static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[test]
fn seeded_network_survives_loss_partition_and_crash_deterministically() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let seed = std::env::var("NILSTORE_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(42);
    println!("simulation seed: {seed} (rerun with NILSTORE_SIM_SEED={seed})");
    let a = run(seed);
    println!(
        "seed {seed}: agreed at height {} hash {} root {} audit {}",
        a.agreed_height, a.agreed_hash, a.agreed_root, a.audit
    );
    let b = run(seed);
    assert_eq!(a.audit, b.audit, "same seed, different run");
    assert_eq!(
        (a.agreed_height, a.agreed_hash, a.agreed_root),
        (b.agreed_height, b.agreed_hash, b.agreed_root)
    );
    let c = run(seed + 1);
    assert_ne!(a.audit, c.audit, "another seed should schedule differently");
}

/// Reconfiguration: a fifth node follows by sync outside the set, stakes with
/// `CreateValidator`, is elected at the next epoch boundary and its engine starts on the
/// block that changed the set; then one of the original validators crashes, and the chain
/// still finalizes — 4 of 5 is a quorum only with the newcomer's votes. Certificates after
/// the change verify against the new set and not the old one. The crashed validator restarts
/// and rejoins; then it unbonds and leaves the set (epoch 2), and the remaining four keep a
/// quorum through another crash while it follows by sync.
fn run_reconfiguration(seed: u64) -> (u64, H256) {
    let base = scratch("reconf", seed);
    let root_dir = base.clone();
    let out = deterministic::Runner::new(sim_config(seed)).start(|ctx| async move {
        let base = root_dir;
        const NODES: u64 = N + 1;
        let g = genesis_with(N, NODES);
        let link = Link {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            success_rate: probability!(0.99),
        };
        let (_, oracle) = mesh(&ctx, NODES, link).await;
        let dirs: Vec<PathBuf> = (0..NODES).map(|i| base.join(format!("n{i}"))).collect();
        let mut vs = Vec::new();
        for i in 0..NODES {
            vs.push(Some(
                start_validator(&ctx, &oracle, &g, i, &dirs[i as usize], 0).await,
            ));
        }
        let node = |vs: &Vec<Option<Running>>, i: usize| vs[i].as_ref().unwrap().node.clone();
        wait_for(&ctx, "the follower tracks the chain", || {
            height(vs[4].as_ref().unwrap()) >= 3
        })
        .await;
        assert_eq!(node(&vs, 4).metrics.consensus_epoch.get(), 0);

        // The newcomer stakes; the next epoch boundary elects it.
        let (id4, bls4) = light::dev_keys(CHAIN_ID, 4);
        let tx = chain_light::tx::Tx {
            chain_id: CHAIN_ID,
            from: account(4).address(),
            nonce: 0,
            fee: g.params.min_fee,
            msg: chain_light::tx::Msg::CreateValidator {
                consensus_key: light::make_consensus_key(&id4, &bls4),
                stake: 10_000_000_000,
                commission_bps: 500,
            },
        }
        .sign(&account(4));
        node(&vs, 0).submit(tx).unwrap();
        wait_for(&ctx, "every node enters consensus epoch 1", || {
            (0..NODES as usize).all(|i| node(&vs, i).lock().chain.state.g.set_epoch == 1)
        })
        .await;
        let (start, set1) = {
            let n = node(&vs, 4);
            let s = n.lock();
            (
                s.chain.state.g.set_start_height,
                s.chain.state.g.validators.clone(),
            )
        };
        assert_eq!(set1.len(), 5);
        let set0 = g
            .validators
            .iter()
            .map(|v| chain_light::state::SetMember {
                account: v.account,
                consensus_key: v.consensus_key.clone(),
                power: 0,
            })
            .collect::<Vec<_>>();

        // An original validator crashes: 4 of 5 must include the newcomer.
        stop(vs[0].take().unwrap());
        let h = height(vs[1].as_ref().unwrap());
        wait_for(&ctx, "the new set finalizes without validator 0", || {
            (1..NODES as usize).all(|i| height(vs[i].as_ref().unwrap()) >= h + 6)
        })
        .await;
        assert_eq!(node(&vs, 4).metrics.consensus_epoch.get(), 1);

        // Certificates after the change: the new set's, never the old one's.
        let n4 = node(&vs, 4);
        let mut checked = 0;
        for height in start + 1..=h + 6 {
            let (Some(b), Some(cert)) = (
                n4.store.block(height).unwrap(),
                n4.store.cert(height).unwrap(),
            ) else {
                continue;
            };
            light::verify_finalization(CHAIN_ID, &set1, &b.header, &cert).unwrap();
            assert!(light::verify_finalization(CHAIN_ID, &set0, &b.header, &cert).is_err());
            checked += 1;
        }
        assert!(checked > 0, "no certified block after the change");
        // The closing block was certified by the old set.
        let (b, cert) = (
            n4.store.block(start).unwrap().unwrap(),
            n4.store.cert(start).unwrap().unwrap(),
        );
        light::verify_finalization(CHAIN_ID, &set0, &b.header, &cert).unwrap();
        // A light client from genesis follows the certified headers across the change.
        let genesis_header = chain_light::block::Chain::from_genesis(&g).unwrap().tip;
        let mut lc = light::LightClient::new(genesis_header, g_set(&g)).unwrap();
        for height in 1..=h + 6 {
            let (Some(b), Some(cert)) = (
                n4.store.block(height).unwrap(),
                n4.store.cert(height).unwrap(),
            ) else {
                continue;
            };
            let next = (height == start).then_some(set1.as_slice());
            lc.advance(&b.header, &cert, next).unwrap();
        }
        assert!(lc.trusted().height > start);
        assert_eq!(lc.validators(), set1.as_slice());

        // The crashed validator restarts from its block log, catches up by sync and rejoins.
        vs[0] = Some(start_validator(&ctx, &oracle, &g, 0, &dirs[0], 1).await);
        let target = height(vs[1].as_ref().unwrap());
        wait_for(&ctx, "the restarted validator rejoins epoch 1", || {
            height(vs[0].as_ref().unwrap()) >= target + 2
                && node(&vs, 0).metrics.consensus_epoch.get() == 1
        })
        .await;

        // Validator 0 unbonds everything and leaves at the next boundary (epoch 2); with
        // {1, 2, 3, 4} left, validator 1 crashing leaves 3 of 4: still a quorum.
        let stake = node(&vs, 0)
            .lock()
            .chain
            .state
            .validators
            .get(&account(0).address())
            .unwrap()
            .self_stake;
        let nonce = node(&vs, 0)
            .lock()
            .chain
            .state
            .accounts
            .get(&account(0).address())
            .map_or(0, |a| a.nonce);
        let tx = chain_light::tx::Tx {
            chain_id: CHAIN_ID,
            from: account(0).address(),
            nonce,
            fee: g.params.min_fee,
            msg: chain_light::tx::Msg::Undelegate {
                validator: account(0).address(),
                amount: stake,
            },
        }
        .sign(&account(0));
        node(&vs, 1).submit(tx).unwrap();
        wait_for(&ctx, "every node enters consensus epoch 2", || {
            (0..NODES as usize).all(|i| node(&vs, i).lock().chain.state.g.set_epoch == 2)
        })
        .await;
        let set2 = node(&vs, 2).lock().chain.state.g.validators.clone();
        assert_eq!(set2.len(), 4);
        assert!(set2.iter().all(|m| m.account != account(0).address()));
        stop(vs[1].take().unwrap());
        let h = height(vs[2].as_ref().unwrap());
        wait_for(&ctx, "{2, 3, 4} finalize in epoch 2; 0 follows", || {
            [0, 2, 3, 4]
                .iter()
                .all(|&i| height(vs[i].as_ref().unwrap()) >= h + 5)
        })
        .await;
        vs[1] = Some(start_validator(&ctx, &oracle, &g, 1, &dirs[1], 1).await);
        let target = height(vs[2].as_ref().unwrap());
        wait_for(&ctx, "validator 1 restarts into epoch 2", || {
            height(vs[1].as_ref().unwrap()) >= target + 2
        })
        .await;

        let agreed = vs
            .iter()
            .map(|v| height(v.as_ref().unwrap()))
            .min()
            .unwrap();
        let hashes: Vec<Option<H256>> = vs
            .iter()
            .map(|v| header_hash(v.as_ref().unwrap(), agreed))
            .collect();
        assert!(
            hashes.iter().all(|x| x.is_some() && *x == hashes[0]),
            "{hashes:?}"
        );
        vs.into_iter().flatten().for_each(stop);
        (agreed, hashes[0].unwrap())
    });
    let _ = std::fs::remove_dir_all(&base);
    out
}

#[test]
fn validator_set_changes_reconfigure_the_engine() {
    let seed = std::env::var("NILSTORE_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    println!("reconfiguration seed: {seed} (rerun with NILSTORE_SIM_SEED={seed})");
    let (h, hash) = run_reconfiguration(seed);
    println!("seed {seed}: all five agree at height {h} ({hash})");
}

/// Consensus-fault evidence end to end: validator 3 is byzantine (simplex's conflicter mock:
/// it answers every vote with a second, conflicting one). The honest validators' engines
/// report `ConflictingNotarize`/`ConflictingFinalize`, their reporters turn it into
/// `ReportValidatorFault` transactions, the chain verifies the signatures, slashes and jails
/// validator 3 (once per fault), and the next set excludes it while the honest three go on.
#[test]
fn equivocation_is_reported_slashed_and_removed() {
    use commonware_consensus::simplex::mocks::conflicter::{Config as ConflicterCfg, Conflicter};
    let seed = std::env::var("NILSTORE_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11);
    println!("fault seed: {seed} (rerun with NILSTORE_SIM_SEED={seed})");
    let base = scratch("fault", seed);
    let root_dir = base.clone();
    deterministic::Runner::new(sim_config(seed)).start(|ctx| async move {
        let base = root_dir;
        let g = genesis();
        let link = Link {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            success_rate: probability!(1.0),
        };
        let (_, oracle) = mesh(&ctx, N, link).await;
        let mut honest = Vec::new();
        for i in 0..N - 1 {
            let dir = base.join(format!("v{i}"));
            honest.push(start_validator(&ctx, &oracle, &g, i, &dir, 0).await);
        }
        // The byzantine validator: only conflicting votes on epoch 0's vote subchannel.
        let (id3, bls3) = light::dev_keys(CHAIN_ID, 3);
        let control = oracle.control(id3.public_key());
        let quota = Quota::per_second(NZU32!(10_000));
        let (vote_tx, vote_rx) = control.register(0, quota).await.unwrap();
        let (vote_mux, mut vote) = Muxer::new(ctx.child("byz_mux"), vote_tx, vote_rx);
        ctx.child("byz_mux_run").spawn(move |_| async move {
            let _ = vote_mux.run().await;
        });
        let participants = light::participants(&g_set(&g)).unwrap();
        let scheme =
            light::Scheme::signer(&light::namespace(CHAIN_ID), participants, bls3).unwrap();
        let channel = vote.register(0).await.unwrap();
        Conflicter::<_, _, commonware_cryptography::Sha256>::new(
            ctx.child("byzantine"),
            ConflicterCfg { scheme },
        )
        .start(channel);

        let byz = account(3).address();
        wait_for(&ctx, "the equivocator is slashed and jailed", || {
            honest.iter().all(|v| {
                let s = v.node.lock();
                s.chain
                    .state
                    .validators
                    .get(&byz)
                    .is_some_and(|x| x.offences >= 1 && x.jailed_until > 0)
            })
        })
        .await;
        let reports: u64 = honest
            .iter()
            .map(|v| v.node.metrics.faults_reported.get())
            .sum();
        assert!(reports >= 1);
        let v = honest[0]
            .node
            .lock()
            .chain
            .state
            .validators
            .get(&byz)
            .unwrap()
            .clone();
        assert!(
            v.self_stake < 10_000_000_000,
            "stake slashed: {}",
            v.self_stake
        );
        // Each fault is punished once however many honest validators report it.
        let evidence = honest[0].node.lock().chain.state.evidence.len() as u32;
        assert_eq!(v.offences, evidence, "offences match distinct evidence");
        wait_for(
            &ctx,
            "the next set excludes the equivocator; the honest three go on",
            || {
                honest.iter().all(|v| {
                    let s = v.node.lock();
                    s.chain.state.g.set_epoch >= 1
                        && s.chain.state.g.validators.iter().all(|m| m.account != byz)
                })
            },
        )
        .await;
        let h = height(&honest[0]);
        wait_for(&ctx, "progress in the new epoch", || {
            honest.iter().all(|v| height(v) >= h + 5)
        })
        .await;
        honest.into_iter().for_each(stop);
    });
    let _ = std::fs::remove_dir_all(&base);
}

fn g_set(g: &Genesis) -> Vec<chain_light::state::SetMember> {
    chain_light::block::Chain::from_genesis(g)
        .unwrap()
        .state
        .g
        .validators
}
