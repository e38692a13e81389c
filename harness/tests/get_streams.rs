//! `poetry-harness get` writes output as it arrives (issue 12): with
//! `--stream`, the first bytes of a poem reach stdout while its server
//! still holds the connection open; without it, each poem (and with
//! `--transform`, each transformed poem) is written as soon as it and
//! every poem before it have ended, while a later download is still
//! running; and a download that fails prints no poem (CLIENT-5), or says
//! on stderr how many bytes `--stream` printed for it.
//!
//! No wall-clock assertion: a server the test holds open is released only
//! after the test has read what must come first, so output that waited
//! for the end would never come, and the bounded wait ([`LIMIT`]) fails
//! only on such a hang. Every server binds 127.0.0.1 port 0; every
//! process is killed and reaped on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_poetry-harness");

/// Output that has not come after this long is not coming (a hang).
const LIMIT: Duration = Duration::from_secs(60);

/// A process, killed (by its PID) and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// Whether it is still running.
    fn running(&mut self) -> bool {
        self.0.try_wait().expect("try_wait").is_none()
    }

    /// Its exit code, waiting at most [`LIMIT`].
    fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(s) = self.0.try_wait().expect("try_wait") {
                return s.code();
            }
            assert!(Instant::now() < deadline, "still running after {LIMIT:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// `poetry-harness serve ARGS` on port 0, and the port it announced.
fn serve(args: &[&str]) -> (Proc, u16) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .args(["--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn poetry-harness serve");
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut first = String::new();
        let _ = lines.read_line(&mut first);
        let _ = tx.send(first);
        let _ = std::io::copy(&mut lines, &mut std::io::sink());
    });
    let line = rx
        .recv_timeout(LIMIT)
        .unwrap_or_else(|_| panic!("serve {args:?} printed no line"));
    let port = line
        .strip_prefix("listening on 127.0.0.1:")
        .and_then(|rest| rest.split(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a listening line: {line:?}"));
    (proc, port)
}

/// A poetry server the test holds: on its one connection it sends
/// `first`, then waits for [`Held::release`] to send `rest` and close
/// with FIN (or, dropped unreleased, closes when the test ends).
struct Held {
    port: u16,
    release: mpsc::Sender<()>,
}

impl Held {
    fn start(first: &'static [u8], rest: &'static [u8]) -> Held {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let (release, released) = mpsc::channel::<()>();
        thread::spawn(move || {
            let deadline = Instant::now() + LIMIT;
            let mut conn = loop {
                match listener.accept() {
                    Ok((conn, _)) => break conn,
                    Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                    Err(_) => return,
                }
            };
            conn.set_nonblocking(false).expect("blocking");
            let _ = conn.write_all(first);
            // Until released, or until the test is over (the sender
            // dropped): the connection stays open, nothing more is sent.
            if released.recv_timeout(LIMIT).is_ok() {
                let _ = conn.write_all(rest);
                let _ = conn.shutdown(std::net::Shutdown::Write);
                // The client's FIN, then close.
                let _ = conn.set_read_timeout(Some(LIMIT));
                let _ = conn.read(&mut [0u8; 64]);
            }
        });
        Held { port, release }
    }

    fn release(&self) {
        self.release.send(()).expect("the held server is waiting");
    }
}

/// `poetry-harness get ARGS`, its stdout read as it comes.
struct Get {
    proc: Proc,
    chunks: mpsc::Receiver<Vec<u8>>,
    stderr: thread::JoinHandle<String>,
    got: Vec<u8>,
}

impl Get {
    fn start(args: &[String]) -> Get {
        let mut child = Command::new(BIN)
            .arg("get")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn poetry-harness get");
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let (tx, chunks) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Get {
            proc: Proc(child),
            chunks,
            stderr,
            got: Vec::new(),
        }
    }

    /// The next `n` bytes of stdout; a failure if they do not come within
    /// [`LIMIT`] (get held them back: a hang, since nothing else comes).
    fn read(&mut self, n: usize) -> Vec<u8> {
        while self.got.len() < n {
            match self.chunks.recv_timeout(LIMIT) {
                Ok(chunk) => self.got.extend(chunk),
                Err(e) => panic!(
                    "only {} of {n} bytes on stdout ({e:?}): {:?}",
                    self.got.len(),
                    String::from_utf8_lossy(&self.got)
                ),
            }
        }
        self.got.drain(..n).collect()
    }

    /// Waits for the exit: its code, the rest of stdout and all stderr.
    fn end(mut self) -> (Option<i32>, Vec<u8>, String) {
        let code = self.proc.exit_code();
        let mut rest = std::mem::take(&mut self.got);
        while let Ok(chunk) = self.chunks.recv_timeout(LIMIT) {
            rest.extend(chunk);
        }
        let stderr = self.stderr.join().expect("stderr reader");
        (code, rest, stderr)
    }
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[test]
fn stream_prints_the_first_bytes_while_the_server_holds_the_connection() {
    let held = Held::start(b"The first line.\n", b"And the rest.\n");
    let port = held.port.to_string();
    let mut get = Get::start(&args(&["--stream", "--idle-timeout", "10min", &port]));
    assert_eq!(get.read(16), b"The first line.\n");
    // The server has not closed: it waits for the release.
    assert!(get.proc.running(), "get ended before the server closed");
    held.release();
    let (code, rest, stderr) = get.end();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(rest, b"And the rest.\n");
    assert!(
        stderr.contains(&format!("{port}: got 30 bytes of poetry")),
        "{stderr}"
    );
}

#[test]
fn stream_shows_the_slow_server_ten_bytes_at_a_time() {
    // The reference slow server (part 2), sending 10 bytes an hour: the
    // first 10 reach stdout while the other 3,000 are still to come.
    let (_server, port) = serve(&["slow", "tyger", "--num-bytes", "10", "--delay", "1h"]);
    let port = port.to_string();
    let mut get = Get::start(&args(&["--stream", "--idle-timeout", "2h", &port]));
    assert_eq!(get.read(10), b"The Tyger\n");
    assert!(get.proc.running(), "get ended with one write of the poem");
}

#[test]
fn each_poem_is_printed_once_it_and_those_before_it_have_ended() {
    // Without --stream, whole poems only (CLIENT-5), in argument order
    // (CLIENT-8): the first is printed while the second is held open.
    let dir = tempfile::tempdir().expect("a temporary folder");
    let poem = dir.path().join("first.txt");
    std::fs::write(&poem, "A short poem,\nserved fast.\n").unwrap();
    let (_fast, fast) = serve(&["fast", poem.to_str().unwrap()]);
    let held = Held::start(b"A slow poem, ", b"held open.\n");
    let mut get = Get::start(&args(&[
        "--idle-timeout",
        "10min",
        &fast.to_string(),
        &held.port.to_string(),
    ]));
    assert_eq!(get.read(27), b"A short poem,\nserved fast.\n");
    assert!(
        get.proc.running(),
        "get ended before the held server closed"
    );
    held.release();
    let (code, rest, stderr) = get.end();
    assert_eq!(code, Some(0), "{stderr}");
    // The held poem, whole: none of it came before its FIN.
    assert_eq!(rest, b"A slow poem, held open.\n");
}

#[test]
fn a_poem_after_an_unfinished_one_waits_for_it() {
    // Argument order: the held first poem keeps the finished second one
    // back; with --stream, the first's bytes go out at once, the second's
    // after the first has ended.
    let dir = tempfile::tempdir().expect("a temporary folder");
    let poem = dir.path().join("second.txt");
    std::fs::write(&poem, "Second.\n").unwrap();
    let (_fast, fast) = serve(&["fast", poem.to_str().unwrap()]);
    let held = Held::start(b"First, ", b"at last.\n");
    let mut get = Get::start(&args(&[
        "--stream",
        "--idle-timeout",
        "10min",
        &held.port.to_string(),
        &fast.to_string(),
    ]));
    assert_eq!(get.read(7), b"First, ");
    held.release();
    let (code, rest, stderr) = get.end();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(rest, b"at last.\nSecond.\n");
}

#[test]
fn a_failed_download_prints_nothing_and_with_stream_says_what_it_printed() {
    for stream in [false, true] {
        // The server sends 12 bytes, then nothing: the idle timeout fails
        // the download.
        let held = Held::start(b"Half a poem ", b"");
        let port = held.port.to_string();
        let mut words = vec!["--idle-timeout", "1s", &port];
        if stream {
            words.insert(0, "--stream");
        }
        let (code, stdout, stderr) = Get::start(&args(&words)).end();
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("poetry-harness: 127.0.0.1:{port}: timeout: ")),
            "{stderr}"
        );
        if stream {
            assert_eq!(stdout, b"Half a poem ");
            assert!(
                stderr.contains(&format!(
                    "poetry-harness: 127.0.0.1:{port}: the 12 byte(s) --stream printed for it are not a whole poem"
                )),
                "{stderr}"
            );
        } else {
            assert_eq!(stdout, b"", "a timed-out download printed bytes");
            assert!(!stderr.contains("not a whole poem"), "{stderr}");
        }
        drop(held);
    }
}

#[test]
fn transform_prints_each_transformed_poem_as_soon_as_its_reply_is_decoded() {
    // The first poem's reply arrives whole (one netstring) and is printed
    // while the second poem's server still holds its connection open.
    let dir = tempfile::tempdir().expect("a temporary folder");
    let poem = dir.path().join("first.txt");
    std::fs::write(&poem, "The FIRST Poem\n").unwrap();
    let (_fast, fast) = serve(&["fast", poem.to_str().unwrap()]);
    let (_xform, xform) = serve(&["transform"]);
    let held = Held::start(b"The SECOND ", b"Poem\n");
    let mut get = Get::start(&args(&[
        "--transform",
        &xform.to_string(),
        "--idle-timeout",
        "10min",
        &fast.to_string(),
        &held.port.to_string(),
    ]));
    assert_eq!(get.read(15), b"the first poem\n");
    assert!(
        get.proc.running(),
        "get ended before the held server closed"
    );
    held.release();
    let (code, rest, stderr) = get.end();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(rest, b"the second poem\n");
}

#[test]
fn stream_and_transform_together_are_refused() {
    let (code, stdout, stderr) = Get::start(&args(&["--stream", "--transform", "1", "2"])).end();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("--stream"), "{stderr}");
}
