//! Netstring framing: `<len>:<payload>,`.
//!
//! `len` is ASCII decimal and counts bytes of `payload`, not characters. It
//! must be `0` or start with `1`-`9` (no leading zeros), and it may not exceed
//! the codec's limit ([`DEFAULT_MAX_PAYLOAD`] unless told otherwise).
//!
//! [`NetstringCodec`] is an incremental [`Decoder`]: it consumes the length
//! digits as they arrive and remembers how far it got, so each byte is looked
//! at once however the input is split, and any split of the input gives the
//! same frames and the same error. It never reserves the declared length: a
//! buffer grows only with bytes that actually arrived.
//!
//! Error messages give byte offsets counted from the first byte the codec was
//! fed (for [`read_netstring`], from the start of the connection).
//!
//! ```
//! use bytes::BytesMut;
//! use poetry_harness::protocol::netstring::{encode, NetstringCodec};
//! use tokio_util::codec::Decoder;
//!
//! let mut codec = NetstringCodec::default();
//! let mut buf = BytesMut::from(&encode(b"hello")[..]);
//! assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), &b"hello"[..]);
//! ```

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

/// Largest payload accepted by default, in bytes.
///
/// The transformation server of the series (part 12) uses Twisted's
/// `NetstringReceiver`, whose `MAX_LENGTH` is 99,999: a longer payload makes it
/// drop the connection. Clients and servers under test are held to the same
/// limit.
pub const DEFAULT_MAX_PAYLOAD: usize = 99_999;

/// Bytes asked of the reader per `read` call in [`read_netstring`].
///
/// Small on purpose: the buffer grows only by what arrived, so a peer that
/// announces a huge length cannot make us allocate it, and a poem that fits
/// the limit needs at most 25 reads.
const READ_CHUNK: usize = 4096;

/// Why a byte stream is not a valid sequence of netstrings.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum NetstringError {
    /// The frame starts with ':', so the length has no digits.
    #[error("empty length: ':' at byte {offset} comes before any digit")]
    EmptyLength {
        /// Offset of the ':'.
        offset: u64,
    },
    /// A byte other than a digit or ':' in the length prefix (covers leading
    /// garbage and a missing ':').
    #[error("non-digit byte {} in length at byte {offset}", quote_byte(*.found))]
    NonDigit {
        /// The offending byte.
        found: u8,
        /// Its offset.
        offset: u64,
    },
    /// A length of more than one digit that starts with '0'.
    #[error("leading zero in length: '0' followed by {} at byte {offset}", quote_byte(*.found))]
    LeadingZero {
        /// The digit after the '0'.
        found: u8,
        /// Offset of that digit.
        offset: u64,
    },
    /// The digits read so far already exceed the limit.
    #[error("length '{length}' exceeds the limit of {limit} bytes (refused at byte {offset})")]
    TooLong {
        /// The value of the digits read so far (no leading zeros, so it spells
        /// them exactly).
        length: u128,
        /// The limit in force.
        limit: usize,
        /// Offset of the digit that crossed the limit.
        offset: u64,
    },
    /// The byte after the payload is not ','.
    #[error("missing ',' after payload: found {} at byte {offset}", quote_byte(*.found))]
    MissingComma {
        /// The byte found instead of ','.
        found: u8,
        /// Its offset.
        offset: u64,
    },
    /// The input ended inside a frame.
    #[error(
        "truncated netstring: input ended at byte {eof_at} inside the frame starting at byte {frame_start}, {}",
        describe_missing(*.missing)
    )]
    Truncated {
        /// Offset of the frame's first byte.
        frame_start: u64,
        /// Offset at which the input ended (total bytes received).
        eof_at: u64,
        /// Bytes still needed to finish the frame, `None` while the length
        /// prefix was incomplete (then at least 2, ':' and ',').
        missing: Option<usize>,
    },
    /// The input ended before its first byte (the peer closed without
    /// replying); only [`read_netstring`] returns this.
    #[error("connection closed before any byte of a netstring arrived")]
    Eof,
    /// Reading or writing failed.
    #[error("io error ({kind}): {message}")]
    Io {
        /// The error's kind.
        kind: io::ErrorKind,
        /// The error's message.
        message: String,
    },
}

