//! Length-prefixed frames: a 4-byte big-endian length, then that many bytes. A frame over
//! the protocol's limit is refused before its body is read; a truncated one is an error.

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes shared by every frame being read at once: a frame announcing more than is left is
/// refused before its body is read, so many peers (peer ids are free) announcing large
/// frames together cannot make a node hold more than the budget.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    max: usize,
}

/// Bytes of a [`Budget`] held until dropped.
#[derive(Debug)]
pub struct Reserved<'a> {
    budget: &'a Budget,
    bytes: usize,
}

impl Budget {
    /// A budget of `max` bytes.
    pub const fn new(max: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes `bytes`, or `None` when fewer are left.
    pub fn reserve(&self, bytes: usize) -> Option<Reserved<'_>> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&u| u <= self.max)
            })
            .ok()
            .map(|_| Reserved {
                budget: self,
                bytes,
            })
    }

    /// Bytes taken now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Reads one frame of at most `max` bytes.
pub async fn read_frame<R: AsyncRead + Unpin + Send>(
    io: &mut R,
    max: usize,
) -> io::Result<Vec<u8>> {
    read_frame_within(io, max, None).await.map(|(b, _)| b)
}

/// [`read_frame`] whose body's bytes are first taken from `budget` (refused at once when
/// the budget has too few left); the reservation is returned with the bytes.
pub async fn read_frame_within<'b, R: AsyncRead + Unpin + Send>(
    io: &mut R,
    max: usize,
    budget: Option<&'b Budget>,
) -> io::Result<(Vec<u8>, Option<Reserved<'b>>)> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {max}"),
        ));
    }
    let reserved = match budget {
        Some(b) => Some(b.reserve(len).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("busy: {} of {} bytes are being read", b.used(), b.max),
            )
        })?),
        None => None,
    };
    // Grow as bytes arrive: a peer that announces a large frame and sends nothing does not
    // make us allocate it.
    let mut buf = Vec::with_capacity(len.min(64 << 10));
    let got = (&mut *io).take(len as u64).read_to_end(&mut buf).await?;
    if got != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame truncated: {got} of {len} bytes"),
        ));
    }
    Ok((buf, reserved))
}

/// Writes one frame of at most `max` bytes, prefix and body in one write (native
/// WebRTC-direct coalesces a small write followed by a large one into one SCTP message
/// over its limit).
pub async fn write_frame<W: AsyncWrite + Unpin + Send>(
    io: &mut W,
    bytes: &[u8],
    max: usize,
) -> io::Result<()> {
    if bytes.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "message of {} bytes exceeds the limit of {max}",
                bytes.len()
            ),
        ));
    }
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame over 4 GiB"))?;
    let mut frame = Vec::with_capacity(4 + bytes.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(bytes);
    io.write_all(&frame).await?;
    io.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;

    #[test]
    fn round_trip_and_limits() {
        block_on(async {
            let mut out = Cursor::new(Vec::new());
            assert!(
                write_frame(&mut out, b"hello", 4).await.is_err(),
                "over the limit"
            );
            write_frame(&mut out, b"hello", 5).await.unwrap();
            let bytes = out.into_inner();
            assert_eq!(&bytes[..4], &[0, 0, 0, 5]);
            let got = read_frame(&mut Cursor::new(bytes.clone()), 5)
                .await
                .unwrap();
            assert_eq!(got, b"hello");
            // Over the limit: refused before the body.
            let e = read_frame(&mut Cursor::new(bytes.clone()), 4)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            // Truncated body or length.
            let e = read_frame(&mut Cursor::new(bytes[..7].to_vec()), 5)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
            let e = read_frame(&mut Cursor::new(bytes[..2].to_vec()), 5)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
            // A huge announced length with no body does not allocate it.
            let mut huge = (u32::MAX).to_be_bytes().to_vec();
            huge.extend_from_slice(b"x");
            let e = read_frame(&mut Cursor::new(huge), usize::MAX)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        });
    }

    /// Issue 17 item 13: frames being read at once share a byte budget; one that does not
    /// fit is refused before its body is read, and bytes come back when a frame is done.
    #[test]
    fn concurrent_frames_share_a_byte_budget() {
        block_on(async {
            let budget = Budget::new(10);
            let frame = |n: usize| {
                let mut f = (n as u32).to_be_bytes().to_vec();
                f.extend(std::iter::repeat_n(7u8, n));
                Cursor::new(f)
            };
            let (a, held) = read_frame_within(&mut frame(6), 100, Some(&budget))
                .await
                .unwrap();
            assert_eq!(a.len(), 6);
            assert_eq!(budget.used(), 6);
            // 6 + 6 > 10: refused while the first is held, without reading its body.
            let mut second = frame(6);
            let e = read_frame_within(&mut second, 100, Some(&budget))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
            assert_eq!(second.position(), 4, "only the length was read");
            // A small one fits beside it.
            let (_, small) = read_frame_within(&mut frame(4), 100, Some(&budget))
                .await
                .unwrap();
            assert_eq!(budget.used(), 10);
            drop((held, small));
            assert_eq!(budget.used(), 0);
            assert!(read_frame_within(&mut frame(10), 100, Some(&budget))
                .await
                .unwrap()
                .1
                .is_some());
            assert_eq!(budget.used(), 0, "released with the frame");
            // Without a budget, nothing is counted.
            assert_eq!(read_frame(&mut frame(50), 100).await.unwrap().len(), 50);
        });
    }
}
