//! Where a case's poem comes from: a fixture, inline text, raw bytes in
//! hex, or generated.

use bytes::Bytes;
use serde::Deserialize;

/// The poems of `fixtures/poems/`, built into the binary so the catalog runs
/// from anywhere.
pub const FIXTURES: &[(&str, &[u8])] = &[
    ("tyger", include_bytes!("../../fixtures/poems/tyger.txt")),
    (
        "science",
        include_bytes!("../../fixtures/poems/science.txt"),
    ),
    (
        "loreley",
        include_bytes!("../../fixtures/poems/loreley.txt"),
    ),
];

/// A poem named by a case: `poem = "loreley"` (a fixture),
/// `poem = { text = "..." }` (inline), `poem = { hex = "efbbbf 41 0d0a" }`
/// (raw bytes, for what a TOML string cannot hold: invalid UTF-8, and
/// bytes a reader should see, such as CR LF or a BOM) or
/// `poem = { size = 3000 }` (generated ASCII verse of exactly that many
/// bytes). Default: the fixture `tyger`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoemSpec {
    /// A fixture of `fixtures/poems/` by name.
    Fixture(String),
    /// The poem itself.
    Text(String),
    /// The poem's bytes, given in hex.
    Raw(Bytes),
    /// A generated poem of this many bytes.
    Size(usize),
    /// A generated poem of this many bytes whose lines start with a
    /// capital, so a lower-casing transform changes it.
    Capitalised(usize),
}

/// Largest generated poem, in bytes (64 MiB): far beyond any case's need
/// (the longest poem the catalog serves is a few KiB), and small enough
/// that a typo such as `size = 20000000000` is an error in the catalog,
/// not an allocation that aborts the harness.
pub const MAX_POEM_SIZE: usize = 64 << 20;

/// The fixture a case gets when it names none.
pub const DEFAULT_POEM: &str = "tyger";

