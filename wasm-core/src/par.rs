//! The one platform seam for data parallelism: rayon with the `parallel` feature (native,
//! or wasm with threads), plain iteration without it. Results keep input order.

#[cfg(feature = "parallel")]
use rayon::prelude::*;

/// Worker threads available to [`map`].
pub fn threads() -> usize {
    #[cfg(feature = "parallel")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "parallel"))]
    {
        1
    }
}

/// `items.map(f)`, in parallel where available.
pub fn map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync + Send) -> Vec<U> {
    #[cfg(feature = "parallel")]
    {
        items.par_iter().map(f).collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        items.iter().map(f).collect()
    }
}

/// Applies `f` to consecutive chunks and concatenates the results, in parallel where
/// available.
pub fn map_chunks<T: Sync, U: Send>(
    items: &[T],
    chunk: usize,
    f: impl Fn(&[T]) -> Vec<U> + Sync + Send,
) -> Vec<U> {
    #[cfg(feature = "parallel")]
    {
        items.par_chunks(chunk.max(1)).flat_map_iter(f).collect()
    }
    #[cfg(not(feature = "parallel"))]
    {
        items.chunks(chunk.max(1)).flat_map(f).collect()
    }
}
