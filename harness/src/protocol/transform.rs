//! The transformation protocol (part 12): request and reply payloads.
//!
//! A request is one netstring whose payload is `<transform name>.<poem>`,
//! split at the first '.'; the reply is one netstring holding the transformed
//! poem. The series' only transform is `cummingsify`; `shout` and `reverse`
//! answer the exercise "add more transforms".
//!
//! ```
//! use poetry_harness::protocol::transform::{encode_request, respond};
//!
//! assert_eq!(encode_request("cummingsify", b"HI"), b"14:cummingsify.HI,");
//! assert_eq!(respond(b"shout.hi").unwrap(), "HI");
//! ```

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use super::netstring;

/// A transform the reference server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transform {
    /// The poem in lower case, Unicode-aware like Python's `str.lower()`.
    Cummingsify,
    /// The poem in upper case, Unicode-aware.
    Shout,
    /// The poem's characters (Unicode scalar values) in reverse order.
    Reverse,
}

impl Transform {
    /// Every transform, in the order error messages list them.
    pub const ALL: [Transform; 3] = [Transform::Cummingsify, Transform::Shout, Transform::Reverse];

    /// The name used on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::Cummingsify => "cummingsify",
            Transform::Shout => "shout",
            Transform::Reverse => "reverse",
        }
    }

    /// The transform called `name` on the wire (exact, case-sensitive match).
    pub fn from_name(name: &str) -> Option<Self> {
        Transform::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Applies the transform to `poem`.
    pub fn apply(&self, poem: &str) -> String {
        match self {
            Transform::Cummingsify => poem.to_lowercase(),
            Transform::Shout => poem.to_uppercase(),
            Transform::Reverse => poem.chars().rev().collect(),
        }
    }
}

impl fmt::Display for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Transform {
    type Err = UnknownTransform;

    fn from_str(s: &str) -> Result<Self, UnknownTransform> {
        Transform::from_name(s).ok_or_else(|| UnknownTransform { name: s.to_owned() })
    }
}

/// A transform name that no [`Transform`] has.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[error("unknown transform '{name}' (known: {})", known_names())]
pub struct UnknownTransform {
    /// The name asked for (invalid UTF-8 replaced by U+FFFD).
    pub name: String,
}

fn known_names() -> String {
    Transform::ALL.map(|t| t.name()).join(", ")
}

/// Why a request or reply payload cannot be served or read.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum RequestError {
    /// The request payload has no '.' between name and poem.
    #[error("request has no '.' between transform name and poem: '{payload}'")]
    NoDot {
        /// The payload, truncated to its first 40 bytes (lossy UTF-8).
        payload: String,
    },
    /// The name is not a known transform.
    #[error(transparent)]
    UnknownTransform(#[from] UnknownTransform),
    /// The poem (or reply) is not valid UTF-8.
    #[error("{what} is not valid utf-8: byte {} at offset {offset}", quote_byte(*.found))]
    InvalidUtf8 {
        /// `"poem"` for a request, `"response"` for a reply.
        what: &'static str,
        /// The first bad byte.
        found: u8,
        /// Its offset within the poem or the reply payload
        /// (`Utf8Error::valid_up_to`).
        offset: usize,
    },
}

fn quote_byte(b: u8) -> String {
    format!("'{}'", b.escape_ascii())
}

/// Bytes of a payload quoted in a [`RequestError::NoDot`] message.
const NO_DOT_PREVIEW: usize = 40;

/// A request payload split into name and poem.
///
/// The name stays raw bytes: the protocol does not say it is UTF-8, and a
/// name that is not cannot match a transform, which [`respond`] reports as
/// [`RequestError::UnknownTransform`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformRequest {
    /// Bytes before the first '.'.
    pub name: Bytes,
    /// Bytes after the first '.' (may contain more dots).
    pub poem: Bytes,
}

impl TransformRequest {
    /// The transform named, if the name is UTF-8 and known.
    pub fn transform(&self) -> Result<Transform, UnknownTransform> {
        match std::str::from_utf8(&self.name) {
            Ok(name) => name.parse(),
            Err(_) => Err(UnknownTransform {
                name: String::from_utf8_lossy(&self.name).into_owned(),
            }),
        }
    }
}

/// Splits a request payload at its first '.'.
pub fn parse_request(payload: &[u8]) -> Result<TransformRequest, RequestError> {
    let Some(dot) = payload.iter().position(|&b| b == b'.') else {
        let shown = &payload[..payload.len().min(NO_DOT_PREVIEW)];
        return Err(RequestError::NoDot {
            payload: String::from_utf8_lossy(shown).into_owned(),
        });
    };
    Ok(TransformRequest {
        name: Bytes::copy_from_slice(&payload[..dot]),
        poem: Bytes::copy_from_slice(&payload[dot + 1..]),
    })
}

/// The whole request netstring for transform `name` and `poem`.
///
/// `name` is not checked: a name holding a '.' reaches the server as a
/// shorter name, which tests of malformed requests rely on.
pub fn encode_request(name: &str, poem: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(name.len() + 1 + poem.len());
    payload.extend_from_slice(name.as_bytes());
    payload.push(b'.');
    payload.extend_from_slice(poem);
    netstring::encode(&payload)
}

