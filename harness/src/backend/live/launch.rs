//! Before a program runs: can its command run at all, and does it follow
//! the exit-127 "unsupported" convention?
//!
//! A command that cannot run (empty, a program word found nowhere, a
//! missing interpreter or script file) is the user's typing mistake, not a
//! verdict: the run stops with a usage error that names the command. It is
//! caught twice:
//! - statically, by [`check_command`]: the command template is read the way
//!   `sh` would read it (simple commands, quotes, assignments), each
//!   program word is resolved in `PATH` or as a path, and an interpreter's
//!   script argument must exist;
//! - at run time, by [`shell_cannot_run`]: the shell's own exit 127 (or
//!   126) with its `not found` message on stderr.
//!
//! The exit-127 convention is only trusted from a program that
//! demonstrably ran: [`probe_command`] checks the command first, and a
//! probe whose 127 comes with the shell's message is an error, not a
//! convention.
//!
//! The same reading of the command serves [`absolutize`]: programs run in a
//! fresh temporary directory, so relative paths typed in a command are made
//! absolute against the harness's working directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;

use super::process::Program;
use super::template;

/// Exit status by which a program declares a case unsupported (the QUIC
/// interop runner's convention), when its probe showed it follows it.
pub const UNSUPPORTED_STATUS: i32 = 127;

/// The case name used to probe for that convention.
pub const PROBE_CASE: &str = "bogus-poetry-harness-probe";

/// Longest wait for the probe run to exit.
const PROBE_LIMIT: Duration = Duration::from_secs(5);

/// Why a command cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// Nothing to run.
    #[error("the command is empty")]
    Empty,
    /// A placeholder is unknown or a brace unbalanced.
    #[error("{0}")]
    Template(String),
    /// The program word names nothing in `PATH`.
    #[error("program '{program}' not found in PATH (command '{command}')")]
    NotFound {
        /// The program word.
        program: String,
        /// The whole command.
        command: String,
    },
    /// The program word is a path to nothing, or to something not executable.
    #[error("program '{program}' {why} (command '{command}')")]
    BadPath {
        /// The program word.
        program: String,
        /// What is wrong with it.
        why: &'static str,
        /// The whole command.
        command: String,
    },
    /// An interpreter's script argument does not exist.
    #[error("script file '{file}' of '{program}' not found in '{dir}' (command '{command}')")]
    MissingScript {
        /// The script argument.
        file: String,
        /// The interpreter.
        program: String,
        /// Where relative paths are looked up.
        dir: String,
        /// The whole command.
        command: String,
    },
    /// It was run, and the shell or the interpreter said it cannot run.
    #[error("the command cannot run: {message} (exit status {status}; command '{command}')")]
    CannotRun {
        /// What the shell or interpreter printed.
        message: String,
        /// Its exit status.
        status: i32,
        /// The whole command.
        command: String,
    },
}

/// One word of a command as `sh` would split it (a subset of the shell
/// grammar: enough to find program words and paths).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    /// The word with quotes removed.
    text: String,
    /// No quotes, escapes, expansions or globs: the text is the source.
    plain: bool,
    /// Byte range in the command.
    span: std::ops::Range<usize>,
}

