//! What `run` prints on the terminal as it goes: each case's line as the
//! case finishes ([`Printer`]), a progress bar on stderr when it is a
//! terminal, `--quiet` and `--verbose`, and whether to colour the verdict
//! words (`--color`, `NO_COLOR`, `CLICOLOR_FORCE`). Report files are never
//! coloured: only stdout's table is.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use crate::case::Case;
use crate::engine::{CaseResult, Status};
use crate::policy::Scoring;
use crate::transcript::sanitise;
use crate::verdict::Profile;

/// `--color`: whether verdict words on stdout are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColourChoice {
    /// When stdout is a terminal, unless `NO_COLOR` is set (not empty);
    /// `CLICOLOR_FORCE` (not `0`) colours a pipe too; `CLICOLOR=0` or
    /// `TERM=dumb` turn it off.
    #[default]
    Auto,
    /// Always, whatever the environment says.
    Always,
    /// Never.
    Never,
}

/// The choice `--color` made for this process (0 auto, 1 always, 2 never).
static CHOICE: AtomicU8 = AtomicU8::new(0);

/// Records `--color` for [`use_colour`].
pub fn set_colour_choice(choice: ColourChoice) {
    CHOICE.store(choice as u8, Ordering::Relaxed);
}

/// The choice [`set_colour_choice`] recorded.
pub fn colour_choice() -> ColourChoice {
    match CHOICE.load(Ordering::Relaxed) {
        1 => ColourChoice::Always,
        2 => ColourChoice::Never,
        _ => ColourChoice::Auto,
    }
}

/// The environment that `--color auto` reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct ColourEnv<'a> {
    /// `NO_COLOR`.
    pub no_color: Option<&'a OsStr>,
    /// `CLICOLOR_FORCE`.
    pub clicolor_force: Option<&'a OsStr>,
    /// `CLICOLOR`.
    pub clicolor: Option<&'a OsStr>,
    /// `TERM`.
    pub term: Option<&'a OsStr>,
    /// Whether stdout is a terminal.
    pub terminal: bool,
}

/// Whether to colour, following <https://no-color.org> and
/// <https://bixense.com/clicolors/>: an explicit `always` or `never`
/// wins; else a non-empty `NO_COLOR` turns colour off, a `CLICOLOR_FORCE`
/// other than empty or `0` turns it on, `CLICOLOR=0` turns it off, and
/// otherwise a terminal (not `TERM=dumb`) is coloured.
pub fn colour_wanted(choice: ColourChoice, env: ColourEnv<'_>) -> bool {
    let set = |v: Option<&OsStr>| v.is_some_and(|v| !v.is_empty());
    match choice {
        ColourChoice::Always => true,
        ColourChoice::Never => false,
        ColourChoice::Auto => {
            if set(env.no_color) {
                false
            } else if set(env.clicolor_force) && env.clicolor_force != Some(OsStr::new("0")) {
                true
            } else if env.clicolor == Some(OsStr::new("0")) {
                false
            } else {
                env.terminal && env.term != Some(OsStr::new("dumb"))
            }
        }
    }
}

/// Whether to colour stdout now: [`colour_wanted`] for this process's
/// `--color` and environment.
pub fn use_colour() -> bool {
    let (no_color, force, clicolor, term) = (
        std::env::var_os("NO_COLOR"),
        std::env::var_os("CLICOLOR_FORCE"),
        std::env::var_os("CLICOLOR"),
        std::env::var_os("TERM"),
    );
    colour_wanted(
        colour_choice(),
        ColourEnv {
            no_color: no_color.as_deref(),
            clicolor_force: force.as_deref(),
            clicolor: clicolor.as_deref(),
            term: term.as_deref(),
            terminal: std::io::stdout().is_terminal(),
        },
    )
}

/// How much `run` prints per case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// `--quiet`: only the failures (with their explanation and
    /// transcript) and harness errors, then the summary.
    Quiet,
    /// Every case's line, and each failure's explanation and transcript.
    #[default]
    Normal,
    /// `--verbose`: also every case's title, its times (the harness's
    /// wall time, and the transcript's span: simulated time in the
    /// simulator) and, for a simulated case that passed, the command
    /// that replays it.
    Verbose,
}