fn utf8(what: &'static str, bytes: &[u8]) -> Result<String, RequestError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => Err(RequestError::InvalidUtf8 {
            what,
            found: bytes[e.valid_up_to()],
            offset: e.valid_up_to(),
        }),
    }
}

/// What a correct server replies to the request `payload` (the reply payload,
/// not yet framed), or why it must close without replying.
pub fn respond(payload: &[u8]) -> Result<String, RequestError> {
    let request = parse_request(payload)?;
    let transform = request.transform()?;
    let poem = utf8("poem", &request.poem)?;
    Ok(transform.apply(&poem))
}

/// The transformed poem in a reply payload.
pub fn decode_response(payload: &[u8]) -> Result<String, RequestError> {
    utf8("response", payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::ascii(Transform::Cummingsify, "HELLO World", "hello world")]
    #[case::latin_and_greek(Transform::Cummingsify, "Ä Đ Σ", "ä đ σ")]
    #[case::final_sigma(
        Transform::Cummingsify,
        "ΟΔΟΣ ΣΑ",
        "\u{3bf}\u{3b4}\u{3bf}\u{3c2} \u{3c3}\u{3b1}"
    )]
    #[case::dotted_i(Transform::Cummingsify, "İ", "i\u{307}")]
    #[case::shout(Transform::Shout, "straße ä", "STRASSE Ä")]
    #[case::reverse(Transform::Reverse, "abc Ä", "Ä cba")]
    #[case::empty(Transform::Reverse, "", "")]
    fn apply_transforms_text(#[case] t: Transform, #[case] poem: &str, #[case] expected: &str) {
        assert_eq!(t.apply(poem), expected);
    }

    #[test]
    fn names_round_trip() {
        for t in Transform::ALL {
            assert_eq!(Transform::from_name(t.name()), Some(t));
            assert_eq!(t.to_string().parse::<Transform>(), Ok(t));
        }
    }

    #[rstest]
    #[case::unknown("lowercase")]
    #[case::case_sensitive("Cummingsify")]
    #[case::empty("")]
    fn unknown_names_are_refused(#[case] name: &str) {
        assert_eq!(Transform::from_name(name), None);
        let err = name.parse::<Transform>().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("unknown transform '{name}' (known: cummingsify, shout, reverse)")
        );
    }

    #[rstest]
    #[case::simple(b"cummingsify.Poem", b"cummingsify", b"Poem")]
    #[case::split_at_first_dot(b"cummingsify.a.b", b"cummingsify", b"a.b")]
    #[case::empty_poem(b"shout.", b"shout", b"")]
    #[case::empty_name(b".poem", b"", b"poem")]
    fn parse_request_splits_at_first_dot(
        #[case] payload: &[u8],
        #[case] name: &[u8],
        #[case] poem: &[u8],
    ) {
        let request = parse_request(payload).unwrap();
        assert_eq!(&request.name[..], name);
        assert_eq!(&request.poem[..], poem);
    }

    #[rstest]
    #[case::no_dot(b"cummingsify", RequestError::NoDot { payload: "cummingsify".into() })]
    #[case::empty(b"", RequestError::NoDot { payload: "".into() })]
    #[case::unknown_name(b"lowercase.A", RequestError::UnknownTransform(UnknownTransform { name: "lowercase".into() }))]
    #[case::non_utf8_name(b"cumm\xffingsify.A", RequestError::UnknownTransform(UnknownTransform { name: "cumm\u{fffd}ingsify".into() }))]
    #[case::invalid_utf8_poem(b"shout.ab\xc3(", RequestError::InvalidUtf8 { what: "poem", found: 0xc3, offset: 2 })]
    fn respond_refuses(#[case] payload: &[u8], #[case] expected: RequestError) {
        assert_eq!(respond(payload), Err(expected));
    }

    #[rstest]
    #[case::no_dot(RequestError::NoDot { payload: "abc".into() }, "request has no '.' between transform name and poem: 'abc'")]
    #[case::unknown(RequestError::UnknownTransform(UnknownTransform { name: "x".into() }), "unknown transform 'x' (known: cummingsify, shout, reverse)")]
    #[case::utf8(RequestError::InvalidUtf8 { what: "poem", found: 0xff, offset: 3 }, "poem is not valid utf-8: byte '\\xff' at offset 3")]
    fn error_messages(#[case] err: RequestError, #[case] message: &str) {
        assert_eq!(err.to_string(), message);
    }

    #[test]
    fn no_dot_message_is_bounded() {
        let RequestError::NoDot { payload } = parse_request(&[b'a'; 1000]).unwrap_err() else {
            panic!("expected NoDot");
        };
        assert_eq!(payload.len(), NO_DOT_PREVIEW);
    }

    #[test]
    fn respond_applies_the_transform() {
        assert_eq!(respond("cummingsify.Ä Đ. Σ".as_bytes()).unwrap(), "ä đ. σ");
    }

    #[test]
    fn decode_response_checks_utf8() {
        assert_eq!(decode_response("ä".as_bytes()), Ok("ä".to_owned()));
        assert_eq!(
            decode_response(b"ok\x80"),
            Err(RequestError::InvalidUtf8 {
                what: "response",
                found: 0x80,
                offset: 2
            })
        );
    }

    #[test]
    fn encode_request_frames_the_payload() {
        assert_eq!(
            encode_request("shout", "é".as_bytes()),
            "8:shout.é,".as_bytes()
        );
    }
}
