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
    /// Set when this event stands for a folded run of alike events
    /// ([`Transcript::compact`]): `what` is then the first of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
}

/// A run of alike `send`/`recv` events folded into one ([`Transcript::compact`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Run {
    /// Events in the run.
    pub count: usize,
    /// Bytes they sent or received in all.
    pub bytes: usize,
    /// The time of the last of them.
    pub until: Duration,
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

impl Log {
    /// Folds a `send`/`recv` event (`kind`, of `bytes` bytes) into the
    /// run it continues: the folded run at the end of the log, or the last
    /// [`FOLD_RUNS_OF`] - 1 alike events, which become a run with it.
    /// Whether it did.
    fn fold(&mut self, at: Duration, who: &str, kind: &str, bytes: usize) -> bool {
        let alike = |e: &Event| e.who == who && kind_of_what(&e.what) == Some(kind);
        if let Some(last) = self.kept.last_mut() {
            if alike(last) {
                if let Some(r) = &mut last.run {
                    r.count += 1;
                    r.bytes += bytes;
                    r.until = at;
                    return true;
                }
            }
        }
        let before = FOLD_RUNS_OF - 1;
        let n = self.kept.len();
        if n < before
            || !self.kept[n - before..]
                .iter()
                .all(|e| e.run.is_none() && alike(e))
        {
            return false;
        }
        let mut run: Vec<Event> = self.kept.drain(n - before..).collect();
        let bytes = run.iter().filter_map(|e| bytes_of(&e.what)).sum::<usize>() + bytes;
        let first = run.swap_remove(0);
        self.kept.push(Event {
            run: Some(Run {
                count: FOLD_RUNS_OF,
                bytes,
                until: at,
            }),
            ..first
        });
        true
    }

    /// Keeps an event that did not fold, or past [`MAX_EVENTS`] counts it.
    fn push(&mut self, at: Duration, who: &str, what: String) {
        if self.kept.len() < MAX_EVENTS {
            self.kept.push(Event {
                at,
                who: who.to_string(),
                what,
                run: None,
            });
        } else {
            self.dropped += 1;
            self.last_at = at;
        }
    }

