//! One trait per role: how a Rust implementation plugs into the harness.
//!
//! Implement the trait of each role your program plays, bundle them in an
//! [`Implementation`], and run the catalog against it from your own
//! `cargo test` (see `fixtures/student/`). Every method gets a [`Net`]: use
//! it for all sockets, and the same code runs on real sockets and inside the
//! simulator. Use `tokio::time` for timers and `tokio::spawn` for tasks.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use crate::case::Feature;
use crate::net::{Net, TcpListener};
use crate::reference::{
    self, ClientConfig, FetchError, OnBytes, OnTransformed, Pacing, PoetryProxy, PoetryServer,
    Progress, TransformClient, TransformServer, Transformed,
};

/// A boxed, sendable future: what role methods return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A poetry server, slow (`pacing` given) or fast.
pub trait PoetryServerRole: Send + Sync {
    /// Serves `poem` on every connection accepted by `listener`, for ever.
    fn serve(
        &self,
        net: Net,
        listener: TcpListener,
        poem: Bytes,
        pacing: Option<Pacing>,
    ) -> BoxFuture<io::Result<()>>;
}

/// A poetry client.
pub trait PoetryClientRole: Send + Sync {
    /// Downloads one poem per address; one result per address, in order.
    fn get_poems(
        &self,
        net: Net,
        addrs: Vec<String>,
        config: ClientConfig,
    ) -> BoxFuture<Vec<Result<Bytes, FetchError>>>;

    /// [`get_poems`](Self::get_poems), telling `on_bytes` of the bytes of
    /// each download as they arrive and of its result when it ends (how
    /// `get` prints poems as they end, and streams one with `--stream`).
    /// The default tells it of each poem once, whole, and of each result,
    /// when all downloads have ended: override it to show progress.
    fn get_poems_watched(
        &self,
        net: Net,
        addrs: Vec<String>,
        config: ClientConfig,
        on_bytes: OnBytes,
    ) -> BoxFuture<Vec<Result<Bytes, FetchError>>> {
        let all = self.get_poems(net, addrs, config);
        Box::pin(async move {
            let results = all.await;
            for (i, result) in results.iter().enumerate() {
                if let Ok(poem) = result {
                    on_bytes(i, Progress::Bytes(poem));
                }
                on_bytes(i, Progress::Ended(result));
            }
            results
        })
    }
}

/// A transformation server.
pub trait TransformServerRole: Send + Sync {
    /// Serves transform requests on `listener`, for ever.
    fn serve(
        &self,
        net: Net,
        listener: TcpListener,
        config: TransformServer,
    ) -> BoxFuture<io::Result<()>>;
}

/// A transforming client.
pub trait TransformClientRole: Send + Sync {
    /// Downloads and transforms one poem per address, in order.
    fn run(
        &self,
        net: Net,
        addrs: Vec<String>,
        config: TransformClient,
    ) -> BoxFuture<Vec<Transformed>>;

    /// [`run`](Self::run), telling `on_result` of each poem's result as
    /// soon as it is known (how `get --transform` prints each poem once it
    /// and those before it are done). The default tells it of every
    /// result when all have ended: override it to report them earlier.
    fn run_reported(
        &self,
        net: Net,
        addrs: Vec<String>,
        config: TransformClient,
        on_result: OnTransformed,
    ) -> BoxFuture<Vec<Transformed>> {
        let all = self.run(net, addrs, config);
        Box::pin(async move {
            let results = all.await;
            for (i, result) in results.iter().enumerate() {
                on_result(i, result);
            }
            results
        })
    }
}

/// A caching proxy.
pub trait ProxyRole: Send + Sync {
    /// Serves the upstream's poem on `listener`, for ever.
    fn serve(
        &self,
        net: Net,
        listener: TcpListener,
        config: PoetryProxy,
    ) -> BoxFuture<io::Result<()>>;
}

/// An implementation the `poetry-harness` binary can run by name, so that
/// a replay command can name it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// The reference implementations ([`Implementation::reference`]).
    Reference,
    /// A mutant of the zoo (`--mutant NAME`; see [`crate::mutants`]).
    Mutant(&'static str),
}