impl From<io::Error> for NetstringError {
    fn from(err: io::Error) -> Self {
        NetstringError::Io {
            kind: err.kind(),
            message: err.to_string(),
        }
    }
}

/// `'x'` for printable ASCII, `'\xNN'` otherwise.
fn quote_byte(b: u8) -> String {
    format!("'{}'", b.escape_ascii())
}

fn describe_missing(missing: Option<usize>) -> String {
    match missing {
        Some(1) => "1 byte missing".to_owned(),
        Some(n) => format!("{n} bytes missing"),
        None => "length prefix incomplete".to_owned(),
    }
}

/// Frames `payload` as a netstring.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let len = payload.len().to_string();
    let mut out = Vec::with_capacity(len.len() + payload.len() + 2);
    out.extend_from_slice(len.as_bytes());
    out.push(b':');
    out.extend_from_slice(payload);
    out.push(b',');
    out
}

/// Appends `payload`, framed as a netstring, to `dst`.
pub fn encode_into(payload: &[u8], dst: &mut BytesMut) {
    let len = payload.len().to_string();
    dst.reserve(len.len() + payload.len() + 2);
    dst.extend_from_slice(len.as_bytes());
    dst.extend_from_slice(b":");
    dst.extend_from_slice(payload);
    dst.extend_from_slice(b",");
}

/// Where the decoder is inside the current frame.
#[derive(Debug, Clone)]
enum State {
    /// Reading the length; the digits seen so far are already consumed.
    Length { value: usize, digits: usize },
    /// Length and ':' consumed; waiting for `len` payload bytes and ','.
    Payload { len: usize },
    /// A previous call failed; every later call returns the same error.
    Failed(NetstringError),
}

/// Incremental netstring decoder and encoder for `tokio_util::codec`.
///
/// The limit applies to decoding only: the encoder frames any payload, so a
/// harness can send an over-limit frame on purpose.
#[derive(Debug, Clone)]
pub struct NetstringCodec {
    max_payload: usize,
    state: State,
    /// Stream offset of the first byte still in the caller's buffer.
    pos: u64,
    /// Stream offset of the current frame's first byte.
    frame_start: u64,
}

impl NetstringCodec {
    /// A codec refusing payloads longer than `max_payload` bytes.
    pub fn new(max_payload: usize) -> Self {
        NetstringCodec {
            max_payload,
            state: State::Length {
                value: 0,
                digits: 0,
            },
            pos: 0,
            frame_start: 0,
        }
    }

    /// The payload limit in force.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// True when some bytes of a frame have been consumed but the frame is
    /// not complete.
    pub fn in_frame(&self) -> bool {
        match self.state {
            State::Length { digits, .. } => digits > 0,
            State::Payload { .. } => true,
            State::Failed(_) => false,
        }
    }

    fn fail(&mut self, err: NetstringError) -> Result<Option<Bytes>, NetstringError> {
        self.state = State::Failed(err.clone());
        Err(err)
    }

    /// Consumes length digits from `buf`; true once the ':' was consumed.
    fn decode_length(&mut self, buf: &mut BytesMut) -> Result<bool, NetstringError> {
        let State::Length {
            mut value,
            mut digits,
        } = self.state
        else {
            unreachable!("decode_length called outside the length state");
        };
        let mut consumed = 0;
        let mut result = Ok(false);
        for &b in buf.iter() {
            let offset = self.pos + consumed as u64;
            match b {
                b':' if digits == 0 => {
                    result = Err(NetstringError::EmptyLength { offset });
                    break;
                }
                b':' => {
                    consumed += 1;
                    result = Ok(true);
                    break;
                }
                b'0'..=b'9' if digits == 1 && value == 0 => {
                    result = Err(NetstringError::LeadingZero { found: b, offset });
                    break;
                }
                b'0'..=b'9' => {
                    // `value <= max_payload <= usize::MAX`, so this cannot
                    // overflow a u128 however many digits arrive.
                    let next = value as u128 * 10 + u128::from(b - b'0');
                    if next > self.max_payload as u128 {
                        result = Err(NetstringError::TooLong {
                            length: next,
                            limit: self.max_payload,
                            offset,
                        });
                        break;
                    }
                    value = next as usize;
                    digits += 1;
                }
                _ => {
                    result = Err(NetstringError::NonDigit { found: b, offset });
                    break;
                }
            }
            consumed += 1;
        }
        match result {
            Ok(done) => {
                buf.advance(consumed);
                self.pos += consumed as u64;
                self.state = if done {
                    State::Payload { len: value }
                } else {
                    State::Length { value, digits }
                };
                Ok(done)
            }
            Err(err) => {
                self.state = State::Failed(err.clone());
                Err(err)
            }
        }
    }
}

