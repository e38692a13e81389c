//! One network API with three sides: real sockets (tokio), the simulated
//! network of turmoil (`run --engine turmoil`), and the byte-accurate
//! simulated TCP of [`crate::backend::simnet`] (the simulator's default).
//!
//! Implementations under test and the harness's own peers are written once
//! against [`Net`], [`TcpListener`] and [`TcpStream`], which mirror
//! `tokio::net`. [`Net::Tokio`] runs them as real programs on real sockets;
//! [`Net::Sim`] runs the same code inside a turmoil host, where time is
//! simulated and every run with the same seed is identical.
//! [`Net::Simnet`] runs it on a host of a [`crate::backend::simnet::Sim`]
//! (the default engine).
//!
//! The API is an enum rather than a trait so that role traits stay object
//! safe (`Box<dyn PoetryClient>`) and implementations need no generics.
//!
//! ```no_run
//! use poetry_harness::net::Net;
//! use tokio::io::AsyncReadExt;
//!
//! # async fn demo() -> std::io::Result<()> {
//! let mut stream = Net::Tokio.connect("127.0.0.1:10000").await?;
//! let mut poem = Vec::new();
//! stream.read_to_end(&mut poem).await?;
//! # Ok(()) }
//! ```

mod addr;
mod stream;

pub use addr::{parse_addr, AddrError};
pub use stream::{read_in, write_all_shared_in, TcpListener, TcpStream};

use std::io;

/// Which network a piece of code runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// Real sockets through tokio.
    Tokio,
    /// turmoil's simulated network; only valid inside a turmoil host.
    Sim,
    /// turmoil-net's simulated TCP, on this host of a running
    /// [`crate::backend::simnet::Sim`] (the default engine). The host is carried so that a socket made in a task the
    /// code started with plain `tokio::spawn` lands on it too.
    Simnet(crate::backend::simnet::HostId),
}

impl Net {
    /// Listens on `addr` (`host:port`; port 0 picks a free port).
    pub async fn bind(self, addr: &str) -> io::Result<TcpListener> {
        match self {
            Net::Tokio => tokio::net::TcpListener::bind(addr)
                .await
                .map(TcpListener::from),
            Net::Sim => turmoil::net::TcpListener::bind(addr)
                .await
                .map(TcpListener::from),
            Net::Simnet(host) => {
                // The socket is made on the host current at this call.
                turmoil_net::set_current(host);
                turmoil_net::shim::tokio::net::TcpListener::bind(addr)
                    .await
                    .map(TcpListener::from)
            }
        }
    }

    /// Opens a connection to `addr` (`host:port`).
    pub async fn connect(self, addr: &str) -> io::Result<TcpStream> {
        match self {
            Net::Tokio => tokio::net::TcpStream::connect(addr)
                .await
                .map(TcpStream::from),
            Net::Sim => turmoil::net::TcpStream::connect(addr)
                .await
                .map(TcpStream::from),
            Net::Simnet(host) => {
                // The socket is made before the first await, on the host
                // current here; it calls its own host from then on.
                turmoil_net::set_current(host);
                turmoil_net::shim::tokio::net::TcpStream::connect(addr)
                    .await
                    .map(TcpStream::from)
            }
        }
    }

    /// Counts established TCP streams on the current simulated host.
    ///
    /// Real sockets give `None`: the OS does not tell us cheaply; nor does
    /// [`Net::Simnet`] here (its case runner counts through turmoil-net's
    /// netstat).
    pub fn established_streams(self) -> Option<usize> {
        match self {
            Net::Tokio | Net::Simnet(_) => None,
            Net::Sim => Some(turmoil::established_tcp_stream_count()),
        }
    }
}