/// The simple commands of a command line (split at `;`, `&&`, `||`, `|`,
/// `&` and newlines), each a list of words. `None` when the line uses
/// shell syntax this reader does not follow (subshells, compound
/// commands, here-documents): then nothing is checked statically.
fn simple_commands(command: &str) -> Option<Vec<Vec<Word>>> {
    let b = command.as_bytes();
    let mut all = vec![Vec::new()];
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' => i += 1,
            b'\n' | b';' | b'&' | b'|' => {
                // `2>&1` and `>&2` are redirections, taken with their word.
                i += 1;
                if i < b.len() && b[i] == c && c != b'\n' {
                    i += 1;
                }
                all.push(Vec::new());
            }
            b'(' | b')' | b'`' => return None,
            b'<' if b.get(i + 1) == Some(&b'<') => return None,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            _ => {
                let start = i;
                let mut text = String::new();
                let mut plain = true;
                while i < b.len() {
                    match b[i] {
                        b' ' | b'\t' | b'\n' | b';' | b'|' | b'(' | b')' => break,
                        // `&` ends a word unless it is part of `>&`.
                        b'&' if i == start || b[i - 1] != b'>' => break,
                        b'\'' => {
                            plain = false;
                            let end = command[i + 1..].find('\'')? + i + 1;
                            text.push_str(&command[i + 1..end]);
                            i = end + 1;
                        }
                        b'"' => {
                            plain = false;
                            i += 1;
                            loop {
                                match *b.get(i)? {
                                    b'"' => break,
                                    b'\\' if i + 1 < b.len() => {
                                        text.push(b[i + 1] as char);
                                        i += 2;
                                    }
                                    b'$' | b'`' => return None,
                                    _ => {
                                        let ch = command[i..].chars().next()?;
                                        text.push(ch);
                                        i += ch.len_utf8();
                                    }
                                }
                            }
                            i += 1;
                        }
                        b'\\' => {
                            plain = false;
                            if let Some(ch) = command[i + 1..].chars().next() {
                                text.push(ch);
                                i += 1 + ch.len_utf8();
                            } else {
                                i += 1;
                            }
                        }
                        _ => {
                            let ch = command[i..].chars().next()?;
                            if "$*?[~{}".contains(ch) {
                                plain = false;
                            }
                            text.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                all.last_mut()?.push(Word {
                    text,
                    plain,
                    span: start..i,
                });
            }
        }
    }
    all.retain(|c| !c.is_empty());
    Some(all)
}

/// Whether a word is a redirection (`>out`, `2>&1`, `<in`), and whether
/// it takes the next word as its file.
fn redirection(w: &str) -> Option<bool> {
    let rest = w.trim_start_matches(|c: char| c.is_ascii_digit());
    if !(rest.starts_with('>') || rest.starts_with('<')) {
        return None;
    }
    let op_len = rest
        .find(|c: char| !matches!(c, '<' | '>' | '&' | '|'))
        .unwrap_or(rest.len());
    Some(op_len == rest.len())
}

fn is_assignment(w: &Word) -> bool {
    w.text.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Shell words that are not programs found in `PATH`: builtins and
/// keywords. A line using one is checked only up to it.
const BUILTINS: &[&str] = &[
    "!", ".", ":", "[", "alias", "break", "case", "cd", "command", "continue", "do", "done",
    "echo", "elif", "else", "esac", "eval", "exit", "export", "false", "fi", "for", "function",
    "if", "kill", "printf", "pwd", "read", "readonly", "return", "set", "shift", "source", "test",
    "then", "trap", "true", "ulimit", "umask", "unset", "until", "wait", "while", "{", "}",
];

/// Words that run the rest of the simple command as a program.
const WRAPPERS: &[&str] = &["exec", "env", "nohup", "nice", "stdbuf", "setsid", "time"];

/// The program and its arguments in one simple command: assignments,
/// redirections and wrappers skipped. `None` for a builtin.
fn program_and_args(words: &[Word]) -> Option<(&Word, Vec<&Word>)> {
    let mut rest: Vec<&Word> = Vec::new();
    let mut skip_next = false;
    for w in words {
        if skip_next {
            skip_next = false;
            continue;
        }
        if let Some(takes_next) = redirection(&w.text).filter(|_| w.plain) {
            skip_next = takes_next;
            continue;
        }
        rest.push(w);
    }
    let mut i = 0;
    loop {
        let w = rest.get(i)?;
        if is_assignment(w) {
            i += 1;
        } else if WRAPPERS.contains(&w.text.as_str()) {
            i += 1;
            // Wrapper options (`nice -n 5`, `stdbuf -oL`, `env -u X`) are
            // skipped with a value when they are a bare letter.
            while let Some(o) = rest.get(i).filter(|o| o.text.starts_with('-')) {
                // `env -C DIR` runs the program elsewhere, as `cd` would.
                if o.text == "-C" || o.text.starts_with("--chdir") {
                    return None;
                }
                i += if o.text.len() == 2 && o.text != "--" {
                    2
                } else {
                    1
                };
            }
        } else if BUILTINS.contains(&w.text.as_str()) {
            return None;
        } else {
            return Some((w, rest[i + 1..].to_vec()));
        }
    }
}

/// Interpreters whose first operand is a script file, with their options
/// that take a value, and those after which there is no script (`-c`).
fn interpreter(program: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    let name = Path::new(program).file_name()?.to_str()?;
    let family = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    Some(match family {
        "python" | "pypy" => (&["-W", "-X", "--check-hash-based-pycs"], &["-c", "-m", "-"]),
        "node" | "nodejs" => (
            &["-r", "--require", "--import"],
            &["-e", "-p", "--eval", "--print", "-"],
        ),
        "ruby" => (&["-I", "-r"], &["-e", "-"]),
        "perl" => (&["-I", "-M", "-m"], &["-e", "-E", "-"]),
        "php" => (&["-d", "-c", "-S", "-t", "-z"], &["-r", "-"]),
        "sh" | "bash" | "dash" | "zsh" | "ksh" => (&["-o", "+o"], &["-c", "-s", "-"]),
        "lua" | "luajit" => (&["-l"], &["-e", "-"]),
        "Rscript" => (&[], &["-e"]),
        "java" => (&["-cp", "-classpath", "--class-path"], &[]),
        _ => return None,
    })
}

/// The script operand of an interpreter's arguments, if there is one.
fn script<'a>(program: &str, args: &[&'a Word]) -> Option<&'a Word> {
    let (with_value, no_script) = interpreter(program)?;
    let java = Path::new(program).file_name().is_some_and(|n| n == "java");
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let t = a.text.as_str();
        if no_script.contains(&t) {
            return None;
        }
        if java && t == "-jar" {
            return args.get(i + 1).copied();
        }
        if with_value.contains(&t) {
            i += 2;
        } else if t.starts_with('-') || (t.starts_with('+') && t.len() > 1) {
            i += 1;
        } else if java {
            // A class name unless it is a source file.
            return t.ends_with(".java").then_some(*a);
        } else {
            return Some(*a);
        }
    }
    None
}

