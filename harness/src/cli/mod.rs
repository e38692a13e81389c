//! The `poetry-harness` command line: clap definitions and dispatch.
//!
//! Exit codes are defined once, in [`Exit`].

mod bench;
mod catalog_cmds;
mod faultproxy;
mod get;
mod manual;
mod merge;
pub mod mutants;
mod pair;
mod run;
mod serve;
mod serve_case;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// What the process tells its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything passed or succeeded.
    Ok = 0,
    /// A case failed, or a download failed.
    Failed = 1,
    /// Bad usage or a harness error.
    Error = 2,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// Conformance harness for the poetry protocols of Dave Peticolas's
/// "Twisted Introduction": poetry servers, clients, the transform server,
/// the transforming client and the caching proxy.
///
/// Check the reference implementations against the whole catalog:
///
///   poetry-harness run
///
/// Try the series' first experiment by hand, in two terminals:
///
///   poetry-harness serve slow tyger --port 10000
///
///   poetry-harness get 10000
///
/// Colour the verdict words (PASS green, FAIL red) even in a pipe:
///
///   poetry-harness --color always run client. | less -R
#[derive(Debug, Parser)]
#[command(name = "poetry-harness", version, verbatim_doc_comment)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Colour the verdict words on the terminal (PASS green, FAIL red,
    /// NON-STRICT yellow, UNSUPPORTED and INFO cyan, ERROR and
    /// INTERRUPTED magenta). auto: when stdout is a terminal, unless
    /// NO_COLOR is set; CLICOLOR_FORCE=1 colours a pipe too. Report files
    /// (--json, --junit, --markdown, --html, ...) are never coloured.
    ///   poetry-harness run --color never
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "WHEN",
        default_value_t = crate::report::terminal::ColourChoice::Auto,
        verbatim_doc_comment
    )]
    color: crate::report::terminal::ColourChoice,
}

#[derive(Debug, Subcommand)]
/// Subcommands. Those without a doc comment here take their help, with
/// examples, from their argument struct's doc comment (a variant's doc
/// comment would replace it).
enum Command {
    /// Run a reference server, or a catalog case's scripted servers
    /// (`serve case ID`), as real programs on this machine.
    Serve(serve::ServeArgs),
    /// Download poems, as the series' clients do (optionally transformed).
    Get(get::GetArgs),
    Run(run::RunArgs),
    Replay(run::ReplayArgs),
    Merge(merge::MergeArgs),
    List(catalog_cmds::ListArgs),
    Explain(catalog_cmds::ExplainArgs),
    Faultproxy(faultproxy::FaultProxyArgs),
    Pair(pair::PairArgs),
    /// Run the catalog against the mutant zoo: kill matrix and mutation score.
    Mutants(mutants::MutantsArgs),
    Bench(bench::BenchArgs),
    Completions(manual::CompletionsArgs),
    Man(manual::ManArgs),
}

impl Command {
    /// Whether the command asks for `--sandbox`.
    fn sandboxed(&self) -> bool {
        match self {
            Command::Run(args) => args.sandbox,
            Command::Mutants(args) => args.sandbox,
            Command::Pair(args) => args.sandbox,
            _ => false,
        }
    }
}

/// Parses the command line, runs it, and maps the outcome to an exit code.
/// Errors are printed as one line, never as a panic or a backtrace.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::report::terminal::set_colour_choice(cli.color);
    // Before anything starts a thread: the whole run moves into the
    // sandbox (the outer process waits there and exits with its status).
    if cli.command.sandboxed() {
        if let Err(e) = crate::backend::live::sandbox::enter() {
            eprintln!("poetry-harness: error: {e}");
            return Exit::Error.into();
        }
    }
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Get(args) => get::run(args),
        Command::Run(args) => run::run(args),
        Command::Replay(args) => run::replay(args),
        Command::Merge(args) => merge::run(args),
        Command::List(args) => catalog_cmds::list(args),
        Command::Explain(args) => catalog_cmds::explain(args),
        Command::Faultproxy(args) => faultproxy::run(args),
        Command::Pair(args) => pair::run(args),
        Command::Mutants(args) => mutants::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Completions(args) => manual::completions(args),
        Command::Man(args) => manual::man(args),
    };
    match result {
        Ok(exit) => exit.into(),
        // The reader of stdout went away (`poetry-harness man | head`):
        // nobody is left to tell, as with any Unix tool.
        Err(e) if is_broken_pipe(&e) => Exit::Ok.into(),
        Err(e) => {
            eprintln!("poetry-harness: error: {e:#}");
            Exit::Error.into()
        }
    }
}

/// Whether an error comes from writing to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The replay a printed `poetry-harness replay ...` command names, parsed
/// as the binary parses it (`words[0]` is the program name), so a test
/// can run exactly what a report printed.
pub fn parse_replay(words: &[String]) -> anyhow::Result<crate::replay::Replay> {
    match Cli::try_parse_from(words)?.command {
        Command::Replay(args) => args.to_replay(),
        _ => anyhow::bail!("not a replay command: '{}'", words.join(" ")),
    }
}

/// A tokio runtime for commands that use real sockets.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// clap value parser for `0.7`, `700ms`, `2s`.
fn duration_arg(s: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse_duration(s)
}

/// clap value parser for server addresses (`port` or `host:port`).
fn addr_arg(s: &str) -> Result<String, String> {
    crate::net::parse_addr(s).map_err(|e| e.to_string())
}

/// The implementation `serve` and `get` run for `role`: the reference, or
/// the mutant named by the hidden `--mutant` flag, so that one code path
/// runs both. A name that is unknown, or that belongs to a mutant of
/// another role, is a usage error naming it and the valid names.
fn implementation_for(
    role: crate::case::Role,
    mutant: Option<&str>,
) -> anyhow::Result<crate::roles::Implementation> {
    let Some(name) = mutant else {
        return Ok(crate::roles::Implementation::reference());
    };
    let valid = crate::mutants::names_of_role(role).join(", ");
    match crate::mutants::by_name(name) {
        Some(m) if m.role == role => Ok((m.build)()),
        Some(m) => anyhow::bail!(
            "mutant '{name}' is a {} mutant, not a {role} one (valid for {role}: {valid})",
            m.role
        ),
        None => anyhow::bail!("unknown mutant '{name}' (valid for {role}: {valid})"),
    }
}