    /// `N more events not kept`, past [`MAX_EVENTS`].
    fn dropped_note(&self) -> Option<Event> {
        (self.dropped > 0).then(|| Event {
            at: self.last_at,
            who: "harness".to_string(),
            what: format!("{} more events not kept", self.dropped),
            run: None,
        })
    }
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
            // simnet first: one thread-local read, where turmoil's probe
            // allocates an error when no turmoil world runs (1.3% of the
            // catalog's instructions on simnet). At most one runs.
            None => crate::backend::simnet::try_now()
                .or_else(turmoil::sim_elapsed)
                .unwrap_or_default(),
        }
    }

    /// Appends an event at the current time.
    pub fn log(&self, who: &str, what: impl Into<String>) {
        self.log_at(self.now(), who, what);
    }

    /// Appends an event at a given time (past [`MAX_EVENTS`], only
    /// counts it). A `send`/`recv` alike to the events before it is folded
    /// into their run at once, as [`Transcript::render`] shows it: a flood
    /// of reads costs one event, not one per read.
    pub fn log_at(&self, at: Duration, who: &str, what: impl Into<String>) {
        let what = what.into();
        let mut log = self.events.lock().expect("recorder lock");
        if let Some(kind) = kind_of_what(&what) {
            if log.fold(at, who, kind, bytes_of(&what).unwrap_or(0)) {
                return;
            }
        }
        log.push(at, who, what);
    }

    /// Appends `send N bytes "..."` or `recv N bytes "..."` at the current
    /// time: the same event as [`Recorder::log`] of that text, but the
    /// preview is only written when the event is kept, not when it folds
    /// into a run. A byte-by-byte poem is thousands of reads, and all but
    /// the first few fold.
    pub fn log_bytes(&self, who: &str, way: Way, bytes: &[u8]) {
        let at = self.now();
        let mut log = self.events.lock().expect("recorder lock");
        if !log.fold(at, who, way.word(), bytes.len()) {
            log.push(at, who, format!("{} {}", way.word(), preview(bytes)));
        }
    }

    /// The events so far, and one `N more events not kept` past
    /// [`MAX_EVENTS`].
    pub fn events(&self) -> Vec<Event> {
        let log = self.events.lock().expect("recorder lock");
        let mut events = log.kept.clone();
        events.extend(log.dropped_note());
        events
    }

    /// What [`Recorder::events`] returns, moved out instead of copied: for
    /// the end of a run, so a flood's transcript (up to [`MAX_EVENTS`]) is
    /// never in memory twice. The log is empty afterwards.
    pub fn take_events(&self) -> Vec<Event> {
        let mut log = self.events.lock().expect("recorder lock");
        let note = log.dropped_note();
        let mut events = std::mem::take(&mut log.kept);
        events.extend(note);
        events
    }

    /// The time of the latest event `f` accepts, without copying the log
    /// (the `N more events not kept` note is the harness's, at the time of
    /// the last event dropped).
    pub fn latest(&self, f: impl Fn(&Event) -> bool) -> Option<Duration> {
        let log = self.events.lock().expect("recorder lock");
        let note = log.dropped_note();
        log.kept
            .iter()
            .chain(note.as_ref())
            .filter(|e| f(e))
            .map(|e| e.run.map_or(e.at, |r| r.until))
            .max()
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
    /// How long the run lasted on the transcript's clock: the time of its
    /// last event (simulated time in the simulator, wall time live).
    pub fn span(&self) -> Duration {
        self.events
            .iter()
            .map(|e| e.run.map_or(e.at, |r| r.until.max(e.at)))
            .max()
            .unwrap_or_default()
    }

    /// The same events, to be rendered without times.
    pub fn untimed(mut self) -> Self {
        self.untimed = true;
        self
    }

    /// The runs of at least [`FOLD_RUNS_OF`] alike events, as `(start,
    /// end)` index ranges, in order: what [`Transcript::render`] folds.
    fn runs(&self) -> Vec<(usize, usize)> {
        let ev = &self.events;
        let mut runs = Vec::new();
        let mut i = 0;
        while i < ev.len() {
            let kind = kind_of(&ev[i]);
            let mut j = i + 1;
            while kind.is_some()
                && ev[i].run.is_none()
                && j < ev.len()
                && ev[j].run.is_none()
                && ev[j].who == ev[i].who
                && kind_of(&ev[j]) == kind
            {
                j += 1;
            }
            if j - i >= FOLD_RUNS_OF {
                runs.push((i, j));
            }
            i = j;
        }
        runs
    }

    /// Folds every run [`Transcript::render`] would fold into one event,
    /// rendered the same: a flood's tens of thousands of `recv` events
    /// then cost one event wherever the transcript is kept or copied.
    pub fn compact(&mut self) {
        let runs = self.runs();
        if runs.is_empty() {
            return;
        }
        let old = std::mem::take(&mut self.events);
        let mut runs = runs.into_iter().peekable();
        let mut events = Vec::new();
        let mut folded: Option<Event> = None;
        for (k, e) in old.into_iter().enumerate() {
            match runs.peek() {
                Some(&(i, j)) if (i..j).contains(&k) => {
                    let bytes = bytes_of(&e.what).unwrap_or(0);
                    match &mut folded {
                        None => {
                            folded = Some(Event {
                                run: Some(Run {
                                    count: 1,
                                    bytes,
                                    until: e.at,
                                }),
                                ..e
                            })
                        }
                        Some(f) => {
                            if let Some(r) = &mut f.run {
                                r.count += 1;
                                r.bytes += bytes;
                                r.until = e.at;
                            }
                        }
                    }
                    if k + 1 == j {
                        events.extend(folded.take());
                        runs.next();
                    }
                }
                _ => events.push(e),
            }
        }
        self.events = events;
    }

    /// The text form: one line per event (runs folded), times in seconds
    /// with millisecond precision.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let ev = &self.events;
        let mut i = 0;
        while i < ev.len() {
            let kind = kind_of(&ev[i]);
            let mut j = i + 1;
            // A folded run (compacted) is never merged with neighbours.
            while ev[i].run.is_none()
                && j < ev.len()
                && ev[j].run.is_none()
                && ev[j].who == ev[i].who
                && kind_of(&ev[j]) == kind
                && kind.is_some()
            {
                j += 1;
            }
            let run = match ev[i].run {
                Some(r) => Some((r, i + 1)),
                None if j - i >= FOLD_RUNS_OF => Some((
                    Run {
                        count: j - i,
                        bytes: ev[i..j].iter().filter_map(|e| bytes_of(&e.what)).sum(),
                        until: ev[j - 1].at,
                    },
                    j,
                )),
                None => None,
            };
            if let Some((r, next)) = run {
                let until = if self.untimed {
                    String::new()
                } else {
                    format!(" until {}", self.time(r.until))
                };
                let _ = writeln!(
                    out,
                    "{}{:<10} {} x{}{until} ({} bytes in all)",
                    self.stamp(ev[i].at),
                    ev[i].who,
                    kind_of(&ev[i]).unwrap_or_default(),
                    r.count,
                    r.bytes
                );
                i = next;
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
fn kind_of(e: &Event) -> Option<&'static str> {
    kind_of_what(&e.what)
}

/// Which way the bytes of a [`Recorder::log_bytes`] event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Written by the one who logs it: `send ...`.
    Send,
    /// Read by the one who logs it: `recv ...`.
    Recv,
}

impl Way {
    /// The event's first word, as [`kind_of_what`] reads it back.
    fn word(self) -> &'static str {
        match self {
            Way::Send => "send",
            Way::Recv => "recv",
        }
    }
}

