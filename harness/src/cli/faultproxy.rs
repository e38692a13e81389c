//! `poetry-harness faultproxy`: the fault-injecting proxy as a program.

use std::time::Duration;

use clap::Args;

use super::serve::{listen_on, Listen};
use super::{addr_arg, duration_arg, runtime, Exit};
use crate::faultproxy::{self, Faults};
use crate::net::Net;

/// A TCP proxy that delays, throttles, slices, resets or stalls traffic
///
/// It relays connections to TARGET and misbehaves on the way back: put it
/// between a client and a server to see how the client copes.
///
/// It prints `listening on HOST:PORT` once ready. Each connection holds at
/// most a few hundred KiB on its way to the client (a slow client slows the
/// server down, as a slow link would); a stalled connection is freed when
/// its client leaves; a failed accept is logged and retried.
///
/// Examples:
///   poetry-harness faultproxy 10000 --latency 200ms --slice 7
///   poetry-harness faultproxy 10000 --reset-after 100      # RST after 100 bytes
///   poetry-harness faultproxy 10000 --stall-after 100      # then nothing, for ever
///   poetry-harness faultproxy 10000 --rate 50 --slow-close 5s
///   poetry-harness faultproxy 10000 --refuse               # nothing listens
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct FaultProxyArgs {
    /// The server to relay to: port or host:port.
    #[arg(value_parser = addr_arg)]
    target: String,
    #[command(flatten)]
    listen: Listen,
    /// Delay every chunk, both ways.
    #[arg(long, default_value = "0s", value_parser = duration_arg)]
    latency: Duration,
    /// At most this many bytes per second towards the client.
    #[arg(long)]
    rate: Option<u64>,
    /// Forward in pieces of at most this many bytes.
    #[arg(long)]
    slice: Option<usize>,
    /// Reset both connections after this many bytes towards the client.
    #[arg(long)]
    reset_after: Option<u64>,
    /// Forward nothing after this many bytes, and keep the connections open.
    #[arg(long)]
    stall_after: Option<u64>,
    /// Pass the server's FIN on this much later.
    #[arg(long, default_value = "0s", value_parser = duration_arg)]
    slow_close: Duration,
    /// Listen, print the address, then close: every connection is refused.
    #[arg(long)]
    refuse: bool,
}

/// How long the start-up check of the target's name may take: a resolver
/// that has not answered by then will not help the proxy either.
const RESOLVE_LIMIT: Duration = Duration::from_secs(10);

pub fn run(args: FaultProxyArgs) -> anyhow::Result<Exit> {
    if args.slice == Some(0) {
        anyhow::bail!("--slice must be at least 1");
    }
    if args.rate == Some(0) {
        // Zero bytes a second would relay nothing, for ever.
        anyhow::bail!("--rate '0' must be at least 1 (bytes per second)");
    }
    let rt = runtime()?;
    rt.block_on(async move {
        // A target that names no host is found now, not at the first
        // connection (where the proxy could only refuse it).
        let resolve = tokio::net::lookup_host(args.target.as_str());
        let found = match tokio::time::timeout(RESOLVE_LIMIT, resolve).await {
            Ok(Ok(addrs)) => addrs.count(),
            Ok(Err(e)) => anyhow::bail!("target '{}' cannot be resolved: {e}", args.target),
            Err(_) => anyhow::bail!(
                "target '{}' cannot be resolved: no answer within {RESOLVE_LIMIT:?}",
                args.target
            ),
        };
        if found == 0 {
            anyhow::bail!("target '{}' resolves to no address", args.target);
        }
        let what = format!("fault proxy to {}", args.target);
        let listener = listen_on(&args.listen, &what).await?;
        if args.refuse {
            drop(listener);
            return std::future::pending::<anyhow::Result<Exit>>().await;
        }
        let faults = Faults {
            latency: args.latency,
            rate: args.rate,
            slice: args.slice,
            reset_after: args.reset_after,
            stall_after: args.stall_after,
            slow_close: args.slow_close,
        };
        faultproxy::serve(Net::Tokio, listener, args.target, faults).await?;
        Ok(Exit::Ok)
    })
}
