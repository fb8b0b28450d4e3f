//! Block sync between validators (p2p channel 4): a validator that is behind — restarted
//! after peers moved on, or told of a finalization it cannot apply — asks peers for the
//! finalized blocks after its tip and imports each after checking its finalization
//! certificate against the validator set (the light client's check).
//!
//! Messages: [`SyncMessage`] (postcard, ≤ [`MAX_SYNC_BYTES`]): `Want { from }` and
//! `Have { blocks }` with (block, certificate) pairs in height order, within the chain's
//! one block budget.

use std::time::Duration;

use crate::block::{Block, SyncMessage};
use crate::codec;
use crate::light::PublicKey;
use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_runtime::{Clock, Handle, Spawner};

use super::node::Node;
use super::store::MAX_BLOCK_BYTES;

pub use crate::block::MAX_SYNC_BYTES;

const ASK_EVERY: Duration = Duration::from_millis(700);

/// Serves peers' requests and imports their answers; returns the two tasks.
pub fn start<E, S, R>(ctx: E, node: Node, sender: S, mut receiver: R) -> [Handle<()>; 2]
where
    E: Spawner + Clock,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
{
    let asker = {
        let node = node.clone();
        let mut sender = sender.clone();
        move |ctx: E| async move {
            let mut last = (0u64, 0u32);
            loop {
                ctx.sleep(ASK_EVERY).await;
                let (tip, behind) = node.tip_height_and_behind();
                // Ask when told we are behind, or when the tip has not moved for a while
                // (peers may have finalized blocks whose certificates never reached us).
                let stalled = if last.0 == tip { last.1 + 1 } else { 0 };
                last = (tip, stalled);
                if behind || stalled >= 3 {
                    let msg = codec::encode(&SyncMessage::Want { from: tip + 1 });
                    let _ = sender.send(Recipients::All, msg, false);
                }
            }
        }
    };
    let ask = ctx.child("sync_ask").spawn(asker);
    let serve = ctx.child("sync_serve").spawn(move |_| async move {
        let mut sender = sender;
        while let Ok((peer, bytes)) = receiver.recv().await {
            let Ok(msg) = SyncMessage::decode(bytes.as_ref()) else {
                tracing::debug!(?peer, "malformed sync message");
                continue;
            };
            match msg {
                SyncMessage::Want { from } => {
                    let have = SyncMessage::have(from, |h| {
                        match (node.store.block(h), node.store.cert(h)) {
                            (Ok(Some(b)), Ok(c)) => Some((codec::encode(&b), c)),
                            _ => None,
                        }
                    });
                    if let Some(have) = have {
                        let _ = sender.send(Recipients::One(peer), codec::encode(&have), false);
                    }
                }
                SyncMessage::Have { blocks } => {
                    // Runs of blocks closed by a certified one: the certificate proves the
                    // last, the parent hashes the rest.
                    let mut imported = 0;
                    let mut run = Vec::new();
                    for (b, c) in blocks {
                        let Ok(block) = codec::decode::<Block>(&b.0, MAX_BLOCK_BYTES) else {
                            break;
                        };
                        let (tip, _) = node.tip_height_and_behind();
                        if block.header.height <= tip && run.is_empty() {
                            continue;
                        }
                        run.push(block);
                        if let Some(cert) = c {
                            let n = run.len();
                            let got = node.import_finalized(std::mem::take(&mut run), &cert.0);
                            imported += got;
                            if got < n {
                                break;
                            }
                        }
                    }
                    if imported > 0 {
                        tracing::info!(imported, "synced blocks from a peer");
                    }
                }
            }
        }
    });
    [ask, serve]
}
