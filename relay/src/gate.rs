//! Admission for the relay's request handlers: a per-peer token bucket and a global cap on
//! requests in flight. A deputy request costs a fresh libp2p swarm and up to the deputy
//! timeout; a `Locate` costs up to 256 proven chain reads. Peer ids are free, so the
//! per-peer bucket alone bounds nothing: the global cap does.

use std::sync::{Arc, Mutex};

use nilstore_net::limit::RateLimiter;
use nilstore_net::proto::NetError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Deputy requests in flight at once (each holds a fresh swarm for up to its timeout).
pub const MAX_DEPUTY_INFLIGHT: usize = 64;
/// `Locate` requests in flight at once (each runs on the blocking pool).
pub const MAX_LOCATE_INFLIGHT: usize = 32;
/// How long a refused requester should wait before asking again, in milliseconds.
pub const RETRY_MS: u64 = 1_000;

/// A per-peer token bucket in front of a global cap.
pub struct Gate {
    rate: Mutex<RateLimiter<String>>,
    slots: Arc<Semaphore>,
}

impl Gate {
    /// `rate_per_s` and `burst` per peer (at most `max_peers` tracked), `inflight` at once.
    pub fn new(rate_per_s: u32, burst: u32, max_peers: usize, inflight: usize) -> Gate {
        Gate {
            rate: Mutex::new(RateLimiter::new(rate_per_s, burst, max_peers)),
            slots: Arc::new(Semaphore::new(inflight)),
        }
    }

    /// Admits one request of `peer` at `now_ms`: the permit is its slot until dropped.
    /// Refused (at once, never queued) when the peer's bucket is empty or every slot is
    /// taken.
    pub fn admit(&self, peer: &str, now_ms: u64) -> Result<OwnedSemaphorePermit, NetError> {
        self.rate
            .lock()
            .map_err(|_| NetError::Internal("rate limiter poisoned".into()))?
            .check(&peer.to_string(), now_ms)
            .map_err(|retry_ms| NetError::RateLimited { retry_ms })?;
        self.slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| NetError::RateLimited { retry_ms: RETRY_MS })
    }

    /// Slots free now.
    pub fn free(&self) -> usize {
        self.slots.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fresh peer ids do not get past the global cap; a finished request frees its slot;
    /// one peer's empty bucket refuses that peer only.
    #[test]
    fn the_global_cap_holds_whatever_the_peer_ids() {
        let g = Gate::new(1_000, 1_000, 10_000, 3);
        let held: Vec<_> = (0..3)
            .map(|i| g.admit(&format!("peer-{i}"), 0).expect("a free slot"))
            .collect();
        assert_eq!(g.free(), 0);
        for i in 3..10 {
            assert_eq!(
                g.admit(&format!("peer-{i}"), 0).err(),
                Some(NetError::RateLimited { retry_ms: RETRY_MS })
            );
        }
        drop(held);
        assert_eq!(g.free(), 3);
        assert!(g.admit("peer-99", 0).is_ok());

        let g = Gate::new(1, 2, 10_000, 100);
        assert!(g.admit("a", 0).is_ok());
        assert!(g.admit("a", 0).is_ok());
        assert!(
            matches!(g.admit("a", 0), Err(NetError::RateLimited { .. })),
            "a's bucket is empty"
        );
        assert!(g.admit("b", 0).is_ok(), "b has its own bucket");
        assert!(g.admit("a", 1_000).is_ok(), "a's bucket refills");
    }
}
