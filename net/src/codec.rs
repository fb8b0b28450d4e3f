//! The libp2p request/response codec of one NilStore protocol: postcard messages in
//! length-prefixed frames ([`crate::frame`]), bounded by the protocol's limits. The
//! response is `Result<T, NetError>`, so refusals travel as typed errors.

use std::io;
use std::marker::PhantomData;

use futures::{AsyncRead, AsyncWrite};
use libp2p::{request_response, StreamProtocol};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::frame::{read_frame, read_frame_within, write_frame, Budget};
use crate::proto::{decode, encode, NetError, Protocol};

/// Bytes of inbound requests being read at once, over every connection and protocol of
/// this process (32 uploads of 8 MiB): beyond it a request is refused before its body is
/// read (the stream is reset; a client retries), so free peer ids opening many upload
/// streams cannot exhaust memory.
pub const INBOUND_REQUEST_BUDGET: usize = 256 << 20;

static INBOUND: Budget = Budget::new(INBOUND_REQUEST_BUDGET);

/// Codec for protocol `P` with request `Req` and response `Result<Resp, NetError>`.
pub struct WireCodec<Req, Resp> {
    protocol: Protocol,
    _types: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> WireCodec<Req, Resp> {
    /// The codec of `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        WireCodec {
            protocol,
            _types: PhantomData,
        }
    }
}

impl<Req, Resp> Clone for WireCodec<Req, Resp> {
    fn clone(&self) -> Self {
        WireCodec::new(self.protocol)
    }
}

fn invalid(e: NetError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl<Req, Resp> request_response::Codec for WireCodec<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send + 'static,
    Resp: Serialize + DeserializeOwned + Send + 'static,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Result<Resp, NetError>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        let max = self.protocol.max_request();
        let (bytes, _reserved) = read_frame_within(io, max, Some(&INBOUND)).await?;
        // The reservation ends with the decode: what a server holds after that is bounded
        // by its own queue (the provider answers `RateLimited` past it).
        decode(&bytes, max).map_err(invalid)
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Result<Resp, NetError>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let max = self.protocol.max_response();
        decode(&read_frame(io, max).await?, max).map_err(invalid)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Req) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &encode(&req), self.protocol.max_request()).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Result<Resp, NetError>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &encode(&res), self.protocol.max_response()).await
    }
}
