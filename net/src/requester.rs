//! Concurrent outbound requests over one swarm: a [`Requester`] is a cloneable handle; the
//! swarm runs in its own task and answers every request through its own channel, so many
//! tasks (one per slot during an upload, say) share one node and its connections.
//!
//! ```text
//!  Requester::fetch ──cmd──► driver task (swarm) ──► peer
//!        ▲                          │
//!        └──── oneshot answer ◄─────┘  response | refusal (NetError) | failure
//! ```

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt as _;
use libp2p::request_response::{self, Message, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

use crate::behaviour::{Protocols, ProtocolsEvent};
use crate::proto::{
    DeputyRequest, DeputyResponse, FetchRequest, FetchResponse, LocateRequest, LocateResponse,
    NetError, ReceiptAck, ReceiptSubmit, UploadAck, UploadShard,
};

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The peer answered with a typed refusal.
    #[error("refused: {0}")]
    Refused(NetError),
    /// No answer: dial failure, timeout, connection closed, unsupported protocol.
    #[error("no answer: {0}")]
    Failed(String),
    /// The requester's swarm has stopped.
    #[error("the network task has stopped")]
    Closed,
}

impl RequestError {
    /// Worth retrying later: failures and rate limits (other refusals are final).
    pub fn is_transient(&self) -> bool {
        match self {
            RequestError::Failed(_) => true,
            RequestError::Refused(e) => matches!(
                e,
                NetError::RateLimited { .. } | NetError::Unavailable(_) | NetError::Internal(_)
            ),
            RequestError::Closed => false,
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, RequestError>>;

enum Cmd {
    Upload(PeerId, Vec<Multiaddr>, UploadShard, Reply<UploadAck>),
    Fetch(PeerId, Vec<Multiaddr>, FetchRequest, Reply<FetchResponse>),
    Deputy(PeerId, Vec<Multiaddr>, DeputyRequest, Reply<DeputyResponse>),
    Receipt(PeerId, Vec<Multiaddr>, ReceiptSubmit, Reply<ReceiptAck>),
    Locate(PeerId, Vec<Multiaddr>, LocateRequest, Reply<LocateResponse>),
}

/// A handle to a swarm that sends requests; cheap to clone. The swarm stops when every
/// handle is dropped.
#[derive(Clone)]
pub struct Requester {
    tx: mpsc::Sender<Cmd>,
    peer_id: PeerId,
}

/// Requests in flight per protocol, keyed by libp2p's id (unique per behaviour).
struct Pending {
    upload: HashMap<OutboundRequestId, Reply<UploadAck>>,
    fetch: HashMap<OutboundRequestId, Reply<FetchResponse>>,
    deputy: HashMap<OutboundRequestId, Reply<DeputyResponse>>,
    receipt: HashMap<OutboundRequestId, Reply<ReceiptAck>>,
    locate: HashMap<OutboundRequestId, Reply<LocateResponse>>,
}

/// Settles one request of `map` from a request/response event; other events are ignored.
fn settle<Req, Resp>(
    map: &mut HashMap<OutboundRequestId, Reply<Resp>>,
    ev: request_response::Event<Req, Result<Resp, NetError>>,
) {
    match ev {
        request_response::Event::Message {
            message:
                Message::Response {
                    request_id,
                    response,
                },
            ..
        } => {
            if let Some(r) = map.remove(&request_id) {
                let _ = r.send(response.map_err(RequestError::Refused));
            }
        }
        request_response::Event::OutboundFailure {
            request_id, error, ..
        } => {
            if let Some(r) = map.remove(&request_id) {
                let _ = r.send(Err(RequestError::Failed(error.to_string())));
            }
        }
        _ => {}
    }
}

impl Requester {
    /// Starts a requester on a fresh ephemeral identity (TCP and QUIC; see
    /// [`crate::native::ephemeral_client`]). Must be called inside a tokio runtime.
    pub fn ephemeral(idle_timeout: Duration) -> Result<Requester, crate::BoxError> {
        Ok(Requester::spawn(crate::native::ephemeral_client(
            idle_timeout,
        )?))
    }

    /// Drives `swarm` in a new task. Must be called inside a tokio runtime.
    pub fn spawn(mut swarm: Swarm<Protocols>) -> Requester {
        let (tx, mut rx) = mpsc::channel::<Cmd>(256);
        let peer_id = *swarm.local_peer_id();
        tokio::spawn(async move {
            let mut p = Pending {
                upload: HashMap::new(),
                fetch: HashMap::new(),
                deputy: HashMap::new(),
                receipt: HashMap::new(),
                locate: HashMap::new(),
            };
            loop {
                tokio::select! {
                    cmd = rx.recv() => {
                        let Some(cmd) = cmd else { break };
                        let b = |swarm: &mut Swarm<Protocols>, peer: PeerId, addrs: Vec<Multiaddr>| {
                            for a in addrs {
                                swarm.add_peer_address(peer, a);
                            }
                        };
                        match cmd {
                            Cmd::Upload(peer, addrs, req, reply) => {
                                b(&mut swarm, peer, addrs);
                                let id = swarm.behaviour_mut().upload.send_request(&peer, req);
                                p.upload.insert(id, reply);
                            }
                            Cmd::Fetch(peer, addrs, req, reply) => {
                                b(&mut swarm, peer, addrs);
                                let id = swarm.behaviour_mut().fetch.send_request(&peer, req);
                                p.fetch.insert(id, reply);
                            }
                            Cmd::Deputy(peer, addrs, req, reply) => {
                                b(&mut swarm, peer, addrs);
                                let id = swarm.behaviour_mut().deputy.send_request(&peer, req);
                                p.deputy.insert(id, reply);
                            }
                            Cmd::Receipt(peer, addrs, req, reply) => {
                                b(&mut swarm, peer, addrs);
                                let id = swarm.behaviour_mut().receipt.send_request(&peer, req);
                                p.receipt.insert(id, reply);
                            }
                            Cmd::Locate(peer, addrs, req, reply) => {
                                b(&mut swarm, peer, addrs);
                                let id = swarm.behaviour_mut().locate.send_request(&peer, req);
                                p.locate.insert(id, reply);
                            }
                        }
                    }
                    ev = swarm.select_next_some() => {
                        let SwarmEvent::Behaviour(ev) = ev else { continue };
                        match ev {
                            ProtocolsEvent::Upload(e) => settle(&mut p.upload, e),
                            ProtocolsEvent::Fetch(e) => settle(&mut p.fetch, e),
                            ProtocolsEvent::Deputy(e) => settle(&mut p.deputy, e),
                            ProtocolsEvent::Receipt(e) => settle(&mut p.receipt, e),
                            ProtocolsEvent::Locate(e) => settle(&mut p.locate, e),
                            ProtocolsEvent::Proof(_) => {}
                        }
                    }
                }
            }
        });
        Requester { tx, peer_id }
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, RequestError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| RequestError::Closed)?;
        rx.await.map_err(|_| RequestError::Closed)?
    }

    /// Uploads one shard to `peer` (dialled at `addrs` unless already known).
    pub async fn upload(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: UploadShard,
    ) -> Result<UploadAck, RequestError> {
        self.ask(|r| Cmd::Upload(peer, addrs, req, r)).await
    }

    /// Fetches from `peer`.
    pub async fn fetch(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: FetchRequest,
    ) -> Result<FetchResponse, RequestError> {
        self.ask(|r| Cmd::Fetch(peer, addrs, req, r)).await
    }

    /// Asks the deputy `peer` to fetch on the reader's behalf.
    pub async fn deputy(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: DeputyRequest,
    ) -> Result<DeputyResponse, RequestError> {
        self.ask(|r| Cmd::Deputy(peer, addrs, req, r)).await
    }

    /// Hands a provider a cumulative receipt.
    pub async fn receipt(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: ReceiptSubmit,
    ) -> Result<ReceiptAck, RequestError> {
        self.ask(|r| Cmd::Receipt(peer, addrs, req, r)).await
    }

    /// Asks a relay who serves a deal.
    pub async fn locate(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: LocateRequest,
    ) -> Result<LocateResponse, RequestError> {
        self.ask(|r| Cmd::Locate(peer, addrs, req, r)).await
    }
}
