//! Integration tests for the wire codecs (`poetry_harness::protocol`).
//!
//! Modules:
//! - `splits`: every way of cutting the input into chunks decodes like the
//!   one-shot decode, for valid and invalid inputs alike.
//! - `read_write`: `read_netstring` / `write_netstring` against scripted IO
//!   (tokio-test mocks): fragments, EOF, truncation, IO errors.
//! - `limits`: the 99,999-byte limit, and that a declared length is never
//!   allocated or read before it is accepted.
//! - `round_trip`: a request goes through encode, decode and `respond`, and
//!   the reply through encode and `decode_response`.

use bytes::{Bytes, BytesMut};
use poetry_harness::protocol::{NetstringCodec, NetstringError};
use tokio_util::codec::Decoder;

/// Frames decoded, and the error that stopped decoding if any.
type Outcome = (Vec<Bytes>, Option<NetstringError>);

/// Feeds `chunks` one after another to a fresh codec, decoding after each,
/// then signals EOF.
fn decode_chunks<'a>(limit: usize, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut codec = NetstringCodec::new(limit);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(err) => return (frames, Some(err)),
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, None),
            Err(err) => return (frames, Some(err)),
        }
    }
}

mod splits {
    use super::*;
    use poetry_harness::protocol::{encode_request, DEFAULT_MAX_PAYLOAD};
    use rstest::rstest;

    fn request() -> Vec<u8> {
        encode_request("cummingsify", "Ä Đ Σ: a poem. With dots.".as_bytes())
    }

    fn two_frames() -> Vec<u8> {
        let mut input = encode_request("shout", b"one");
        input.extend_from_slice(b"0:,");
        input
    }

    fn frames(payloads: &[&[u8]]) -> Vec<Bytes> {
        payloads.iter().map(|p| Bytes::copy_from_slice(p)).collect()
    }

    /// Checks the one-shot result against `expected`, then every split into
    /// two and three chunks, then byte by byte.
    fn assert_split_invariant(input: &[u8], expected: Outcome) {
        let limit = DEFAULT_MAX_PAYLOAD;
        let whole = decode_chunks(limit, [input]);
        assert_eq!(
            whole,
            expected,
            "one-shot decode of {:?}",
            input.escape_ascii().to_string()
        );
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let got = decode_chunks(limit, [&input[..i], &input[i..j], &input[j..]]);
                assert_eq!(got, whole, "split at {i} and {j}");
            }
        }
        let byte_by_byte = decode_chunks(limit, input.chunks(1));
        assert_eq!(byte_by_byte, whole, "byte by byte");
    }

    #[rstest]
    #[case::request(request(), frames(&["cummingsify.Ä Đ Σ: a poem. With dots.".as_bytes()]))]
    #[case::two_frames(two_frames(), frames(&[b"shout.one".as_slice(), b""]))]
    #[case::empty_payload(b"0:,".to_vec(), frames(&[b"".as_slice()]))]
    #[case::empty_input(Vec::new(), frames(&[]))]
    fn valid_input_decodes_the_same_however_split(
        #[case] input: Vec<u8>,
        #[case] expected: Vec<Bytes>,
    ) {
        assert_split_invariant(&input, (expected, None));
    }

    #[rstest]
    #[case::empty_length(b":hello,", vec![], NetstringError::EmptyLength { offset: 0 })]
    #[case::leading_garbage(b"junk5:hello,", vec![], NetstringError::NonDigit { found: b'j', offset: 0 })]
    #[case::missing_colon(b"5hello,", vec![], NetstringError::NonDigit { found: b'h', offset: 1 })]
    #[case::leading_zero(b"05:hello,", vec![], NetstringError::LeadingZero { found: b'5', offset: 1 })]
    #[case::over_limit(b"100000:xyz", vec![], NetstringError::TooLong { length: 100_000, limit: 99_999, offset: 5 })]
    #[case::overflow_digits(b"123456789012345678901234567890:", vec![], NetstringError::TooLong { length: 123_456, limit: 99_999, offset: 5 })]
    #[case::missing_comma(b"5:hello;", vec![], NetstringError::MissingComma { found: b';', offset: 7 })]
    #[case::truncated_payload(b"1:a,5:hel", vec![b"a".as_slice()], NetstringError::Truncated { frame_start: 4, eof_at: 9, missing: Some(3) })]
    #[case::truncated_length(b"1:a,12", vec![b"a".as_slice()], NetstringError::Truncated { frame_start: 4, eof_at: 6, missing: None })]
    #[case::bad_second_frame(b"1:a,:", vec![b"a".as_slice()], NetstringError::EmptyLength { offset: 4 })]
    fn invalid_input_fails_the_same_however_split(
        #[case] input: &[u8],
        #[case] good: Vec<&[u8]>,
        #[case] expected: NetstringError,
    ) {
        assert_split_invariant(input, (frames(&good), Some(expected)));
    }
}

