//! The poetry server of parts 2, 11 and 16: one poem per connection, then
//! a clean close. Slow (paced) or fast (all at once).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::linger::close_gracefully;
use crate::net::{TcpListener, TcpStream};

/// The slow server's defaults, from part 2's `slowpoetry.py`.
pub const DEFAULT_NUM_BYTES: usize = 10;
/// Seconds between two chunks of the slow server (part 2's `--delay`).
pub const DEFAULT_DELAY: Duration = Duration::from_millis(700);

/// How a slow server paces a poem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Bytes per write (at least 1).
    pub num_bytes: usize,
    /// Pause between two writes.
    pub delay: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            num_bytes: DEFAULT_NUM_BYTES,
            delay: DEFAULT_DELAY,
        }
    }
}

/// What a poetry server serves and how fast.
#[derive(Debug, Clone)]
pub struct PoetryServer {
    /// The poem's bytes, sent unchanged.
    pub poem: Bytes,
    /// `None` is the fast server: the whole poem in one write.
    pub pacing: Option<Pacing>,
}

impl PoetryServer {
    /// The fast server of parts 11 and 16.
    pub fn fast(poem: impl Into<Bytes>) -> Self {
        PoetryServer {
            poem: poem.into(),
            pacing: None,
        }
    }

    /// The slow server of part 2, serving many clients at once.
    pub fn slow(poem: impl Into<Bytes>, pacing: Pacing) -> Self {
        PoetryServer {
            poem: poem.into(),
            pacing: Some(pacing),
        }
    }

    /// Accepts connections forever, each served by its own task, so one slow
    /// or vanished client never holds up another (POEM clauses on
    /// concurrency and early disconnects).
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        let server = Arc::new(self);
        loop {
            let (stream, _) = listener.accept().await?;
            let server = Arc::clone(&server);
            tokio::spawn(async move {
                // A client that leaves early only ends its own task.
                let _ = server.send_poem(stream).await;
            });
        }
    }

    /// Sends the poem on one connection, then closes it with FIN.
    pub async fn send_poem(&self, mut stream: TcpStream) -> std::io::Result<()> {
        match self.pacing {
            None => stream.write_all_shared(self.poem.clone()).await?,
            Some(p) => {
                let (len, step) = (self.poem.len(), p.num_bytes.max(1));
                for at in (0..len).step_by(step) {
                    if at > 0 {
                        tokio::time::sleep(p.delay).await;
                    }
                    let chunk = self.poem.slice(at..len.min(at + step));
                    stream.write_all_shared(chunk).await?;
                }
            }
        }
        close_gracefully(stream).await
    }
}