impl Default for NetstringCodec {
    /// A codec with the [`DEFAULT_MAX_PAYLOAD`] limit.
    fn default() -> Self {
        NetstringCodec::new(DEFAULT_MAX_PAYLOAD)
    }
}

impl Decoder for NetstringCodec {
    type Item = Bytes;
    type Error = NetstringError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, NetstringError> {
        if let State::Failed(err) = &self.state {
            return Err(err.clone());
        }
        if let State::Length { .. } = self.state {
            if !self.decode_length(buf)? {
                return Ok(None);
            }
        }
        let State::Payload { len } = self.state else {
            unreachable!("length state is left only for the payload state");
        };
        // Wait for the payload and the ','; reserve nothing: the buffer grows
        // with what arrives, never with what the peer announced.
        if buf.len() <= len {
            return Ok(None);
        }
        if buf[len] != b',' {
            let err = NetstringError::MissingComma {
                found: buf[len],
                offset: self.pos + len as u64,
            };
            return self.fail(err);
        }
        let payload = buf.split_to(len).freeze();
        buf.advance(1);
        self.pos += len as u64 + 1;
        self.frame_start = self.pos;
        self.state = State::Length {
            value: 0,
            digits: 0,
        };
        Ok(Some(payload))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, NetstringError> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        let missing = match self.state {
            State::Length { digits: 0, .. } => return Ok(None),
            State::Length { .. } => None,
            State::Payload { len } => Some(len + 1 - buf.len()),
            State::Failed(_) => unreachable!("decode returned the failure already"),
        };
        let err = NetstringError::Truncated {
            frame_start: self.frame_start,
            eof_at: self.pos + buf.len() as u64,
            missing,
        };
        self.fail(err)
    }
}

impl Encoder<&[u8]> for NetstringCodec {
    type Error = NetstringError;

    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), NetstringError> {
        encode_into(item, dst);
        Ok(())
    }
}

impl Encoder<Bytes> for NetstringCodec {
    type Error = NetstringError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), NetstringError> {
        encode_into(&item, dst);
        Ok(())
    }
}

