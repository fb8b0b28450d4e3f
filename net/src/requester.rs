//! Concurrent outbound requests over one swarm — the one request plumbing of every node:
//! a [`Requester`] is a cloneable handle; whoever owns the swarm drives an [`Outbound`]
//! (it sends each request and settles each answer from the swarm's events), and every
//! request is answered through its own channel, so many tasks (one per slot during an
//! upload, say) share one node and its connections.
//!
//! ```text
//!  Requester::fetch ──request──► Outbound (in the swarm owner's loop) ──► peer
//!        ▲                                │
//!        └──────── oneshot answer ◄───────┘  response | refusal (NetError) | failure
//! ```
//! The client's node runs [`drive`] in a task of its own (a tokio task natively,
//! `spawn_local` in the browser, where the swarm must stay on the page's main thread);
//! the provider's loop, which also serves inbound requests, sends and settles requests
//! itself. Channels are `futures`' so the same code runs on either executor.

use std::collections::HashMap;

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt as _, SinkExt as _, StreamExt as _};
use libp2p::request_response::{self, Message, OutboundRequestId};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};

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
    Upload(UploadShard, Reply<UploadAck>),
    Fetch(FetchRequest, Reply<FetchResponse>),
    Deputy(DeputyRequest, Reply<DeputyResponse>),
    Receipt(ReceiptSubmit, Reply<ReceiptAck>),
    Locate(LocateRequest, Reply<LocateResponse>),
}

/// One request waiting to be sent: its peer, the addresses to dial it at, and what to ask.
pub struct Request {
    peer: PeerId,
    addrs: Vec<Multiaddr>,
    cmd: Cmd,
}

/// A handle to a swarm that sends requests; cheap to clone. The swarm's owner stops
/// being asked once every handle is dropped.
#[derive(Clone)]
pub struct Requester {
    tx: mpsc::Sender<Request>,
    peer_id: PeerId,
}

/// The swarm owner's side: requests to send and the answers still owed, per protocol,
/// keyed by libp2p's id (unique per behaviour).
pub struct Outbound {
    rx: mpsc::Receiver<Request>,
    upload: HashMap<OutboundRequestId, Reply<UploadAck>>,
    fetch: HashMap<OutboundRequestId, Reply<FetchResponse>>,
    deputy: HashMap<OutboundRequestId, Reply<DeputyResponse>>,
    receipt: HashMap<OutboundRequestId, Reply<ReceiptAck>>,
    locate: HashMap<OutboundRequestId, Reply<LocateResponse>>,
}

/// Settles one request of `map` from a request/response event; returns the event when it
/// is not an answer to a request of ours (an inbound request, say).
fn settle<Req, Resp>(
    map: &mut HashMap<OutboundRequestId, Reply<Resp>>,
    ev: request_response::Event<Req, Result<Resp, NetError>>,
) -> Option<request_response::Event<Req, Result<Resp, NetError>>> {
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
            None
        }
        request_response::Event::OutboundFailure {
            request_id, error, ..
        } => {
            if let Some(r) = map.remove(&request_id) {
                let _ = r.send(Err(RequestError::Failed(error.to_string())));
            }
            None
        }
        other => Some(other),
    }
}

impl Outbound {
    /// The next request to send; `None` once every [`Requester`] handle is dropped.
    pub async fn recv(&mut self) -> Option<Request> {
        self.rx.next().await
    }

    /// Sends `req` over the swarm (`protocols` picks the NilStore protocols out of its
    /// behaviour), dialling the request's addresses unless the peer is connected.
    pub fn send<B: NetworkBehaviour>(
        &mut self,
        swarm: &mut Swarm<B>,
        protocols: impl FnOnce(&mut B) -> &mut Protocols,
        req: Request,
    ) {
        for a in req.addrs {
            swarm.add_peer_address(req.peer, a);
        }
        let p = protocols(swarm.behaviour_mut());
        let peer = &req.peer;
        match req.cmd {
            Cmd::Upload(r, reply) => {
                self.upload.insert(p.upload.send_request(peer, r), reply);
            }
            Cmd::Fetch(r, reply) => {
                self.fetch.insert(p.fetch.send_request(peer, r), reply);
            }
            Cmd::Deputy(r, reply) => {
                self.deputy.insert(p.deputy.send_request(peer, r), reply);
            }
            Cmd::Receipt(r, reply) => {
                self.receipt.insert(p.receipt.send_request(peer, r), reply);
            }
            Cmd::Locate(r, reply) => {
                self.locate.insert(p.locate.send_request(peer, r), reply);
            }
        }
    }

