//! Integration tests for the `poetry-harness` binary: the reference servers
//! and clients as real programs, talking over loopback, and what a person
//! sees when the arguments are wrong.
//!
//! Every command runs with a cleared environment (only `PATH` kept) in a
//! throwaway directory; every wait is bounded; every server is killed by
//! its guard, even when the test fails.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rstest::rstest;

const BIN: &str = env!("CARGO_BIN_EXE_poetry-harness");

/// A command still running after this has hung (and is killed).
const LIMIT: Duration = Duration::from_secs(20);

/// Exit status for bad usage and harness errors (`cli::Exit::Error`).
const USAGE: i32 = 2;

/// The fixture poem: non-ASCII on purpose, as in part 15's test.
const POEM: &str = "loreley.txt";

/// A throwaway working directory holding a copy of the fixture poem;
/// removed on drop.
struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "poetry-harness-cli-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create sandbox");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/poems")
            .join(POEM);
        std::fs::copy(&fixture, dir.join(POEM)).expect("copy the poem");
        Sandbox { dir }
    }

    fn poem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join(POEM)).expect("read the poem")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            // Temporary files (a program's working directory) in the
            // sandbox too: a harness killed with SIGKILL cannot remove
            // them itself.
            .env("TMPDIR", &self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a command to completion, within [`LIMIT`].
    fn run(&self, args: &[&str]) -> Outcome {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn poetry-harness");
        let stdout = drain(child.stdout.take().expect("stdout"));
        let stderr = drain(child.stderr.take().expect("stderr"));
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("poetry-harness {args:?} still running after {LIMIT:?}");
            }
            thread::sleep(Duration::from_millis(5));
        };
        let stdout = stdout.join().expect("stdout reader");
        let stderr = String::from_utf8_lossy(&stderr.join().expect("stderr reader")).into_owned();
        Outcome {
            status,
            stdout,
            stderr,
        }
    }

    /// Starts a server and waits (within [`LIMIT`]) for its
    /// `listening on 127.0.0.1:PORT: ...` line.
    fn serve(&self, args: &[&str]) -> Server {
        let mut child = self
            .command(&[&["serve"], args].concat())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn poetry-harness serve");
        let stdout = child.stdout.take().expect("stdout");
        // The guard exists before the wait, so a timeout still kills it.
        let mut server = Server { child, port: 0 };
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout);
            let mut first = String::new();
            let _ = lines.read_line(&mut first);
            let _ = tx.send(first);
            // Keep reading so the server never blocks on a full pipe.
            let _ = std::io::copy(&mut lines, &mut std::io::sink());
        });
        let line = rx
            .recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("serve {args:?} printed no line within {LIMIT:?}"));
        server.port = listening_port(&line);
        server
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads a pipe to its end on a thread.
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut all = Vec::new();
        let _ = pipe.read_to_end(&mut all);
        all
    })
}

/// The port in `listening on 127.0.0.1:PORT: what`.
fn listening_port(line: &str) -> u16 {
    let addr = line
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split(": ").next())
        .unwrap_or_else(|| panic!("not a listening line: {line:?}"));
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    assert_eq!(host, "127.0.0.1", "listens on loopback by default");
    port.parse()
        .unwrap_or_else(|_| panic!("bad port in {line:?}"))
}

/// A running server process, killed (by its PID) and reaped on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn port(&self) -> String {
        self.port.to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A finished command.
struct Outcome {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

impl Outcome {
    fn assert_success(&self) {
        assert!(
            self.status.success(),
            "exit status {:?}, stderr:\n{}",
            self.status,
            self.stderr
        );
    }
}

/// A port nothing listens on (bound, then released).
fn refused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[rstest]
#[case::slow(&["slow", POEM, "--port", "0", "--delay", "0.01", "--num-bytes", "100"])]
#[case::fast(&["fast", POEM, "--port", "0"])]
fn get_prints_the_served_poem_byte_for_byte(#[case] serve: &[&str]) {
    let sandbox = Sandbox::new();
    let server = sandbox.serve(serve);
    let got = sandbox.run(&["get", &server.port()]);
    got.assert_success();
    assert_eq!(got.stdout, sandbox.poem());
}

/// `serve slow|fast NAME`: a built-in poem by name from any directory,
/// but a file of that name, where there is one, is what the user meant.
#[rstest]
#[case::built_in(None)]
#[case::a_file_wins(Some("my own science\n"))]
fn serve_takes_a_built_in_poem_by_name_unless_a_file_has_that_name(#[case] file: Option<&str>) {
    let sandbox = Sandbox::new();
    if let Some(text) = file {
        std::fs::write(sandbox.dir.join("science"), text).expect("write the file");
    }
    let server = sandbox.serve(&["fast", "science", "--port", "0"]);
    let got = sandbox.run(&["get", &server.port()]);
    got.assert_success();
    let expected = match file {
        Some(text) => text.as_bytes().to_vec(),
        None => std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/poems/science.txt"),
        )
        .expect("read the fixture"),
    };
    assert_eq!(got.stdout, expected);
}

