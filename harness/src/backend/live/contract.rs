//! Output contracts: turning what a client program printed into one result
//! per address, so the same verdicts judge programs and in-process code.

use bytes::Bytes;

use super::reasons::{self, Reason};
use crate::reference::{FetchError, TransformFailure, Transformed};

/// How a client program's stdout holds the poems.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Contract {
    /// stdout is exactly the poems, in argument order.
    #[default]
    Exact,
    /// Each poem appears in stdout, in order; other text is allowed (the
    /// series' clients print progress lines).
    Contains,
}

impl std::str::FromStr for Contract {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "exact" => Ok(Contract::Exact),
            "contains" => Ok(Contract::Contains),
            _ => Err(format!(
                "unknown output contract '{s}' (known: exact, contains)"
            )),
        }
    }
}

/// What a client program left behind: its output and how it exited.
#[derive(Debug, Clone, Copy)]
pub struct Output<'a> {
    /// Everything it printed on stdout (up to the capture cap).
    pub stdout: &'a [u8],
    /// Everything it printed on stderr.
    pub stderr: &'a str,
    /// Its exit code; `None` if a signal ended it.
    pub exit: Option<i32>,
}

impl Output<'_> {
    fn failed(&self) -> bool {
        self.exit != Some(0)
    }

    fn exit_words(&self) -> String {
        match self.exit {
            Some(c) => format!("the program exited with status {c}"),
            None => "a signal ended the program".to_string(),
        }
    }
}

/// One result per address, and what stdout held beyond them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    /// One per address, in argument order.
    pub results: Vec<T>,
    /// Under `exact`, stdout left after the last poem (should be empty).
    pub stray: Vec<u8>,
}

/// Whether `line` names `addr`: the whole address, or its port as a word.
fn names(line: &str, addr: &str) -> bool {
    let port = addr.rsplit(':').next().unwrap_or(addr);
    line.contains(addr) || line.split(|c: char| !c.is_ascii_digit()).any(|w| w == port)
}

/// Whether a line is about the transformation rather than the download:
/// it says "transform", names the transform (`Cummingsify failed!`), or
/// names the transform server.
fn about_transform(line: &str, xform: Option<(&str, &str)>) -> bool {
    let l = line.to_lowercase();
    l.contains("transform")
        || xform.is_some_and(|(addr, name)| {
            names(line, addr) || (!name.is_empty() && l.contains(&name.to_lowercase()))
        })
}

/// The download failure stderr reports for `addr`, if it reports one:
/// the first failure line naming the address (progress lines naming it are
/// passed over). A line whose reason cannot be read is
/// [`FetchError::Unrecognised`], never a poem.
fn download_failure(stderr: &str, addr: &str, xform: Option<(&str, &str)>) -> Option<FetchError> {
    stderr
        .lines()
        .filter(|l| names(l, addr) && !about_transform(l, xform))
        .find(|l| reasons::is_failure(l))
        .map(
            |line| match reasons::classify_among(line, reasons::DOWNLOAD) {
                Some(Reason::Refused) => FetchError::Refused,
                Some(Reason::Reset) => FetchError::Reset { after: 0 },
                Some(_) => FetchError::Timeout {
                    waiting_for: "data",
                    after: 0,
                },
                None => FetchError::Unrecognised(line.trim().to_string()),
            },
        )
}

/// Where the poem for one address starts in `rest`, and how long it is.
fn locate(contract: Contract, rest: &[u8], poem: &[u8]) -> Option<usize> {
    match contract {
        _ if poem.is_empty() => Some(0),
        Contract::Exact => rest.starts_with(poem).then_some(0),
        Contract::Contains => find(rest, poem),
    }
}

/// The longest start of `poem` that stdout holds where this address's
/// output should be: at `rest`'s start (exact) or anywhere in it
/// (contains). Returns where it starts and its length.
fn longest_start(contract: Contract, rest: &[u8], poem: &[u8]) -> (usize, usize) {
    match contract {
        Contract::Exact => (0, rest.iter().zip(poem).take_while(|(a, b)| a == b).count()),
        Contract::Contains => {
            // Found prefixes are closed downwards: binary search the length.
            let (mut lo, mut hi, mut at) = (0, poem.len(), 0);
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                match find(rest, &poem[..mid]) {
                    Some(i) => {
                        lo = mid;
                        at = i;
                    }
                    None => hi = mid - 1,
                }
            }
            (at, lo)
        }
    }
}

