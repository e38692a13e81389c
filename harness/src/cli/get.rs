//! `poetry-harness get`: the poetry client and the transforming client.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{addr_arg, duration_arg, implementation_for, runtime, Exit};
use crate::case::Role;
use crate::net::Net;
use crate::protocol::transform::Transform;
use crate::reference::{
    ClientConfig, FetchError, OnBytes, OnTransformed, Progress, TransformClient, Transformed,
};

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
    /// Print the bytes of each poem as they arrive (in argument order:
    /// the first poem's, then the next one's from its bytes so far), not
    /// each poem once it has ended. A download that then fails leaves its
    /// first bytes on stdout.
    #[arg(long, conflicts_with = "transform")]
    stream: bool,
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
Prints each poem on stdout in argument order, as soon as it and every
poem before it have ended: a fast poem is printed while a slow one
behind it is still arriving. A failed download prints nothing on stdout
(the bytes of a poem cut short by a reset or a timeout are not a poem)
and a line on stderr. Exit status 1 if any download failed.

--stream prints the bytes of the poem at the head of the order as they
arrive (then the next poem's, from its bytes so far), as the series'
clients do: if that download then fails, the bytes already printed stay
on stdout and its stderr line says how many there were. When stdout is a
terminal, one poem streams so; several show byte counts on stderr until
the poems are printed.

With --transform, a poem's reply is one netstring, decoded when it has
arrived whole: each transformed poem (or the original, when the
transformation fails) is printed as soon as its reply is decoded and
every poem before it is printed.

A caching proxy sends nothing until it has its upstream's whole poem:
in front of a slow server, allow for that with --idle-timeout.

Examples:
  poetry-harness get 10000 10001 127.0.0.1:10002
  poetry-harness get --stream 10000
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
    let terminal = std::io::stdout().is_terminal();
    let ordered = match &args.transform {
        None => {
            let client = imp.client.clone().ok_or_else(missing)?;
            // For a person watching several downloads: counters on
            // stderr, the poems at the end.
            let counters =
                (terminal && args.addrs.len() > 1 && !args.stream).then(|| counters(&args));
            let stream = args.stream || (terminal && args.addrs.len() == 1);
            let ordered = Arc::new(Ordered::new(&args, stream && counters.is_none()));
            let on_progress: OnBytes = match &counters {
                Some((_, bars)) => {
                    let bars = bars.clone();
                    Arc::new(move |i, p: Progress<'_>| {
                        if let Progress::Bytes(b) = p {
                            bars[i].inc(b.len() as u64)
                        }
                    })
                }
                None => {
                    let ordered = ordered.clone();
                    Arc::new(move |i, p: Progress<'_>| match p {
                        Progress::Bytes(b) => ordered.bytes(i, b),
                        Progress::Ended(r) => ordered.ended(i, Outcome::Poem(r.clone())),
                    })
                }
            };
            // Called inside the runtime: an implementation may spawn tasks
            // before it returns its future.
            let addrs = args.addrs.clone();
            let results = rt.block_on(async {
                client
                    .get_poems_watched(Net::Tokio, addrs, config, on_progress)
                    .await
            });
            if let Some((all, bars)) = &counters {
                for bar in bars {
                    bar.finish_and_clear();
                }
                all.clear()?;
            }
            // Whatever the implementation did not report as it went.
            for (i, r) in results.into_iter().enumerate() {
                ordered.ended(i, Outcome::Poem(r));
            }
            ordered
        }
        Some(xform) => {
            let client = imp.transform_client.clone().ok_or_else(missing)?;
            let config = TransformClient {
                xform_addr: xform.clone(),
                transform: args.transform_name.name().to_string(),
                client: config,
                transform_timeout: args.transform_timeout,
            };
            let ordered = Arc::new(Ordered::new(&args, false));
            let on_result: OnTransformed = {
                let ordered = ordered.clone();
                Arc::new(move |i, t: &Transformed| {
                    ordered.ended(i, Outcome::Transformed(t.clone()))
                })
            };
            let addrs = args.addrs.clone();
            let results = rt.block_on(async {
                client
                    .run_reported(Net::Tokio, addrs, config, on_result)
                    .await
            });
            for (i, t) in results.into_iter().enumerate() {
                ordered.ended(i, Outcome::Transformed(t));
            }
            ordered
        }
    };
    let failed = ordered.finish(terminal)?;
    Ok(if failed { Exit::Failed } else { Exit::Ok })
}

