//! Wire formats, in two layers.
//!
//! - [`netstring`]: framing. `<len>:<payload>,` with the length in bytes,
//!   an incremental [`NetstringCodec`] for `tokio_util::codec`, and
//!   [`read_netstring`] / [`write_netstring`] for one frame per connection.
//!   It knows nothing of poems.
//! - [`transform`]: the transformation protocol carried inside one frame:
//!   a request payload `<name>.<poem>`, the [`Transform`]s, and the reply a
//!   correct server gives ([`respond`]).
//!
//! ```
//! use poetry_harness::protocol::{netstring, respond, NetstringCodec};
//! use bytes::BytesMut;
//! use tokio_util::codec::Decoder;
//!
//! let mut wire = BytesMut::from(&b"17:cummingsify.HELLO,"[..]);
//! let payload = NetstringCodec::default().decode(&mut wire).unwrap().unwrap();
//! assert_eq!(netstring::encode(respond(&payload).unwrap().as_bytes()), b"5:hello,");
//! ```

pub mod netstring;
pub mod transform;

pub use netstring::{
    read_netstring, write_netstring, NetstringCodec, NetstringError, DEFAULT_MAX_PAYLOAD,
};
pub use transform::{
    decode_response, encode_request, parse_request, respond, RequestError, Transform,
    TransformRequest, UnknownTransform,
};