#[rstest]
#[case::cummingsify("cummingsify", str::to_lowercase)]
#[case::shout("shout", str::to_uppercase)]
fn get_with_transform_prints_the_transformed_poem(
    #[case] name: &str,
    #[case] transform: fn(&str) -> String,
) {
    let sandbox = Sandbox::new();
    let poet = sandbox.serve(&["slow", POEM, "--delay", "0.01", "--num-bytes", "100"]);
    let xform = sandbox.serve(&["transform", "--port", "0"]);
    let got = sandbox.run(&[
        "get",
        "--transform",
        &xform.port(),
        "--transform-name",
        name,
        &poet.port(),
    ]);
    got.assert_success();
    let poem = String::from_utf8(sandbox.poem()).expect("utf-8 poem");
    assert_eq!(String::from_utf8_lossy(&got.stdout), transform(&poem));
}

#[test]
fn get_with_an_absent_transform_server_prints_the_original_and_says_why() {
    let sandbox = Sandbox::new();
    let poet = sandbox.serve(&["fast", POEM]);
    let absent = refused_port().to_string();
    let got = sandbox.run(&["get", "--transform", &absent, &poet.port()]);
    // A failed transformation alone is no failed download.
    got.assert_success();
    assert_eq!(got.stdout, sandbox.poem());
    let line = format!("127.0.0.1:{}", poet.port());
    assert!(
        got.stderr
            .lines()
            .any(|l| l.contains(&line) && l.contains("transform failed: refused:")),
        "no line naming {line}, transform and refused in:\n{}",
        got.stderr
    );
}

#[test]
fn proxy_relays_the_upstream_poem_and_serves_it_from_cache_once_upstream_is_gone() {
    let sandbox = Sandbox::new();
    let upstream = sandbox.serve(&["slow", POEM, "--delay", "0.01", "--num-bytes", "100"]);
    let proxy = sandbox.serve(&["proxy", &upstream.port(), "--port", "0"]);
    let first = sandbox.run(&["get", &proxy.port()]);
    first.assert_success();
    assert_eq!(first.stdout, sandbox.poem());
    drop(upstream);
    let cached = sandbox.run(&["get", &proxy.port(), &proxy.port()]);
    cached.assert_success();
    assert_eq!(cached.stdout, sandbox.poem().repeat(2));
}

/// Regression for `server-drops-short-last-chunk` run as a program: the
/// hidden `--mutant` flag really swaps the implementation (279 bytes in
/// 100-byte writes: the last 79 never leave).
#[test]
fn serve_with_a_mutant_runs_the_mutant_not_the_reference() {
    let sandbox = Sandbox::new();
    let server = sandbox.serve(&[
        "slow",
        POEM,
        "--delay",
        "0",
        "--num-bytes",
        "100",
        "--mutant",
        "server-drops-short-last-chunk",
    ]);
    let got = sandbox.run(&["get", &server.port()]);
    got.assert_success();
    let poem = sandbox.poem();
    assert_eq!(got.stdout, poem[..poem.len() / 100 * 100]);
}

/// Regression: `get --mutant` panicked with "no reactor running" when a
/// mutant spawned a task before returning its future. A mutant whose bug
/// a small poem does not show must behave as the reference.
#[rstest]
#[case::client(false, "client-reads-fixed-size")]
#[case::transform_client(true, "xclient-reply-limit-64k")]
fn get_with_a_mutant_runs_inside_the_runtime(#[case] transforming: bool, #[case] mutant: &str) {
    let sandbox = Sandbox::new();
    let server = sandbox.serve(&["fast", POEM]);
    let xform = sandbox.serve(&["transform"]);
    let mut args = vec!["get"];
    let xport = xform.port();
    if transforming {
        args.extend(["--transform", xport.as_str(), "--transform-name", "shout"]);
    }
    let port = server.port();
    args.extend([port.as_str(), "--mutant", mutant]);
    let got = sandbox.run(&args);
    got.assert_success();
    assert!(!got.stderr.contains("panicked"), "{}", got.stderr);
    let poem = String::from_utf8(sandbox.poem()).expect("utf-8 poem");
    let want = if transforming {
        poem.to_uppercase()
    } else {
        poem
    };
    assert_eq!(String::from_utf8_lossy(&got.stdout), want);
}

#[rstest]
#[case::serve(&["serve", "--help"])]
#[case::serve_slow(&["serve", "slow", "--help"])]
#[case::get(&["get", "--help"])]
fn the_mutant_flag_is_hidden_from_help(#[case] args: &[&str]) {
    let sandbox = Sandbox::new();
    let got = sandbox.run(args);
    got.assert_success();
    let help = String::from_utf8_lossy(&got.stdout);
    assert!(help.contains("--port") || help.contains("Usage"), "{help}");
    assert!(!help.contains("--mutant"), "--mutant shown in:\n{help}");
}

