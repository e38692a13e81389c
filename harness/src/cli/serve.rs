//! `poetry-harness serve`: the reference servers as real programs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, Subcommand};

use super::{addr_arg, duration_arg, implementation_for, runtime, Exit};
use crate::case::Role;
use crate::duration::format_duration;
use crate::net::{Net, TcpListener};
use crate::reference::{poetry_server, ClientConfig, Pacing, PoetryProxy, TransformServer};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(subcommand)]
    server: Server,
    /// Run the mutant of this name (fixtures/mutants/) instead of the
    /// reference: how `mutants --live` runs the zoo as programs.
    #[arg(long, global = true, hide = true, value_name = "NAME")]
    mutant: Option<String>,
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
    /// Example: poetry-harness serve slow tyger --port 10000 --delay 0.1
    Slow {
        /// The poem to serve: a file, or a built-in poem by name (tyger,
        /// science, loreley).
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
    /// Example: poetry-harness serve fast science --port 10001
    Fast {
        /// The poem to serve: a file, or a built-in poem by name (tyger,
        /// science, loreley).
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
        /// Give up connecting to the upstream after this long.
        #[arg(long, default_value = "10s", value_parser = duration_arg)]
        connect_timeout: Duration,
        /// Give up on the upstream's poem when no byte arrives for this long.
        #[arg(long, default_value = "30s", value_parser = duration_arg)]
        idle_timeout: Duration,
    },
    Case(super::serve_case::CaseArgs),
}

impl Server {
    /// The role this server plays.
    fn role(&self) -> Role {
        match self {
            Server::Slow { .. } | Server::Fast { .. } => Role::Server,
            Server::Transform { .. } => Role::TransformServer,
            Server::Proxy { .. } => Role::Proxy,
            Server::Case(_) => unreachable!("served apart"),
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<Exit> {
    if let Server::Case(case) = &args.server {
        if args.mutant.is_some() {
            anyhow::bail!("--mutant does not apply to 'serve case': the peers are the case's");
        }
        return super::serve_case::run(case);
    }
    let role = args.server.role();
    // Before binding: a bad --mutant is a usage error, with nothing printed
    // on stdout.
    let imp = implementation_for(role, args.mutant.as_deref())?;
    let missing = || anyhow::anyhow!("implementation '{}' has no {role}", imp.name);
    let rt = runtime()?;
    // Poetry servers: bound here, then served by one event loop per core.
    let poetry = match &args.server {
        Server::Slow {
            poem,
            listen,
            num_bytes,
            delay,
        } => {
            let (bytes, source) = read_poem(poem)?;
            let what = format!(
                "slow poetry from {source} ({} bytes, {} bytes every {})",
                bytes.len(),
                num_bytes,
                format_duration(*delay)
            );
            let pacing = Pacing {
                num_bytes: *num_bytes,
                delay: *delay,
            };
            Some((listen, bytes, Some(pacing), what))
        }
        Server::Fast { poem, listen } => {
            let (bytes, source) = read_poem(poem)?;
            let what = format!("poetry from {source} ({} bytes)", bytes.len());
            Some((listen, bytes, None, what))
        }
        _ => None,
    };
    if let Some((listen, bytes, pacing, what)) = poetry {
        let server = imp.server.clone().ok_or_else(missing)?;
        let listener = rt.block_on(listen_on(listen, &what))?.into_std()?;
        // A mutant keeps one loop, so its bug shows as written (a server
        // that serves one client at a time must not serve two).
        let loops = if args.mutant.is_some() {
            1
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        };
        // The reference with the poem in one write takes the short way
        // (`reference::one_write`); a mutant keeps its own code.
        let one_write = args.mutant.is_none() && pacing.is_none_or(|p| p.num_bytes >= bytes.len());
        if one_write {
            crate::reference::one_write::serve(listener, bytes, loops)?;
            return Ok(Exit::Ok);
        }
        serve_on_loops(listener, loops, &|l| {
            let (server, bytes) = (server.clone(), bytes.clone());
            Box::pin(async move {
                let l = TcpListener::from(tokio::net::TcpListener::from_std(l)?);
                server.serve(Net::Tokio, l, bytes, pacing).await
            })
        })?;
        return Ok(Exit::Ok);
    }
    rt.block_on(async {
        match args.server {
            Server::Slow { .. } | Server::Fast { .. } | Server::Case(_) => {
                unreachable!("served above")
            }
            Server::Transform {
                listen,
                max_payload,
                idle_timeout,
            } => {
                let server = imp.transform_server.clone().ok_or_else(missing)?;
                let listener = listen_on(&listen, "transforms cummingsify, shout, reverse").await?;
                let config = TransformServer {
                    max_payload,
                    idle_timeout,
                };
                server.serve(Net::Tokio, listener, config).await?;
            }
            Server::Proxy {
                upstream,
                listen,
                connect_timeout,
                idle_timeout,
            } => {
                let proxy = imp.proxy.clone().ok_or_else(missing)?;
                let what = format!("a caching proxy for {upstream}");
                let listener = listen_on(&listen, &what).await?;
                let config = PoetryProxy {
                    upstream,
                    client: ClientConfig {
                        connect_timeout,
                        idle_timeout,
                    },
                };
                proxy.serve(Net::Tokio, listener, config).await?;
            }
        }
        Ok(Exit::Ok)
    })
}

/// Serves `listener` on `loops` event loops, each a single-threaded tokio
/// runtime on a thread of its own accepting on the same socket: no task
/// moves between threads and no wake-up crosses one, which is what a
/// multi-threaded runtime costs a server whose every connection is short
/// (measured: 0.7 of the ceiling on one runtime, 0.9 on one loop per
/// core; BENCHMARKS.md). Returns when a loop fails.
fn serve_on_loops(
    listener: std::net::TcpListener,
    loops: usize,
    serve: &(dyn Fn(std::net::TcpListener) -> crate::roles::BoxFuture<std::io::Result<()>> + Sync),
) -> anyhow::Result<()> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..loops.max(1))
            .map(|_| {
                let listener = listener.try_clone();
                scope.spawn(move || -> anyhow::Result<()> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(async move {
                        serve(listener?).await?;
                        Ok(())
                    })
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(r) => r?,
                Err(_) => anyhow::bail!("a serving loop panicked"),
            }
        }
        Ok(())
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

/// The poem `serve slow|fast POEM` names, and how the announcement names
/// it: a file wins (a file of your own called `tyger` is what you mean);
/// otherwise a built-in poem (`fixtures/poems/NAME.txt`, compiled in, so
/// `serve slow tyger` works from any directory). A name that is neither
/// is an error listing the built-in names.
fn read_poem(path: &Path) -> anyhow::Result<(Bytes, String)> {
    match std::fs::read(path) {
        Ok(bytes) => Ok((bytes.into(), path.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let name = path.to_string_lossy();
            match crate::case::poem::fixture(&name) {
                Some(bytes) => Ok((
                    Bytes::from_static(bytes),
                    format!("the built-in poem {name}"),
                )),
                None => {
                    let known: Vec<_> = crate::case::poem::FIXTURES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect();
                    anyhow::bail!(
                        "no poem file or built-in poem '{}' (built-in poems: {})",
                        path.display(),
                        known.join(", ")
                    )
                }
            }
        }
        Err(e) => Err(e).with_context(|| format!("cannot read poem file '{}'", path.display())),
    }
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
