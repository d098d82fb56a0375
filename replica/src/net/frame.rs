//! Length-prefixed postcard frames on QUIC streams.
//!
//! A frame is `[u32 len LE][postcard payload]`. QUIC already guarantees integrity and order
//! within a stream, so there is no checksum; what the frame layer must guarantee is that
//! nothing a peer sends can make us allocate without bound or panic: the length is checked
//! against `max_frame_bytes` before any payload is read, and a decode failure is an error.
//!
//! [`read_frame`] reads exactly one frame (for request/response streams); [`FrameReader`]
//! buffers a long-lived stream and decodes frames out of large reads (for peer links, where
//! per-frame reads would cost a stream lock and a wakeup each).

use bytes::{Buf, Bytes, BytesMut};
use quinn::{ReadError, ReadExactError, RecvStream, SendStream, WriteError};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub const LEN_BYTES: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: u32 },
    #[error("the stream ended inside a frame")]
    Truncated,
    #[error("undecodable frame: {0}")]
    Decode(postcard::Error),
    #[error("cannot encode a frame: {0}")]
    Encode(postcard::Error),
    #[error("read failed: {0}")]
    Read(ReadError),
    #[error("write failed: {0}")]
    Write(WriteError),
    #[error("the stream was already finished")]
    Closed,
}

// The variants print their cause, so none is also its `source` (an error chain shows each
// cause once): hence `From` by hand rather than `#[from]`.
impl From<ReadError> for FrameError {
    fn from(e: ReadError) -> Self {
        FrameError::Read(e)
    }
}

impl From<WriteError> for FrameError {
    fn from(e: WriteError) -> Self {
        FrameError::Write(e)
    }
}

impl FrameError {
    /// The peer sent something it must not (as opposed to the connection going away).
    pub fn is_protocol_violation(&self) -> bool {
        matches!(
            self,
            FrameError::TooLarge { .. } | FrameError::Truncated | FrameError::Decode(_)
        )
    }
}

/// Encodes `msg` as one frame (length prefix included).
pub fn encode_frame<T: Serialize>(msg: &T, max_frame_bytes: u32) -> Result<Bytes, FrameError> {
    let mut buf = vec![0u8; LEN_BYTES];
    buf = postcard::to_extend(msg, buf).map_err(FrameError::Encode)?;
    let len = buf.len() - LEN_BYTES;
    if len > max_frame_bytes as usize {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame_bytes,
        });
    }
    buf[..LEN_BYTES].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(Bytes::from(buf))
}

/// Writes one frame holding `msg`.
pub async fn write_frame<T: Serialize>(
    send: &mut SendStream,
    msg: &T,
    max_frame_bytes: u32,
) -> Result<(), FrameError> {
    let frame = encode_frame(msg, max_frame_bytes)?;
    send.write_all(&frame).await?;
    Ok(())
}

/// Reads one frame; `None` if the stream ended cleanly before it.
pub async fn read_frame<T: DeserializeOwned>(
    recv: &mut RecvStream,
    max_frame_bytes: u32,
) -> Result<Option<T>, FrameError> {
    let mut len = [0u8; LEN_BYTES];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(ReadExactError::FinishedEarly(_)) => return Err(FrameError::Truncated),
        Err(ReadExactError::ReadError(e)) => return Err(e.into()),
    }
    let len = check_len(u32::from_le_bytes(len), max_frame_bytes)?;
    let payload = read_payload(recv, len).await?;
    postcard::from_bytes(&payload)
        .map(Some)
        .map_err(FrameError::Decode)
}

/// Reads `len` bytes, growing the buffer only as data arrives: a header claiming a huge frame
/// costs nothing until the bytes are really sent (and flow control bounds those).
async fn read_payload(recv: &mut RecvStream, len: usize) -> Result<Vec<u8>, FrameError> {
    let mut payload = Vec::with_capacity(len.min(READ_CHUNK_BYTES));
    while payload.len() < len {
        match recv.read_chunk(len - payload.len(), true).await? {
            Some(chunk) => payload.extend_from_slice(&chunk.bytes),
            None => return Err(FrameError::Truncated),
        }
    }
    Ok(payload)
}

fn check_len(len: u32, max_frame_bytes: u32) -> Result<usize, FrameError> {
    if len > max_frame_bytes {
        return Err(FrameError::TooLarge {
            len: len as usize,
            max: max_frame_bytes,
        });
    }
    Ok(len as usize)
}

/// Most bytes taken from the stream per read.
const READ_CHUNK_BYTES: usize = 256 * 1024;

/// Decodes a sequence of frames from one long-lived stream, reading in large chunks.
pub struct FrameReader {
    recv: RecvStream,
    buf: BytesMut,
    max_frame_bytes: u32,
}

impl FrameReader {
    pub fn new(recv: RecvStream, max_frame_bytes: u32) -> FrameReader {
        FrameReader {
            recv,
            buf: BytesMut::new(),
            max_frame_bytes,
        }
    }

    /// The next frame; `None` when the stream ended cleanly between frames.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        loop {
            if let Some(payload) = self.take_frame()? {
                return postcard::from_bytes(&payload)
                    .map(Some)
                    .map_err(FrameError::Decode);
            }
            match self.recv.read_chunk(READ_CHUNK_BYTES, true).await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk.bytes),
                None if self.buf.is_empty() => return Ok(None),
                None => return Err(FrameError::Truncated),
            }
        }
    }

    /// Splits a complete frame's payload off the buffer, checking the length as soon as the
    /// prefix is there (so an oversize frame is refused before its body arrives).
    fn take_frame(&mut self) -> Result<Option<BytesMut>, FrameError> {
        if self.buf.len() < LEN_BYTES {
            return Ok(None);
        }
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let len = check_len(len, self.max_frame_bytes)?;
        if self.buf.len() < LEN_BYTES + len {
            return Ok(None);
        }
        self.buf.advance(LEN_BYTES);
        Ok(Some(self.buf.split_to(len)))
    }

    /// Stops the stream (tells the sender we will read no more).
    pub fn stop(&mut self, code: u32) {
        let _ = self.recv.stop(quinn::VarInt::from_u32(code));
    }
}

/// Finishes a send stream, mapping "already finished" to an error value instead of a panic.
pub fn finish(send: &mut SendStream) -> Result<(), FrameError> {
    send.finish().map_err(|_| FrameError::Closed)
}
