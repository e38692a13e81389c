//! `poetry-harness serve case ID` (issue 12): a catalog case's scripted
//! servers as a real program, for running a client by hand. The peers
//! serve the case's poem to a plain TCP client, to every new connection;
//! the printed command line is the case's template filled in; server
//! cases, unknown IDs and simulator-only cases are refused with exit 2
//! and a message saying why.
//!
//! No wall-clock assertion: every wait is bounded ([`LIMIT`]) and fails
//! only on a hang. Every peer listens on 127.0.0.1, port 0; the serving
//! process is killed by its PID and reaped on drop.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use poetry_harness::catalog::Catalog;

const BIN: &str = env!("CARGO_BIN_EXE_poetry-harness");

/// Output or bytes that have not come after this long are not coming.
const LIMIT: Duration = Duration::from_secs(30);

/// A process, killed (by its PID) and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `serve case ID ARGS`, and its stdout up to the line announcing that
/// the peers serve (the addresses and the command line come before it).
fn serve_case(id: &str, args: &[&str]) -> (Proc, Vec<String>) {
    let mut child = Command::new(BIN)
        .args(["serve", "case", id, "--port", "0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn poetry-harness serve case");
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        // Nobody listens any more: drain, so the server
                        // never blocks on a full pipe.
                        let _ = std::io::copy(&mut lines, &mut std::io::sink());
                        return;
                    }
                }
            }
        }
    });
    let mut head = Vec::new();
    loop {
        let line = rx.recv_timeout(LIMIT).unwrap_or_else(|_| {
            panic!("serve case {id} stopped or hung before serving; it printed {head:#?}")
        });
        let done = line.starts_with("each peer serves");
        head.push(line.trim_end().to_string());
        if done {
            return (proc, head);
        }
    }
}

/// The addresses of the `listening on ADDR: ...` lines.
fn listening(head: &[String]) -> Vec<String> {
    head.iter()
        .filter_map(|l| l.strip_prefix("listening on "))
        .map(|l| l.split(": ").next().expect("an address").to_string())
        .collect()
}

/// Everything a connection to `addr` receives until the peer closes.
fn fetch(addr: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(LIMIT)).expect("read timeout");
    let mut poem = Vec::new();
    stream
        .read_to_end(&mut poem)
        .unwrap_or_else(|e| panic!("read from {addr} (a timeout is a hang): {e}"));
    poem
}

/// Runs a command that must be refused: exit 2, nothing on stdout; its
/// stderr.
fn refused(args: &[&str]) -> String {
    let out = run(args);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn run(args: &[&str]) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn poetry-harness");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(out) => out.expect("wait for poetry-harness"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("poetry-harness {args:?} still running after {LIMIT:?} (killed)")
        }
    }
}

#[test]
fn a_client_case_serves_its_poem_to_every_connection_and_prints_the_command() {
    let catalog = Catalog::builtin().expect("the built-in catalog");
    let case = catalog.get("client.fast-poem").expect("client.fast-poem");
    let expected = case.servers[0].sent_poem();
    assert!(!expected.is_empty());
    let (_proc, head) = serve_case(&case.id, &[]);
    let addrs = listening(&head);
    assert_eq!(addrs.len(), case.servers.len(), "{head:#?}");
    assert!(addrs[0].starts_with("127.0.0.1:"), "{head:#?}");
    // The live backend's filling of the template: the timeout (seconds, at
    // the case's own scale) and the address.
    let timeout = case.subject.idle_timeout.0.as_secs_f64();
    let command = format!("your-client --timeout {timeout} {}", addrs[0]);
    assert!(
        head.iter().any(|l| l.trim() == command),
        "no line '{command}' in {head:#?}"
    );
    // The scripted server serves the case's poem, and again to the next
    // connection.
    for attempt in 1..=2 {
        let poem = fetch(&addrs[0]);
        assert_eq!(
            poem,
            expected.as_ref(),
            "connection {attempt}: got {:?}",
            String::from_utf8_lossy(&poem)
        );
    }
}

#[test]
fn a_transforming_client_case_fills_in_its_own_template() {
    let catalog = Catalog::builtin().expect("the built-in catalog");
    let case = catalog
        .get("xclient.cummingsify-utf8")
        .expect("xclient.cummingsify-utf8");
    let (_proc, head) = serve_case(
        &case.id,
        &["--cmd", "prog -x {xform} -t {transform} {addrs}"],
    );
    let addrs = listening(&head);
    // The poetry servers, then the transform server.
    assert_eq!(addrs.len(), case.servers.len() + 1, "{head:#?}");
    let (xform, servers) = addrs.split_last().expect("addresses");
    let command = format!(
        "prog -x {xform} -t {} {}",
        case.subject.transform,
        servers.join(" ")
    );
    assert!(
        head.iter().any(|l| l.trim() == command),
        "no line '{command}' in {head:#?}"
    );
    assert_eq!(fetch(&servers[0]), case.servers[0].sent_poem().as_ref());
}

#[test]
fn a_server_case_is_refused_with_the_live_reproduce_command() {
    let stderr = refused(&["serve", "case", "server.one-client-fast"]);
    assert!(
        stderr.contains("poetry-harness run server.one-client-fast --role server --cmd"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_case_is_named() {
    let stderr = refused(&["serve", "case", "client.no-such-case"]);
    assert!(stderr.contains("'client.no-such-case'"), "{stderr}");
}

#[test]
fn a_case_only_the_simulator_runs_is_refused_with_its_reason() {
    let stderr = refused(&["serve", "case", "client.connect-blackhole"]);
    assert!(stderr.contains("needs the simulator"), "{stderr}");
}

#[test]
fn a_case_with_packet_faults_is_refused_naming_the_simulator() {
    // Real sockets cannot lose packets: serving it without them would
    // not be the case.
    let stderr = refused(&["serve", "case", "client.loss-ten-percent"]);
    assert!(
        stderr.contains("packet faults exist only in the simulator")
            && stderr.contains("(poetry-harness replay client.loss-ten-percent)"),
        "{stderr}"
    );
}

#[test]
fn a_failed_live_client_case_points_at_serve_case() {
    // A "client" that prints nothing and exits 0 fails the case.
    let out = run(&[
        "run",
        "client.fast-poem",
        "--role",
        "client",
        "--cmd",
        "true {addrs}",
        "--color",
        "never",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("by hand: poetry-harness serve case client.fast-poem "),
        "{stdout}"
    );
}
