//! TCP utility types. Mirrors `tokio::net::tcp`.

pub(crate) mod listener;
// PATCH (poetry-harness): TcpSocket (backlog, buffer sizes, linger).
pub(crate) mod socket;

mod split;
pub use split::{ReadHalf, WriteHalf};

mod split_owned;
pub use split_owned::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};

pub(crate) mod stream;
pub(crate) use stream::TcpStream;
