//! `poetry-harness pair`: an implementation's client against its own
//! server, through the fault-injecting proxy.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::Exit;
use crate::backend::live::launch::probe_command_with;
use crate::backend::live::manifest::Manifest;
use crate::backend::live::pair::{self, SCENARIOS};
use crate::backend::live::{process, LiveSubject};
use crate::case::Role;
use crate::verdict::Profile;

/// Pair tests: an implementation's client against its own server
///
/// The manifest must declare [client] and [server]. Between them runs the
/// fault proxy: clean, sliced, slow, late FIN, reset, stall.
///
/// Example:
///   poetry-harness pair --manifest fixtures/python/asyncio.toml
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct PairArgs {
    /// The implementation's manifest.
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// Profile to judge against (default: the manifest's).
    #[arg(long)]
    profile: Option<Profile>,
    /// Multiply delays by this (default: the manifest's, else 0.05).
    #[arg(long)]
    time_scale: Option<f64>,
    /// Run in new user, mount, network and PID namespaces with only a
    /// loopback of their own: programs cannot reach the network or the
    /// host's processes, and nothing they start outlives the run. An error
    /// (exit 2) where the kernel does not allow it.
    #[arg(long)]
    pub(super) sandbox: bool,
}

pub fn run(args: PairArgs) -> anyhow::Result<Exit> {
    let m = Manifest::load(&args.manifest).map_err(|e| anyhow::anyhow!(e))?;
    let scale = args
        .time_scale
        .or(m.time_scale)
        .unwrap_or(crate::backend::live::DEFAULT_TIME_SCALE);
    let subject = |role: Role| -> anyhow::Result<LiveSubject> {
        let rc = m.role(role).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: pair tests need [client] and [server]; [{}] is missing",
                args.manifest.display(),
                crate::backend::live::manifest::table(role)
            )
        })?;
        Ok(LiveSubject {
            role,
            command: rc.command.clone(),
            contract: rc.contract,
            startup_timeout: Duration::from_secs_f64(rc.startup_timeout),
            time_scale: scale,
            exit_127_unsupported: probe_command_with(&rc.command, &m.env_of(role)).map_err(
                |e| {
                    anyhow::anyhow!(
                        "{}: [{}] command: {e}",
                        args.manifest.display(),
                        crate::backend::live::manifest::table(role)
                    )
                },
            )?,
            lacks: rc.lacks.clone(),
            env: m.env_of(role),
        })
    };
    let (server, client) = (subject(Role::Server)?, subject(Role::Client)?);
    let profile = args.profile.unwrap_or(m.profile());
    process::install_interrupt_handler();
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for sc in SCENARIOS {
        let r = pair::run(&server, &client, sc);
        if r.kind.fails(profile) {
            failed += 1;
        }
        writeln!(out, "{:<22} {:<11} {}", sc.id, r.kind.label(), r.reason)?;
        if r.kind.fails(profile) {
            for line in &r.transcript {
                writeln!(out, "    {line}")?;
            }
        }
    }
    writeln!(out, "{} passed, {failed} failed", SCENARIOS.len() - failed)?;
    Ok(if failed > 0 { Exit::Failed } else { Exit::Ok })
}
