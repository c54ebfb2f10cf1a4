//! CRC32C of object content, computed while the bytes stream (hardware-accelerated on x86-64
//! and ARM, so it costs far less than the copy). Printed as S3 prints it: base64 of the
//! big-endian value, the form of the `x-amz-checksum-crc32c` header.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use tokio::io::{AsyncRead, ReadBuf};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Checksum(pub u32);

impl Checksum {
    pub fn of(bytes: &[u8]) -> Checksum {
        Checksum(crc32c::crc32c(bytes))
    }

    pub fn extend(self, bytes: &[u8]) -> Checksum {
        Checksum(crc32c::crc32c_append(self.0, bytes))
    }

    pub fn to_base64(self) -> String {
        B64.encode(self.0.to_be_bytes())
    }

    pub fn parse(text: &str) -> Option<Checksum> {
        let bytes = B64.decode(text).ok()?;
        let array: [u8; 4] = bytes.try_into().ok()?;
        Some(Checksum(u32::from_be_bytes(array)))
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "crc32c:{}", self.to_base64())
    }
}

impl serde::Serialize for Checksum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> serde::Deserialize<'de> for Checksum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Checksum::parse(&text).ok_or_else(|| serde::de::Error::custom("invalid crc32c checksum"))
    }
}

/// Wraps a reader and checksums everything read through it.
pub struct ChecksumReader<R> {
    inner: R,
    checksum: Checksum,
    bytes: u64,
}

impl<R> ChecksumReader<R> {
    pub fn new(inner: R) -> Self {
        ChecksumReader {
            inner,
            checksum: Checksum::default(),
            bytes: 0,
        }
    }

    pub fn checksum(&self) -> Checksum {
        self.checksum
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for ChecksumReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            let fresh = &buf.filled()[before..];
            let checksum = self.checksum.extend(fresh);
            self.checksum = checksum;
            self.bytes += fresh.len() as u64;
        }
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn matches_the_published_crc32c_check_value() {
        // The CRC-32C check value of "123456789" is 0xE3069283.
        assert_eq!(Checksum::of(b"123456789").0, 0xE306_9283);
        let c = Checksum::of(b"hello world");
        assert_eq!(Checksum::parse(&c.to_base64()), Some(c));
        assert_eq!(Checksum::of(b"hello ").extend(b"world"), c);
    }

    #[tokio::test]
    async fn reader_checksums_what_passes_through() {
        let data = vec![7u8; 100_000];
        let mut reader = ChecksumReader::new(&data[..]);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.unwrap();
        assert_eq!(reader.checksum(), Checksum::of(&data));
        assert_eq!(reader.bytes_read(), 100_000);
    }
}