#[test]
fn get_with_one_refused_address_prints_the_good_poem_and_exits_1() {
    let sandbox = Sandbox::new();
    let poet = sandbox.serve(&["fast", POEM]);
    let refused = refused_port().to_string();
    let got = sandbox.run(&["get", &poet.port(), &refused]);
    assert_eq!(got.status.code(), Some(1), "stderr:\n{}", got.stderr);
    assert_eq!(got.stdout, sandbox.poem());
    let line = format!("127.0.0.1:{refused}");
    assert!(
        got.stderr
            .lines()
            .any(|l| l.contains(&line) && l.contains("refused")),
        "no line naming {line} and refused in:\n{}",
        got.stderr
    );
}

#[test]
fn get_from_a_silent_server_times_out_and_names_the_reason_word() {
    let sandbox = Sandbox::new();
    // A server that accepts and says nothing, until the client hangs up.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port().to_string();
    let holder = thread::spawn(move || {
        let (mut stream, _) = silent.accept().expect("accept");
        let _ = stream.read_to_end(&mut Vec::new());
    });
    let got = sandbox.run(&["get", "--idle-timeout", "200ms", &port]);
    assert_eq!(got.status.code(), Some(1), "stderr:\n{}", got.stderr);
    assert!(
        got.stdout.is_empty(),
        "bytes of a failed download were printed"
    );
    // The spec's `exact` output contract: the address and the reason word.
    let line = format!("127.0.0.1:{port}");
    assert!(
        got.stderr
            .lines()
            .any(|l| l.contains(&line) && l.contains("timeout")),
        "no line naming {line} and timeout in:\n{}",
        got.stderr
    );
    holder.join().expect("the client closed its connection");
}

/// A bad command line, and what its one error line must say.
struct BadArgs {
    args: Vec<String>,
    says: Vec<String>,
    /// Held while the command runs (the port-in-use case).
    _listener: Option<TcpListener>,
}

fn bad(args: &[&str], says: &[&str]) -> BadArgs {
    BadArgs {
        args: args.iter().map(|s| s.to_string()).collect(),
        says: says.iter().map(|s| s.to_string()).collect(),
        _listener: None,
    }
}

fn port_in_use() -> BadArgs {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let addr = format!("127.0.0.1:{port}");
    BadArgs {
        _listener: Some(listener),
        ..bad(
            &["serve", "fast", POEM, "--port", &port],
            &[&addr, "in use"],
        )
    }
}

