//! Figures from measurements: latency percentiles from HdrHistograms, and
//! a mean with its 95% confidence interval over repeated runs.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds with three significant digits.
/// The histogram starts small and grows with the largest value recorded,
/// so the generator's many per-worker histograms cost little to create.
pub fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("three significant digits are valid")
}

/// Records `d` in microseconds (at least 1, at most an hour).
pub fn record(h: &mut Histogram<u64>, d: std::time::Duration) {
    let us = (d.as_micros() as u64).clamp(1, 3_600_000_000);
    // `record` grows the histogram (saturating_record would not).
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

/// Records `d` as [`record`] does, `n` times.
pub fn record_n(h: &mut Histogram<u64>, d: std::time::Duration, n: u64) {
    let us = (d.as_micros() as u64).clamp(1, 3_600_000_000);
    if h.record_n(us, n).is_err() {
        h.saturating_record_n(us, n);
    }
}

/// The percentiles a report shows, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of `h` (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// A mean over runs and the half-width of its 95% confidence interval
/// (Student's t; zero with a single run).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Estimate {
    /// The mean.
    pub mean: f64,
    /// Half the width of the 95% confidence interval.
    pub ci95: f64,
    /// How many runs.
    pub runs: usize,
}

impl Estimate {
    /// The estimate from one value per run.
    pub fn of(samples: &[f64]) -> Self {
        let n = samples.len();
        if n == 0 {
            return Estimate::default();
        }
        let mean = samples.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Estimate {
                mean,
                ci95: 0.0,
                runs: 1,
            };
        }
        let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        Estimate {
            mean,
            ci95: t95(n - 1) * (var / n as f64).sqrt(),
            runs: n,
        }
    }

    /// `mean ± ci95`, with the precision the interval warrants.
    pub fn show(&self) -> String {
        if self.runs <= 1 {
            format!("{:.0}", self.mean)
        } else {
            format!("{:.0} ± {:.0}", self.mean, self.ci95)
        }
    }
}

/// The two-sided 95% quantile of Student's t with `df` degrees of freedom.
fn t95(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => 1.96,
    }
}

/// A duration in microseconds for a table: `850µs`, `2.3ms`, `1.20s`.
pub fn show_us(us: u64) -> String {
    match us {
        0..=999 => format!("{us}µs"),
        1_000..=999_999 => format!("{:.1}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn percentiles_come_from_the_recorded_values() {
        let mut h = histogram();
        for ms in 1..=1000u64 {
            record(&mut h, Duration::from_millis(ms));
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        // Three significant digits: within 0.1%.
        let near = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 1e-3;
        assert!(near(p.p50, 500_000), "{p:?}");
        assert!(near(p.p99, 990_000), "{p:?}");
        assert!(near(p.p999, 999_000), "{p:?}");
        assert!(near(p.max, 1_000_000), "{p:?}");
        assert_eq!(Percentiles::of(&histogram()), Percentiles::default());
    }

    #[test]
    fn the_interval_is_students_and_shrinks_with_agreement() {
        let e = Estimate::of(&[10.0, 12.0, 14.0]);
        assert_eq!(e.mean, 12.0);
        // s = 2, n = 3: 4.303 * 2 / sqrt(3).
        assert!((e.ci95 - 4.303 * 2.0 / 3f64.sqrt()).abs() < 1e-9, "{e:?}");
        assert_eq!(Estimate::of(&[5.0, 5.0]).ci95, 0.0);
        assert_eq!(Estimate::of(&[7.0]).show(), "7");
        assert_eq!(Estimate::of(&[]).runs, 0);
    }

    #[test]
    fn durations_show_in_a_readable_unit() {
        assert_eq!(show_us(850), "850µs");
        assert_eq!(show_us(2_340), "2.3ms");
        assert_eq!(show_us(1_200_000), "1.20s");
    }
}