/// A poetry client's results, one per address, from what it printed,
/// given the poems the harness's servers sent.
///
/// Addresses are taken in argument order and each is matched only
/// against its own server's poem, never by equal content elsewhere:
/// 1. a failure line on stderr naming the address is a failed download,
///    whatever stdout holds;
/// 2. else the poem where the contract puts it is a success;
/// 3. else, if the program exited non-zero, the download failed (its
///    reason unrecognised);
/// 4. else whatever stdout holds of the poem's start is a short poem.
pub fn parse(
    contract: Contract,
    out: &Output<'_>,
    addrs: &[String],
    poems: &[Bytes],
) -> Parsed<Result<Bytes, FetchError>> {
    let mut rest = out.stdout;
    let mut results = Vec::with_capacity(addrs.len());
    for (addr, poem) in addrs.iter().zip(poems) {
        if let Some(e) = download_failure(out.stderr, addr, None) {
            results.push(Err(e));
            continue;
        }
        if let Some(at) = locate(contract, rest, poem) {
            rest = &rest[at + poem.len()..];
            results.push(Ok(poem.clone()));
            continue;
        }
        let (at, len) = longest_start(contract, rest, poem);
        if out.failed() {
            results.push(Err(FetchError::Unrecognised(format!(
                "{} after printing {len} of the poem's {} bytes, with no stderr line naming {addr}",
                out.exit_words(),
                poem.len()
            ))));
        } else {
            results.push(Ok(Bytes::copy_from_slice(&rest[at..at + len])));
        }
        rest = &rest[at + len..];
    }
    Parsed {
        results,
        stray: stray(contract, rest),
    }
}

fn stray(contract: Contract, rest: &[u8]) -> Vec<u8> {
    match contract {
        Contract::Exact => rest.to_vec(),
        Contract::Contains => Vec::new(),
    }
}

/// A transformation failure reported on stderr for `addr`: a failure line
/// about the transformation that names the address, or that names no
/// server address at all.
fn transform_failure(
    stderr: &str,
    addr: &str,
    addrs: &[String],
    xform: (&str, &str),
) -> Option<TransformFailure> {
    stderr
        .lines()
        .filter(|l| about_transform(l, Some(xform)) && reasons::is_failure(l))
        .find(|l| names(l, addr) || !addrs.iter().any(|a| names(l, a)))
        .map(|line| match reasons::classify(line) {
            Some(Reason::Refused) => TransformFailure::Connect("refused".into()),
            Some(Reason::Reset) => TransformFailure::BadReply("reset".into()),
            Some(Reason::Timeout) => TransformFailure::Timeout,
            Some(Reason::Closed) => TransformFailure::NoReply,
            Some(Reason::Malformed) => TransformFailure::BadReply("malformed".into()),
            None => TransformFailure::BadReply(format!("unrecognised reason: {}", line.trim())),
        })
}

