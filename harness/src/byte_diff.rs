//! Where two byte strings first differ, shown as a reader can act on it: a
//! hex-and-text window around the first differing byte, expected above
//! received, and a caret under the byte.
//!
//! ```
//! use poetry_harness::byte_diff;
//! let diff = byte_diff::render(b"Tyger Tyger", b"Tyger tyger").unwrap();
//! assert!(diff.starts_with("first difference at byte 6 (line 1, column 7): expected 0x54 'T', received 0x74 't'"));
//! assert!(diff.contains("      ^^"));
//! assert_eq!(byte_diff::render(b"same", b"same"), None);
//! ```

use std::fmt::Write as _;

/// Bytes per row of the window: the width of `hexdump -C`.
pub const ROW: usize = 16;

/// Rows shown before and after the row holding the first difference.
const CONTEXT_ROWS: usize = 1;

/// Where `expected` and `received` first differ: the index of the first
/// byte that is not the same, or the length of the shorter one when it is
/// a prefix of the other; `None` when they are equal.
pub fn first_difference(expected: &[u8], received: &[u8]) -> Option<usize> {
    if expected == received {
        return None;
    }
    Some(
        expected
            .iter()
            .zip(received)
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.len().min(received.len())),
    )
}

/// `0x41 'A'`, or `0xc3` for a byte that is not printable ASCII.
fn byte(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("0x{b:02x} '{}'", b as char)
    } else {
        format!("0x{b:02x}")
    }
}

