//! Transcripts: the ordered events of one run, with simulated times.
//!
//! Peers record what they did and saw through a [`Recorder`]; the text form
//! ([`Transcript::render`]) is what snapshots store and students read, so it
//! holds no wall-clock time, no OS port numbers and no map iteration order.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    /// Simulated time since the start of the run.
    pub at: Duration,
    /// Who: a peer name, `subject`, or `harness`.
    pub who: String,
    /// What, in words (`send 10 bytes "Tyger Tyg"`).
    pub what: String,
}

/// Events a run keeps. Far above any case of the catalog; past it a flood
/// (a client sending junk in tiny pieces, an endless server) only counts
/// its events, so the transcript cannot grow without bound.
pub const MAX_EVENTS: usize = 100_000;

/// The events kept, and how many more there were.
#[derive(Debug, Default)]
struct Log {
    kept: Vec<Event>,
    dropped: usize,
    last_at: Duration,
}

/// A shared, append-only event log for one run.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    events: Arc<Mutex<Log>>,
    /// Start of a live run (real sockets); `None` in the simulator.
    epoch: Option<std::time::Instant>,
}

impl Recorder {
    /// A new, empty log for a simulated run.
    pub fn new() -> Self {
        Recorder::default()
    }

    /// A new, empty log for a live run: times are wall-clock since now.
    pub fn live() -> Self {
        Recorder {
            epoch: Some(std::time::Instant::now()),
            ..Recorder::default()
        }
    }

    /// Time since the run started: simulated, or wall-clock in a live run.
    pub fn now(&self) -> Duration {
        match self.epoch {
            Some(t) => t.elapsed(),
            None => turmoil::sim_elapsed().unwrap_or_default(),
        }
    }

    /// Appends an event at the current time.
    pub fn log(&self, who: &str, what: impl Into<String>) {
        self.log_at(self.now(), who, what);
    }

    /// Appends an event at a given time (past [`MAX_EVENTS`], only
    /// counts it).
    pub fn log_at(&self, at: Duration, who: &str, what: impl Into<String>) {
        let mut log = self.events.lock().expect("recorder lock");
        if log.kept.len() < MAX_EVENTS {
            log.kept.push(Event {
                at,
                who: who.to_string(),
                what: what.into(),
            });
        } else {
            log.dropped += 1;
            log.last_at = at;
        }
    }

    /// The events so far, and one `N more events not kept` past
    /// [`MAX_EVENTS`].
    pub fn events(&self) -> Vec<Event> {
        let log = self.events.lock().expect("recorder lock");
        let mut events = log.kept.clone();
        if log.dropped > 0 {
            events.push(Event {
                at: log.last_at,
                who: "harness".to_string(),
                what: format!("{} more events not kept", log.dropped),
            });
        }
        events
    }
}

/// Runs of at least this many alike events (same actor, same kind) are
/// folded into one line, so a ten-minute slow poem stays readable.
pub const FOLD_RUNS_OF: usize = 4;

/// A finished run's events.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Transcript {
    /// The events in the order they happened.
    pub events: Vec<Event>,
    /// Render without times (for text that must not vary between runs).
    pub untimed: bool,
    /// Times are shown from here: zero in the simulator; in a live run,
    /// when the subject became ready (servers) or first connected
    /// (clients). Earlier events, the start-up, show as negative times.
    pub origin: Duration,
}

impl Transcript {
    /// The same events, to be rendered without times.
    pub fn untimed(mut self) -> Self {
        self.untimed = true;
        self
    }

    /// The text form: one line per event (runs folded), times in seconds
    /// with millisecond precision.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let ev = &self.events;
        let mut i = 0;
        while i < ev.len() {
            let kind = kind_of(&ev[i].what);
            let mut j = i + 1;
            while j < ev.len()
                && ev[j].who == ev[i].who
                && kind_of(&ev[j].what) == kind
                && kind.is_some()
            {
                j += 1;
            }
            if j - i >= FOLD_RUNS_OF {
                let bytes: usize = ev[i..j].iter().filter_map(|e| bytes_of(&e.what)).sum();
                let until = if self.untimed {
                    String::new()
                } else {
                    format!(" until {}", self.time(ev[j - 1].at))
                };
                let _ = writeln!(
                    out,
                    "{}{:<10} {} x{}{until} ({} bytes in all)",
                    self.stamp(ev[i].at),
                    ev[i].who,
                    kind.unwrap_or_default(),
                    j - i,
                    bytes
                );
                i = j;
                continue;
            }
            let _ = writeln!(
                out,
                "{}{:<10} {}",
                self.stamp(ev[i].at),
                ev[i].who,
                ev[i].what
            );
            i += 1;
        }
        out
    }
}

impl Transcript {
    fn stamp(&self, at: Duration) -> String {
        if self.untimed {
            String::new()
        } else {
            format!("{:>10}  ", self.time(at))
        }
    }

    fn time(&self, at: Duration) -> String {
        match at.checked_sub(self.origin) {
            Some(d) => secs(d),
            None => format!("-{}", secs(self.origin - at)),
        }
    }
}

/// `send`/`recv` events fold; everything else stands alone.
fn kind_of(what: &str) -> Option<&'static str> {
    if what.starts_with("send ") {
        Some("send")
    } else if what.starts_with("recv ") {
        Some("recv")
    } else {
        None
    }
}