mod read_write {
    use super::*;
    use poetry_harness::protocol::{read_netstring, write_netstring, DEFAULT_MAX_PAYLOAD};
    use std::io;
    use tokio_test::io::Builder;

    #[tokio::test]
    async fn fragmented_frame_is_reassembled() {
        // "é" (2 bytes) is cut between two reads.
        let poem = "cummingsify.Poème";
        let bytes = poem.as_bytes();
        let cut = poem.find('è').unwrap() + 1;
        let mut mock = Builder::new()
            .read(b"1")
            .read(b"8:")
            .read(&bytes[..cut])
            .read(&bytes[cut..])
            .read(b",")
            .build();
        let frame = read_netstring(&mut mock, DEFAULT_MAX_PAYLOAD)
            .await
            .unwrap();
        assert_eq!(&frame[..], bytes);
    }

    #[tokio::test]
    async fn eof_before_any_byte_is_eof() {
        let mut mock = Builder::new().build();
        assert_eq!(
            read_netstring(&mut mock, DEFAULT_MAX_PAYLOAD).await,
            Err(NetstringError::Eof)
        );
    }

    #[tokio::test]
    async fn eof_inside_payload_is_truncated_not_eof() {
        let mut mock = Builder::new().read(b"5:").read(b"he").build();
        assert_eq!(
            read_netstring(&mut mock, DEFAULT_MAX_PAYLOAD).await,
            Err(NetstringError::Truncated {
                frame_start: 0,
                eof_at: 4,
                missing: Some(4)
            })
        );
    }

    #[tokio::test]
    async fn eof_inside_length_is_truncated() {
        let mut mock = Builder::new().read(b"12").build();
        assert_eq!(
            read_netstring(&mut mock, DEFAULT_MAX_PAYLOAD).await,
            Err(NetstringError::Truncated {
                frame_start: 0,
                eof_at: 2,
                missing: None
            })
        );
    }

    #[tokio::test]
    async fn huge_length_prefix_is_refused_without_reading_on() {
        // No body is scripted: another read would hit EOF and turn the
        // expected TooLong into Truncated.
        let mut mock = Builder::new().read(b"10").read(b"0000").build();
        assert_eq!(
            read_netstring(&mut mock, DEFAULT_MAX_PAYLOAD).await,
            Err(NetstringError::TooLong {
                length: 100_000,
                limit: 99_999,
                offset: 5
            })
        );
    }

    #[tokio::test]
    async fn io_error_is_reported_with_its_kind() {
        let mut mock = Builder::new()
            .read(b"5:he")
            .read_error(io::Error::new(io::ErrorKind::ConnectionReset, "peer reset"))
            .build();
        assert_eq!(
            read_netstring(&mut mock, DEFAULT_MAX_PAYLOAD).await,
            Err(NetstringError::Io {
                kind: io::ErrorKind::ConnectionReset,
                message: "peer reset".to_owned()
            })
        );
    }

    #[tokio::test]
    async fn bytes_after_the_frame_are_ignored() {
        let mut mock = Builder::new().read(b"2:ok,3:more,").build();
        let frame = read_netstring(&mut mock, DEFAULT_MAX_PAYLOAD)
            .await
            .unwrap();
        assert_eq!(&frame[..], b"ok");
    }

    #[tokio::test]
    async fn write_netstring_writes_one_frame() {
        let mut mock = Builder::new().write("6:poème,".as_bytes()).build();
        write_netstring(&mut mock, "poème".as_bytes())
            .await
            .unwrap();
    }
}

mod limits {
    use super::*;
    use poetry_harness::protocol::netstring::encode;
    use poetry_harness::protocol::{read_netstring, DEFAULT_MAX_PAYLOAD};
    use tokio_test::io::Builder;

    #[tokio::test]
    async fn payload_of_99_999_bytes_is_accepted_in_chunks() {
        let payload = vec![b'p'; 99_999];
        let framed = encode(&payload);
        let mut builder = Builder::new();
        for chunk in framed.chunks(7_000) {
            builder.read(chunk);
        }
        let frame = read_netstring(&mut builder.build(), DEFAULT_MAX_PAYLOAD)
            .await
            .unwrap();
        assert_eq!(frame.len(), 99_999);
    }

    #[tokio::test]
    async fn payload_of_100_000_bytes_is_refused_before_the_colon() {
        // Only the length prefix is scripted, without ':'.
        let mut mock = Builder::new().read(b"100000").build();
        assert_eq!(
            read_netstring(&mut mock, DEFAULT_MAX_PAYLOAD).await,
            Err(NetstringError::TooLong {
                length: 100_000,
                limit: 99_999,
                offset: 5
            })
        );
    }