/// Reads exactly one netstring of at most `max_payload` bytes from `reader`.
///
/// Reads in chunks of at most 4 KiB, so it may read bytes past the end of the
/// frame; those are discarded. That is fine for the transformation protocol
/// (one request, one reply per connection) but makes this the wrong tool for
/// a stream of frames: use [`NetstringCodec`] with `FramedRead` there.
///
/// End of input before any byte gives [`NetstringError::Eof`]; inside a frame,
/// [`NetstringError::Truncated`].
pub async fn read_netstring<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_payload: usize,
) -> Result<Bytes, NetstringError> {
    let mut codec = NetstringCodec::new(max_payload);
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        if let Some(frame) = codec.decode(&mut buf)? {
            return Ok(frame);
        }
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return codec.decode_eof(&mut buf)?.ok_or(NetstringError::Eof);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Writes `payload` as one netstring and flushes.
pub async fn write_netstring<W: AsyncWrite + Unpin>(
    writer: &mut W,
    payload: &[u8],
) -> io::Result<()> {
    writer.write_all(&encode(payload)).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// Decodes `input` in one call plus EOF, collecting frames up to the first
    /// error.
    fn decode_all(codec: &mut NetstringCodec, input: &[u8]) -> Result<Vec<Bytes>, NetstringError> {
        let mut buf = BytesMut::from(input);
        let mut frames = Vec::new();
        while let Some(frame) = codec.decode(&mut buf)? {
            frames.push(frame);
        }
        while let Some(frame) = codec.decode_eof(&mut buf)? {
            frames.push(frame);
        }
        Ok(frames)
    }

    fn one(input: &[u8]) -> Result<Vec<Bytes>, NetstringError> {
        decode_all(&mut NetstringCodec::default(), input)
    }

    #[rstest]
    #[case::empty_payload(b"0:,", b"")]
    #[case::ascii(b"5:hello,", b"hello")]
    #[case::utf8_counts_bytes("9:åäö.ü,".as_bytes(), "åäö.ü".as_bytes())]
    #[case::payload_holds_separators(b"3:,:,,", b",:,")]
    fn valid_frame_decodes(#[case] input: &[u8], #[case] payload: &[u8]) {
        assert_eq!(one(input), Ok(vec![Bytes::copy_from_slice(payload)]));
    }

    #[test]
    fn utf8_poem_length_is_in_bytes_not_chars() {
        let poem = "Ä Đ Σ";
        assert_ne!(poem.len(), poem.chars().count());
        let framed = encode(poem.as_bytes());
        assert!(framed.starts_with(format!("{}:", poem.len()).as_bytes()));
        assert_eq!(one(&framed), Ok(vec![Bytes::from(poem)]));
    }

    #[test]
    fn payload_at_the_limit_is_accepted() {
        let payload = vec![b'x'; DEFAULT_MAX_PAYLOAD];
        let frames = one(&encode(&payload)).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].len(), 99_999);
    }

    #[test]
    fn length_over_the_limit_is_refused_before_the_colon() {
        let mut codec = NetstringCodec::default();
        let mut buf = BytesMut::from(&b"100000"[..]);
        assert_eq!(
            codec.decode(&mut buf),
            Err(NetstringError::TooLong {
                length: 100_000,
                limit: 99_999,
                offset: 5
            })
        );
    }

    #[test]
    fn several_frames_in_one_buffer() {
        assert_eq!(
            one(b"1:a,0:,2:bc,"),
            Ok(vec![Bytes::from("a"), Bytes::new(), Bytes::from("bc")])
        );
    }

    #[rstest]
    #[case::empty_length(b":hello,", NetstringError::EmptyLength { offset: 0 })]
    #[case::leading_garbage(b"x5:hello,", NetstringError::NonDigit { found: b'x', offset: 0 })]
    #[case::missing_colon(b"5hello,", NetstringError::NonDigit { found: b'h', offset: 1 })]
    #[case::sign(b"+5:hello,", NetstringError::NonDigit { found: b'+', offset: 0 })]
    #[case::space_in_length(b"5 :hello,", NetstringError::NonDigit { found: b' ', offset: 1 })]
    #[case::leading_zero(b"05:hello,", NetstringError::LeadingZero { found: b'5', offset: 1 })]
    #[case::double_zero(b"00:,", NetstringError::LeadingZero { found: b'0', offset: 1 })]
    #[case::over_limit(b"100000:", NetstringError::TooLong { length: 100_000, limit: 99_999, offset: 5 })]
    #[case::many_digits(b"99999999999999999999999999999999999999999:", NetstringError::TooLong { length: 999_999, limit: 99_999, offset: 5 })]
    #[case::missing_comma(b"5:hello!", NetstringError::MissingComma { found: b'!', offset: 7 })]
    #[case::payload_longer_than_declared(b"3:hello,", NetstringError::MissingComma { found: b'l', offset: 5 })]
    #[case::second_frame_bad(b"1:a,x", NetstringError::NonDigit { found: b'x', offset: 4 })]
    #[case::truncated_in_length(b"12", NetstringError::Truncated { frame_start: 0, eof_at: 2, missing: None })]
    #[case::truncated_before_comma(b"5:hello", NetstringError::Truncated { frame_start: 0, eof_at: 7, missing: Some(1) })]
    #[case::truncated_in_payload(b"1:a,5:he", NetstringError::Truncated { frame_start: 4, eof_at: 8, missing: Some(4) })]
    fn invalid_input_is_refused(#[case] input: &[u8], #[case] expected: NetstringError) {
        assert_eq!(one(input), Err(expected));
    }

    #[rstest]
    #[case::empty_length(NetstringError::EmptyLength { offset: 0 }, "empty length: ':' at byte 0 comes before any digit")]
    #[case::non_digit(NetstringError::NonDigit { found: 0xff, offset: 3 }, "non-digit byte '\\xff' in length at byte 3")]
    #[case::leading_zero(NetstringError::LeadingZero { found: b'7', offset: 1 }, "leading zero in length: '0' followed by '7' at byte 1")]
    #[case::too_long(NetstringError::TooLong { length: 100_000, limit: 99_999, offset: 5 }, "length '100000' exceeds the limit of 99999 bytes (refused at byte 5)")]
    #[case::missing_comma(NetstringError::MissingComma { found: b';', offset: 7 }, "missing ',' after payload: found ';' at byte 7")]
    #[case::truncated(NetstringError::Truncated { frame_start: 4, eof_at: 8, missing: Some(4) }, "truncated netstring: input ended at byte 8 inside the frame starting at byte 4, 4 bytes missing")]
    #[case::truncated_length(NetstringError::Truncated { frame_start: 0, eof_at: 2, missing: None }, "truncated netstring: input ended at byte 2 inside the frame starting at byte 0, length prefix incomplete")]
    fn error_messages_quote_value_and_offset(#[case] err: NetstringError, #[case] message: &str) {
        assert_eq!(err.to_string(), message);
    }

    #[rstest]
    #[case::usize_max_limit(usize::MAX)]
    #[case::tenth_of_usize_max(usize::MAX / 10)]
    fn absurd_digit_counts_do_not_overflow(#[case] limit: usize) {
        let digits = "9".repeat(60);
        let input = format!("{digits}:");
        let err = decode_all(&mut NetstringCodec::new(limit), input.as_bytes()).unwrap_err();
        let NetstringError::TooLong { length, offset, .. } = err else {
            panic!("expected TooLong, got {err:?}");
        };
        assert!(length > limit as u128);
        assert_eq!(offset as usize + 1, length.to_string().len());
    }

    #[test]
    fn declared_length_is_not_reserved() {
        let mut codec = NetstringCodec::new(usize::MAX);
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(b"999999999999:abc");
        assert_eq!(codec.decode(&mut buf), Ok(None));
        assert!(codec.in_frame());
        assert!(buf.capacity() <= 64, "capacity grew to {}", buf.capacity());
        assert_eq!(&buf[..], b"abc");
    }

    #[test]
    fn failure_is_sticky() {
        let mut codec = NetstringCodec::default();
        let mut buf = BytesMut::from(&b":"[..]);
        let first = codec.decode(&mut buf);
        buf.extend_from_slice(b"0:,");
        assert_eq!(codec.decode(&mut buf), first);
        assert_eq!(codec.decode_eof(&mut buf), first);
    }

    #[test]
    fn eof_between_frames_is_clean() {
        let mut codec = NetstringCodec::default();
        let mut buf = BytesMut::new();
        assert_eq!(codec.decode_eof(&mut buf), Ok(None));
        assert!(!codec.in_frame());
    }

    #[test]
    fn encoders_agree() {
        let mut codec = NetstringCodec::default();
        let mut a = BytesMut::new();
        let mut b = BytesMut::new();
        Encoder::<&[u8]>::encode(&mut codec, "poème".as_bytes(), &mut a).unwrap();
        Encoder::<Bytes>::encode(&mut codec, Bytes::from("poème"), &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(&a[..], encode("poème".as_bytes()));
        assert_eq!(&a[..], "6:poème,".as_bytes());
    }

    #[test]
    fn encoder_ignores_the_limit() {
        let mut codec = NetstringCodec::new(2);
        let mut dst = BytesMut::new();
        Encoder::<&[u8]>::encode(&mut codec, b"abc", &mut dst).unwrap();
        assert_eq!(&dst[..], b"3:abc,");
    }

    #[test]
    fn io_error_keeps_kind_and_message() {
        let err = NetstringError::from(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
        assert_eq!(
            err,
            NetstringError::Io {
                kind: io::ErrorKind::ConnectionReset,
                message: "reset".to_owned()
            }
        );
    }
}
