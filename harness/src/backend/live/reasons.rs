//! Failure reasons in the words real programs use.
//!
//! A program under test says why a download or a transformation failed on
//! stderr, in whatever words its language and system give it:
//! `ConnectionRefusedError: [Errno 111] Connect call failed`,
//! `java.net.ConnectException: Connection refused`,
//! `dial tcp 127.0.0.1:4000: connect: connection refused`,
//! `Error: connect ECONNREFUSED 127.0.0.1:4000`. This table reads them
//! (SPEC.md, "Failure reasons", holds the same table for students).

use std::fmt;

/// A failure reason the spec names (CLIENT-6, TCLIENT-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// Nothing listens there.
    Refused,
    /// The peer reset (or aborted) the connection.
    Reset,
    /// Connecting or waiting for data took too long.
    Timeout,
    /// The transform server closed without a reply.
    Closed,
    /// The transform server's reply was not a netstring of UTF-8 text.
    Malformed,
}

impl Reason {
    /// The spec's word for it.
    pub fn word(self) -> &'static str {
        match self {
            Reason::Refused => "refused",
            Reason::Reset => "reset",
            Reason::Timeout => "timeout",
            Reason::Closed => "closed",
            Reason::Malformed => "malformed",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// What each reason looks like, as lower-case word sequences matched on
/// word boundaries after punctuation is turned into spaces. Errno numbers
/// only count next to a word that says they are one (`errno 111`,
/// `os error 111`), since a bare number could be a port.
pub const TABLE: &[(Reason, &[&str])] = &[
    (
        Reason::Refused,
        &[
            "refused",
            "refusing",
            "econnrefused",
            "connectionrefusederror",
            "errno 111",
            "os error 111",
            "error 111",
            "errno 61",
            "os error 61",
            "winerror 10061",
            "error 10061",
            "wsaeconnrefused",
        ],
    ),
    (
        Reason::Reset,
        &[
            "reset",
            "econnreset",
            "connectionreseterror",
            "errno 104",
            "os error 104",
            "error 104",
            "errno 54",
            "os error 54",
            "winerror 10054",
            "error 10054",
            "wsaeconnreset",
            "aborted",
            "econnaborted",
            "connectionabortederror",
            "broken pipe",
            "epipe",
            "brokenpipeerror",
        ],
    ),
    (
        Reason::Timeout,
        &[
            "timeout",
            "timed out",
            "time out",
            "timeouterror",
            "sockettimeoutexception",
            "etimedout",
            "errno 110",
            "os error 110",
            "error 110",
            "errno 60",
            "winerror 10060",
            "error 10060",
            "deadline exceeded",
        ],
    ),
    (
        Reason::Closed,
        &[
            "closed",
            "without a reply",
            "no reply",
            "eof",
            "eoferror",
            "incompletereaderror",
            "connection lost",
        ],
    ),
    (
        Reason::Malformed,
        &[
            "malformed",
            "invalid",
            "bad reply",
            "unicodedecodeerror",
            "decode",
            "netstring",
            "utf 8",
            "parse",
        ],
    ),
];

/// Words that make a stderr line naming an address a failure report even
/// when no reason can be read from it.
const FAILURE_WORDS: &[&str] = &[
    "fail",
    "failed",
    "failure",
    "error",
    "exception",
    "traceback",
    "could not",
    "couldn t",
    "cannot",
    "can t",
    "unable",
    "giving up",
    "gave up",
];

/// Lower case, every run of non-alphanumeric characters one space, padded
/// with a space on each side so patterns match whole words.
fn normalise(line: &str) -> String {
    let mut s = String::with_capacity(line.len() + 2);
    s.push(' ');
    for c in line.chars() {
        if c.is_alphanumeric() {
            s.extend(c.to_lowercase());
        } else if !s.ends_with(' ') {
            s.push(' ');
        }
    }
    if !s.ends_with(' ') {
        s.push(' ');
    }
    s
}

fn has(normalised: &str, pattern: &str) -> bool {
    normalised.contains(&format!(" {pattern} "))
}

/// The reasons a line gives, in the table's order (connection-level
/// reasons first: a reset that ends in EOF is a reset).
pub fn classify(line: &str) -> Option<Reason> {
    let n = normalise(line);
    TABLE
        .iter()
        .find(|(_, patterns)| patterns.iter().any(|p| has(&n, p)))
        .map(|(r, _)| *r)
}

/// The first of `allowed` a line gives, if any.
pub fn classify_among(line: &str, allowed: &[Reason]) -> Option<Reason> {
    let n = normalise(line);
    TABLE
        .iter()
        .filter(|(r, _)| allowed.contains(r))
        .find(|(_, patterns)| patterns.iter().any(|p| has(&n, p)))
        .map(|(r, _)| *r)
}

/// Whether a line reports a failure: it gives a reason, or says it failed.
pub fn is_failure(line: &str) -> bool {
    let n = normalise(line);
    classify(line).is_some() || FAILURE_WORDS.iter().any(|w| has(&n, w))
}

/// The accepted words, for hints: `refused, reset, timeout`.
pub fn words(reasons: &[Reason]) -> String {
    reasons
        .iter()
        .map(|r| r.word())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The reasons a poetry client reports (CLIENT-6).
pub const DOWNLOAD: &[Reason] = &[Reason::Refused, Reason::Reset, Reason::Timeout];

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::python_asyncio(
        "[Errno 111] Connect call failed ('127.0.0.1', 41234)",
        Reason::Refused
    )]
    #[case::python_class(
        "ConnectionRefusedError: [Errno 111] Connection refused",
        Reason::Refused
    )]
    #[case::java("java.net.ConnectException: Connection refused", Reason::Refused)]
    #[case::go(
        "dial tcp 127.0.0.1:4000: connect: connection refused",
        Reason::Refused
    )]
    #[case::node("Error: connect ECONNREFUSED 127.0.0.1:4000", Reason::Refused)]
    #[case::windows("[WinError 10061] No connection could be made", Reason::Refused)]
    #[case::rust("Connection refused (os error 111)", Reason::Refused)]
    #[case::go_reset(
        "read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer",
        Reason::Reset
    )]
    #[case::python_reset(
        "ConnectionResetError: [Errno 104] Connection reset by peer",
        Reason::Reset
    )]
    #[case::node_reset("Error: read ECONNRESET", Reason::Reset)]
    #[case::errno_reset("socket error errno 104", Reason::Reset)]
    #[case::java_timeout("java.net.SocketTimeoutException: Read timed out", Reason::Timeout)]
    #[case::go_timeout("read tcp 127.0.0.1:4000: i/o timeout", Reason::Timeout)]
    #[case::python_timeout("TimeoutError", Reason::Timeout)]
    #[case::node_timeout("Error: connect ETIMEDOUT 10.0.0.1:80", Reason::Timeout)]
    #[case::errno_timeout("[Errno 110] Connection timed out", Reason::Timeout)]
    #[case::closed(
        "transform failed: closed: transform server closed without a reply",
        Reason::Closed
    )]
    #[case::malformed("transform failed: malformed: bad reply", Reason::Malformed)]
    fn reasons_are_read_from_common_wordings(#[case] line: &str, #[case] want: Reason) {
        assert_eq!(classify(line), Some(want), "{line}");
        assert!(is_failure(line));
    }

    #[test]
    fn a_bare_number_is_not_an_errno() {
        // 111 as part of an address or a byte count is no reason.
        assert_eq!(classify("127.0.0.1:111: got 111 bytes"), None);
        assert!(!is_failure("127.0.0.1:40001: got 806 bytes of poetry"));
    }

    #[test]
    fn words_inside_other_words_do_not_count() {
        assert_eq!(classify("preset poems: unrefusedness"), None);
    }

    #[test]
    fn a_line_that_only_says_it_failed_is_a_failure_without_a_reason() {
        assert_eq!(classify("127.0.0.1:4000: download failed"), None);
        assert!(is_failure("127.0.0.1:4000: download failed"));
        assert!(is_failure("Traceback (most recent call last):"));
    }

    #[test]
    fn among_download_reasons_a_closed_word_is_not_taken() {
        assert_eq!(classify_among("connection closed", DOWNLOAD), None);
        assert_eq!(
            classify_among("connection reset, closed", DOWNLOAD),
            Some(Reason::Reset)
        );
    }
}
