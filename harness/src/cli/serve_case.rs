//! `poetry-harness serve case ID`: a catalog case's scripted servers as
//! real programs on 127.0.0.1, for running a client or proxy against them
//! by hand (in a debugger, with prints, step by step).
//!
//! The peers are the live backend's own ([`live::start_peers`]) and the
//! command line printed is the live backend's filling of a template
//! ([`live::template_values`]): nothing here plays a peer.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;

use super::run::{load_catalog, number, MAX_TIME_SCALE, MIN_TIME_SCALE};
use super::{runtime, Exit};
use crate::backend::live::{self, process::free_port, template};
use crate::case::{Case, Role, XformBehaviour};
use crate::peers::Observations;
use crate::transcript::Recorder;

/// A catalog case's scripted servers, to run your client or proxy against.
///
/// For a client, transforming client or proxy case: its poetry servers
/// (and transform server, if it has one) listen on 127.0.0.1, behaving
/// exactly as in `run --role ... --cmd ...` (the live backend's own
/// peers), for running your own program against them by hand. Each is
/// printed with its address, then the command line to run: your --cmd
/// template (or a sketch of one) filled in as the live backend fills it
/// for this case. Each peer serves every new connection as the case
/// scripts it, until Ctrl-C; what the peers see and send is printed as
/// it happens.
///
/// Times are the catalog's own (a time scale of 1, not run's 0.05), so
/// there is time to step through your program; --time-scale 0.05 gives
/// the timing `run` uses.
///
/// Server and transform-server cases have no servers to play (the harness
/// plays clients): reproduce those with `poetry-harness run ID --role
/// server --cmd '...'` (exit status 2 here).
///
/// Examples:
///
///   poetry-harness serve case client.fast-poem
///
///   poetry-harness serve case client.three-slow-at-once --port 10000 --cmd 'python3 get_poetry.py {addrs}'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CaseArgs {
    /// The case's ID (see `poetry-harness list`).
    id: String,
    /// First port: the peers listen on consecutive ports from it (servers
    /// in order, then the transform server; a proxy is told the next
    /// one). 0 picks free ports.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Your program's command template, filled in for this case, e.g.
    /// 'python3 get_poetry.py --timeout {timeout} {addrs}' (placeholders
    /// as for `run --cmd`). Without it, a sketch of one for the case's role.
    #[arg(long, value_name = "TEMPLATE")]
    cmd: Option<String>,
    /// Multiply every delay and timeout of the case by this (`run`'s
    /// default is 0.05).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// The seed of the peers' random choices (only cases with random
    /// chunks use one): `run --seed`'s, default the catalog's.
    #[arg(long)]
    seed: Option<u64>,
    /// Read the catalog from this .toml file, or this folder of .toml
    /// files, instead of the built-in one.
    #[arg(long, value_name = "PATH")]
    suites: Option<PathBuf>,
}

/// The template shown when no --cmd is given: a program of the role,
/// given what the case gives it.
fn sketch(role: Role) -> &'static str {
    match role {
        Role::Client => "your-client --timeout {timeout} {addrs}",
        Role::TransformClient => "your-client --transform {transform} {xform} {addrs}",
        Role::Proxy => "your-proxy --port {port} --timeout {timeout} {upstream}",
        Role::Server => "your-server --port {port} {poem}",
        Role::TransformServer => "your-transform-server --port {port}",
    }
}

/// The case named `id`, or an error naming it (and the cases it is a
/// prefix of, if any).
fn find<'a>(cases: &'a [Case], id: &str) -> anyhow::Result<&'a Case> {
    if let Some(c) = cases.iter().find(|c| c.id == id) {
        return Ok(c);
    }
    let starting: Vec<&str> = cases
        .iter()
        .map(|c| c.id.as_str())
        .filter(|c| c.starts_with(id))
        .collect();
    match starting.as_slice() {
        [] => anyhow::bail!("no case '{id}' (try: poetry-harness list)"),
        some => {
            let shown: Vec<&str> = some.iter().take(8).copied().collect();
            let more = if some.len() > 8 { ", ..." } else { "" };
            anyhow::bail!(
                "no case '{id}': serve one case by its whole ID (cases starting so: {}{more})",
                shown.join(", ")
            )
        }
    }
}

/// Why this case cannot be served, with what to do instead.
fn refusal(case: &Case) -> Option<String> {
    if matches!(case.role, Role::Server | Role::TransformServer) {
        return Some(format!(
            "case '{}' checks a {role}: the harness plays its clients, so there are no servers to serve. \
             Run your {role} against the case's clients instead: \
             poetry-harness run {} --role {role} --cmd '{sketch}'",
            case.id,
            case.id,
            role = case.role,
            sketch = sketch(case.role)
        ));
    }
    if let Some(what) = case.net.needs_simnet() {
        return Some(format!(
            "case '{}' cannot run on real sockets: its {what} exist only in the simulator (poetry-harness replay {})",
            case.id, case.id
        ));
    }
    live::live_unsupported(case)
        .map(|why| format!("case '{}' cannot run on real sockets: {why}", case.id))
}

