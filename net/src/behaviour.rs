//! The request/response behaviours of the NilStore protocols, shared by native nodes and
//! the browser: one libp2p `request_response::Behaviour` per protocol, each with its codec,
//! limits and timeout. A node serves the protocols it names and may call all of them.

use libp2p::request_response::{self, ProtocolSupport};
use libp2p::StreamProtocol;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::WireCodec;
use crate::proto::{
    DeputyRequest, DeputyResponse, FetchRequest, FetchResponse, LocateRequest, LocateResponse,
    ProofRequest, ProofResponse, Protocol, ReceiptAck, ReceiptSubmit, UploadAck, UploadShard,
};

/// `/nilstore/upload/1`.
pub type Upload = request_response::Behaviour<WireCodec<UploadShard, UploadAck>>;
/// `/nilstore/fetch/1`.
pub type Fetch = request_response::Behaviour<WireCodec<FetchRequest, FetchResponse>>;
/// `/nilstore/proof/1`.
pub type Proof = request_response::Behaviour<WireCodec<ProofRequest, ProofResponse>>;
/// `/nilstore/deputy/1`.
pub type Deputy = request_response::Behaviour<WireCodec<DeputyRequest, DeputyResponse>>;
/// `/nilstore/receipt/1`.
pub type Receipt = request_response::Behaviour<WireCodec<ReceiptSubmit, ReceiptAck>>;
/// `/nilstore/locate/1`.
pub type Locate = request_response::Behaviour<WireCodec<LocateRequest, LocateResponse>>;

/// The behaviour of `protocol`, serving it when `serve` (otherwise outbound only, so peers
/// asking get "unsupported protocol" at once).
pub fn behaviour<Req, Resp>(
    protocol: Protocol,
    serve: bool,
) -> request_response::Behaviour<WireCodec<Req, Resp>>
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    let support = if serve {
        ProtocolSupport::Full
    } else {
        ProtocolSupport::Outbound
    };
    request_response::Behaviour::with_codec(
        WireCodec::new(protocol),
        [(StreamProtocol::new(protocol.name()), support)],
        request_response::Config::default()
            .with_request_timeout(protocol.timeout())
            .with_max_concurrent_streams(protocol.max_streams()),
    )
}

pub use derived::{Protocols, ProtocolsEvent};

/// The derive generates `ProtocolsEvent`, one variant per field (documented there).
mod derived {
    #![allow(missing_docs)]
    use super::*;
    use libp2p::swarm::NetworkBehaviour;

    /// The six protocol behaviours (one libp2p behaviour, nested in native and browser
    /// nodes).
    #[derive(NetworkBehaviour)]
    pub struct Protocols {
        /// `/nilstore/upload/1`.
        pub upload: Upload,
        /// `/nilstore/fetch/1`.
        pub fetch: Fetch,
        /// `/nilstore/proof/1`.
        pub proof: Proof,
        /// `/nilstore/deputy/1`.
        pub deputy: Deputy,
        /// `/nilstore/receipt/1`.
        pub receipt: Receipt,
        /// `/nilstore/locate/1`.
        pub locate: Locate,
    }
}

impl Protocols {
    /// Behaviours serving `serve` and calling everything.
    pub fn new(serve: &[Protocol]) -> Protocols {
        let s = |p: Protocol| serve.contains(&p);
        Protocols {
            upload: behaviour(Protocol::Upload, s(Protocol::Upload)),
            fetch: behaviour(Protocol::Fetch, s(Protocol::Fetch)),
            proof: behaviour(Protocol::Proof, s(Protocol::Proof)),
            deputy: behaviour(Protocol::Deputy, s(Protocol::Deputy)),
            receipt: behaviour(Protocol::Receipt, s(Protocol::Receipt)),
            locate: behaviour(Protocol::Locate, s(Protocol::Locate)),
        }
    }
}