/// A line per download on stderr counting its bytes so far (a terminal,
/// several downloads, no --stream).
fn counters(args: &GetArgs) -> (MultiProgress, Vec<ProgressBar>) {
    let target = if args.quiet {
        ProgressDrawTarget::hidden()
    } else {
        // Hidden by indicatif itself when stderr is not a terminal.
        ProgressDrawTarget::stderr()
    };
    let all = MultiProgress::with_draw_target(target);
    let style =
        ProgressStyle::with_template("{prefix}: {pos} bytes {spinner}").expect("a valid template");
    let bars = args
        .addrs
        .iter()
        .map(|addr| {
            let bar = all.add(ProgressBar::new_spinner());
            bar.set_style(style.clone());
            bar.set_prefix(addr.clone());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        })
        .collect();
    (all, bars)
}

/// How one address ended.
enum Outcome {
    /// A download (`get`).
    Poem(Result<Bytes, FetchError>),
    /// A download and its transformation (`get --transform`).
    Transformed(Transformed),
}

/// Writes the results to stdout in argument order (CLIENT-8, TCLIENT-7),
/// each as soon as it and every result before it have ended, with its
/// stderr line; streaming, also the bytes of the download at the head of
/// the order as they arrive. Called from the download tasks' threads.
struct Ordered {
    addrs: Vec<String>,
    quiet: bool,
    stream: bool,
    state: Mutex<OrderState>,
}

#[derive(Default)]
struct OrderState {
    /// The first address whose result is not written yet.
    next: usize,
    /// Per address: the bytes received before it reached the head
    /// (streaming), how many of its bytes are on stdout, and how it
    /// ended, until written.
    slots: Vec<Slot>,
    /// Some download failed.
    failed: bool,
    /// The last byte written did not end a line.
    mid_line: bool,
    /// The first error writing to stdout (a closed pipe): the downloads
    /// still end, and `get` reports it once they have.
    error: Option<std::io::Error>,
}

#[derive(Default)]
struct Slot {
    early: Vec<u8>,
    printed: usize,
    ended: Option<Outcome>,
    written: bool,
}

