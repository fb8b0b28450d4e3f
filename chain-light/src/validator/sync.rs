//! Block sync between validators (p2p channel 4): a validator that is behind — restarted
//! after peers moved on, or told of a finalization it cannot apply — asks peers for the
//! finalized blocks after its tip and imports each after checking its finalization
//! certificate against the validator set (the light client's check).
//!
//! Messages (postcard, ≤ `MAX_SYNC_BYTES`): `Want { from }` and `Have { blocks }` with up
//! to `MAX_BLOCKS` (block, certificate) pairs in height order.

use std::time::Duration;

use crate::block::Block;
use crate::bytes::Blob;
use crate::codec;
use crate::light::PublicKey;
use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_runtime::{Clock, Handle, Spawner};
use serde::{Deserialize, Serialize};

use super::node::Node;
use super::store::MAX_BLOCK_BYTES;

/// Largest sync message.
pub const MAX_SYNC_BYTES: usize = 8 << 20;
const MAX_BLOCKS: u64 = 64;
const ASK_EVERY: Duration = Duration::from_millis(700);

#[derive(Serialize, Deserialize)]
enum SyncMsg {
    Want { from: u64 },
    Have { blocks: Vec<(Blob, Option<Blob>)> },
}

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
                    let msg = codec::encode(&SyncMsg::Want { from: tip + 1 });
                    let _ = sender.send(Recipients::All, msg, false);
                }
            }
        }
    };
    let ask = ctx.child("sync_ask").spawn(asker);
    let serve = ctx.child("sync_serve").spawn(move |_| async move {
        let mut sender = sender;
        while let Ok((peer, bytes)) = receiver.recv().await {
            let Ok(msg) = codec::decode::<SyncMsg>(bytes.as_ref(), MAX_SYNC_BYTES) else {
                tracing::debug!(?peer, "malformed sync message");
                continue;
            };
            match msg {
                SyncMsg::Want { from } => {
                    let mut blocks = Vec::new();
                    let mut size = 0usize;
                    for h in from..from.saturating_add(MAX_BLOCKS) {
                        let (Ok(Some(b)), Ok(c)) = (node.store.block(h), node.store.cert(h)) else {
                            break;
                        };
                        let b = codec::encode(&b);
                        size += b.len() + c.as_ref().map_or(0, Vec::len);
                        if size > MAX_SYNC_BYTES / 2 && !blocks.is_empty() {
                            break;
                        }
                        blocks.push((Blob(b), c.map(Blob)));
                    }
                    if !blocks.is_empty() {
                        let msg = codec::encode(&SyncMsg::Have { blocks });
                        let _ = sender.send(Recipients::One(peer), msg, false);
                    }
                }
                SyncMsg::Have { blocks } => {
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
