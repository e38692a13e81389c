//! No suite, manifest or grading policy text panics its parser: a seeded loop of mutated
//! copies of the shipped files (truncated, bytes flipped, numbers and
//! strings replaced by extreme values) must each parse or give an error.
//!
//! Property-style without a property-testing crate: one seed, printed with
//! every failure, reproduces the whole run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use poetry_harness::backend::live::manifest::Manifest;
use poetry_harness::catalog::Catalog;
use poetry_harness::policy::Policy;

/// Mutated inputs tried per suite file (five files of a few hundred lines)
/// and per manifest (three short files): about 2,000 in all, which keeps
/// the test to a few seconds in a debug build.
const SUITE_TRIES: usize = 150;
const MANIFEST_TRIES: usize = 400;
/// Mutated inputs tried of the example grading policy.
const POLICY_TRIES: usize = 400;

/// The seed of the whole run; change it to explore, keep it to reproduce.
const SEED: u64 = 0x5eed_0fb4_d1a9_u64;

/// Values that have broken parsers before: negative, not-a-number, huge,
/// past `u64`, empty, and very long.
const EXTREMES: &[&str] = &[
    "-1",
    "nan",
    "inf",
    "-inf",
    "1e300",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "0",
    "20000000000",
    "\"\"",
    "\"18446744073709551615s\"",
    "\"1e300s\"",
    "\"-1s\"",
    "\"nan\"",
    "{ size = 20000000000 }",
    "{ hex = \"zz\" }",
    "[]",
    "{}",
];

/// xorshift64*: small, seeded, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `text`, chosen by `rng`.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let bytes = text.as_bytes();
    match rng.below(6) {
        // Truncated anywhere, even inside a character.
        0 => String::from_utf8_lossy(&bytes[..rng.below(bytes.len() + 1)]).into_owned(),
        // A few bytes flipped.
        1 => {
            let mut b = bytes.to_vec();
            for _ in 0..1 + rng.below(4) {
                if !b.is_empty() {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
            }
            String::from_utf8_lossy(&b).into_owned()
        }
        // A number replaced by an extreme value.
        2 | 3 => replace_nth(text, rng, |c| c.is_ascii_digit(), EXTREMES),
        // A value (after `= `) replaced by an extreme value or a huge string.
        4 => {
            let huge = format!("\"{}\"", "x".repeat(1 << 16));
            let values: Vec<&str> = EXTREMES.iter().copied().chain([huge.as_str()]).collect();
            let starts: Vec<usize> = text.match_indices("= ").map(|(i, _)| i + 2).collect();
            if starts.is_empty() {
                return text.to_string();
            }
            let at = starts[rng.below(starts.len())];
            let end = text[at..].find('\n').map_or(text.len(), |n| at + n);
            format!(
                "{}{}{}",
                &text[..at],
                values[rng.below(values.len())],
                &text[end..]
            )
        }
        // A line repeated (duplicate keys and tables).
        _ => {
            let lines: Vec<&str> = text.lines().collect();
            let i = rng.below(lines.len());
            let mut out: Vec<&str> = lines.clone();
            if let Some(l) = lines.get(i) {
                out.insert(i, l);
            }
            out.join("\n")
        }
    }
}

/// Replaces the run of characters matching `is` at a random occurrence.
fn replace_nth(text: &str, rng: &mut Rng, is: fn(char) -> bool, with: &[&str]) -> String {
    let starts: Vec<usize> = text
        .char_indices()
        .filter(|&(i, c)| is(c) && !text[..i].ends_with(is))
        .map(|(i, _)| i)
        .collect();
    if starts.is_empty() {
        return text.to_string();
    }
    let at = starts[rng.below(starts.len())];
    let end = text[at..].find(|c| !is(c)).map_or(text.len(), |n| at + n);
    format!(
        "{}{}{}",
        &text[..at],
        with[rng.below(with.len())],
        &text[end..]
    )
}

fn toml_files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read a shipped file");
            (p.display().to_string(), text)
        })
        .collect()
}

/// Feeds `tries` mutations of each file to `parse`, and fails
/// naming the seed, the file, the try and the input of the first panic.
fn no_mutation_panics(files: &[(String, String)], tries: usize, parse: impl Fn(&str, &str)) {
    assert!(!files.is_empty(), "no files to mutate");
    let mut rng = Rng(SEED);
    let mut tried = 0;
    for (name, text) in files {
        for n in 0..tries {
            let input = mutate(text, &mut rng);
            if catch_unwind(AssertUnwindSafe(|| parse(name, &input))).is_err() {
                panic!(
                    "seed {SEED:#x}: mutation {n} of {name} panicked the parser; input:\n{input}"
                );
            }
            tried += 1;
        }
    }
    assert_eq!(tried, files.len() * tries);
}

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn no_mutated_suite_panics_the_catalog_parser() {
    let clauses = poetry_harness::spec::clauses();
    no_mutation_panics(
        &toml_files(&root().join("suites")),
        SUITE_TRIES,
        |name, text| {
            let _ = poetry_harness::catalog::parse_file(name, text, &clauses);
        },
    );
}

#[test]
fn no_mutated_manifest_panics_the_manifest_parser() {
    // The shipped manifests leave some fields out; one more source sets
    // every field, so the mutations reach them too.
    let mut files = toml_files(&root().join("fixtures/python"));
    files.push((
        "every-field.toml".into(),
        "name = \"x\"\nprofile = \"tutorial\"\nlacks = [\"timeouts\"]\ntime_scale = 0.05\nenv = [\"A\"]\n\
         [client]\ncommand = \"prog {addrs}\"\ncontract = \"contains\"\nstartup_timeout = 5\nlacks = []\nenv = [\"B\"]\n"
            .into(),
    ));
    assert!(
        Manifest::parse("every-field.toml", &files.last().unwrap().1).is_ok(),
        "the every-field source must parse before it is mutated"
    );
    no_mutation_panics(&files, MANIFEST_TRIES, |name, text| {
        let _ = Manifest::parse(name, text);
    });
}

#[test]
fn no_mutated_policy_panics_the_policy_parser_or_its_checks() {
    let path = root().join("ci/policy.example.toml");
    let text = std::fs::read_to_string(&path).expect("the example policy");
    let catalog = Catalog::builtin().expect("the built-in catalog");
    let manifest = Manifest::parse(
        "m.toml",
        "name = \"x\"\nlacks = [\"timeouts\"]\ntime_scale = 0.1\nenv = [\"A\"]\n[client]\ncommand = \"p\"\nstartup_timeout = 30\n",
    )
    .expect("the manifest checked against mutated policies");
    assert!(Policy::parse("policy.example.toml", &text).is_ok());
    no_mutation_panics(
        &[("policy.example.toml".into(), text)],
        POLICY_TRIES,
        |name, text| {
            if let Ok(p) = Policy::parse(name, text) {
                let _ = p.select(&catalog);
                let _ = p.check_manifest(&manifest, "m.toml", "");
                let _ = p.points("client.x");
            }
        },
    );
}
