//! `run --shard K/N`: the K-th of N disjoint slices of a run's cases, so a
//! class or a large catalog spreads over CI jobs (the CI service is the
//! distributed engine: nothing here schedules anything).
//!
//! Slices are dealt round-robin over the selected cases in catalog order:
//! case `i` (0-based) goes to shard `i mod N + 1`. The catalog is ordered
//! by role, so each shard gets a share of every role, and the slow ones
//! (servers with many clients, ten-minute poems) spread over the shards.
//! The assignment depends only on the selection, never on timing or on
//! the machine, and `merge` puts the shards' cases back in the same order.

use std::fmt;
use std::str::FromStr;

/// One slice of a run: `index` of `count`, 1-based as written (`2/3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// Which slice, from 1 to `count`.
    pub index: usize,
    /// How many slices.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    /// `K/N` with `1 <= K <= N`.
    fn from_str(s: &str) -> Result<Self, String> {
        let usage =
            |why: &str| format!("shard '{s}' {why}; write K/N, e.g. 2/3 for the second of three");
        let Some((k, n)) = s.split_once('/') else {
            return Err(usage("has no '/'"));
        };
        let parse = |part: &str, what: &str| -> Result<usize, String> {
            part.trim()
                .parse::<usize>()
                .map_err(|_| usage(&format!("has {what} '{part}', not a whole number")))
        };
        let index = parse(k, "K")?;
        let count = parse(n, "N")?;
        if count == 0 {
            return Err(usage("has N = 0: there must be at least one shard"));
        }
        if index == 0 {
            return Err(usage("has K = 0: shards count from 1"));
        }
        if index > count {
            return Err(usage(&format!("has K = {index} above N = {count}")));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Whether the item at `position` (0-based, in selection order) is in
    /// this shard.
    pub fn holds(&self, position: usize) -> bool {
        position % self.count == self.index - 1
    }

    /// This shard's items of `items`, in their order.
    pub fn slice<T: Clone>(&self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .enumerate()
            .filter(|(i, _)| self.holds(*i))
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// Where the `nth` item (0-based) of this shard's slice stands in the
    /// whole selection: the inverse of [`Shard::slice`], used to merge.
    pub fn position_of(&self, nth: usize) -> usize {
        nth * self.count + (self.index - 1)
    }
}

/// A fingerprint of a selection (its case IDs, in order): shards of one
/// run share it, so `merge` can refuse shards of different selections.
/// FNV-1a, 64 bits, as 16 hex digits: stable across builds and machines.
pub fn fingerprint<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for id in ids {
        // A separator no ID holds, so ["ab", "c"] and ["a", "bc"] differ.
        for b in id.bytes().chain([b'\n']) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_of_n_parses_and_prints_back() {
        let s: Shard = "2/3".parse().unwrap();
        assert_eq!(s, Shard { index: 2, count: 3 });
        assert_eq!(s.to_string(), "2/3");
        assert_eq!("1/1".parse::<Shard>().unwrap().count, 1);
    }

    #[test]
    fn bad_shards_are_refused_with_the_reason() {
        for (text, why) in [
            ("0/3", "has K = 0: shards count from 1"),
            ("4/3", "has K = 4 above N = 3"),
            ("x/y", "has K 'x', not a whole number"),
            ("1/y", "has N 'y', not a whole number"),
            ("3", "has no '/'"),
            ("1/0", "has N = 0"),
            ("-1/3", "has K '-1'"),
            ("", "has no '/'"),
        ] {
            let err = text.parse::<Shard>().unwrap_err();
            assert!(
                err.starts_with(&format!("shard '{text}' {why}")),
                "{text}: {err}"
            );
            assert!(err.ends_with("write K/N, e.g. 2/3 for the second of three"));
        }
    }

    #[test]
    fn the_shards_of_a_selection_are_disjoint_and_their_union_is_the_whole() {
        for len in [0, 1, 2, 7, 116] {
            let items: Vec<usize> = (0..len).collect();
            for count in 1..=9 {
                let mut seen = vec![0; len];
                for index in 1..=count {
                    let shard = Shard { index, count };
                    let slice = shard.slice(&items);
                    for (nth, &item) in slice.iter().enumerate() {
                        seen[item] += 1;
                        assert_eq!(shard.position_of(nth), item);
                    }
                    // Round-robin: sizes differ by at most one.
                    assert!(slice.len() <= len.div_ceil(count));
                    assert!(slice.len() >= len / count);
                }
                assert!(seen.iter().all(|&n| n == 1), "{len} items, {count} shards");
            }
        }
    }

    #[test]
    fn the_fingerprint_tells_selections_apart() {
        assert_eq!(fingerprint(["a", "b"]), fingerprint(["a", "b"]));
        assert_ne!(fingerprint(["a", "b"]), fingerprint(["b", "a"]));
        assert_ne!(fingerprint(["ab", "c"]), fingerprint(["a", "bc"]));
        assert_eq!(fingerprint(["client.fast-poem"]).len(), 16);
    }
}
