//! `poetry-harness get`: the poetry client and the transforming client.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{addr_arg, duration_arg, implementation_for, runtime, Exit};
use crate::case::Role;
use crate::net::Net;
use crate::protocol::transform::Transform;
use crate::reference::{ClientConfig, FetchError, OnBytes, TransformClient, Transformed};

/// Arguments of `get`. The help text is `AFTER_HELP`: the doc comment of
/// the `Get` variant in `cli/mod.rs` replaces a doc comment here.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct GetArgs {
    /// Poetry servers: port (on 127.0.0.1) or host:port.
    #[arg(required = true, value_parser = addr_arg)]
    addrs: Vec<String>,
    /// Send each poem to this transform server; print the original if that fails.
    #[arg(long, value_name = "XFORM_ADDR", value_parser = addr_arg)]
    transform: Option<String>,
    /// Transform to ask for with --transform.
    #[arg(long, default_value = "cummingsify", value_parser = transform_arg)]
    transform_name: Transform,
    /// Give up connecting after this long.
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    connect_timeout: Duration,
    /// Give up on a poem when no byte arrives for this long.
    #[arg(long, default_value = "30s", value_parser = duration_arg)]
    idle_timeout: Duration,
    /// With --transform: print the original when the transform server has
    /// not replied after this long.
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    transform_timeout: Duration,
    /// Do not print progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Run the mutant of this name (fixtures/mutants/) instead of the
    /// reference: how `mutants --live` runs the zoo as programs.
    #[arg(long, hide = true, value_name = "NAME")]
    mutant: Option<String>,
}

/// Shown after the options of `get --help`.
const AFTER_HELP: &str = "\
Prints each poem on stdout, in argument order; failures go to stderr.
Exit status 1 if any download failed. When stdout is a terminal, a single
poem is shown as it arrives, and several downloads as byte counts on
stderr until the poems are printed.

A caching proxy sends nothing until it has its upstream's whole poem:
in front of a slow server, allow for that with --idle-timeout.

Examples:
  poetry-harness get 10000 10001 127.0.0.1:10002
  poetry-harness get --transform 11000 10000
  poetry-harness get --idle-timeout 90s 12001";

fn transform_arg(s: &str) -> Result<Transform, String> {
    s.parse::<Transform>().map_err(|e| e.to_string())
}

pub fn run(args: GetArgs) -> anyhow::Result<Exit> {
    let config = ClientConfig {
        connect_timeout: args.connect_timeout,
        idle_timeout: args.idle_timeout,
    };
    let role = match args.transform {
        None => Role::Client,
        Some(_) => Role::TransformClient,
    };
    let imp = implementation_for(role, args.mutant.as_deref())?;
    let missing = || anyhow::anyhow!("implementation '{}' has no {role}", imp.name);
    let rt = runtime()?;
    let mut failed = false;
    match &args.transform {
        None => {
            let client = imp.client.clone().ok_or_else(missing)?;
            // Only for a person: a script or a test reads stdout from a
            // pipe and gets the poems whole, in argument order, as always.
            let watch = std::io::stdout()
                .is_terminal()
                .then(|| Watch::new(&args.addrs, args.quiet));
            // Called inside the runtime: an implementation may spawn tasks
            // before it returns its future.
            let addrs = args.addrs.clone();
            let results = rt.block_on(async {
                match &watch {
                    None => client.get_poems(Net::Tokio, addrs, config).await,
                    Some(w) => {
                        let on_bytes = w.on_bytes();
                        client
                            .get_poems_watched(Net::Tokio, addrs, config, on_bytes)
                            .await
                    }
                }
            });
            // Locked only now: a download task writes a streamed poem
            // from another thread.
            let mut out = std::io::stdout().lock();
            let streamed = watch.as_ref().is_some_and(Watch::streams);
            if let Some(w) = &watch {
                w.finish(&mut out)?;
            }
            for (addr, result) in args.addrs.iter().zip(results) {
                match result {
                    Ok(poem) => {
                        if !streamed {
                            out.write_all(&poem)?;
                        }
                        progress(
                            &args,
                            format_args!("{addr}: got {} bytes of poetry", poem.len()),
                        );
                    }
                    Err(e) => {
                        failed = true;
                        fail_line(addr, &e);
                    }
                }
            }
            out.flush()?;
        }
        Some(xform) => {
            let client = imp.transform_client.clone().ok_or_else(missing)?;
            let config = TransformClient {
                xform_addr: xform.clone(),
                transform: args.transform_name.name().to_string(),
                client: config,
                transform_timeout: args.transform_timeout,
            };
            let addrs = args.addrs.clone();
            let results = rt.block_on(async { client.run(Net::Tokio, addrs, config).await });
            let mut out = std::io::stdout().lock();
            for (addr, result) in args.addrs.iter().zip(results) {
                out.write_all(result.output())?;
                match result {
                    Transformed::Poem(p) => {
                        progress(&args, format_args!("{addr}: transformed {} bytes", p.len()))
                    }
                    Transformed::Fallback { failure, .. } => eprintln!(
                        "poetry-harness: {addr}: transform failed: {}: {failure}; printed the original poem",
                        failure.kind()
                    ),
                    Transformed::DownloadFailed(e) => {
                        failed = true;
                        fail_line(addr, &e);
                    }
                }
            }
            out.flush()?;
        }
    }
    Ok(if failed { Exit::Failed } else { Exit::Ok })
}

