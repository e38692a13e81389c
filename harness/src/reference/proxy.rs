//! The caching poetry proxy of parts 13, 14 and 19: serve the upstream's
//! poem, fetch it once, cache only a complete poem, and cancel the upstream
//! fetch when nobody downstream waits for it any more.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::linger::close_gracefully;
use super::poetry_client::{get_poem, ClientConfig};
use crate::net::{Net, TcpListener, TcpStream};

/// A caching proxy in front of one upstream poetry server.
#[derive(Debug, Clone)]
pub struct PoetryProxy {
    /// Upstream `host:port`.
    pub upstream: String,
    /// Timeouts of the upstream fetch.
    pub client: ClientConfig,
}

/// The result a fetch publishes to its waiters: the poem, or why not.
type FetchResult = Option<Result<Bytes, String>>;

/// The cache's one slot.
#[derive(Debug, Default)]
enum Slot {
    /// Nothing cached, nothing in flight.
    #[default]
    Empty,
    /// A fetch is in flight; `waiters` downstream clients wait for it.
    Fetching {
        result: watch::Receiver<FetchResult>,
        waiters: usize,
        task: AbortHandle,
    },
    /// A complete poem (upstream closed with FIN).
    Cached(Bytes),
}

/// What a downstream connection found in the cache.
enum Lookup {
    Hit(Bytes),
    Wait(watch::Receiver<FetchResult>),
}

impl PoetryProxy {
    /// A proxy for `upstream` with default timeouts.
    pub fn new(upstream: impl Into<String>) -> Self {
        PoetryProxy {
            upstream: upstream.into(),
            client: ClientConfig::default(),
        }
    }

    /// Accepts downstream connections forever, one task each.
    pub async fn serve(self, net: Net, listener: TcpListener) -> std::io::Result<()> {
        let slot = Arc::new(Mutex::new(Slot::Empty));
        let proxy = Arc::new(self);
        loop {
            let (stream, _) = listener.accept().await?;
            let (proxy, slot) = (Arc::clone(&proxy), Arc::clone(&slot));
            tokio::spawn(async move { proxy.handle(net, stream, slot).await });
        }
    }

    fn lookup(&self, net: Net, slot: &Arc<Mutex<Slot>>) -> Lookup {
        let mut guard = slot.lock().expect("cache lock poisoned");
        match &mut *guard {
            Slot::Cached(poem) => Lookup::Hit(poem.clone()),
            Slot::Fetching {
                result, waiters, ..
            } => {
                *waiters += 1;
                Lookup::Wait(result.clone())
            }
            Slot::Empty => {
                let (tx, rx) = watch::channel(None);
                let (upstream, config, slot2) =
                    (self.upstream.clone(), self.client, Arc::clone(slot));
                let task = tokio::spawn(async move {
                    let got = get_poem(net, &upstream, config).await;
                    let mut guard = slot2.lock().expect("cache lock poisoned");
                    // Only a complete poem is cached; a failure leaves the
                    // slot empty so the next client tries upstream again.
                    *guard = match &got {
                        Ok(poem) => Slot::Cached(poem.clone()),
                        Err(_) => Slot::Empty,
                    };
                    let _ = tx.send(Some(got.map_err(|e| e.to_string())));
                });
                *guard = Slot::Fetching {
                    result: rx.clone(),
                    waiters: 1,
                    task: task.abort_handle(),
                };
                Lookup::Wait(rx)
            }
        }
    }

    /// One downstream client leaves before the fetch ends; the last one to
    /// leave cancels the fetch, which drops (closes) the upstream connection.
    /// `rx` names the fetch it waited for: if that fetch has already ended
    /// and a new one is in the slot, the departure is not the new one's.
    fn leave(slot: &Mutex<Slot>, rx: &watch::Receiver<FetchResult>) {
        let mut guard = slot.lock().expect("cache lock poisoned");
        if let Slot::Fetching {
            result,
            waiters,
            task,
        } = &mut *guard
        {
            if !result.same_channel(rx) {
                return;
            }
            *waiters -= 1;
            if *waiters == 0 {
                task.abort();
                *guard = Slot::Empty;
            }
        }
    }

    async fn handle(&self, net: Net, mut stream: TcpStream, slot: Arc<Mutex<Slot>>) {
        let mut rx = match self.lookup(net, &slot) {
            Lookup::Hit(poem) => return send(stream, poem).await,
            Lookup::Wait(rx) => rx,
        };
        // Wait for the fetch while watching the client: its FIN or RST
        // (read returns) means it no longer wants the poem.
        let mut probe = [0u8; 64];
        let result = loop {
            let left = tokio::select! {
                biased;
                changed = rx.wait_for(Option::is_some) => {
                    break changed.ok().and_then(|r| r.clone());
                }
                read = stream.read(&mut probe) => !matches!(read, Ok(n) if n > 0),
            };
            // Bytes from a client are ignored; its FIN or RST means it left.
            if left {
                Self::leave(&slot, &rx);
                return;
            }
        };
        match result {
            Some(Ok(poem)) => send(stream, poem).await,
            // Upstream failed: a RST tells the client this is no poem, where
            // a FIN would look like a complete (short or empty) one.
            _ => stream.abort(),
        }
    }
}

/// Sends the cached poem as shared bytes (not copied into a simulated
/// send queue), then closes gracefully.
async fn send(mut stream: TcpStream, poem: Bytes) {
    if stream.write_all_shared(poem).await.is_ok() {
        let _ = close_gracefully(stream).await;
    }
}