#[rstest]
#[case::missing_poem_file(bad(&["serve", "slow", "no-such-poem.txt"], &["no-such-poem.txt"]))]
#[case::unknown_poem_name(bad(
    &["serve", "fast", "odyssey"],
    &["'odyssey'", "built-in poems: tyger, science, loreley"],
))]
#[case::bad_address(bad(&["get", "foo:bar"], &["foo:bar", "port 'bar'"]))]
#[case::port_zero(bad(&["get", "0"], &["'0'"]))]
#[case::no_address(bad(&["get"], &["required"]))]
#[case::port_in_use(port_in_use())]
#[case::unknown_transform(bad(
    &["get", "--transform", "11000", "--transform-name", "lower", "10000"],
    &["unknown transform 'lower'", "cummingsify"],
))]
#[case::zero_num_bytes(bad(&["serve", "slow", POEM, "--num-bytes", "0"], &["--num-bytes", "'0'"]))]
#[case::negative_delay(bad(&["serve", "slow", POEM, "--delay=-1"], &["--delay", "non-negative"]))]
#[case::delay_in_words(bad(&["serve", "slow", POEM, "--delay", "soon"], &["--delay", "soon"]))]
#[case::unknown_server(bad(&["serve", "medium", POEM], &["medium"]))]
#[case::live_mutants_time_scale_zero(bad(
    &["mutants", "--live", "--time-scale", "0"],
    &["--time-scale", "'0'"],
))]
#[case::time_scale_without_live(bad(&["mutants", "--time-scale", "0.1"], &["required"]))]
#[case::unknown_mutant(bad(
    &["get", "10000", "--mutant", "no-such-mutant"],
    &["'no-such-mutant'", "client-serial"],
))]
#[case::server_mutant_for_get(bad(
    &["get", "10000", "--mutant", "server-one-at-a-time"],
    &["'server-one-at-a-time'", "client-serial"],
))]
#[case::client_mutant_for_get_transform(bad(
    &["get", "--transform", "11000", "10000", "--mutant", "client-serial"],
    &["'client-serial'", "transform-client"],
))]
#[case::client_mutant_for_serve(bad(
    &["serve", "fast", POEM, "--mutant", "client-serial"],
    &["'client-serial'", "server-one-at-a-time"],
))]
#[case::unknown_mutant_for_proxy(bad(
    &["serve", "proxy", "10000", "--mutant", "proxy-typo"],
    &["'proxy-typo'", "proxy-no-cancel"],
))]
#[case::empty_command(bad(&["run", "--role", "client", "--cmd", ""], &["--cmd", "the command is empty"]))]
#[case::blank_command(bad(&["run", "--role", "client", "--cmd", "  "], &["--cmd", "the command is empty"]))]
#[case::misspelt_program(bad(
    &["run", "--role", "client", "--cmd", "pyhton3 get_poetry.py {addrs}"],
    &["--cmd", "program 'pyhton3' not found", "'pyhton3 get_poetry.py {addrs}'"],
))]
#[case::missing_script(bad(
    &["run", "--role", "client", "--cmd", "python3 nosuchfile.py {addrs}"],
    &["--cmd", "script file 'nosuchfile.py'", "'python3 nosuchfile.py {addrs}'"],
))]
#[case::missing_program_path(bad(
    &["run", "--role", "client", "--cmd", "./no/such/prog {addrs}"],
    &["--cmd", "'./no/such/prog' does not exist"],
))]
#[case::shell_says_not_found(bad(
    &["run", "--role", "client", "--cmd", "sh -c 'pyhton3 x.py' {addrs}"],
    &["--cmd", "cannot run", "not found", "exit status 127"],
))]
#[case::unwritable_junit(bad(
    &["run", "client.fast-poem", "--junit", "no/such/dir/r.xml"],
    &["--junit 'no/such/dir/r.xml' cannot be written"],
))]
#[case::zero_jobs(bad(&["run", "--jobs", "0"], &["--jobs '0'"]))]
#[case::tiny_time_scale(bad(
    &["run", "--role", "client", "--cmd", "exit 127", "--time-scale", "1e-300"],
    &["--time-scale '1e-300'"],
))]
#[case::faultproxy_rate_zero(bad(&["faultproxy", "10000", "--rate", "0"], &["--rate '0'"]))]
#[case::faultproxy_unresolvable_target(bad(
    &["faultproxy", "nosuch.invalid:80"],
    &["target 'nosuch.invalid:80' cannot be resolved"],
))]
#[case::list_matching_nothing(bad(&["list", "zzz"], &["no case matches 'zzz'"]))]
#[case::replay_unknown_case(bad(
    &["replay", "client.nosuch"],
    &["no case 'client.nosuch' in the built-in catalog", "poetry-harness list"],
))]
#[case::replay_unknown_mutant(bad(
    &["replay", "client.fast-poem", "--mutant", "client-typo"],
    &["unknown mutant 'client-typo'", "client-serial"],
))]
#[case::replay_missing_suites_file(bad(
    &["replay", "client.fast-poem", "--suites", "no/such.toml"],
    &["no/such.toml", "cannot read"],
))]
#[case::run_unknown_mutant(bad(
    &["run", "client.", "--mutant", "client-typo"],
    &["unknown mutant 'client-typo'"],
))]
#[case::shrink_without_explore(bad(
    &["run", "client.fast-poem", "--shrink-to", "shrunk"],
    &["--shrink-to 'shrunk'", "--explore N"],
))]
#[case::shrink_to_a_file(bad(
    &["run", "client.fast-poem", "--explore", "1", "--shrink-to", POEM],
    &["--shrink-to 'loreley.txt' is not a folder"],
))]
#[case::shrink_to_an_unmakeable_folder(bad(
    &["run", "client.fast-poem", "--explore", "1", "--shrink-to", "loreley.txt/sub"],
    &["--shrink-to 'loreley.txt/sub' cannot be made"],
))]
fn bad_arguments_give_one_error_line_and_exit_2(#[case] bad: BadArgs) {
    let sandbox = Sandbox::new();
    let args: Vec<&str> = bad.args.iter().map(String::as_str).collect();
    let got = sandbox.run(&args);
    assert_eq!(got.status.code(), Some(USAGE), "stderr:\n{}", got.stderr);
    assert!(
        got.stdout.is_empty(),
        "stdout: {:?}",
        String::from_utf8_lossy(&got.stdout)
    );
    for never in ["panicked", "RUST_BACKTRACE"] {
        assert!(!got.stderr.contains(never), "{never} in:\n{}", got.stderr);
    }
    let errors: Vec<&str> = got.stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "not one error line:\n{}", got.stderr);
    for says in &bad.says {
        assert!(
            errors[0].contains(says.as_str()),
            "{says:?} not in {:?}",
            errors[0]
        );
    }
}

#[rstest]
#[case::serve_slow(&["serve", "slow", "--help"], "poetry-harness serve slow ")]
#[case::get(&["get", "--help"], "poetry-harness get ")]
#[case::run(&["run", "--help"], "poetry-harness run ")]
#[case::run_policy(&["run", "--help"], "poetry-harness run --policy ")]
#[case::replay(&["replay", "--help"], "poetry-harness replay ")]
#[case::list(&["list", "--help"], "poetry-harness list ")]
#[case::explain(&["explain", "--help"], "poetry-harness explain ")]
#[case::faultproxy(&["faultproxy", "--help"], "poetry-harness faultproxy ")]
#[case::mutants(&["mutants", "--help"], "poetry-harness mutants")]
#[case::pair(&["pair", "--help"], "poetry-harness pair ")]
fn help_shows_an_example_command(#[case] args: &[&str], #[case] example: &str) {
    let sandbox = Sandbox::new();
    let got = sandbox.run(args);
    got.assert_success();
    let help = String::from_utf8_lossy(&got.stdout);
    // An example has real arguments; the usage line `[OPTIONS] <...>` is none.
    let is_example = |(at, _): (usize, &str)| {
        !matches!(
            help[at + example.len()..].chars().next(),
            Some('[' | '<') | None
        )
    };
    assert!(
        help.match_indices(example).any(is_example),
        "no example {example:?}... in:\n{help}"
    );
}