impl Default for PoemSpec {
    fn default() -> Self {
        PoemSpec::Fixture(DEFAULT_POEM.to_string())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoemTable {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    hex: Option<String>,
    #[serde(default)]
    size: Option<usize>,
    #[serde(default)]
    capitals: bool,
}

impl<'de> Deserialize<'de> for PoemSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PoemSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a fixture name (\"tyger\"), { text = \"...\" }, { hex = \"...\" } or { size = N } (with capitals = true: lines start with a capital)",
                )
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<PoemSpec, E> {
                if fixture(name).is_none() {
                    let known: Vec<_> = FIXTURES.iter().map(|(n, _)| *n).collect();
                    return Err(E::custom(format!(
                        "unknown poem '{name}' (known: {})",
                        known.join(", ")
                    )));
                }
                Ok(PoemSpec::Fixture(name.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<PoemSpec, A::Error> {
                let t = PoemTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                match (t.text, t.hex, t.size) {
                    (Some(text), None, None) => Ok(PoemSpec::Text(text)),
                    (None, Some(hex), None) => crate::peers::decode_hex(&hex)
                        .map(|b| PoemSpec::Raw(Bytes::from(b)))
                        .ok_or_else(|| {
                            serde::de::Error::custom(format!(
                                "hex '{hex}' is not pairs of hex digits"
                            ))
                        }),
                    (None, None, Some(size)) if size > MAX_POEM_SIZE => {
                        Err(serde::de::Error::custom(format!(
                            "poem size '{size}' is over the maximum, {MAX_POEM_SIZE} bytes (64 MiB)"
                        )))
                    }
                    (None, None, Some(size)) if t.capitals => Ok(PoemSpec::Capitalised(size)),
                    (None, None, Some(size)) => Ok(PoemSpec::Size(size)),
                    _ => Err(serde::de::Error::custom(
                        "a poem table takes exactly one of 'text', 'hex' and 'size' ('capitals' goes with 'size')",
                    )),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl PoemSpec {
    /// The poem's bytes.
    pub fn bytes(&self) -> Bytes {
        match self {
            PoemSpec::Fixture(name) => Bytes::from_static(fixture(name).unwrap_or(b"")),
            PoemSpec::Text(text) => Bytes::from(text.clone()),
            PoemSpec::Raw(bytes) => bytes.clone(),
            PoemSpec::Size(size) => generated(*size),
            PoemSpec::Capitalised(size) => {
                let mut p = generated(*size).to_vec();
                let mut at_line_start = true;
                for b in &mut p {
                    if at_line_start {
                        *b = b.to_ascii_uppercase();
                    }
                    at_line_start = *b == b'\n';
                }
                Bytes::from(p)
            }
        }
    }
}

/// A fixture's bytes by name.
pub fn fixture(name: &str) -> Option<&'static [u8]> {
    FIXTURES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// `size` bytes of numbered ASCII lines, the same every time.
///
/// A case asks for its poem several times (the simulator, each peer, the
/// verdict), so the last one made on this thread is kept and handed out
/// again: the same bytes, shared, not a second copy.
pub fn generated(size: usize) -> Bytes {
    thread_local! {
        static LAST: std::cell::RefCell<Bytes> = const { std::cell::RefCell::new(Bytes::new()) };
    }
    if let Some(poem) = LAST.with_borrow(|last| (last.len() == size).then(|| last.clone())) {
        return poem;
    }
    let poem = generate(size);
    LAST.set(poem.clone());
    poem
}

fn generate(size: usize) -> Bytes {
    // Ten lines at a time where ten lines have the same length and share
    // all their digits but the last (lines 20 to 29, 30 to 39, ...): the
    // ten before are copied in one go, and only the shared digits that
    // changed (usually just the tens) are written into each. Elsewhere
    // (lines 1 to 19, and where the number gains a digit) line by line:
    // one line is kept and its number counted up in place. An 8 MiB poem
    // is 240,000 lines, and the catalog generates its poems on every run.
    const HEAD: &[u8] = b"line ";
    const TAIL: &[u8] = b" of a long and patient poem\n";
    // Room for the ten lines the last copy may write past `size`.
    let mut out = Vec::with_capacity(size + 10 * (HEAD.len() + 20 + TAIL.len()));
    // Line `n`, the next to write.
    let mut line = [HEAD, b"1", TAIL].concat();
    let mut n: u64 = 1;
    while out.len() < size {
        let len = line.len();
        let last_digit = len - TAIL.len() - 1;
        let ten_back_same_length = n % 10 == 0 && n >= 20 && !is_power_of_ten(n);
        if ten_back_same_length {
            let copied = out.len();
            out.extend_from_within(copied - 10 * len..);
            // The shared digits changed from the first changed one (the
            // last that is not a 0) to the last.
            let changed = line[HEAD.len()..last_digit]
                .iter()
                .rposition(|&d| d != b'0')
                .map_or(HEAD.len(), |i| HEAD.len() + i);
            let lines = out[copied..].chunks_exact_mut(len);
            if changed + 1 == last_digit {
                // Nine times in ten, the tens digit alone: one byte a line.
                let tens = line[changed];
                lines.for_each(|l| l[changed] = tens);
            } else {
                let digits = &line[changed..last_digit];
                lines.for_each(|l| l[changed..last_digit].copy_from_slice(digits));
            }
            // Line n + 10: the shared digits one more, the last still 0.
            if increment_decimal(&mut line[HEAD.len()..last_digit]) {
                line.insert(HEAD.len(), b'1');
            }
            n += 10;
        } else {
            out.extend_from_slice(&line);
            if increment_decimal(&mut line[HEAD.len()..=last_digit]) {
                line.insert(HEAD.len(), b'1');
            }
            n += 1;
        }
    }
    out.truncate(size);
    Bytes::from(out)
}

fn is_power_of_ten(mut n: u64) -> bool {
    while n % 10 == 0 && n > 1 {
        n /= 10;
    }
    n == 1
}

/// Adds one to a number written in ASCII decimal digits. Whether it
/// carried out of the first digit (all nines became zeros), when the
/// caller must put a `1` in front.
fn increment_decimal(digits: &mut [u8]) -> bool {
    for d in digits.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_poem_is_numbered_lines() {
        let p = generated(80);
        assert_eq!(
            &p[..],
            &b"line 1 of a long and patient poem\nline 2 of a long and patient poem\nline 3 of a "
                [..]
        );
    }

    #[test]
    fn decimal_counting_carries() {
        let mut n = b"1".to_vec();
        for expected in 2..=1200u32 {
            if increment_decimal(&mut n) {
                n.insert(0, b'1');
            }
            assert_eq!(n, expected.to_string().into_bytes());
        }
    }

    #[test]
    fn generated_lines_are_numbered_in_order_across_carries() {
        // 105,000 lines: the number gains a digit at 10, 100, ..., 100,000,
        // and ten lines are copied at a time in between.
        let poem = generate(4_000_000);
        let lines: Vec<&[u8]> = poem.split(|&b| b == b'\n').collect();
        assert!(lines.len() > 100_000, "{} lines", lines.len());
        // The last piece may be cut short by the size.
        for (i, line) in lines[..lines.len() - 1].iter().enumerate() {
            assert_eq!(
                *line,
                format!("line {} of a long and patient poem", i + 1).as_bytes()
            );
        }
    }

    #[test]
    fn generated_poem_has_the_exact_size() {
        for size in [0, 1, 37, 4096, 100_000] {
            assert_eq!(generated(size).len(), size);
        }
    }

    #[test]
    fn every_size_is_a_prefix_of_a_longer_poem() {
        // A copy of ten lines may end past the size: what is cut off is
        // the same as where the poem goes on.
        let long = generate(20_000);
        for size in 0..20_000 {
            assert_eq!(generate(size)[..], long[..size], "size {size}");
        }
    }

    #[test]
    fn powers_of_ten_only() {
        let yes: Vec<u64> = (0..=10_000).filter(|&n| is_power_of_ten(n)).collect();
        assert_eq!(yes, [1, 10, 100, 1000, 10_000]);
    }

    #[derive(Debug, Deserialize)]
    struct Holder {
        poem: PoemSpec,
    }

    #[test]
    fn table_with_two_sources_is_refused() {
        let err = toml::from_str::<Holder>("poem = { text = \"a\", size = 3 }").unwrap_err();
        assert!(err.to_string().contains("exactly one"), "{err}");
    }

    #[test]
    fn unknown_fixture_is_named() {
        let err = toml::from_str::<Holder>("poem = \"odyssey\"").unwrap_err();
        assert!(err.to_string().contains("'odyssey'"), "{err}");
    }

    #[test]
    fn forms_parse() {
        let h: Holder = toml::from_str("poem = { size = 12 }").unwrap();
        assert_eq!(h.poem.bytes().len(), 12);
        let h: Holder = toml::from_str("poem = { text = \"\" }").unwrap();
        assert!(h.poem.bytes().is_empty());
    }

    #[test]
    fn hex_gives_raw_bytes_that_text_cannot_hold() {
        let h: Holder = toml::from_str("poem = { hex = \"efbbbf 41 0d0a ff\" }").unwrap();
        assert_eq!(&h.poem.bytes()[..], b"\xef\xbb\xbfA\r\n\xff");
    }

    #[test]
    fn bad_hex_is_quoted() {
        let err = toml::from_str::<Holder>("poem = { hex = \"4g\" }").unwrap_err();
        assert!(err.to_string().contains("'4g'"), "{err}");
    }

    #[test]
    fn default_is_the_tyger() {
        assert!(PoemSpec::default().bytes().starts_with(b"The Tyger"));
    }
}
