//! Starting, watching and ending the program under test.
//!
//! The program runs under `sh -c` in its own process group, so ending it
//! ends every process it started; stdout and stderr are captured up to a
//! cap. Groups still alive when the harness is interrupted (Ctrl-C) are
//! killed by the handler installed with [`install_interrupt_handler`].

use std::collections::BTreeSet;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Most bytes kept of each of stdout and stderr.
pub const OUTPUT_CAP: usize = 1024 * 1024;

/// Process groups this harness started and has not ended yet.
fn live_groups() -> &'static Mutex<BTreeSet<i32>> {
    static GROUPS: OnceLock<Mutex<BTreeSet<i32>>> = OnceLock::new();
    GROUPS.get_or_init(Mutex::default)
}

fn kill_group(pgid: i32) {
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
}

/// On Ctrl-C, kills every process group still running, then exits 130.
pub fn install_interrupt_handler() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = ctrlc::set_handler(|| {
            for pgid in live_groups().lock().map(|g| g.clone()).unwrap_or_default() {
                kill_group(pgid);
            }
            eprintln!("poetry-harness: interrupted; stopped the programs under test");
            std::process::exit(130);
        });
    });
}

/// Captured output, capped at [`OUTPUT_CAP`].
#[derive(Debug, Default, Clone)]
pub struct Captured {
    /// The bytes kept.
    pub bytes: Vec<u8>,
    /// Whether more arrived than was kept.
    pub truncated: bool,
}

/// A running program under test.
#[derive(Debug)]
pub struct Program {
    child: Child,
    pgid: i32,
    stdout: Arc<Mutex<Captured>>,
    stderr: Arc<Mutex<Captured>>,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Program {
    /// Starts `command` with `sh -c` in a new process group, with these
    /// extra environment variables.
    pub fn spawn(command: &str, env: &[(String, String)]) -> std::io::Result<Program> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let pgid = child.id().map(|id| id as i32).unwrap_or(0);
        live_groups().lock().expect("groups lock").insert(pgid);
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = Arc::new(Mutex::new(Captured::default()));
        let stderr = Arc::new(Mutex::new(Captured::default()));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(capture(out, stdout.clone(), Some(tx)));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(capture(err, stderr.clone(), None));
        }
        Ok(Program {
            child,
            pgid,
            stdout,
            stderr,
            lines,
        })
    }

    /// Waits for a stdout line that `matches`, for at most `limit`.
    pub async fn wait_for_line(
        &mut self,
        limit: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Option<String> {
        tokio::time::timeout(limit, async {
            while let Some(line) = self.lines.recv().await {
                if matches(&line) {
                    return Some(line);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    /// Waits for the program to exit, for at most `limit`.
    pub async fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()?
            .ok();
        // Give the capture tasks a moment to drain the pipes.
        tokio::task::yield_now().await;
        status
    }

    /// Whether it has exited already.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills the whole process group.
    pub fn kill(&mut self) {
        kill_group(self.pgid);
        live_groups()
            .lock()
            .expect("groups lock")
            .remove(&self.pgid);
    }

    /// What it wrote on stdout so far.
    pub fn stdout(&self) -> Captured {
        self.stdout.lock().expect("capture lock").clone()
    }

    /// What it wrote on stderr so far.
    pub fn stderr(&self) -> Captured {
        self.stderr.lock().expect("capture lock").clone()
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn capture(
    pipe: impl AsyncRead + Unpin,
    into: Arc<Mutex<Captured>>,
    lines: Option<mpsc::UnboundedSender<String>>,
) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = if lines.is_some() {
            reader.read_until(b'\n', &mut buf).await
        } else {
            let mut chunk = vec![0u8; 8192];
            let n = reader.read(&mut chunk).await;
            if let Ok(n) = n {
                buf.extend_from_slice(&chunk[..n]);
            }
            n
        };
        match n {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        {
            let mut c = into.lock().expect("capture lock");
            let room = OUTPUT_CAP.saturating_sub(c.bytes.len());
            c.truncated |= buf.len() > room;
            c.bytes.extend_from_slice(&buf[..buf.len().min(room)]);
        }
        if let Some(tx) = &lines {
            let _ = tx.send(String::from_utf8_lossy(&buf).trim_end().to_string());
        }
    }
}

/// Finds a free port on 127.0.0.1 by binding port 0 and letting it go.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