#[test]
fn run_with_no_arguments_passes_the_whole_catalog_and_writes_reports() {
    let sandbox = Sandbox::new();
    let got = sandbox.run(&["run", "--junit", "r.xml", "--json", "r.json"]);
    got.assert_success();
    let out = String::from_utf8_lossy(&got.stdout);
    assert!(out.contains("passed, 0 failed"), "{out}");
    let junit = std::fs::read_to_string(sandbox.dir.join("r.xml")).expect("JUnit written");
    assert!(
        junit.contains("<testcase name=\"client.reset-mid-poem\""),
        "{junit}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sandbox.dir.join("r.json")).expect("JSON written"),
    )
    .expect("valid JSON");
    assert_eq!(json["summary"]["FAIL"], 0);
    assert!(json["cases"].as_array().is_some_and(|c| c.len() > 60));
}

#[test]
fn malformed_catalog_names_the_file_the_line_and_the_field() {
    let sandbox = Sandbox::new();
    let suites = sandbox.dir.join("suites");
    std::fs::create_dir_all(&suites).unwrap();
    std::fs::write(
        suites.join("bad.toml"),
        "[[case]]\nid = \"client.x\"\ntitle = \"t\"\nclauses = [\"CLIENT-3\"]\nrole = \"client\"\n[[case.servers]]\nchunk = 3\n[case.expect]\n",
    )
    .unwrap();
    let got = sandbox.run(&["run", "--suites", "suites"]);
    assert_eq!(got.status.code(), Some(USAGE));
    assert!(
        got.stderr.contains("bad.toml:7:") && got.stderr.contains("unknown field `chunk`"),
        "{}",
        got.stderr
    );
    assert!(!got.stderr.contains("panicked"), "{}", got.stderr);
}

/// Values that once panicked the harness (a duration overflowing when
/// scaled, a 20 GB generated poem aborting on allocation) are catalog
/// errors naming the file, the line and the field.
#[rstest]
#[case::duration_overflow(
    "limit = \"18446744073709551615s\"\n",
    &["bad.toml:6:", "field 'limit'", "'18446744073709551615s' is over the maximum"]
)]
#[case::huge_poem(
    "[[case.servers]]\npoem = { size = 20000000000 }\n",
    &["bad.toml:7:", "field 'servers.poem'", "poem size '20000000000' is over the maximum"]
)]
fn catalog_values_beyond_the_maximum_are_errors_not_panics(
    #[case] tail: &str,
    #[case] says: &[&str],
) {
    let sandbox = Sandbox::new();
    let suites = sandbox.dir.join("suites");
    std::fs::create_dir_all(&suites).unwrap();
    let head =
        "[[case]]\nid = \"client.x\"\ntitle = \"t\"\nclauses = [\"CLIENT-3\"]\nrole = \"client\"\n";
    std::fs::write(suites.join("bad.toml"), format!("{head}{tail}")).unwrap();
    for cmd in ["list", "run"] {
        let got = sandbox.run(&[cmd, "--suites", "suites"]);
        assert_eq!(got.status.code(), Some(USAGE), "{cmd}: {}", got.stderr);
        for s in says {
            assert!(got.stderr.contains(s), "{cmd}: no {s:?} in {}", got.stderr);
        }
        assert!(!got.stderr.contains("panicked"), "{}", got.stderr);
    }
}

#[test]
fn unknown_case_and_clause_are_usage_errors() {
    let sandbox = Sandbox::new();
    let got = sandbox.run(&["run", "nosuch."]);
    assert_eq!(got.status.code(), Some(USAGE));
    assert!(
        got.stderr.contains("no case matches 'nosuch.'"),
        "{}",
        got.stderr
    );
    let got = sandbox.run(&["explain", "NOPE-1"]);
    assert_eq!(got.status.code(), Some(USAGE));
    assert!(got.stderr.contains("'NOPE-1'"), "{}", got.stderr);
}

#[test]
fn explain_quotes_the_clause_text_and_list_counts_the_cases() {
    let sandbox = Sandbox::new();
    let got = sandbox.run(&["explain", "client.reset-mid-poem"]);
    got.assert_success();
    let out = String::from_utf8_lossy(&got.stdout);
    assert!(out.contains("CLIENT-5 (MUST)"), "{out}");
    let got = sandbox.run(&["list", "proxy."]);
    got.assert_success();
    let out = String::from_utf8_lossy(&got.stdout);
    assert!(
        out.lines()
            .all(|l| l.starts_with("proxy.") || l.ends_with("case(s)")),
        "{out}"
    );
}