/// Whether `--quiet` shows a case: a failure under the profile, or a
/// harness error.
pub fn is_failure(r: &CaseResult, profile: Profile) -> bool {
    match r.status {
        Status::HarnessError => true,
        Status::Interrupted => false,
        Status::Judged => r.verdict.kind.fails(profile),
    }
}

/// What `--verbose` adds under a case's line.
pub fn verbose_details(r: &CaseResult, profile: Profile, transcripts: bool) -> String {
    // A failure's explanation starts with the title (`case: ...`).
    let explained = r.status == Status::Judged && r.verdict.kind.fails(profile);
    let mut out = String::new();
    if !explained {
        out.push_str(&format!("    title: {}\n", sanitise(&r.case.title)));
    }
    let wall = r.wall.as_secs_f64();
    match &r.outcome {
        Some(o) if o.tolerance.is_none() => out.push_str(&format!(
            "    time: {wall:.3}s on the harness's clock, {:.3}s simulated\n",
            o.transcript.span().as_secs_f64()
        )),
        Some(o) => out.push_str(&format!(
            "    time: {wall:.3}s, of which the transcript spans {:.3}s\n",
            o.transcript.span().as_secs_f64()
        )),
        None => out.push_str(&format!("    time: {wall:.3}s (not run)\n")),
    }
    // A failure's details (or --transcripts) print the command already.
    let shown = transcripts || r.verdict.kind.fails(profile);
    if !shown {
        if let Some(command) = crate::failure::reproduce(r, profile) {
            out.push_str(&format!("    reproduce: {command}\n"));
        }
    }
    out
}

/// What the printer has done so far.
#[derive(Debug)]
struct State {
    /// Which of the run's cases (in catalog order) have been printed.
    printed: Vec<bool>,
    /// Cases finished, and failed, so far (for the progress bar).
    failed: usize,
    /// Set by [`Printer::finish`]: nothing more is streamed.
    closed: bool,
    /// Whether anything has been printed (else the summary needs no
    /// blank line above it).
    wrote: bool,
}

/// Prints a run's cases on stdout as they finish (in the order they
/// finish, which with several `--jobs` need not be the catalog's), then
/// the cases that never finished and the summary. The report files keep
/// the catalog order; only this stream follows the clock.
pub struct Printer {
    profile: Profile,
    verbosity: Verbosity,
    transcripts: bool,
    colour: bool,
    width: usize,
    index: HashMap<String, usize>,
    bar: indicatif::ProgressBar,
    state: Mutex<State>,
}

