//! Drop-in replacements for `tokio::net` types.

mod addr;
pub mod tcp;
mod udp;

pub use addr::ToSocketAddrs;
pub use tcp::listener::TcpListener;
// PATCH (poetry-harness): TcpSocket (backlog, buffer sizes, linger).
pub use tcp::socket::TcpSocket;
pub use tcp::stream::TcpStream;
pub use udp::UdpSocket;
