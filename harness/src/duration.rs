//! Durations as users write them: `0.7` (seconds, as the series' flags),
//! `700ms`, `2s`, `10min`.

use std::time::Duration;

/// Parses bare seconds (`0.7`) or a number with a unit (`700ms`, `1m 30s`).
///
/// ```
/// use std::time::Duration;
/// use poetry_harness::duration::parse_duration;
/// assert_eq!(parse_duration("0.7").unwrap(), Duration::from_millis(700));
/// assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
/// assert!(parse_duration("-1").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let d = if let Ok(secs) = s.parse::<f64>() {
        Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("duration '{s}' must be a non-negative number of seconds"))?
    } else {
        humantime::parse_duration(s).map_err(|e| {
            format!("invalid duration '{s}': {e} (write seconds like 0.7, or 700ms, 2s, 1min)")
        })?
    };
    within_max(s, d)
}

/// Longest duration a user may write: one day. The longest case runs ten
/// simulated minutes; the cap keeps every sum and scaling of durations
/// (a limit plus a grace period, a delay times `--time-scale`) far from
/// `Duration`'s overflow, so a typo such as `"18446744073709551615s"` is
/// an error where it was written instead of a panic later.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

fn within_max(written: &str, d: Duration) -> Result<Duration, String> {
    if d > MAX_DURATION {
        return Err(format!(
            "duration '{written}' is over the maximum, {}",
            format_duration(MAX_DURATION)
        ));
    }
    Ok(d)
}

/// Formats a duration for transcripts and messages: `0.7s`, `12ms`, `600s`.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) && d.subsec_nanos() % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// A duration in a catalog file: `"700ms"`, `"0.7s"`, `"10min"` or a bare
/// number of seconds (`0.7`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub Duration);

impl<'de> serde::Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as \"700ms\", \"2s\" or a number of seconds")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Dur, E> {
                parse_duration(s).map(Dur).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Dur, E> {
                let secs = u64::try_from(n)
                    .map_err(|_| E::custom(format!("duration '{n}' is negative")))?;
                within_max(&n.to_string(), Duration::from_secs(secs))
                    .map(Dur)
                    .map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, x: f64) -> Result<Dur, E> {
                let d = Duration::try_from_secs_f64(x).map_err(|_| {
                    E::custom(format!("duration '{x}' is not a non-negative number"))
                })?;
                within_max(&x.to_string(), d).map(Dur).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl serde::Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::bare_seconds("0.7", Duration::from_millis(700))]
    #[case::whole_seconds("3", Duration::from_secs(3))]
    #[case::millis("250ms", Duration::from_millis(250))]
    #[case::minutes("10min", Duration::from_secs(600))]
    fn parses(#[case] input: &str, #[case] want: Duration) {
        assert_eq!(parse_duration(input).unwrap(), want);
    }

    #[rstest]
    #[case::negative("-1")]
    #[case::word("soon")]
    #[case::nan("NaN")]
    #[case::overflow("18446744073709551615s")]
    #[case::over_a_day("25h")]
    #[case::huge_seconds("1e300")]
    fn refuses(#[case] input: &str) {
        assert!(parse_duration(input).is_err(), "{input} was accepted");
    }

    #[rstest]
    #[case::seconds(Duration::from_secs(600), "600s")]
    #[case::millis(Duration::from_millis(700), "700ms")]
    #[case::fraction(Duration::from_millis(1500), "1.5s")]
    fn formats(#[case] d: Duration, #[case] want: &str) {
        assert_eq!(format_duration(d), want);
    }
}
