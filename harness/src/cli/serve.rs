//! `poetry-harness serve`: the reference servers as real programs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, Subcommand};

use super::{addr_arg, duration_arg, runtime, Exit};
use crate::duration::format_duration;
use crate::net::{Net, TcpListener};
use crate::reference::{
    poetry_server, ClientConfig, Pacing, PoetryProxy, PoetryServer, TransformServer,
};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(subcommand)]
    server: Server,
}

/// Where a server listens. It prints `listening on HOST:PORT` once ready.
#[derive(Debug, Args)]
pub(super) struct Listen {
    /// Port to listen on; 0 picks a free one (printed on start).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Interface to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    iface: String,
}

#[derive(Debug, Subcommand)]
enum Server {
    /// Slow poetry server (part 2): NUM_BYTES every DELAY, many clients at once.
    ///
    /// Example: poetry-harness serve slow fixtures/poems/tyger.txt --port 10000 --delay 0.1
    Slow {
        /// The poem file to serve.
        poem: PathBuf,
        #[command(flatten)]
        listen: Listen,
        /// Bytes sent per write.
        #[arg(long, default_value_t = poetry_server::DEFAULT_NUM_BYTES, value_parser = num_bytes_arg)]
        num_bytes: usize,
        /// Pause between writes: seconds (0.7) or with a unit (700ms).
        #[arg(long, default_value = "0.7", value_parser = duration_arg)]
        delay: Duration,
    },
    /// Fast poetry server (parts 11, 16): the whole poem at once.
    ///
    /// Example: poetry-harness serve fast fixtures/poems/science.txt --port 10001
    Fast {
        /// The poem file to serve.
        poem: PathBuf,
        #[command(flatten)]
        listen: Listen,
    },
    /// Poetry transformation server (part 12): netstring `name.poem` in,
    /// transformed poem out. Transforms: cummingsify, shout, reverse.
    ///
    /// Example: poetry-harness serve transform --port 11000
    Transform {
        #[command(flatten)]
        listen: Listen,
        /// Largest request payload accepted, in bytes.
        #[arg(long, default_value_t = crate::protocol::netstring::DEFAULT_MAX_PAYLOAD)]
        max_payload: usize,
        /// Hang up on a client silent this long mid-request.
        #[arg(long, default_value = "30s", value_parser = duration_arg)]
        idle_timeout: Duration,
    },
    /// Caching poetry proxy (parts 13, 14, 19): serves UPSTREAM's poem,
    /// fetched once; cancels the fetch if its client leaves.
    ///
    /// Example: poetry-harness serve proxy 10000 --port 12000
    Proxy {
        /// Upstream poetry server: port or host:port.
        #[arg(value_parser = addr_arg)]
        upstream: String,
        #[command(flatten)]
        listen: Listen,
    },
}

pub fn run(args: ServeArgs) -> anyhow::Result<Exit> {
    let rt = runtime()?;
    rt.block_on(async move {
        match args.server {
            Server::Slow {
                poem,
                listen,
                num_bytes,
                delay,
            } => {
                let bytes = read_poem(&poem)?;
                let pacing = Pacing { num_bytes, delay };
                let what = format!(
                    "slow poetry from {} ({} bytes, {} bytes every {})",
                    poem.display(),
                    bytes.len(),
                    num_bytes,
                    format_duration(delay)
                );
                let listener = listen_on(&listen, &what).await?;
                PoetryServer::slow(bytes, pacing).serve(listener).await?;
            }
            Server::Fast { poem, listen } => {
                let bytes = read_poem(&poem)?;
                let what = format!("poetry from {} ({} bytes)", poem.display(), bytes.len());
                let listener = listen_on(&listen, &what).await?;
                PoetryServer::fast(bytes).serve(listener).await?;
            }
            Server::Transform {
                listen,
                max_payload,
                idle_timeout,
            } => {
                let listener = listen_on(&listen, "transforms cummingsify, shout, reverse").await?;
                TransformServer {
                    max_payload,
                    idle_timeout,
                }
                .serve(listener)
                .await?;
            }
            Server::Proxy { upstream, listen } => {
                let what = format!("a caching proxy for {upstream}");
                let listener = listen_on(&listen, &what).await?;
                PoetryProxy {
                    upstream,
                    client: ClientConfig::default(),
                }
                .serve(Net::Tokio, listener)
                .await?;
            }
        }
        Ok(Exit::Ok)
    })
}

fn num_bytes_arg(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "'{s}' is not a whole number of bytes of at least 1"
        )),
    }
}

fn read_poem(path: &Path) -> anyhow::Result<Bytes> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read poem file '{}'", path.display()))?;
    Ok(bytes.into())
}

/// Binds and announces the address on stdout, flushed, so a person or a
/// script can connect as soon as the line appears.
pub(super) async fn listen_on(listen: &Listen, what: &str) -> anyhow::Result<TcpListener> {
    let addr = format!("{}:{}", listen.iface, listen.port);
    let listener = Net::Tokio
        .bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {local}: {what}")?;
    out.flush()?;
    Ok(listener)
}
