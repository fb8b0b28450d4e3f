//! The NilStore relay (library part): a circuit relay v2 server sized for data, listeners
//! browsers can dial (WebRTC-direct, WebSocket), deal lookup for browsers from proven chain
//! state (`/nilstore/locate/1`), and the deputy service (`/nilstore/deputy/1`, SPEC §7).

pub mod daemon;
pub mod deputy;
pub mod gate;