/// A script whose interpreter is missing: the kernel refuses it, and the
/// shell says `not found` with exit 127. Caught at run time (the probe),
/// not taken for the exit-127 convention.
#[test]
fn a_missing_interpreter_is_a_usage_error_naming_the_command() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let script = sandbox.dir.join("get_poetry");
    std::fs::write(&script, "#!/no/such/python9\nprint('hi')\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let got = sandbox.run(&["run", "--role", "client", "--cmd", "./get_poetry {addrs}"]);
    assert_eq!(got.status.code(), Some(USAGE), "stderr:\n{}", got.stderr);
    assert!(
        got.stderr.contains("'./get_poetry {addrs}'") && got.stderr.contains("cannot run"),
        "{}",
        got.stderr
    );
    assert!(
        got.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&got.stdout)
    );
}

#[test]
fn a_manifest_command_or_startup_timeout_that_cannot_work_names_the_file_line_and_table() {
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.dir.join("m.toml"),
        "name = \"a\"\n\n[client]\ncommand = \"pyhton3 get_poetry.py {addrs}\"\n",
    )
    .unwrap();
    std::fs::write(
        sandbox.dir.join("e.toml"),
        "name = \"a\"\n[client]\ncommand = \"\"\n",
    )
    .unwrap();
    let got = sandbox.run(&["run", "--manifest", "m.toml"]);
    assert_eq!(got.status.code(), Some(USAGE), "stderr:\n{}", got.stderr);
    assert!(
        got.stderr
            .contains("m.toml:4: [client] command: program 'pyhton3' not found"),
        "{}",
        got.stderr
    );
    for (value, says) in [("-1", "'-1'"), ("nan", "'NaN'"), ("1e300", "'1e300'")] {
        let name = format!("s{}.toml", value.len());
        std::fs::write(
            sandbox.dir.join(&name),
            format!("name = \"a\"\n[client]\ncommand = \"exit 127\"\nstartup_timeout = {value}\n"),
        )
        .unwrap();
        let got = sandbox.run(&["run", "--manifest", &name]);
        assert_eq!(got.status.code(), Some(USAGE), "stderr:\n{}", got.stderr);
        let want = format!("{name}:4: [client] startup_timeout: {says}");
        assert!(got.stderr.contains(&want), "{want} not in {}", got.stderr);
        assert!(!got.stderr.contains("panicked"), "{}", got.stderr);
    }
    let got = sandbox.run(&["run", "--manifest", "e.toml"]);
    assert_eq!(got.status.code(), Some(USAGE), "stderr:\n{}", got.stderr);
    assert!(
        got.stderr
            .contains("e.toml: [client] command: the command is empty"),
        "{}",
        got.stderr
    );
}

/// Exit 127 from a program that demonstrably ran is the "unsupported"
/// convention; those cases are counted as unsupported, never as passed.
#[test]
fn unsupported_cases_are_counted_apart_from_passed_ones() {
    let sandbox = Sandbox::new();
    let got = sandbox.run(&[
        "run",
        "client.fast-poem",
        "client.empty-poem",
        "--role",
        "client",
        "--cmd",
        "exit 127",
        "--json",
        "r.json",
    ]);
    got.assert_success();
    let out = String::from_utf8_lossy(&got.stdout);
    assert!(out.contains("0 passed, 0 failed, 2 unsupported"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sandbox.dir.join("r.json")).unwrap())
            .unwrap();
    assert_eq!(json["totals"]["passed"], 0);
    assert_eq!(json["totals"]["unsupported"], 2);
}

/// A program's stderr holding a carriage return (which could overwrite a
/// line with a forged PASS), a colour sequence, a bell and a NUL reaches
/// neither the terminal table nor the JUnit report raw.
#[test]
fn a_programs_control_characters_are_escaped_in_the_table_and_junit() {
    let sandbox = Sandbox::new();
    let got = sandbox.run(&[
        "run",
        "client.fast-poem",
        "--role",
        "client",
        "--cmd",
        r"printf '\015 PASS \033[32m \007 \000 end' >&2; exit 1",
        "--junit",
        "r.xml",
    ]);
    assert_eq!(got.status.code(), Some(1), "{}", got.stderr);
    let junit = std::fs::read(sandbox.dir.join("r.xml")).expect("the junit report");
    for (what, text) in [("stdout", &got.stdout), ("junit", &junit)] {
        let raw: Vec<u8> = text
            .iter()
            .copied()
            .filter(|&b| b < 0x20 && b != b'\n' && b != b'\t' || b == 0x7f)
            .collect();
        assert!(raw.is_empty(), "{what} holds raw control bytes {raw:?}");
        let text = String::from_utf8_lossy(text);
        assert!(
            text.contains(r"stderr: \r PASS \u{1b}[32m \u{7} \u{0} end"),
            "{what}: {text}"
        );
    }
}

/// PIDs of live processes started for programs of the harness `pid` (their
/// environment carries its run token).
fn processes_of_harness(pid: u32) -> Vec<u32> {
    let token = format!("POETRY_HARNESS_RUN={pid}-");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let zombie = std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            });
            !zombie
                && std::fs::read(format!("/proc/{p}/environ")).is_ok_and(|env| {
                    env.split(|&b| b == 0)
                        .any(|v| v.starts_with(token.as_bytes()))
                })
        })
        .collect()
}