    #[test]
    fn over_limit_prefix_fails_before_colon_and_keeps_buffer_small() {
        let mut codec = NetstringCodec::default();
        let mut buf = BytesMut::with_capacity(16);
        buf.extend_from_slice(b"999999999999:");
        let err = codec.decode(&mut buf).unwrap_err();
        assert_eq!(
            err,
            NetstringError::TooLong {
                length: 999_999,
                limit: 99_999,
                offset: 5
            }
        );
        assert!(buf.capacity() <= 16, "capacity grew to {}", buf.capacity());
    }

    #[test]
    fn accepted_huge_length_reserves_nothing() {
        // A limit far above memory: the declared ~1 TB must not be reserved.
        let mut codec = NetstringCodec::new(usize::MAX);
        let mut buf = BytesMut::with_capacity(16);
        buf.extend_from_slice(b"999999999999:");
        assert_eq!(codec.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"abc");
        assert_eq!(codec.decode(&mut buf), Ok(None));
        assert!(buf.capacity() <= 16, "capacity grew to {}", buf.capacity());
        assert_eq!(
            codec.decode_eof(&mut buf),
            Err(NetstringError::Truncated {
                frame_start: 0,
                eof_at: 16,
                missing: Some(999_999_999_997)
            })
        );
    }

    #[tokio::test]
    async fn read_netstring_does_not_allocate_the_declared_length() {
        // Allocating 10^15 bytes up front would abort the test process.
        let mut mock = Builder::new().read(b"1000000000000000:ab").build();
        assert_eq!(
            read_netstring(&mut mock, usize::MAX).await,
            Err(NetstringError::Truncated {
                frame_start: 0,
                eof_at: 19,
                missing: Some(1_000_000_000_000_000 - 1)
            })
        );
    }

    #[test]
    fn length_digits_are_consumed_as_they_arrive() {
        // The codec keeps its place: digits already read leave the buffer,
        // so a later call does not scan them again.
        let mut codec = NetstringCodec::default();
        let mut buf = BytesMut::from(&b"123"[..]);
        assert_eq!(codec.decode(&mut buf), Ok(None));
        assert!(buf.is_empty());
        buf.extend_from_slice(b"45:");
        assert_eq!(codec.decode(&mut buf), Ok(None));
        assert!(buf.is_empty());
        assert!(codec.in_frame());
    }
}

mod round_trip {
    use super::*;
    use poetry_harness::protocol::netstring::encode;
    use poetry_harness::protocol::{
        decode_response, encode_request, parse_request, respond, RequestError, Transform,
    };
    use rstest::rstest;

    fn decode_one(wire: &[u8]) -> Bytes {
        let (frames, err) = decode_chunks(usize::MAX, [wire]);
        assert_eq!(err, None);
        assert_eq!(frames.len(), 1);
        frames.into_iter().next().unwrap()
    }

    #[rstest]
    #[case::ascii("Roses are RED.\nViolets are BLUE.\n")]
    #[case::non_ascii("Ä Đ Σ — ÉTÉ, Straße.\n")]
    #[case::empty("")]
    fn request_and_reply_round_trip(#[case] poem: &str) {
        for transform in Transform::ALL {
            let wire = encode_request(transform.name(), poem.as_bytes());
            let payload = decode_one(&wire);
            let request = parse_request(&payload).unwrap();
            assert_eq!(&request.name[..], transform.name().as_bytes());
            assert_eq!(&request.poem[..], poem.as_bytes());

            let reply = respond(&payload).unwrap();
            assert_eq!(reply, transform.apply(poem));

            let reply_payload = decode_one(&encode(reply.as_bytes()));
            assert_eq!(decode_response(&reply_payload).unwrap(), reply);
        }
    }

    #[test]
    fn cummingsify_lowercases_unicode() {
        let wire = encode_request("cummingsify", "Ä Đ Σ".as_bytes());
        assert_eq!(respond(&decode_one(&wire)).unwrap(), "ä đ σ");
    }

    #[test]
    fn unknown_transform_names_the_transform() {
        let wire = encode_request("lowercase", b"Poem");
        let err = respond(&decode_one(&wire)).unwrap_err();
        assert!(matches!(err, RequestError::UnknownTransform(_)));
        assert_eq!(
            err.to_string(),
            "unknown transform 'lowercase' (known: cummingsify, shout, reverse)"
        );
    }

    #[test]
    fn invalid_utf8_poem_reports_offset_in_poem() {
        let wire = encode_request("cummingsify", b"ok \xe2\x82");
        assert_eq!(
            respond(&decode_one(&wire)),
            Err(RequestError::InvalidUtf8 {
                what: "poem",
                found: 0xe2,
                offset: 3
            })
        );
    }
}
