//! `poetry-harness completions SHELL` and `poetry-harness man`: shell
//! completions (clap_complete) and man pages (clap_mangen), both made from
//! the same clap definitions as `--help`, so they cannot drift from it.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};

use super::{Cli, Exit};

/// Print a shell completion script
///
/// Examples:
///   poetry-harness completions bash > ~/.local/share/bash-completion/completions/poetry-harness
///   poetry-harness completions zsh > ~/.zfunc/_poetry-harness   # with fpath+=~/.zfunc
///   poetry-harness completions fish > ~/.config/fish/completions/poetry-harness.fish
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

/// Print or write the manual pages
///
/// Without --out, prints the page of `poetry-harness` itself (roff) to
/// stdout; with --out DIR, writes one page per command into DIR
/// (poetry-harness.1, poetry-harness-run.1, ...).
///
/// Examples:
///   poetry-harness man | man -l -
///   poetry-harness man --out ~/.local/share/man/man1
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ManArgs {
    /// Write every command's page into this folder (made if missing).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs) -> anyhow::Result<Exit> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "poetry-harness", &mut out);
    out.flush()?;
    Ok(Exit::Ok)
}

pub fn man(args: ManArgs) -> anyhow::Result<Exit> {
    let cmd = Cli::command();
    match args.out {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            out.flush()?;
        }
        Some(dir) => {
            let written = write_pages(cmd, &dir)?;
            println!("wrote {written} manual page(s) to {}", dir.display());
        }
    }
    Ok(Exit::Ok)
}

/// Writes the page of `cmd` and of each of its subcommands into `dir`;
/// returns how many.
fn write_pages(cmd: clap::Command, dir: &Path) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("--out '{}': cannot make the folder: {e}", dir.display()))?;
    clap_mangen::generate_to(cmd.clone(), dir)
        .map_err(|e| anyhow::anyhow!("--out '{}': cannot write the pages: {e}", dir.display()))?;
    Ok(pages(&cmd))
}

/// The pages clap_mangen writes for `cmd`: its own and one per subcommand,
/// nested ones included (`serve slow`), `help` not.
fn pages(cmd: &clap::Command) -> usize {
    1 + cmd
        .get_subcommands()
        .filter(|c| c.get_name() != "help")
        .map(pages)
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_gets_a_page_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let n = write_pages(Cli::command(), dir.path()).unwrap();
        let run = std::fs::read_to_string(dir.path().join("poetry-harness-run.1")).unwrap();
        assert!(run.contains("poetry\\-harness\\-run"), "{run}");
        assert!(run.contains("\\-\\-manifest"), "{run}");
        let pages = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(pages, n);
        assert!(n >= 16, "{n} pages");
        assert!(dir.path().join("poetry-harness-serve-slow.1").exists());
    }

    #[test]
    fn bash_completion_offers_the_subcommands_and_their_flags() {
        let mut buf = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Cli::command(),
            "poetry-harness",
            &mut buf,
        );
        let script = String::from_utf8(buf).unwrap();
        for word in ["serve", "replay", "bench", "--shrink-to", "--manifest"] {
            assert!(script.contains(word), "{word} missing");
        }
    }
}