pub fn run(args: &CaseArgs) -> anyhow::Result<Exit> {
    if !(MIN_TIME_SCALE..=MAX_TIME_SCALE).contains(&args.time_scale) {
        anyhow::bail!(
            "--time-scale '{}' must be between {MIN_TIME_SCALE} and {MAX_TIME_SCALE}",
            number(args.time_scale)
        );
    }
    if let Some(cmd) = &args.cmd {
        template::check(cmd).map_err(|e| anyhow::anyhow!("--cmd: {e}"))?;
    }
    let catalog = load_catalog(args.suites.as_ref())?;
    let case = find(&catalog.cases, &args.id)?;
    if let Some(why) = refusal(case) {
        anyhow::bail!(why);
    }
    // As a live run scales it: never below the case's own floor.
    let scale = args.time_scale.max(case.min_time_scale.unwrap_or(0.0));
    let case = live::scaled(case, scale);
    let seed = args
        .seed
        .unwrap_or_else(|| crate::backend::sim::RunOptions::catalog().seed());
    let rt = runtime()?;
    rt.block_on(serve(&case, args, scale, seed))
}

async fn serve(case: &Case, args: &CaseArgs, scale: f64, seed: u64) -> anyhow::Result<Exit> {
    let rec = Recorder::live();
    let seen = Arc::new(Mutex::new(Observations::default()));
    let base = (args.port != 0).then_some(args.port);
    let peers = live::start_peers(case, seed, &rec, &seen, base)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the case's peers: {e}"))?;
    // The proxy's own port: the next after the peers, or a free one.
    let port = match base {
        Some(b) => {
            let used = case.servers.len() + usize::from(case.xform.is_some());
            u16::try_from(usize::from(b) + used)
                .map_err(|_| anyhow::anyhow!("--port {b}: no port left for the program"))?
        }
        None => free_port()?,
    };
    let values = live::template_values(case, &peers.addrs, &peers.xform, port);
    let template = args.cmd.as_deref().unwrap_or(sketch(case.role));
    let command = template::expand(template, &values, true)
        .map_err(|e| anyhow::anyhow!("--cmd: {e} (case '{}' is a {} case)", case.id, case.role))?;

    let mut out = std::io::stdout().lock();
    writeln!(out, "case {}: {}", case.id, case.title)?;
    let scaled = if scale == 1.0 {
        "the case's own times".to_string()
    } else {
        format!("times scaled by {}", number(scale))
    };
    writeln!(out, "its scripted servers, on 127.0.0.1 ({scaled}):")?;
    for ((name, spec), addr) in case
        .server_names()
        .iter()
        .zip(&case.servers)
        .zip(&peers.addrs)
    {
        if spec.refuse {
            writeln!(
                out,
                "refusing on {addr}: {name} (bound, never listening: every connection is refused)"
            )?;
            continue;
        }
        let poem = spec.sent_poem();
        let mut what = format!(
            "{name}, a scripted poetry server ({} bytes of poem",
            poem.len()
        );
        if spec.truncate.is_some() {
            what.push_str(", cut short");
        }
        what.push(')');
        if let Some(n) = spec.misbehave_first {
            what.push_str(&format!(
                "; it misbehaves as scripted on its first {n} connection(s) only, then serves the poem plainly"
            ));
        }
        writeln!(out, "listening on {addr}: {what}")?;
    }
    if let Some(x) = &case.xform {
        if x.behaviour == XformBehaviour::Absent {
            writeln!(
                out,
                "refusing on {}: xform (the transform server is absent: every connection is refused)",
                peers.xform
            )?;
        } else {
            writeln!(
                out,
                "listening on {}: xform, a scripted transform server (behaviour: {})",
                peers.xform,
                behaviour_name(x.behaviour)
            )?;
        }
    }
    let filled = if args.cmd.is_some() {
        "your --cmd"
    } else {
        "a sketch: give --cmd TEMPLATE to fill in your own"
    };
    writeln!(
        out,
        "\nrun your {} against them ({filled}):\n\n  {command}\n",
        case.role
    )?;
    if case.role == Role::Proxy {
        writeln!(
            out,
            "then fetch a poem through it by hand, e.g. poetry-harness get 127.0.0.1:{port}\n\
             (the case's {} scripted client(s) are not played here; `run` plays them)",
            case.clients.iter().map(|c| c.count).sum::<usize>()
        )?;
    }
    writeln!(
        out,
        "each peer serves every new connection as the case scripts it, until Ctrl-C.\n\
         what the peers see and send (seconds since start):"
    )?;
    out.flush()?;
    drop(out);
    let mut tasks = peers.tasks;
    // Held until the end: the refusing ports stay taken.
    let _refusing = peers.refusing;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        print_events(&rec)?;
        if tasks.iter().all(|t| t.is_finished()) {
            for t in tasks.drain(..) {
                let _ = t.await;
            }
            print_events(&rec)?;
            anyhow::bail!("every peer of the case stopped (see the lines above)");
        }
    }
}

/// Prints (and forgets) what the peers logged since last time.
fn print_events(rec: &Recorder) -> anyhow::Result<()> {
    let events = rec.take_events();
    if events.is_empty() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for e in events {
        let folded = e.run.as_ref().map_or(String::new(), |r| {
            format!(
                " (and {} more alike, {} bytes in all)",
                r.count - 1,
                r.bytes
            )
        });
        writeln!(
            out,
            "  {:>8.3}s {} {}{folded}",
            e.at.as_secs_f64(),
            e.who,
            crate::transcript::sanitise(&e.what)
        )?;
    }
    out.flush()?;
    Ok(())
}

/// A transform server behaviour as a catalog file names it.
fn behaviour_name(b: XformBehaviour) -> &'static str {
    match b {
        XformBehaviour::Answer => "answer",
        XformBehaviour::Close => "close",
        XformBehaviour::Reset => "reset",
        XformBehaviour::Stall => "stall",
        XformBehaviour::Absent => "absent",
        XformBehaviour::Malformed => "malformed",
        XformBehaviour::Truncated => "truncated",
        XformBehaviour::InvalidUtf8 => "invalid-utf8",
    }
}