/// An implementation under test: a name and the roles it plays.
#[derive(Clone, Default)]
pub struct Implementation {
    /// Shown in reports.
    pub name: String,
    /// Which built-in implementation it is, if any: a run of it prints the
    /// `poetry-harness replay` command that repeats it (none for an
    /// implementation of your own, which the binary cannot run).
    pub builtin: Option<Builtin>,
    /// Features it lacks (its cases are UNSUPPORTED).
    pub lacks: Vec<Feature>,
    /// Poetry server, if it has one.
    pub server: Option<Arc<dyn PoetryServerRole>>,
    /// Poetry client, if it has one.
    pub client: Option<Arc<dyn PoetryClientRole>>,
    /// Transformation server, if it has one.
    pub transform_server: Option<Arc<dyn TransformServerRole>>,
    /// Transforming client, if it has one.
    pub transform_client: Option<Arc<dyn TransformClientRole>>,
    /// Caching proxy, if it has one.
    pub proxy: Option<Arc<dyn ProxyRole>>,
}

impl std::fmt::Debug for Implementation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Implementation")
            .field("name", &self.name)
            .field("lacks", &self.lacks)
            .finish_non_exhaustive()
    }
}

impl Implementation {
    /// Whether it plays `role`.
    pub fn plays(&self, role: crate::case::Role) -> bool {
        use crate::case::Role::*;
        match role {
            Server => self.server.is_some(),
            Client => self.client.is_some(),
            TransformServer => self.transform_server.is_some(),
            TransformClient => self.transform_client.is_some(),
            Proxy => self.proxy.is_some(),
        }
    }

    /// The reference implementations of every role.
    pub fn reference() -> Implementation {
        Implementation {
            name: "reference".into(),
            builtin: Some(Builtin::Reference),
            lacks: Vec::new(),
            server: Some(Arc::new(Reference)),
            client: Some(Arc::new(Reference)),
            transform_server: Some(Arc::new(Reference)),
            transform_client: Some(Arc::new(Reference)),
            proxy: Some(Arc::new(Reference)),
        }
    }
}

/// The reference implementations, behind the role traits.
#[derive(Debug, Clone, Copy)]
pub struct Reference;

impl PoetryServerRole for Reference {
    fn serve(
        &self,
        _net: Net,
        listener: TcpListener,
        poem: Bytes,
        pacing: Option<Pacing>,
    ) -> BoxFuture<io::Result<()>> {
        Box::pin(PoetryServer { poem, pacing }.serve(listener))
    }
}

impl PoetryClientRole for Reference {
    fn get_poems(
        &self,
        net: Net,
        addrs: Vec<String>,
        config: ClientConfig,
    ) -> BoxFuture<Vec<Result<Bytes, FetchError>>> {
        Box::pin(async move { reference::get_poems(net, &addrs, config).await })
    }

    fn get_poems_watched(
        &self,
        net: Net,
        addrs: Vec<String>,
        config: ClientConfig,
        on_bytes: OnBytes,
    ) -> BoxFuture<Vec<Result<Bytes, FetchError>>> {
        Box::pin(
            async move { reference::get_poems_watched(net, &addrs, config, Some(on_bytes)).await },
        )
    }
}

impl TransformServerRole for Reference {
    fn serve(
        &self,
        _net: Net,
        listener: TcpListener,
        config: TransformServer,
    ) -> BoxFuture<io::Result<()>> {
        Box::pin(config.serve(listener))
    }
}

impl TransformClientRole for Reference {
    fn run(
        &self,
        net: Net,
        addrs: Vec<String>,
        config: TransformClient,
    ) -> BoxFuture<Vec<Transformed>> {
        Box::pin(async move { config.run(net, &addrs).await })
    }

    fn run_reported(
        &self,
        net: Net,
        addrs: Vec<String>,
        config: TransformClient,
        on_result: OnTransformed,
    ) -> BoxFuture<Vec<Transformed>> {
        Box::pin(async move { config.run_reported(net, &addrs, Some(on_result)).await })
    }
}

impl ProxyRole for Reference {
    fn serve(
        &self,
        net: Net,
        listener: TcpListener,
        config: PoetryProxy,
    ) -> BoxFuture<io::Result<()>> {
        Box::pin(config.serve(net, listener))
    }
}