/// SIGINT, SIGTERM and SIGHUP while a program sleeps: the run stops, the
/// program is killed, and the reports hold the finished case and the
/// interrupted one; the exit status is 128 + the signal.
#[rstest]
#[case::sigint(nix::sys::signal::Signal::SIGINT, 130)]
#[case::sigterm(nix::sys::signal::Signal::SIGTERM, 143)]
#[case::sighup(nix::sys::signal::Signal::SIGHUP, 129)]
fn an_interrupted_run_writes_partial_reports_and_leaves_nothing_running(
    #[case] signal: nix::sys::signal::Signal,
    #[case] status: i32,
) {
    use std::os::unix::process::CommandExt;
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.command(&[
        "run",
        "client.fast-poem",
        "client.byte-by-byte",
        "--jobs",
        "1",
        "--role",
        "client",
        "--cmd",
        "[ \"$POETRY_CASE\" = client.byte-by-byte ] && exec sleep 30; exit 3",
        "--junit",
        "r.xml",
        "--json",
        "r.json",
        "--gradescope",
        "results.json",
        "--html",
        "r.html",
    ]);
    // SAFETY: only signal(2) between fork and exec. A SIGHUP ignored by
    // whatever started the tests (nohup) would stay ignored.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl)?;
            Ok(())
        });
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn poetry-harness");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let pid = child.id();
    // Killed on every path out of this test.
    struct Guard(Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Guard(child);
    // The first case streams to the JSON report once it has finished; the
    // second is sleeping by then.
    let json_path = sandbox.dir.join("r.json");
    let deadline = Instant::now() + LIMIT;
    while !std::fs::read_to_string(&json_path).is_ok_and(|t| t.contains("client.fast-poem"))
        || processes_of_harness(pid).is_empty()
    {
        assert!(Instant::now() < deadline, "the first case never finished");
        thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).expect("signal");
    let got = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "still running after {signal}");
        thread::sleep(Duration::from_millis(10));
    };
    let out = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned();
    let err = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    assert_eq!(got.code(), Some(status), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(&format!("interrupted by {signal}: 1 of 2 case(s) finished")),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(json["run"]["state"], "interrupted");
    assert_eq!(json["run"]["signal"], signal.to_string());
    assert_eq!(json["cases"][0]["id"], "client.fast-poem");
    assert_eq!(json["cases"][0]["verdict"], "FAIL");
    assert_eq!(json["cases"][1]["verdict"], "INTERRUPTED");
    // Gradescope's file and the page too: the unfinished case scores 0.
    let gradescope: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sandbox.dir.join("results.json")).unwrap())
            .unwrap();
    let run = &gradescope["extra_data"]["poetry_harness"];
    assert_eq!(run["state"], "interrupted");
    assert_eq!(run["signal"], signal.to_string());
    assert_eq!(gradescope["tests"][1]["status"], "failed");
    assert!(
        gradescope["tests"][1]["output"]
            .as_str()
            .is_some_and(|o| o.starts_with("INTERRUPTED: ")),
        "{gradescope}"
    );
    let html = std::fs::read_to_string(sandbox.dir.join("r.html")).unwrap();
    assert!(html.contains("<td class=\"INTERRUPTED\">"), "{html}");
    let junit = std::fs::read_to_string(sandbox.dir.join("r.xml")).unwrap();
    assert!(
        junit.contains("client.byte-by-byte") && junit.contains("INTERRUPTED"),
        "{junit}"
    );
    assert_eq!(processes_of_harness(pid), Vec::<u32>::new());
}

/// Even SIGKILL, which nothing can handle, leaves the cases finished so
/// far readable: the reports are rewritten atomically as each one ends.
/// (The program it was running outlives it: the test kills it by PID.)
#[test]
fn a_killed_harness_leaves_the_finished_cases_readable() {
    let sandbox = Sandbox::new();
    let child = sandbox
        .command(&[
            "run",
            "client.fast-poem",
            "client.byte-by-byte",
            "--jobs",
            "1",
            "--role",
            "client",
            "--cmd",
            "[ \"$POETRY_CASE\" = client.byte-by-byte ] && exec sleep 30; exit 3",
            "--junit",
            "r.xml",
            "--json",
            "r.json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn poetry-harness");
    let pid = child.id();
    /// Kills the harness, then what it left running, on every path out.
    struct Guard(Child, u32);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            for p in processes_of_harness(self.1) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    let mut child = Guard(child, pid);
    let json_path = sandbox.dir.join("r.json");
    // Programs' working directories (and their owner files) in the
    // harness's temporary directory, the sandbox.
    let workdirs = || {
        let mut v: Vec<String> = std::fs::read_dir(&sandbox.dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(poetry_harness::backend::live::workdir::PREFIX))
            .collect();
        v.sort();
        v
    };
    let deadline = Instant::now() + LIMIT;
    // The first case reported, and a program's directory there (the
    // second case's, its program sleeping in it, or the first's not yet
    // removed): the kill leaves it behind.
    while !std::fs::read_to_string(&json_path).is_ok_and(|t| t.contains("client.fast-poem"))
        || workdirs().is_empty()
    {
        assert!(Instant::now() < deadline, "the first case never finished");
        thread::sleep(Duration::from_millis(20));
    }
    child.0.kill().expect("SIGKILL");
    let _ = child.0.wait();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap())
            .expect("a whole JSON report");
    assert_eq!(json["run"]["state"], "running");
    assert_eq!(json["run"]["cases"], 2);
    assert_eq!(json["cases"][0]["id"], "client.fast-poem");
    assert_eq!(json["cases"][0]["verdict"], "FAIL");
    let junit = std::fs::read_to_string(sandbox.dir.join("r.xml")).unwrap();
    assert!(junit.contains("client.fast-poem"), "{junit}");

    // The killed harness could not remove its program's working directory;
    // the next harness to start a program in the same temporary directory
    // does, and leaves none of its own.
    let left = workdirs();
    assert!(
        left.iter().any(|n| n.ends_with(".owner")),
        "a directory's owner file left: {left:?}"
    );
    let next = sandbox.run(&[
        "run",
        "client.fast-poem",
        "--role",
        "client",
        "--cmd",
        "exit 3",
    ]);
    assert_eq!(next.status.code(), Some(1), "{}", next.stderr);
    assert_eq!(workdirs(), Vec::<String>::new());
}