/// The byte count of a `send N bytes ...` / `recv N bytes ...` event.
fn bytes_of(what: &str) -> Option<usize> {
    what.split_whitespace().nth(1)?.parse().ok()
}

/// `12.345s`: simulated seconds, millisecond precision.
pub fn secs(d: Duration) -> String {
    format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
}

/// Whether a character must not reach a terminal, log or report raw: C0
/// and C1 controls (ESC, CR, BEL, NUL, DEL...), Unicode bidi embeddings,
/// overrides and isolates (which reorder what a reader sees), and the
/// Unicode line and paragraph separators. Tab is harmless and kept.
fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}'
        )
}

/// Pushes `c`, escaped if it is unsafe: `\n`, `\r`, or `\u{1b}`.
fn push_escaped(s: &mut String, c: char) {
    match c {
        '\n' => s.push_str("\\n"),
        '\r' => s.push_str("\\r"),
        c if is_unsafe(c) => {
            let _ = write!(s, "\\u{{{:x}}}", c as u32);
        }
        c => s.push(c),
    }
}

/// A program's text made safe to print, log or report: every control
/// character (newlines included) and bidi override is escaped as in
/// [`preview`]; everything else, backslashes and quotes included, is kept,
/// so text that is already escaped comes out unchanged. Every writer that
/// shows text a program produced (the table, transcripts, JUnit, JSON, the
/// matrix) passes it through here, so a `\r` or an ANSI sequence cannot
/// forge a verdict line.
pub fn sanitise(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut s = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut s, c);
    }
    std::borrow::Cow::Owned(s)
}

/// [`sanitise`] for text of several lines: each line is sanitised and the
/// line breaks are kept (a lone `\r` is escaped, not a break).
pub fn sanitise_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&sanitise(line));
    }
    out
}

/// Bytes previewed in an event.
pub const PREVIEW: usize = 24;

/// `N bytes "text…"`: a count and a short escaped preview.
pub fn preview(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(PREVIEW)];
    let mut s = String::new();
    for chunk in shown.utf8_chunks() {
        for ch in chunk.valid().chars() {
            match ch {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '\t' => s.push_str("\\u{9}"),
                c => push_escaped(&mut s, c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    let more = if bytes.len() > PREVIEW { "…" } else { "" };
    format!("{} bytes \"{s}\"{more}", bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitise_escapes_controls_and_bidi_overrides() {
        assert_eq!(
            sanitise("\r PASS \x1b[32m \x07 \0 \u{9b} \u{202e}x\tq"),
            "\\r PASS \\u{1b}[32m \\u{7} \\u{0} \\u{9b} \\u{202e}x\tq"
        );
        assert_eq!(sanitise("a\nb"), "a\\nb");
        assert_eq!(sanitise_lines("a\r\nb\x1b"), "a\\r\nb\\u{1b}");
    }

    #[test]
    fn sanitise_leaves_safe_and_already_escaped_text_alone() {
        let escaped = preview(b"x\ry\x1b");
        assert_eq!(sanitise(&escaped), escaped);
        assert!(matches!(
            sanitise("caf\u{e9} \"q\" \\"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn preview_escapes_and_truncates() {
        assert_eq!(preview(b"a\nb"), "3 bytes \"a\\nb\"");
        assert_eq!(preview(&[0x66, 0xc3]), "2 bytes \"f\\xc3\"");
        let long = vec![b'x'; 30];
        assert!(preview(&long).ends_with("\"…"));
    }

    #[test]
    fn runs_of_sends_fold_into_one_line() {
        let rec = Recorder::new();
        for i in 0..5u64 {
            rec.log_at(Duration::from_millis(700 * i), "s1", "send 10 bytes \"x\"");
        }
        rec.log_at(Duration::from_secs(4), "s1", "close FIN");
        let text = Transcript {
            events: rec.events(),
            untimed: false,
            origin: Duration::ZERO,
        }
        .render();
        assert_eq!(
            text,
            "    0.000s  s1         send x5 until 2.800s (50 bytes in all)\n    4.000s  s1         close FIN\n"
        );
    }

    #[test]
    fn events_past_the_cap_are_counted_in_one_line() {
        let rec = Recorder::new();
        for i in 0..MAX_EVENTS + 5 {
            rec.log_at(Duration::from_millis(i as u64), "c1", "recv 1 bytes \"x\"");
        }
        let events = rec.events();
        assert_eq!(events.len(), MAX_EVENTS + 1);
        let last = events.last().unwrap();
        assert_eq!(last.what, "5 more events not kept");
        assert_eq!(last.at, Duration::from_millis((MAX_EVENTS + 4) as u64));
    }

    #[test]
    fn short_runs_stay_line_by_line() {
        let rec = Recorder::new();
        rec.log_at(Duration::ZERO, "s1", "send 1 bytes \"a\"");
        rec.log_at(Duration::ZERO, "s2", "send 1 bytes \"b\"");
        assert_eq!(
            Transcript {
                events: rec.events(),
                untimed: false,
                origin: Duration::ZERO,
            }
            .render()
            .lines()
            .count(),
            2
        );
    }
}