/// Resolves a program word as `sh` would: a path if it holds a `/`, else
/// the first executable of that name in `path`.
fn resolve(program: &str, path: &str, base: &Path) -> Result<PathBuf, &'static str> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = base.join(program);
        return match std::fs::metadata(&p) {
            Err(_) => Err("does not exist"),
            Ok(m) if m.is_dir() => Err("is a directory"),
            Ok(_) if !executable(&p) => Err("is not executable"),
            Ok(_) => Ok(p),
        };
    }
    std::env::split_paths(path)
        .map(|d| base.join(d).join(program))
        .find(|p| executable(p))
        .ok_or("not found")
}

/// Checks, before any case runs, that `template` can run: not blank, known
/// placeholders, every program word found, every interpreter's script
/// file present. Relative paths are looked up in `base` (the directory the
/// harness runs in). Parts of the line that use shell syntax beyond simple
/// commands are left to the run-time check ([`shell_cannot_run`]).
pub fn check_command(template: &str, base: &Path) -> Result<(), CommandError> {
    if template.trim().is_empty() {
        return Err(CommandError::Empty);
    }
    template::check(template).map_err(CommandError::Template)?;
    let Some(commands) = simple_commands(template) else {
        return Ok(());
    };
    let path = std::env::var("PATH").unwrap_or_default();
    for words in &commands {
        // After `cd`, relative paths mean something else: stop here.
        if words.first().is_some_and(|w| w.text == "cd") {
            break;
        }
        let Some((program, args)) = program_and_args(words) else {
            continue;
        };
        if !program.plain {
            continue;
        }
        match resolve(&program.text, &path, base) {
            Ok(_) => {}
            Err("not found") => {
                return Err(CommandError::NotFound {
                    program: program.text.clone(),
                    command: template.to_string(),
                })
            }
            Err(why) => {
                return Err(CommandError::BadPath {
                    program: program.text.clone(),
                    why,
                    command: template.to_string(),
                })
            }
        }
        if let Some(file) = script(&program.text, &args).filter(|w| w.plain) {
            // bash and zsh look a script without a `/` up in PATH too.
            let shell = Path::new(&program.text)
                .file_name()
                .is_some_and(|n| n == "bash" || n == "zsh");
            let in_path = || {
                !file.text.contains('/')
                    && std::env::split_paths(&path).any(|d| base.join(d).join(&file.text).is_file())
            };
            let found = base.join(&file.text).exists() || (shell && in_path());
            if !found {
                return Err(CommandError::MissingScript {
                    file: file.text.clone(),
                    program: program.text.clone(),
                    dir: base.display().to_string(),
                    command: template.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Whether a finished run shows that the command could not run at all:
/// the shell's exit 126 or 127 with its own message (`sh: 1: pyhton3: not
/// found`, `bad interpreter`, `Permission denied`), or an interpreter that
/// could not open its script. Returns the message.
pub fn shell_cannot_run(status: Option<i32>, stderr: &str) -> Option<String> {
    let status = status?;
    let found = |pred: &dyn Fn(&str) -> bool| {
        stderr
            .lines()
            .map(str::trim)
            .find(|l| pred(l))
            // The line reaches a terminal in a usage error: escaped.
            .map(|l| crate::transcript::sanitise(l).into_owned())
    };
    if status == 126 || status == 127 {
        let shell = |l: &str| {
            (l.starts_with("sh: ") || l.starts_with("bash: "))
                && [
                    "not found",
                    "No such file or directory",
                    "Permission denied",
                    "bad interpreter",
                    "cannot execute",
                ]
                .iter()
                .any(|m| l.contains(m))
        };
        if let Some(line) = found(&shell) {
            return Some(line);
        }
    }
    if status != 0 {
        let interp = |l: &str| {
            l.contains("can't open file") && l.contains("No such file")
                || l.starts_with("Error: Cannot find module")
                || l.starts_with("Error: Could not find or load main class")
        };
        return found(&interp);
    }
    None
}

/// Checks `template` ([`check_command`], relative paths against the
/// current directory), then runs it once with a bogus case name: does it
/// exit 127 at once, and is that the program's answer rather than the
/// shell's? `Ok(true)` when the program follows the convention.
pub fn probe_command(template: &str) -> Result<bool, CommandError> {
    probe_command_with(template, &[])
}

/// [`probe_command`], the program also given the harness's values of the
/// variables `env` names (a manifest's `env`), as in its cases.
pub fn probe_command_with(template: &str, env: &[String]) -> Result<bool, CommandError> {
    let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    check_command(template, &base)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Template(format!("cannot start a runtime: {e}")))?;
    let cmd =
        template::expand(template, &IndexMap::new(), false).map_err(CommandError::Template)?;
    rt.block_on(async {
        let mut env = super::process::pass_through(env);
        env.push(("POETRY_CASE".to_string(), PROBE_CASE.to_string()));
        let Ok(mut p) = Program::spawn(&cmd, &env) else {
            return Ok(false);
        };
        let status = p.wait(PROBE_LIMIT).await.and_then(|s| s.code());
        // Let the stderr reader catch up with the exit.
        let stderr = p.stderr_after_exit().await;
        p.kill();
        if let Some(message) = shell_cannot_run(status, &stderr) {
            return Err(CommandError::CannotRun {
                message,
                status: status.unwrap_or_default(),
                command: template.to_string(),
            });
        }
        Ok(status == Some(UNSUPPORTED_STATUS))
    })
}

/// [`probe_command`], with a command that cannot run read as "does not
/// follow the convention" (callers that checked the command already).
pub fn probe(template: &str) -> bool {
    probe_command(template).unwrap_or(false)
}

/// Makes the relative paths typed in `command` absolute against `base`,
/// so that the command means the same in the program's own temporary
/// working directory. A word (or the value of an `--option=value`) is
/// rewritten when it is plain (no quotes, expansions or globs), not an
/// assignment, holds a `/` or a `.`, and names something that exists under
/// `base`; and the word after `cd`. Values filled in for placeholders are absolute or not paths, so
/// they are left alone.
pub fn absolutize(command: &str, base: &Path) -> String {
    let Some(commands) = simple_commands(command) else {
        return command.to_string();
    };
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    for words in &commands {
        let after_cd = words.first().is_some_and(|w| w.text == "cd");
        for (i, w) in words.iter().enumerate() {
            if !w.plain || is_assignment(w) || redirection(&w.text).is_some() {
                continue;
            }
            // `--poem=fixtures/x.txt`: the value after the option's `=`.
            let (skip, t) = match w.text.split_once('=') {
                Some((opt, value)) if opt.starts_with('-') => (opt.len() + 1, value),
                _ => (0, w.text.as_str()),
            };
            let pathlike = t.contains('/') || t.contains('.') || (after_cd && i == 1);
            if t.is_empty() || t.starts_with('/') || t.starts_with('-') || !pathlike {
                continue;
            }
            let full = base.join(t);
            if full.exists() {
                edits.push((
                    w.span.start + skip..w.span.end,
                    template::shell_quote(&full.display().to_string()),
                ));
            }
        }
    }
    let mut out = command.to_string();
    for (span, text) in edits.into_iter().rev() {
        out.replace_range(span, &text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn blank_commands_are_empty() {
        assert_eq!(check_command("", &here()), Err(CommandError::Empty));
        assert_eq!(check_command("  \t", &here()), Err(CommandError::Empty));
    }

    #[test]
    fn a_misspelt_program_is_named() {
        let err = check_command("pyhton3 x.py {addrs}", &here()).unwrap_err();
        assert!(
            matches!(&err, CommandError::NotFound { program, .. } if program == "pyhton3"),
            "{err}"
        );
        assert!(err.to_string().contains("'pyhton3'"), "{err}");
    }

    #[test]
    fn a_missing_script_is_named() {
        let err = check_command("python3 -u nosuchfile.py {addrs}", &here()).unwrap_err();
        assert!(
            matches!(&err, CommandError::MissingScript { file, .. } if file == "nosuchfile.py"),
            "{err}"
        );
    }

    #[test]
    fn a_path_to_nothing_is_named() {
        let err = check_command("./nope/prog {port}", &here()).unwrap_err();
        assert!(
            err.to_string().contains("'./nope/prog' does not exist"),
            "{err}"
        );
    }

    #[test]
    fn every_simple_command_is_checked() {
        let err = check_command("sleep 1; FOO=1 exec nosuchprog {addrs}", &here()).unwrap_err();
        assert!(err.to_string().contains("'nosuchprog'"), "{err}");
    }

    #[test]
    fn real_commands_pass() {
        for ok in [
            "python3 fixtures/python/asyncio/get_poetry.py --timeout {timeout} {addrs}",
            "python3 -c 'import sys' {addrs}",
            "python3 -m http.server {port}",
            "sh -c 'exit 127'",
            "exit 127",
            "sleep 5; echo x >&2",
            "PYTHONPATH=x python3 fixtures/python/asyncio/get_poetry.py 2>/dev/null",
            "cd fixtures && python3 python/asyncio/get_poetry.py",
            "$PROG {addrs}",
            "(cd x; ./y)",
            "env -C fixtures python3 python/asyncio/get_poetry.py",
            "python3 -W ignore -X dev fixtures/python/asyncio/get_poetry.py",
            "for i in 1 2; do python3 nosuch.py; done",
            "bash -o pipefail sh",
        ] {
            assert_eq!(check_command(ok, &here()), Ok(()), "{ok}");
        }
    }

    #[test]
    fn the_shells_own_not_found_is_recognised() {
        let said = "sh: 1: pyhton3: not found\n";
        assert_eq!(
            shell_cannot_run(Some(127), said).as_deref(),
            Some("sh: 1: pyhton3: not found")
        );
        assert_eq!(shell_cannot_run(Some(127), "unsupported case\n"), None);
        assert_eq!(shell_cannot_run(Some(0), said), None);
        let py = "python3: can't open file '/x/nosuch.py': [Errno 2] No such file or directory";
        assert!(shell_cannot_run(Some(2), py).is_some());
    }

    #[test]
    fn relative_paths_that_exist_become_absolute() {
        let base = here();
        let cmd = absolutize(
            "python3 fixtures/python/asyncio/get_poetry.py --timeout 1 127.0.0.1:9 nosuch/x.py",
            &base,
        );
        let abs = base.join("fixtures/python/asyncio/get_poetry.py");
        assert_eq!(
            cmd,
            format!(
                "python3 {} --timeout 1 127.0.0.1:9 nosuch/x.py",
                abs.display()
            )
        );
        assert_eq!(absolutize("echo 'fixtures/x'", &base), "echo 'fixtures/x'");
        let dir = base.join("fixtures/poems");
        assert_eq!(
            absolutize("prog --dir=fixtures/poems -x=nosuch.txt", &base),
            format!("prog --dir={} -x=nosuch.txt", dir.display())
        );
    }

    #[test]
    fn option_values_are_not_scripts() {
        let words = &simple_commands("php -S 127.0.0.1:8000 -t www router.php").unwrap()[0];
        let (program, args) = program_and_args(words).unwrap();
        assert_eq!(script(&program.text, &args).unwrap().text, "router.php");
        let words = &simple_commands("java -Xmx1g -cp build -jar app.jar").unwrap()[0];
        let (program, args) = program_and_args(words).unwrap();
        assert_eq!(script(&program.text, &args).unwrap().text, "app.jar");
    }

    #[test]
    fn redirections_are_not_programs() {
        let words = &simple_commands("2>/dev/null python3 x.py").unwrap()[0];
        let (program, args) = program_and_args(words).unwrap();
        assert_eq!(program.text, "python3");
        assert_eq!(args[0].text, "x.py");
    }
}