/// The `poetry-harness replay ...` command ending `line`, as words.
fn replay_words(line: &str) -> Vec<String> {
    let at = line
        .find("poetry-harness replay ")
        .unwrap_or_else(|| panic!("no replay command in {line:?}"));
    poetry_harness::replay::split_words(&line[at..]).expect("the command splits")
}

/// The transcript lines of a table printed with transcripts (one case).
fn transcript_lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("transcript ("))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn explore_prints_a_replay_that_repeats_the_failing_seed_byte_for_byte() {
    let sandbox = Sandbox::new();
    let explore = sandbox.run(&[
        "run",
        "client.jittered-pace",
        "--mutant",
        "client-decodes-per-chunk",
        "--explore",
        "10",
    ]);
    assert_eq!(explore.status.code(), Some(1), "{}", explore.stderr);
    let stdout = String::from_utf8_lossy(&explore.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains(" with seed "))
        .unwrap_or_else(|| panic!("no failing seed in:\n{stdout}"));
    let words = replay_words(line);
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let seed = &words[words.iter().position(|w| w == "--seed").expect("a seed") + 1];
    assert!(
        line.contains(&format!("with seed {seed}, perturbed")),
        "{line}"
    );
    let first = sandbox.run(&args);
    let second = sandbox.run(&args);
    assert_eq!(first.status.code(), Some(1), "{line}: {}", first.stderr);
    assert_eq!(first.stdout, second.stdout, "two replays differ");
    // The same run through `run --seed` shows the same transcript.
    let run = sandbox.run(&[
        "run",
        "client.jittered-pace",
        "--mutant",
        "client-decodes-per-chunk",
        "--seed",
        seed,
        "--transcripts",
    ]);
    let replayed = transcript_lines(&first.stdout);
    assert!(!replayed.is_empty(), "no transcript in the replay");
    assert_eq!(replayed, transcript_lines(&run.stdout));
}

#[test]
fn shrink_to_writes_a_case_the_catalog_loads_whose_replay_still_fails() {
    let sandbox = Sandbox::new();
    let got = sandbox.run(&[
        "run",
        "client.jittered-pace",
        "--mutant",
        "client-decodes-per-chunk",
        "--explore",
        "10",
        "--shrink-to",
        "shrunk",
    ]);
    assert_eq!(got.status.code(), Some(1), "{}", got.stderr);
    let stdout = String::from_utf8_lossy(&got.stdout);
    let written = stdout
        .lines()
        .find(|l| l.contains("shrunk in "))
        .unwrap_or_else(|| panic!("nothing shrunk in:\n{stdout}"));
    let file = written.rsplit("written to ").next().expect("a path");
    assert!(
        file.starts_with("shrunk/client.jittered-pace.shrunk-seed-"),
        "{written}"
    );
    let text = std::fs::read_to_string(sandbox.dir.join(file)).expect("the file is there");
    // The command printed is the one on top of the file.
    let printed = stdout
        .lines()
        .skip_while(|l| !l.contains("shrunk in "))
        .nth(1)
        .expect("a replay line after the shrink");
    assert_eq!(
        text.lines().next(),
        Some(format!("# Replay: {}", printed.trim()).as_str())
    );
    let words = replay_words(printed);
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let replay = sandbox.run(&args);
    assert_eq!(
        replay.status.code(),
        Some(1),
        "{printed}: {}",
        replay.stderr
    );
    assert!(String::from_utf8_lossy(&replay.stdout).contains(" FAIL "));
    // The catalog loader takes the file: the reference passes it.
    let reference = sandbox.run(&["run", "--suites", file]);
    reference.assert_success();
    let listed = sandbox.run(&["list", "--suites", "shrunk"]);
    listed.assert_success();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(".shrunk-seed-"));
}
