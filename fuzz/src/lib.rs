//! Helpers shared by the fuzz targets in `fuzz_targets/`: a reader that carves fixed-size
//! fields out of libFuzzer's input without ever failing (missing bytes read as zero), so
//! every input, however short, reaches the decoder under test.
//!
//! ```text
//!   data: | field a | field b | ... |            rest            |
//!           take()    take()         rest(): bytes for the decoder
//! ```

/// Carves fields off the front of a fuzz input.
pub struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    /// Reads `data` from the start.
    pub fn new(data: &'a [u8]) -> Self {
        Self(data)
    }

    /// The next `N` bytes, zero-filled past the end of the input.
    pub fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = self.0.len().min(N);
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }

    /// The next big-endian `u32` (zero-filled past the end).
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }

    /// The next big-endian `u64` (zero-filled past the end).
    pub fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take())
    }

    /// Everything not taken yet.
    pub fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// Cuts `bytes` at up to `max_cuts` points drawn from `input` (each reduced modulo
/// `bytes.len() + 1`); returns the pieces in order, empty pieces included. Streaming
/// decoders must give the same answer for every chunking.
pub fn split<'b>(input: &mut Input<'_>, bytes: &'b [u8], max_cuts: u8) -> Vec<&'b [u8]> {
    let cuts = usize::from(input.u8() % (max_cuts + 1));
    let bound = bytes.len() as u64 + 1;
    let mut at: Vec<usize> = (0..cuts)
        .map(|_| (u64::from(input.u32()) % bound) as usize)
        .collect();
    at.sort_unstable();
    let mut pieces = Vec::with_capacity(cuts + 1);
    let mut from = 0;
    for cut in at {
        pieces.push(&bytes[from..cut]);
        from = cut;
    }
    pieces.push(&bytes[from..]);
    pieces
}
