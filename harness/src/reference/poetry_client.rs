//! The poetry client ("Get Poetry Now!"): downloads one poem from each
//! address, all at once, with connect and idle timeouts.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;

use crate::net::Net;

/// Defaults from the spec's table (CLIENT clauses on timeouts).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// No byte for this long and the download fails.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A client's timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Longest wait for a connection to be established.
    pub connect_timeout: Duration,
    /// Longest wait for the next byte of a poem.
    pub idle_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Why one download failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// Nothing listens there.
    Refused,
    /// The server reset the connection after sending `after` bytes.
    Reset {
        /// Bytes received before the reset.
        after: usize,
    },
    /// Connecting, or waiting for the next byte, took too long.
    Timeout {
        /// What was being waited for: "connect" or "data".
        waiting_for: &'static str,
        /// Bytes received before giving up.
        after: usize,
    },
    /// Any other socket error.
    Other(String),
    /// A program under test reported a failure in words the harness could
    /// not read as a reason (live backend; the line is kept).
    Unrecognised(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Refused => write!(f, "connection refused"),
            FetchError::Reset { after } => write!(f, "connection reset after {after} bytes"),
            FetchError::Timeout { waiting_for, after } => {
                write!(f, "timed out waiting for {waiting_for} after {after} bytes")
            }
            FetchError::Other(e) => write!(f, "{e}"),
            FetchError::Unrecognised(line) => write!(f, "reason not recognised in '{line}'"),
        }
    }
}

impl std::error::Error for FetchError {}

impl FetchError {
    fn from_io(e: io::Error, after: usize) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => FetchError::Refused,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                FetchError::Reset { after }
            }
            _ => FetchError::Other(e.to_string()),
        }
    }

    /// A short stable word for transcripts: refused, reset, timeout, error.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Refused => "refused",
            FetchError::Reset { .. } => "reset",
            FetchError::Timeout { .. } => "timeout",
            FetchError::Other(_) => "error",
            FetchError::Unrecognised(_) => "unrecognised",
        }
    }
}

/// What a watched download tells as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A run of bytes just read.
    Bytes(&'a [u8]),
    /// The download ended, with this result (after its last bytes).
    Ended(&'a Result<Bytes, FetchError>),
}

/// Told of a download's progress as it goes: the index of its address (in
/// the order given), then its bytes as they arrive and its end. How `get`
/// prints each poem as soon as it, and every poem before it, has ended,
/// and shows a poem arriving with `--stream`.
pub type OnBytes = Arc<dyn Fn(usize, Progress<'_>) + Send + Sync>;

/// Downloads one poem: every byte until the server's FIN.
pub async fn get_poem(net: Net, addr: &str, config: ClientConfig) -> Result<Bytes, FetchError> {
    get_poem_watched(net, addr, config, |_| {}).await
}

/// [`get_poem`], calling `on_bytes` with every run of bytes as it is read.
pub async fn get_poem_watched(
    net: Net,
    addr: &str,
    config: ClientConfig,
    mut on_bytes: impl FnMut(&[u8]),
) -> Result<Bytes, FetchError> {
    let connect = tokio::time::timeout(config.connect_timeout, net.connect(addr)).await;
    let mut stream = match connect {
        Err(_) => {
            return Err(FetchError::Timeout {
                waiting_for: "connect",
                after: 0,
            })
        }
        Ok(Err(e)) => return Err(FetchError::from_io(e, 0)),
        Ok(Ok(s)) => s,
    };
    let mut poem = BytesMut::new();
    loop {
        let got = poem.len();
        match tokio::time::timeout(config.idle_timeout, stream.read_buf(&mut poem)).await {
            Err(_) => {
                // Dropping the stream closes the connection we give up on.
                return Err(FetchError::Timeout {
                    waiting_for: "data",
                    after: got,
                });
            }
            Ok(Err(e)) => return Err(FetchError::from_io(e, got)),
            Ok(Ok(0)) => return Ok(poem.freeze()),
            Ok(Ok(_)) => on_bytes(&poem[got..]),
        }
    }
}

/// Downloads from every address at once; one result per address, in order.
pub async fn get_poems(
    net: Net,
    addrs: &[String],
    config: ClientConfig,
) -> Vec<Result<Bytes, FetchError>> {
    get_poems_watched(net, addrs, config, None).await
}

/// [`get_poems`], telling `on_bytes` (if given) of every run of bytes as
/// it is read, and of each download's result as soon as it ends.
pub async fn get_poems_watched(
    net: Net,
    addrs: &[String],
    config: ClientConfig,
    on_bytes: Option<OnBytes>,
) -> Vec<Result<Bytes, FetchError>> {
    let tasks: Vec<_> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let addr = addr.clone();
            let on_bytes = on_bytes.clone();
            tokio::spawn(async move {
                let result = get_poem_watched(net, &addr, config, |b| {
                    if let Some(f) = &on_bytes {
                        f(i, Progress::Bytes(b))
                    }
                })
                .await;
                if let Some(f) = &on_bytes {
                    f(i, Progress::Ended(&result))
                }
                result
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(
            task.await
                .unwrap_or_else(|e| Err(FetchError::Other(format!("download task failed: {e}")))),
        );
    }
    results
}
