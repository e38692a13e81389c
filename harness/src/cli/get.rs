//! `poetry-harness get`: the poetry client and the transforming client.

use std::io::Write;
use std::time::Duration;

use clap::Args;

use super::{addr_arg, duration_arg, implementation_for, runtime, Exit};
use crate::case::Role;
use crate::net::Net;
use crate::protocol::transform::Transform;
use crate::reference::{ClientConfig, FetchError, TransformClient, Transformed};

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
Exit status 1 if any download failed.

Examples:
  poetry-harness get 10000 10001 127.0.0.1:10002
  poetry-harness get --transform 11000 10000";

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
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    match &args.transform {
        None => {
            let client = imp.client.clone().ok_or_else(missing)?;
            // Called inside the runtime: an implementation may spawn tasks
            // before it returns its future.
            let addrs = args.addrs.clone();
            let results = rt.block_on(async { client.get_poems(Net::Tokio, addrs, config).await });
            for (addr, result) in args.addrs.iter().zip(results) {
                match result {
                    Ok(poem) => {
                        out.write_all(&poem)?;
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
        }
    }
    out.flush()?;
    Ok(if failed { Exit::Failed } else { Exit::Ok })
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