    /// Answers the request that `ev` settles (a response, a refusal or a failure); returns
    /// the event when it is not about a request of ours (inbound requests, for a server).
    pub fn settle(&mut self, ev: ProtocolsEvent) -> Option<ProtocolsEvent> {
        match ev {
            ProtocolsEvent::Upload(e) => settle(&mut self.upload, e).map(ProtocolsEvent::Upload),
            ProtocolsEvent::Fetch(e) => settle(&mut self.fetch, e).map(ProtocolsEvent::Fetch),
            ProtocolsEvent::Deputy(e) => settle(&mut self.deputy, e).map(ProtocolsEvent::Deputy),
            ProtocolsEvent::Receipt(e) => settle(&mut self.receipt, e).map(ProtocolsEvent::Receipt),
            ProtocolsEvent::Locate(e) => settle(&mut self.locate, e).map(ProtocolsEvent::Locate),
            other @ ProtocolsEvent::Proof(_) => Some(other),
        }
    }
}

// Lives for one loop turn on the stack: boxing the request would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Next<E> {
    Request(Option<Request>),
    Event(E),
}

/// Drives a swarm that only asks (the client's node) until every [`Requester`] handle is
/// dropped: sends each request and settles each answer. `protocols` picks the NilStore
/// protocols out of the behaviour and `events` their events out of the behaviour's.
pub async fn drive<B: NetworkBehaviour>(
    mut swarm: Swarm<B>,
    mut outbound: Outbound,
    protocols: fn(&mut B) -> &mut Protocols,
    events: fn(B::ToSwarm) -> Option<ProtocolsEvent>,
) {
    loop {
        let next = futures::select! {
            req = outbound.recv().fuse() => Next::Request(req),
            ev = swarm.select_next_some() => Next::Event(ev),
        };
        match next {
            Next::Request(None) => break,
            Next::Request(Some(req)) => outbound.send(&mut swarm, protocols, req),
            Next::Event(SwarmEvent::Behaviour(ev)) => {
                if let Some(ev) = events(ev) {
                    // Nothing is served here: inbound events are dropped.
                    let _ = outbound.settle(ev);
                }
            }
            Next::Event(_) => {}
        }
    }
}

impl Requester {
    /// A handle for a swarm with `peer_id`, and the [`Outbound`] its owner drives.
    pub fn channel(peer_id: PeerId) -> (Requester, Outbound) {
        let (tx, rx) = mpsc::channel(256);
        (
            Requester { tx, peer_id },
            Outbound {
                rx,
                upload: HashMap::new(),
                fetch: HashMap::new(),
                deputy: HashMap::new(),
                receipt: HashMap::new(),
                locate: HashMap::new(),
            },
        )
    }

    /// Starts a requester on a fresh ephemeral identity (TCP and QUIC; see
    /// [`crate::native::ephemeral_client`]). Must be called inside a tokio runtime.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn ephemeral(idle_timeout: std::time::Duration) -> Result<Requester, crate::BoxError> {
        Ok(Requester::spawn(crate::native::ephemeral_client(
            idle_timeout,
        )?))
    }

    /// Drives `swarm` in a new tokio task. Must be called inside a tokio runtime.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn spawn(swarm: Swarm<Protocols>) -> Requester {
        let (requester, outbound) = Requester::channel(*swarm.local_peer_id());
        tokio::spawn(drive(swarm, outbound, |b| b, Some));
        requester
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn ask<T>(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        make: impl FnOnce(Reply<T>) -> Cmd,
    ) -> Result<T, RequestError> {
        let (reply, rx) = oneshot::channel();
        let req = Request {
            peer,
            addrs,
            cmd: make(reply),
        };
        // A clone per request: `send` needs `&mut`, and handles are shared.
        self.tx
            .clone()
            .send(req)
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
        self.ask(peer, addrs, |r| Cmd::Upload(req, r)).await
    }

    /// Fetches from `peer`.
    pub async fn fetch(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: FetchRequest,
    ) -> Result<FetchResponse, RequestError> {
        self.ask(peer, addrs, |r| Cmd::Fetch(req, r)).await
    }

    /// Asks the deputy `peer` to fetch on the reader's behalf.
    pub async fn deputy(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: DeputyRequest,
    ) -> Result<DeputyResponse, RequestError> {
        self.ask(peer, addrs, |r| Cmd::Deputy(req, r)).await
    }

    /// Hands a provider a cumulative receipt.
    pub async fn receipt(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: ReceiptSubmit,
    ) -> Result<ReceiptAck, RequestError> {
        self.ask(peer, addrs, |r| Cmd::Receipt(req, r)).await
    }

    /// Asks a relay who serves a deal.
    pub async fn locate(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: LocateRequest,
    ) -> Result<LocateResponse, RequestError> {
        self.ask(peer, addrs, |r| Cmd::Locate(req, r)).await
    }
}