/// The line and column (from 1) of byte `at`, counting lines by `\n`.
fn line_and_column(bytes: &[u8], at: usize) -> (usize, usize) {
    let before = &bytes[..at.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}

/// The one-line summary of the first difference at `at`, of sides that
/// are `expected_len` and `received_len` bytes long in all.
fn summary(
    expected: &[u8],
    received: &[u8],
    at: usize,
    expected_len: usize,
    received_len: usize,
) -> String {
    let (line, column) = line_and_column(expected, at);
    let place = format!("byte {at} (line {line}, column {column})");
    match (expected.get(at), received.get(at)) {
        (Some(&e), Some(&r)) => format!(
            "first difference at {place}: expected {}, received {}",
            byte(e),
            byte(r)
        ),
        (Some(&e), None) => format!(
            "received ends at {place}, {} byte(s) short: expected {} next",
            expected_len.saturating_sub(at),
            byte(e)
        ),
        (None, Some(&r)) => format!(
            "received goes on past the expected end, at {place}: {} byte(s) too many, starting {}",
            received_len.saturating_sub(at),
            byte(r)
        ),
        (None, None) => unreachable!("`at` is inside one of them when they differ"),
    }
}

/// One row: `00000020  65 69 6e ...  |eine..Ich|`, padded to full width
/// (bytes past the end are blank), or `(ends before this row)`.
fn row(bytes: &[u8], start: usize) -> String {
    if start >= bytes.len() && start > 0 {
        return format!("{start:08x}  (ends before this row)");
    }
    let part = &bytes[start..(start + ROW).min(bytes.len())];
    let mut hex = String::new();
    for i in 0..ROW {
        if i > 0 {
            hex.push(' ');
        }
        match part.get(i) {
            Some(b) => {
                let _ = write!(hex, "{b:02x}");
            }
            None => hex.push_str("  "),
        }
    }
    let text: String = part
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    format!("{start:08x}  {hex}  |{text}|")
}

/// Width of the `expected  ` / `received  ` labels before each row.
const LABEL: usize = 10;

/// The caret line under the row of `at`: `^^` under its hex digits and `^`
/// under its character.
fn caret(at: usize) -> String {
    let column = at % ROW;
    // Offset (8) and two spaces, then three characters per byte.
    let hex_at = LABEL + 8 + 2 + 3 * column;
    // Past the hex (16 * 3 - 1), two spaces and the opening bar.
    let text_at = LABEL + 8 + 2 + (3 * ROW - 1) + 2 + 1 + column;
    format!(
        "{}^^{}^",
        " ".repeat(hex_at),
        " ".repeat(text_at - hex_at - 2)
    )
}

/// The first difference between `expected` and `received`, with a window
/// of [`ROW`]-byte rows around it (the row before, the row of the
/// difference with a caret under the byte, the row after), expected above
/// received in each; `None` when they are equal.
pub fn render(expected: &[u8], received: &[u8]) -> Option<String> {
    render_cut(expected, received, expected.len(), received.len())
}

/// [`render`] of the first bytes of two longer strings, `expected_len`
/// and `received_len` bytes long in all: the counts of missing or extra
/// bytes are of the whole.
pub fn render_cut(
    expected: &[u8],
    received: &[u8],
    expected_len: usize,
    received_len: usize,
) -> Option<String> {
    let at = first_difference(expected, received)?;
    let mut out = summary(expected, received, at, expected_len, received_len);
    out.push('\n');
    let diff_row = at / ROW;
    let last_row = (expected.len().max(received.len()).max(1) - 1) / ROW;
    let first = diff_row.saturating_sub(CONTEXT_ROWS);
    let last = (diff_row + CONTEXT_ROWS).min(last_row.max(diff_row));
    for r in first..=last {
        let start = r * ROW;
        let _ = writeln!(out, "{:<LABEL$}{}", "expected", row(expected, start));
        let _ = writeln!(out, "{:<LABEL$}{}", "received", row(received, start));
        if r == diff_row {
            let _ = writeln!(out, "{}", caret(at));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_bytes_have_no_difference() {
        assert_eq!(first_difference(b"", b""), None);
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(render(b"abc", b"abc"), None);
    }

    #[test]
    fn the_first_differing_byte_is_found() {
        assert_eq!(first_difference(b"abc", b"abd"), Some(2));
        assert_eq!(first_difference(b"abc", b"xbc"), Some(0));
    }

    #[test]
    fn a_prefix_differs_where_it_ends() {
        assert_eq!(first_difference(b"abcdef", b"abc"), Some(3));
        assert_eq!(first_difference(b"abc", b"abcdef"), Some(3));
        assert_eq!(first_difference(b"abc", b""), Some(0));
    }

    #[test]
    fn the_caret_sits_under_the_differing_byte_in_hex_and_text() {
        let expected = b"0123456789abcdefHello, world!";
        let received = b"0123456789abcdefHello, World!";
        let text = render(expected, received).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "first difference at byte 23 (line 1, column 24): expected 0x77 'w', received 0x57 'W'"
        );
        // The row before, then the row of the difference and its caret.
        assert!(lines[1].starts_with("expected  00000000  30 31"), "{text}");
        assert!(lines[3].starts_with("expected  00000010  48 65"), "{text}");
        let received_row = lines[4];
        let caret = lines[5];
        let hex = caret.find("^^").unwrap();
        assert_eq!(&received_row[hex..hex + 2], "57", "{text}");
        let ch = caret.rfind('^').unwrap();
        assert_eq!(&received_row[ch..=ch], "W", "{text}");
        assert_eq!(lines.len(), 6, "no row after the last: {text}");
    }

    #[test]
    fn a_split_character_replaced_by_u_fffd_shows_both_encodings() {
        // "weiß" cut inside the ß, decoded per read: U+FFFD twice.
        let expected = "Ich weiß nicht".as_bytes();
        let received = "Ich wei\u{fffd}\u{fffd} nicht".as_bytes();
        let text = render(expected, received).unwrap();
        assert!(
            text.starts_with(
                "first difference at byte 7 (line 1, column 8): expected 0xc3, received 0xef"
            ),
            "{text}"
        );
        assert!(text.contains("c3 9f 20 6e"), "{text}");
        assert!(text.contains("ef bf bd ef bf bd"), "{text}");
        assert!(text.contains("|Ich wei.. nicht|"), "{text}");
    }

    #[test]
    fn a_short_read_says_how_many_bytes_are_missing() {
        let text = render(b"line one\nline two\n", b"line one\n").unwrap();
        assert!(
            text.starts_with(
                "received ends at byte 9 (line 2, column 1), 9 byte(s) short: expected 0x6c 'l' next"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_counts_of_a_cut_comparison_are_of_the_whole() {
        let text = render_cut(b"abcd", b"ab", 1000, 2).unwrap();
        assert!(text.contains("998 byte(s) short"), "{text}");
    }

    #[test]
    fn extra_bytes_are_counted() {
        let text = render(b"poem", b"poem\n\n").unwrap();
        assert!(
            text.starts_with(
                "received goes on past the expected end, at byte 4 (line 1, column 5): 2 byte(s) too many, starting 0x0a"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_side_that_ends_before_a_row_says_so() {
        let expected = vec![b'x'; 40];
        let text = render(&expected, b"xxxxx").unwrap();
        assert!(
            text.contains("received  00000010  (ends before this row)"),
            "{text}"
        );
        // The window stops one row after the difference.
        assert!(!text.contains("00000020"), "{text}");
    }

    #[test]
    fn empty_against_something_shows_the_first_row() {
        let text = render(b"", b"\n").unwrap();
        assert!(text.contains("expected  00000000"), "{text}");
        assert!(text.contains("|.|"), "{text}");
    }
}
