//! Output contracts: turning what a client program printed into one result
//! per address, so the same verdicts judge programs and in-process code.

use bytes::Bytes;

use crate::reference::FetchError;

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

/// The failure a stderr line naming `addr` reports, if one does (progress
/// lines naming it are passed over).
fn failure_for(stderr: &str, addr: &str) -> Option<FetchError> {
    let port = addr.rsplit(':').next().unwrap_or(addr);
    stderr
        .lines()
        .filter(|l| l.contains(addr) || l.split(|c: char| !c.is_ascii_digit()).any(|w| w == port))
        .find_map(|line| {
            let l = line.to_ascii_lowercase();
            Some(if l.contains("refused") {
                FetchError::Refused
            } else if l.contains("reset") {
                FetchError::Reset { after: 0 }
            } else if l.contains("timeout") || l.contains("timed out") {
                FetchError::Timeout {
                    waiting_for: "data",
                    after: 0,
                }
            } else if l.contains("fail") || l.contains("error") {
                FetchError::Other(line.trim().to_string())
            } else {
                return None;
            })
        })
}

/// One result per address, from stdout and stderr, given the poems the
/// harness's servers sent (`None` for a server that sent no poem).
///
/// Exact: walking stdout in order, a poem that is there whole is a
/// success; otherwise a stderr line naming the address is a failure; else
/// whatever stdout holds of the poem's start is what the client got (a
/// short or empty poem).
pub fn parse(
    contract: Contract,
    stdout: &[u8],
    stderr: &str,
    addrs: &[String],
    poems: &[Option<Bytes>],
) -> Vec<Result<Bytes, FetchError>> {
    let mut rest = stdout;
    let mut out = Vec::with_capacity(addrs.len());
    for (addr, poem) in addrs.iter().zip(poems) {
        let poem = poem.clone().unwrap_or_default();
        let found = match contract {
            Contract::Exact if !poem.is_empty() && rest.starts_with(&poem) => Some(0),
            Contract::Contains if !poem.is_empty() => find(rest, &poem),
            _ => None,
        };
        if let Some(at) = found {
            rest = &rest[at + poem.len()..];
            out.push(Ok(poem));
            continue;
        }
        if let Some(e) = failure_for(stderr, addr) {
            out.push(Err(e));
            continue;
        }
        let common = rest
            .iter()
            .zip(poem.iter())
            .take_while(|(a, b)| a == b)
            .count();
        out.push(Ok(Bytes::copy_from_slice(&rest[..common])));
        rest = &rest[common..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
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

    fn poems(p: &[&str]) -> Vec<Option<Bytes>> {
        p.iter()
            .map(|s| Some(Bytes::copy_from_slice(s.as_bytes())))
            .collect()
    }

    #[test]
    fn exact_poems_in_order() {
        let r = parse(
            Contract::Exact,
            b"abcdef",
            "",
            &addrs(2),
            &poems(&["abc", "def"]),
        );
        assert_eq!(r, vec![Ok(Bytes::from("abc")), Ok(Bytes::from("def"))]);
    }

    #[test]
    fn failure_named_on_stderr() {
        let stderr = "127.0.0.1:40001: download failed: refused\n";
        let r = parse(
            Contract::Exact,
            b"def",
            stderr,
            &addrs(2),
            &poems(&["abc", "def"]),
        );
        assert_eq!(r[0], Err(FetchError::Refused));
        assert_eq!(r[1], Ok(Bytes::from("def")));
    }

    #[test]
    fn short_poem_is_a_prefix() {
        let r = parse(Contract::Exact, b"ab", "", &addrs(1), &poems(&["abc"]));
        assert_eq!(r, vec![Ok(Bytes::from("ab"))]);
    }

    #[test]
    fn progress_line_before_the_failure_line_is_passed_over() {
        let stderr = "Task 1: got 200 bytes of poetry from 127.0.0.1:40001\n127.0.0.1:40001: download failed: timeout\n";
        let r = parse(Contract::Exact, b"", stderr, &addrs(1), &poems(&["abc"]));
        assert!(matches!(r[0], Err(FetchError::Timeout { .. })), "{r:?}");
    }

    #[test]
    fn contains_skips_progress_lines() {
        let out = b"Task 1: got 3 bytes\nabc\nTask 2 done\ndef";
        let r = parse(
            Contract::Contains,
            out,
            "",
            &addrs(2),
            &poems(&["abc", "def"]),
        );
        assert_eq!(r, vec![Ok(Bytes::from("abc")), Ok(Bytes::from("def"))]);
    }

    #[test]
    fn timeout_word_is_recognised_by_port() {
        let stderr = "server 40001 timed out\n";
        let r = parse(Contract::Exact, b"", stderr, &addrs(1), &poems(&["abc"]));
        assert!(matches!(r[0], Err(FetchError::Timeout { .. })));
    }
}