/// [`kind_of`] an event's words.
fn kind_of_what(what: &str) -> Option<&'static str> {
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

/// Bytes previewed in an event: enough for a line or two of a poem, so a
/// reader sees where it goes wrong without the whole of it.
pub const PREVIEW: usize = 60;

/// `N bytes "text…"`: a count and a short escaped preview.
pub fn preview(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(PREVIEW)];
    let mut s = String::with_capacity(shown.len() + 24);
    for chunk in shown.utf8_chunks() {
        let mut text = chunk.valid();
        // Runs of printable ASCII other than the quote and the backslash
        // go in whole: transcripts preview every read, most of them text.
        while !text.is_empty() {
            let plain = text
                .bytes()
                .position(|b| !(b' '..=b'~').contains(&b) || b == b'"' || b == b'\\')
                .unwrap_or(text.len());
            s.push_str(&text[..plain]);
            text = &text[plain..];
            let Some(ch) = text.chars().next() else {
                break;
            };
            text = &text[ch.len_utf8()..];
            match ch {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '\t' => s.push_str("\\u{9}"),
                // The byte-order mark: invisible, and a symptom when lost.
                '\u{feff}' => s.push_str("\\u{feff}"),
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
    fn preview_escapes_between_plain_runs() {
        assert_eq!(
            preview(b"a\"b\\c\td\r\n\xff\xe2\x80\xae end \xef\xbb\xbf\x7f~"),
            "23 bytes \"a\\\"b\\\\c\\u{9}d\\r\\n\\xff\\u{202e} end \\u{feff}\\u{7f}~\""
        );
        assert_eq!(preview(b""), "0 bytes \"\"");
        let long = [b'x'; 61];
        assert_eq!(preview(&long), format!("61 bytes \"{}\"…", "x".repeat(60)));
    }

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
        let long = vec![b'x'; PREVIEW + 1];
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
    fn log_bytes_keeps_the_events_log_keeps_for_the_same_text() {
        // Three actors, runs long and short, other events between them.
        let texts = Recorder::new();
        let bytes = Recorder::new();
        let mut pieces: Vec<(&str, Way, Vec<u8>)> = Vec::new();
        for i in 0..14u8 {
            pieces.push(("s1", Way::Send, vec![b'a' + i; usize::from(i) * 30]));
            if i % 7 == 0 {
                pieces.push(("c1", Way::Recv, b"x\"y\xff".to_vec()));
            }
        }
        pieces.extend((0..3).map(|_| ("c1", Way::Recv, b"z".to_vec())));
        for (i, (who, way, data)) in pieces.iter().enumerate() {
            let word = if *way == Way::Send { "send" } else { "recv" };
            texts.log(who, format!("{word} {}", preview(data)));
            bytes.log_bytes(who, *way, data);
            if i % 9 == 8 {
                texts.log("harness", "between");
                bytes.log("harness", "between");
            }
        }
        for _ in 0..9 {
            texts.log("c2", format!("recv {}", preview(b"tail")));
            bytes.log_bytes("c2", Way::Recv, b"tail");
        }
        let events = bytes.events();
        assert_eq!(events, texts.events());
        assert!(
            events.iter().filter(|e| e.run.is_some()).count() >= 3,
            "runs of sends and reads folded: {events:#?}"
        );
        let run = events.last().unwrap();
        assert_eq!(run.what, "recv 4 bytes \"tail\"");
        assert_eq!(run.run.map(|r| (r.count, r.bytes)), Some((9, 36)));
    }

    #[test]
    fn events_past_the_cap_are_counted_in_one_line() {
        let rec = Recorder::new();
        for i in 0..MAX_EVENTS + 5 {
            // Events that do not fold.
            rec.log_at(Duration::from_millis(i as u64), "c1", format!("event {i}"));
        }
        let events = rec.events();
        assert_eq!(events.len(), MAX_EVENTS + 1);
        let last = events.last().unwrap();
        assert_eq!(last.what, "5 more events not kept");
        assert_eq!(last.at, Duration::from_millis((MAX_EVENTS + 4) as u64));
        // The latest event by anyone but c1 is the note, at the last drop.
        assert_eq!(rec.latest(|e| e.who != "c1"), Some(last.at));
        assert_eq!(
            rec.latest(|e| e.who == "c1"),
            Some(Duration::from_millis(MAX_EVENTS as u64 - 1))
        );
        // Taken: the same events, moved out.
        assert_eq!(rec.take_events(), events);
        assert!(rec.take_events().len() <= 1);
    }

    #[test]
    fn a_flood_of_alike_events_is_one_event_as_it_is_logged() {
        let rec = Recorder::new();
        for i in 0..MAX_EVENTS + 5 {
            rec.log_at(Duration::from_millis(i as u64), "c1", "recv 2 bytes \"xy\"");
        }
        rec.log_at(Duration::from_secs(500), "c1", "close FIN");
        let events = rec.events();
        assert_eq!(events.len(), 2, "{:?}", &events[..3.min(events.len())]);
        assert_eq!(
            rec.latest(|e| e.what.starts_with("recv")),
            Some(Duration::from_millis((MAX_EVENTS + 4) as u64))
        );
        let text = Transcript {
            events,
            untimed: false,
            origin: Duration::ZERO,
        }
        .render();
        assert_eq!(
            text,
            format!(
                "    0.000s  c1         recv x{} until 100.004s ({} bytes in all)\n  500.000s  c1         close FIN\n",
                MAX_EVENTS + 5,
                2 * (MAX_EVENTS + 5)
            )
        );
    }

    #[test]
    fn a_compacted_transcript_renders_the_same() {
        // The same events logged one by one (folded as they come) and kept
        // plain (folded only when rendered, or compacted).
        let rec = Recorder::live();
        let plain = std::cell::RefCell::new(Vec::new());
        let mut t = 0;
        let mut at = |who: &str, what: &str| {
            t += 7;
            let at = Duration::from_millis(t);
            rec.log_at(at, who, what.to_string());
            plain.borrow_mut().push(Event {
                at,
                who: who.to_string(),
                what: what.to_string(),
                run: None,
            });
        };
        at("subject", "start: x");
        for _ in 0..10 {
            at("s1", "recv 3 bytes \"abc\"");
        }
        at("s2", "recv 1 bytes \"a\"");
        for _ in 0..3 {
            at("s1", "send 2 bytes \"ab\"");
        }
        for _ in 0..5 {
            at("s1", "send 4 bytes \"abcd\"");
        }
        at("s1", "recv 1 bytes \"z\"");
        at("s1", "close FIN");
        for _ in 0..4 {
            at("s2", "recv 1 bytes \"a\"");
        }
        let whole = Transcript {
            events: plain.into_inner(),
            untimed: false,
            origin: Duration::from_millis(3),
        };
        let logged = Transcript {
            events: rec.events(),
            ..whole.clone()
        };
        let mut compact = whole.clone();
        compact.compact();
        assert_eq!(logged, compact);
        // 10 recv, 1, 8 send (3 + 5 alike), 1, 1, 4 recv: 1 + 1 + 1 + 1 + 1 + 1 + 1.
        assert_eq!(compact.events.len(), 7, "{:#?}", compact.events);
        assert_eq!(compact.render(), whole.render());
        assert!(
            whole.render().contains("s1         recv x10 until"),
            "{}",
            whole.render()
        );
        assert_eq!(
            compact.clone().untimed().render(),
            whole.clone().untimed().render()
        );
        // Compacting twice changes nothing.
        let mut twice = compact.clone();
        twice.compact();
        assert_eq!(twice, compact);
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
