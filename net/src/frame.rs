//! Length-prefixed frames: a 4-byte big-endian length, then that many bytes. A frame over
//! the protocol's limit is refused before its body is read; a truncated one is an error.

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use std::io;

/// Reads one frame of at most `max` bytes.
pub async fn read_frame<R: AsyncRead + Unpin + Send>(
    io: &mut R,
    max: usize,
) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {max}"),
        ));
    }
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
    Ok(buf)
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
}