/// How `get` shows downloads under way when stdout is a terminal.
enum Watch {
    /// One download: its bytes go to stdout as they arrive (the series'
    /// slow server shows ten bytes at a time). Remembers whether the last
    /// byte written ended a line.
    Stream(Arc<AtomicBool>),
    /// Several: a line per download on stderr counting the bytes so far;
    /// the poems are printed whole, in argument order, at the end.
    Counters(MultiProgress, Vec<ProgressBar>),
}

impl Watch {
    fn new(addrs: &[String], quiet: bool) -> Self {
        if addrs.len() == 1 {
            return Watch::Stream(Arc::new(AtomicBool::new(false)));
        }
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            // Hidden by indicatif itself when stderr is not a terminal.
            ProgressDrawTarget::stderr()
        };
        let all = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template("{prefix}: {pos} bytes {spinner}")
            .expect("a valid template");
        let bars = addrs
            .iter()
            .map(|addr| {
                let bar = all.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(addr.clone());
                bar.enable_steady_tick(Duration::from_millis(100));
                bar
            })
            .collect();
        Watch::Counters(all, bars)
    }

    fn streams(&self) -> bool {
        matches!(self, Watch::Stream(_))
    }

    /// What the client calls with each run of bytes it reads.
    fn on_bytes(&self) -> OnBytes {
        match self {
            Watch::Stream(mid_line) => {
                let mid_line = mid_line.clone();
                Arc::new(move |_, bytes: &[u8]| {
                    let mut out = std::io::stdout().lock();
                    // A terminal that went away: the download still ends
                    // and is reported as usual.
                    let _ = out.write_all(bytes).and_then(|()| out.flush());
                    if let Some(last) = bytes.last() {
                        mid_line.store(*last != b'\n', Ordering::Relaxed);
                    }
                })
            }
            Watch::Counters(_, bars) => {
                let bars = bars.clone();
                Arc::new(move |i, bytes: &[u8]| bars[i].inc(bytes.len() as u64))
            }
        }
    }

    /// Once every download has ended: clears the counters; ends a streamed
    /// poem's last line so that the report lines start on a line of their
    /// own.
    fn finish(&self, out: &mut impl Write) -> std::io::Result<()> {
        match self {
            Watch::Stream(mid_line) => {
                if mid_line.load(Ordering::Relaxed) {
                    out.write_all(b"\n")?;
                }
            }
            Watch::Counters(all, bars) => {
                for bar in bars {
                    bar.finish_and_clear();
                }
                all.clear()?;
            }
        }
        Ok(())
    }
}

/// The stderr line of a failed download: the address and the reason word
/// (`refused`, `reset`, `timeout`, `error`) that the spec's `exact` output
/// contract looks for, then the details.
fn fail_line(addr: &str, e: &FetchError) {
    eprintln!("poetry-harness: {addr}: {}: {e}", e.kind());
}

fn progress(args: &GetArgs, line: std::fmt::Arguments<'_>) {
    if !args.quiet {
        eprintln!("poetry-harness: {line}");
    }
}