impl Ordered {
    fn new(args: &GetArgs, stream: bool) -> Self {
        Ordered {
            addrs: args.addrs.clone(),
            quiet: args.quiet,
            stream,
            state: Mutex::new(OrderState {
                slots: args.addrs.iter().map(|_| Slot::default()).collect(),
                ..OrderState::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OrderState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of download `i` just read: on stdout at once if it is at the
    /// head of the order and streaming, else kept until it is.
    fn bytes(&self, i: usize, b: &[u8]) {
        if !self.stream || b.is_empty() {
            return;
        }
        let mut st = self.lock();
        if st.next == i {
            st.write(b);
            st.flush();
            st.slots[i].printed += b.len();
        } else if let Some(slot) = st.slots.get_mut(i) {
            slot.early.extend_from_slice(b);
        }
    }

    /// Download `i` ended: written, with every result after it that has
    /// ended too, once every result before it is written. A second report
    /// of the same address (the final results, after those reported as
    /// they ended) is ignored.
    fn ended(&self, i: usize, outcome: Outcome) {
        let mut st = self.lock();
        let Some(slot) = st.slots.get_mut(i) else {
            return;
        };
        if slot.written || slot.ended.is_some() {
            return;
        }
        slot.ended = Some(outcome);
        while st.next < st.slots.len() {
            let at = st.next;
            let Some(outcome) = st.slots[at].ended.take() else {
                break;
            };
            self.write_result(&mut st, at, outcome);
            st.slots[at].written = true;
            st.next += 1;
            if self.stream && st.next < st.slots.len() {
                // The next download reaches the head: its bytes so far,
                // unless it already failed (then they are not a poem).
                let next = st.next;
                let early = std::mem::take(&mut st.slots[next].early);
                let failed = matches!(st.slots[next].ended, Some(Outcome::Poem(Err(_))));
                if !failed && !early.is_empty() {
                    st.write(&early);
                    st.slots[next].printed = early.len();
                }
            }
        }
        st.flush();
    }

    /// One result: its bytes not yet on stdout, and its stderr line.
    fn write_result(&self, st: &mut OrderState, i: usize, outcome: Outcome) {
        let addr = &self.addrs[i];
        let printed = st.slots[i].printed;
        match outcome {
            Outcome::Poem(Ok(poem)) => {
                st.write(poem.get(printed..).unwrap_or_default());
                self.progress(format_args!("{addr}: got {} bytes of poetry", poem.len()));
            }
            Outcome::Poem(Err(e)) => {
                st.failed = true;
                st.flush();
                fail_line(addr, &e);
                if printed > 0 {
                    eprintln!(
                        "poetry-harness: {addr}: the {printed} byte(s) --stream printed for it are not a whole poem"
                    );
                }
            }
            Outcome::Transformed(t) => {
                st.write(t.output());
                st.flush();
                match t {
                    Transformed::Poem(p) => {
                        self.progress(format_args!("{addr}: transformed {} bytes", p.len()))
                    }
                    Transformed::Fallback { failure, .. } => eprintln!(
                        "poetry-harness: {addr}: transform failed: {}: {failure}; printed the original poem",
                        failure.kind()
                    ),
                    Transformed::DownloadFailed(e) => {
                        st.failed = true;
                        fail_line(addr, &e);
                    }
                }
            }
        }
    }

    fn progress(&self, line: std::fmt::Arguments<'_>) {
        if !self.quiet {
            eprintln!("poetry-harness: {line}");
        }
    }

    /// Once every download has ended: ends a streamed poem's last line on
    /// a terminal (so that the shell's prompt starts on a line of its
    /// own); whether any download failed, or the error writing stdout.
    fn finish(&self, terminal: bool) -> anyhow::Result<bool> {
        let mut st = self.lock();
        // An implementation that returned fewer results than addresses
        // (a mutant that stops early): those it gave, in order; nothing
        // for the others, as it printed.
        while st.next < st.slots.len() {
            let at = st.next;
            if let Some(outcome) = st.slots[at].ended.take() {
                self.write_result(&mut st, at, outcome);
            }
            st.next += 1;
        }
        if terminal && self.stream && st.mid_line {
            st.write(b"\n");
        }
        st.flush();
        match st.error.take() {
            Some(e) => Err(e.into()),
            None => Ok(st.failed),
        }
    }
}

impl OrderState {
    fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.error.is_some() {
            return;
        }
        match std::io::stdout().lock().write_all(bytes) {
            Ok(()) => self.mid_line = bytes.last() != Some(&b'\n'),
            Err(e) => self.error = Some(e),
        }
    }

    fn flush(&mut self) {
        if self.error.is_none() {
            if let Err(e) = std::io::stdout().lock().flush() {
                self.error = Some(e);
            }
        }
    }
}

/// The stderr line of a failed download: the address and the reason word
/// (`refused`, `reset`, `timeout`, `error`) that the spec's `exact` output
/// contract looks for, then the details.
fn fail_line(addr: &str, e: &FetchError) {
    eprintln!("poetry-harness: {addr}: {}: {e}", e.kind());
}
