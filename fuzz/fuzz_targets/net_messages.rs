//! Every message a node reads from a peer: the length-prefixed frame, then each
//! protocol's request and response (`Result<_, NetError>` on the wire), decoded under
//! that protocol's size limit.
//!
//! Properties: nothing panics; a frame longer than the limit is refused, never read
//! whole; a message the strict decoder accepts re-encodes to exactly the input.
#![no_main]

use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;
use nilstore_net::frame::read_frame;
use nilstore_net::proto::{
    decode, encode, DeputyRequest, DeputyResponse, FetchRequest, FetchResponse, LocateRequest,
    LocateResponse, NetError, ProofRequest, ProofResponse, Protocol, ReceiptAck, ReceiptSubmit,
    UploadAck, UploadShard,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn strict<T: Serialize + DeserializeOwned>(bytes: &[u8], max: usize) {
    if let Ok(v) = decode::<T>(bytes, max) {
        assert_eq!(encode(&v), bytes, "an accepted message is not canonical");
    }
}

fn message(p: Protocol, request: bool, b: &[u8]) {
    let max = if request {
        p.max_request()
    } else {
        p.max_response()
    };
    match (p, request) {
        (Protocol::Upload, true) => strict::<UploadShard>(b, max),
        (Protocol::Upload, false) => strict::<Result<UploadAck, NetError>>(b, max),
        (Protocol::Fetch, true) => strict::<FetchRequest>(b, max),
        (Protocol::Fetch, false) => strict::<Result<FetchResponse, NetError>>(b, max),
        (Protocol::Proof, true) => strict::<ProofRequest>(b, max),
        (Protocol::Proof, false) => strict::<Result<ProofResponse, NetError>>(b, max),
        (Protocol::Deputy, true) => strict::<DeputyRequest>(b, max),
        (Protocol::Deputy, false) => strict::<Result<DeputyResponse, NetError>>(b, max),
        (Protocol::Receipt, true) => strict::<ReceiptSubmit>(b, max),
        (Protocol::Receipt, false) => strict::<Result<ReceiptAck, NetError>>(b, max),
        (Protocol::Locate, true) => strict::<LocateRequest>(b, max),
        (Protocol::Locate, false) => strict::<Result<LocateResponse, NetError>>(b, max),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let p = Protocol::ALL[(sel as usize >> 1) % Protocol::ALL.len()];
    let request = sel & 1 == 0;
    message(p, request, rest);
    // The same bytes as a stream: a frame under a small limit, then its body as the message.
    let max = 1 << 16;
    let mut io = futures::io::Cursor::new(rest);
    if let Ok(body) = block_on(read_frame(&mut io, max)) {
        assert!(body.len() <= max, "a frame over the limit was read");
        message(p, request, &body);
    }
});