/// A transforming client's results, one per address, from what it
/// printed: the transformed poem, else the original (a fallback, which
/// stderr must report), else nothing (a failed download).
///
/// As in [`parse`], each address is matched only against its own poem
/// and a download failure on stderr comes first. Where the transform
/// leaves a poem as it is (an empty poem), stderr tells a fallback from a
/// transformation. An original printed with no failure reported is a
/// wrong transformation, never a fallback.
pub fn parse_transformed(
    contract: Contract,
    out: &Output<'_>,
    addrs: &[String],
    xform: &str,
    poems: &[Bytes],
    transform: &str,
) -> Parsed<Transformed> {
    let t = crate::protocol::transform::Transform::from_name(transform);
    let mut rest = out.stdout;
    let mut results = Vec::with_capacity(addrs.len());
    for (addr, poem) in addrs.iter().zip(poems) {
        if let Some(e) = download_failure(out.stderr, addr, Some((xform, transform))) {
            results.push(Transformed::DownloadFailed(e));
            continue;
        }
        let want = std::str::from_utf8(poem)
            .ok()
            .zip(t)
            .map(|(p, t)| t.apply(p));
        let at_t = want
            .as_ref()
            .and_then(|w| locate(contract, rest, w.as_bytes()));
        let at_o = locate(contract, rest, poem);
        let fallback = transform_failure(out.stderr, addr, addrs, (xform, transform));
        // The earlier match wins; at the same place, the longer one.
        let transformed = match (at_t, at_o) {
            (Some(a), Some(b)) => {
                a < b || (a == b && want.as_ref().map_or(0, |w| w.len()) > poem.len())
            }
            (t, _) => t.is_some(),
        };
        let unchanged = want.as_deref().map(str::as_bytes) == Some(&poem[..]);
        if let (true, Some(at), Some(w)) = (transformed, at_t, &want) {
            rest = &rest[at + w.len()..];
            results.push(match fallback {
                Some(failure) if unchanged => Transformed::Fallback {
                    original: poem.clone(),
                    failure,
                },
                _ => Transformed::Poem(w.clone()),
            });
        } else if let Some(at) = at_o {
            rest = &rest[at + poem.len()..];
            results.push(match fallback {
                Some(failure) => Transformed::Fallback {
                    original: poem.clone(),
                    failure,
                },
                None => Transformed::Poem(String::from_utf8_lossy(poem).into_owned()),
            });
        } else {
            results.push(Transformed::DownloadFailed(FetchError::Unrecognised(
                format!(
                    "nothing printed for this poem ({}) and no stderr line naming {addr}",
                    if out.failed() {
                        out.exit_words()
                    } else {
                        "exit status 0".to_string()
                    }
                ),
            )));
        }
    }
    Parsed {
        results,
        stray: stray(contract, rest),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: usize) -> Vec<String> {
        (1..=n)
            .map(|i| format!("127.0.0.1:{}", 40000 + i))
            .collect()
    }

    fn poems(p: &[&str]) -> Vec<Bytes> {
        p.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn out<'a>(stdout: &'a [u8], stderr: &'a str, exit: i32) -> Output<'a> {
        Output {
            stdout,
            stderr,
            exit: Some(exit),
        }
    }

    fn client(contract: Contract, o: Output<'_>, p: &[&str]) -> Parsed<Result<Bytes, FetchError>> {
        parse(contract, &o, &addrs(p.len()), &poems(p))
    }

    const XFORM: &str = "127.0.0.1:39999";

    fn xclient(contract: Contract, o: Output<'_>, p: &[&str]) -> Vec<Transformed> {
        parse_transformed(
            contract,
            &o,
            &addrs(p.len()),
            XFORM,
            &poems(p),
            "cummingsify",
        )
        .results
    }

    #[test]
    fn exact_poems_in_order() {
        let r = client(Contract::Exact, out(b"abcdef", "", 0), &["abc", "def"]);
        assert_eq!(
            r.results,
            vec![Ok(Bytes::from("abc")), Ok(Bytes::from("def"))]
        );
        assert!(r.stray.is_empty());
    }

    #[test]
    fn failure_named_on_stderr() {
        let stderr = "127.0.0.1:40001: download failed: refused\n";
        let r = client(Contract::Exact, out(b"def", stderr, 1), &["abc", "def"]);
        assert_eq!(
            r.results,
            vec![Err(FetchError::Refused), Ok(Bytes::from("def"))]
        );
    }

    #[test]
    fn a_failed_address_is_not_matched_by_the_next_servers_equal_poem() {
        // Regression: the refused server's nominal poem equals the next
        // server's; content alone would credit it to the first address.
        let stderr = "127.0.0.1:40001: refused\n";
        let r = client(Contract::Exact, out(b"abc", stderr, 1), &["abc", "abc"]);
        assert_eq!(
            r.results,
            vec![Err(FetchError::Refused), Ok(Bytes::from("abc"))]
        );
    }

    #[test]
    fn python_asyncio_refusal_is_read_as_refused() {
        // Regression: `[Errno 111] Connect call failed` holds no 'refused'.
        let stderr = "127.0.0.1:40001: [Errno 111] Connect call failed ('127.0.0.1', 40001)\n";
        let r = client(Contract::Exact, out(b"", stderr, 1), &["abc"]);
        assert_eq!(r.results, vec![Err(FetchError::Refused)]);
    }

    #[test]
    fn a_failure_line_with_no_reason_is_a_failure_not_an_empty_poem() {
        // Regression: exit 1 and a line naming the address with an empty
        // message was read as 'poem 0 bytes'.
        let r = client(
            Contract::Exact,
            out(b"", "127.0.0.1:40001: \n", 1),
            &["abc"],
        );
        assert!(
            matches!(r.results[0], Err(FetchError::Unrecognised(_))),
            "{r:?}"
        );
        let r = client(
            Contract::Exact,
            out(b"", "127.0.0.1:40001: download failed\n", 1),
            &["abc"],
        );
        assert!(
            matches!(r.results[0], Err(FetchError::Unrecognised(_))),
            "{r:?}"
        );
    }

    #[test]
    fn short_poem_is_a_prefix_when_the_program_succeeded() {
        let r = client(Contract::Exact, out(b"ab", "", 0), &["abc"]);
        assert_eq!(r.results, vec![Ok(Bytes::from("ab"))]);
    }

    #[test]
    fn progress_line_before_the_failure_line_is_passed_over() {
        let stderr = "Task 1: got 200 bytes of poetry from 127.0.0.1:40001\n127.0.0.1:40001: download failed: timeout\n";
        let r = client(Contract::Exact, out(b"", stderr, 1), &["abc"]);
        assert!(
            matches!(r.results[0], Err(FetchError::Timeout { .. })),
            "{r:?}"
        );
    }

    #[test]
    fn contains_skips_progress_lines() {
        let stdout = b"Task 1: got 3 bytes\nabc\nTask 2 done\ndef";
        let r = client(Contract::Contains, out(stdout, "", 0), &["abc", "def"]);
        assert_eq!(
            r.results,
            vec![Ok(Bytes::from("abc")), Ok(Bytes::from("def"))]
        );
    }

    #[test]
    fn contains_finds_a_short_poem_among_progress_lines() {
        let stdout = b"Task 1: got 2 bytes\nab\nTask 1 done\n";
        let r = client(Contract::Contains, out(stdout, "", 0), &["abc"]);
        assert_eq!(r.results, vec![Ok(Bytes::from("ab"))]);
    }

    #[test]
    fn timeout_word_is_recognised_by_port() {
        let r = client(
            Contract::Exact,
            out(b"", "server 40001 timed out\n", 1),
            &["abc"],
        );
        assert!(matches!(r.results[0], Err(FetchError::Timeout { .. })));
    }

    #[test]
    fn junk_after_the_poems_is_stray_under_exact_only() {
        let r = client(Contract::Exact, out(b"abcdone\n", "", 0), &["abc"]);
        assert_eq!(r.stray, b"done\n");
        let r = client(Contract::Contains, out(b"abcdone\n", "", 0), &["abc"]);
        assert!(r.stray.is_empty());
    }

    #[test]
    fn transformed_and_fallback_by_position() {
        let stderr = "127.0.0.1:40002: transform failed: closed\n";
        let r = xclient(Contract::Exact, out(b"abcDEF", stderr, 0), &["ABC", "DEF"]);
        assert_eq!(r[0], Transformed::Poem("abc".into()));
        assert!(matches!(
            r[1],
            Transformed::Fallback {
                failure: TransformFailure::NoReply,
                ..
            }
        ));
    }

    #[test]
    fn an_original_without_a_reported_failure_is_a_wrong_transformation() {
        let r = xclient(Contract::Exact, out(b"ABC", "", 0), &["ABC"]);
        assert_eq!(r[0], Transformed::Poem("ABC".into()));
    }

    #[test]
    fn an_empty_poem_transformed_is_told_from_a_fallback_by_stderr() {
        // Regression: an empty poem was read as 'nothing printed'.
        let r = xclient(
            Contract::Exact,
            out(b"", "127.0.0.1:40001: transformed 0 bytes\n", 0),
            &[""],
        );
        assert_eq!(r[0], Transformed::Poem(String::new()));
        let stderr = "127.0.0.1:40001: transform failed: refused\n";
        let r = xclient(Contract::Exact, out(b"", stderr, 0), &[""]);
        assert!(matches!(r[0], Transformed::Fallback { .. }), "{r:?}");
    }

    #[test]
    fn a_refused_download_is_not_matched_by_the_next_servers_equal_poem() {
        // Regression (xclient.download-refused).
        let stderr =
            "127.0.0.1:40001: refused: connection refused\n127.0.0.1:40002: transformed 3 bytes\n";
        let r = xclient(Contract::Exact, out(b"abc", stderr, 1), &["ABC", "ABC"]);
        assert_eq!(r[0], Transformed::DownloadFailed(FetchError::Refused));
        assert_eq!(r[1], Transformed::Poem("abc".into()));
    }

    #[test]
    fn a_line_naming_the_transform_reports_a_fallback() {
        // The part-13 client prints `Cummingsify failed!` and no address.
        let r = xclient(
            Contract::Exact,
            out(b"ABC", "Cummingsify failed!\n", 0),
            &["ABC"],
        );
        assert!(matches!(r[0], Transformed::Fallback { .. }), "{r:?}");
    }

    #[test]
    fn contains_accepts_a_newline_after_each_poem() {
        // Regression: print(poem) adds a newline; `contains` was ignored.
        let stderr = "127.0.0.1:40002: transform failed: timeout\n";
        let r = xclient(
            Contract::Contains,
            out(b"abc\nDEF\n", stderr, 0),
            &["ABC", "DEF"],
        );
        assert_eq!(r[0], Transformed::Poem("abc".into()));
        assert!(matches!(r[1], Transformed::Fallback { .. }), "{r:?}");
    }
}
