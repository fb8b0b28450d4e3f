//! The browser node (wasm32): WebRTC-direct and WebSocket (dial only), noise + yamux over
//! WebSocket, every protocol outbound. The page's node ([`build_swarm`]) dials both and is
//! driven from the main thread (`RTCPeerConnection` exists only there); a Web Worker's node
//! ([`build_worker_swarm`]) dials WebSocket only.

use std::time::Duration;

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade;
use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    noise, ping, webrtc_websys, websocket_websys, yamux, PeerId, Swarm, SwarmBuilder,
    Transport as _,
};

use crate::behaviour::Protocols;
use crate::requester::{drive, Requester};

pub use crate::BoxError;

pub use derived::{Behaviour, BehaviourEvent};

/// The derive generates `BehaviourEvent`, one variant per field (documented there).
mod derived {
    #![allow(missing_docs)]
    use super::*;

    /// The browser's behaviour: it calls every protocol and serves none.
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        /// The NilStore protocols.
        pub nilstore: Protocols,
        /// Liveness.
        pub ping: ping::Behaviour,
    }
}

/// Builds the page's swarm: WebRTC-direct and WebSocket.
pub fn build_swarm(keypair: Keypair, idle_timeout: Duration) -> Result<Swarm<Behaviour>, BoxError> {
    Ok(SwarmBuilder::with_existing_identity(keypair)
        .with_wasm_bindgen()
        .with_other_transport(|key| webrtc_websys::Transport::new(webrtc_websys::Config::new(key)))?
        .with_other_transport(websocket)?
        .with_behaviour(behaviour)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle_timeout))
        .build())
}

/// Builds a Web Worker's swarm: WebSocket only (workers have no `RTCPeerConnection`); the
/// addresses of other transports fail to dial and the WebSocket one is used.
pub fn build_worker_swarm(
    keypair: Keypair,
    idle_timeout: Duration,
) -> Result<Swarm<Behaviour>, BoxError> {
    Ok(SwarmBuilder::with_existing_identity(keypair)
        .with_wasm_bindgen()
        .with_other_transport(websocket)?
        .with_behaviour(behaviour)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle_timeout))
        .build())
}

/// WebSocket with noise and yamux.
fn websocket(key: &Keypair) -> Result<Boxed<(PeerId, StreamMuxerBox)>, BoxError> {
    Ok(websocket_websys::Transport::default()
        .upgrade(upgrade::Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .boxed())
}

fn behaviour(_: &Keypair) -> Behaviour {
    Behaviour {
        nilstore: Protocols::new(&[]),
        ping: ping::Behaviour::default(),
    }
}

/// Drives the browser swarm on this event loop (`spawn_local`: the page's, where the WebRTC
/// transport lives, or a worker's) and returns the handle that sends its requests — the same
/// request plumbing as the native client's node.
pub fn requester(swarm: Swarm<Behaviour>) -> Requester {
    let (requester, outbound) = Requester::channel(*swarm.local_peer_id());
    wasm_bindgen_futures::spawn_local(drive(
        swarm,
        outbound,
        |b| &mut b.nilstore,
        |e| match e {
            BehaviourEvent::Nilstore(e) => Some(e),
            BehaviourEvent::Ping(_) => None,
        },
    ));
    requester
}