impl Printer {
    /// A printer for `cases`. `bar`: draw a progress bar on stderr (only
    /// when it is a terminal: see [`Printer::for_terminal`]).
    pub fn new(
        cases: &[&Case],
        profile: Profile,
        verbosity: Verbosity,
        transcripts: bool,
        colour: bool,
        bar: bool,
    ) -> Self {
        let bar = if bar {
            let bar = indicatif::ProgressBar::new(cases.len() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} cases, {msg} [{elapsed} elapsed, ETA {eta}]",
                )
                .expect("a valid progress template"),
            );
            bar.set_message("0 failed");
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        Printer {
            profile,
            verbosity,
            transcripts,
            colour,
            width: super::id_width(cases.iter().copied()),
            index: cases
                .iter()
                .enumerate()
                .map(|(i, c)| (c.id.clone(), i))
                .collect(),
            bar,
            state: Mutex::new(State {
                printed: vec![false; cases.len()],
                failed: 0,
                closed: false,
                wrote: false,
            }),
        }
    }

    /// [`Printer::new`] with a progress bar when stderr is a terminal
    /// and there is more than one case: never in a pipe or a CI log.
    pub fn for_terminal(
        cases: &[&Case],
        profile: Profile,
        verbosity: Verbosity,
        transcripts: bool,
    ) -> Self {
        let bar = std::io::stderr().is_terminal() && cases.len() > 1;
        Printer::new(cases, profile, verbosity, transcripts, use_colour(), bar)
    }

    /// What the printer shows of one case: nothing (a case `--quiet`
    /// hides), or its line and the details under it.
    pub fn block(&self, r: &CaseResult) -> String {
        if self.verbosity == Verbosity::Quiet && !is_failure(r, self.profile) {
            return String::new();
        }
        let mut out = super::case_line(r, self.width, self.colour);
        if self.verbosity == Verbosity::Verbose {
            out.push_str(&verbose_details(r, self.profile, self.transcripts));
        }
        out.push_str(&super::case_details(r, self.profile, self.transcripts));
        out
    }

    /// A line before the cases (e.g. the live timing header), unless quiet.
    pub fn header(&self, line: &str) {
        if self.verbosity != Verbosity::Quiet {
            if let Ok(mut state) = self.state.lock() {
                state.wrote = true;
                self.write(&format!("{line}\n"));
            }
        }
    }

    /// A case has finished: print it now and move the bar on.
    pub fn finished(&self, r: &CaseResult) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.closed {
            return;
        }
        let Some(&i) = self.index.get(&r.case.id) else {
            return;
        };
        if std::mem::replace(&mut state.printed[i], true) {
            return;
        }
        if is_failure(r, self.profile) {
            state.failed += 1;
        }
        let block = self.block(r);
        state.wrote |= !block.is_empty();
        self.write(&block);
        self.bar.set_message(format!("{} failed", state.failed));
        self.bar.inc(1);
    }

    /// The run is over (or interrupted): no more streaming; print the
    /// cases of `results` (in catalog order) not printed yet, such as
    /// those an interrupt or `--fail-fast` left unfinished, then the
    /// footer. Returns what it printed after the streamed lines.
    pub fn finish(
        &self,
        results: &[CaseResult],
        impl_name: &str,
        scoring: Option<&Scoring>,
    ) -> std::io::Result<String> {
        let mut rest = String::new();
        let mut wrote = true;
        if let Ok(mut state) = self.state.lock() {
            state.closed = true;
            wrote = state.wrote;
            for r in results {
                let printed = match self.index.get(&r.case.id) {
                    Some(&i) => std::mem::replace(&mut state.printed[i], true),
                    None => false,
                };
                if !printed {
                    rest.push_str(&self.block(r));
                }
            }
        }
        self.bar.finish_and_clear();
        let footer = super::footer(results, impl_name, self.profile, scoring);
        // A quiet run that passed: the summary alone, no blank line first.
        match wrote || !rest.is_empty() {
            true => rest.push_str(&footer),
            false => rest.push_str(footer.trim_start_matches('\n')),
        }
        let mut out = std::io::stdout().lock();
        out.write_all(rest.as_bytes())?;
        out.flush()?;
        Ok(rest)
    }

    /// Writes to stdout with the progress bar out of the way.
    fn write(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.bar.suspend(|| {
            let mut out = std::io::stdout().lock();
            // A closed stdout ends the run at its last write, in `finish`.
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &[(&str, &'a str)], terminal: bool) -> ColourEnv<'a> {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsStr::new(*v))
        };
        ColourEnv {
            no_color: get("NO_COLOR"),
            clicolor_force: get("CLICOLOR_FORCE"),
            clicolor: get("CLICOLOR"),
            term: get("TERM"),
            terminal,
        }
    }

    #[test]
    fn auto_colours_a_terminal_unless_the_environment_says_otherwise() {
        use ColourChoice::*;
        assert!(colour_wanted(Auto, env(&[], true)));
        assert!(!colour_wanted(Auto, env(&[], false)));
        assert!(!colour_wanted(Auto, env(&[("NO_COLOR", "1")], true)));
        // An empty NO_COLOR is unset (no-color.org).
        assert!(colour_wanted(Auto, env(&[("NO_COLOR", "")], true)));
        assert!(colour_wanted(Auto, env(&[("CLICOLOR_FORCE", "1")], false)));
        assert!(!colour_wanted(Auto, env(&[("CLICOLOR_FORCE", "0")], false)));
        assert!(!colour_wanted(
            Auto,
            env(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")], true)
        ));
        assert!(!colour_wanted(Auto, env(&[("CLICOLOR", "0")], true)));
        assert!(!colour_wanted(Auto, env(&[("TERM", "dumb")], true)));
        // An explicit choice beats the environment.
        assert!(colour_wanted(Always, env(&[("NO_COLOR", "1")], false)));
        assert!(!colour_wanted(Never, env(&[("CLICOLOR_FORCE", "1")], true)));
    }
}
