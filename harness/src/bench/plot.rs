//! Bench plots as SVG (plotters): throughput and latency percentiles
//! against the load, one line per server; and the client bench's
//! download timelines, one row per download.

use plotters::prelude::*;

use super::load::Mode;
use super::report::Bench;

/// One plot: a file name and its SVG text.
pub struct Plot {
    /// File name (`throughput-806B.svg`).
    pub name: String,
    /// The SVG.
    pub svg: String,
}

type Failure = Box<dyn std::error::Error>;

/// A series' colour.
fn colour(i: usize) -> RGBColor {
    const COLOURS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    COLOURS[i % COLOURS.len()]
}

/// The load value a point is drawn at, and the axis name.
fn x_of(mode: &Mode) -> (f64, &'static str) {
    match mode {
        Mode::Closed { connections } => (*connections as f64, "connections (closed loop)"),
        Mode::Open { rate } => (*rate, "offered poems/s (open loop)"),
    }
}

/// A group of points drawn together: same poem, slow readers and mode.
#[derive(PartialEq, Clone, Copy)]
struct Group {
    poem_bytes: usize,
    slow_readers: usize,
    open: bool,
}

fn groups(b: &Bench) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for p in b.servers.iter().flat_map(|s| &s.points) {
        let g = Group {
            poem_bytes: p.poem_bytes,
            slow_readers: p.load.slow_readers,
            open: matches!(p.load.mode, Mode::Open { .. }),
        };
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

/// Lines of one group: per server, (x, y) points sorted by x.
fn lines(
    b: &Bench,
    g: Group,
    y: impl Fn(&super::report::Point) -> f64,
) -> Vec<(String, Vec<(f64, f64)>)> {
    b.servers
        .iter()
        .map(|s| {
            let mut pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|p| {
                    p.poem_bytes == g.poem_bytes
                        && p.load.slow_readers == g.slow_readers
                        && matches!(p.load.mode, Mode::Open { .. }) == g.open
                })
                .map(|p| (x_of(&p.load.mode).0, y(p)))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (s.name.clone(), pts)
        })
        .filter(|(_, pts)| !pts.is_empty())
        .collect()
}

/// A line chart with a log-scale x axis.
/// A series: its legend, points, colour index and line width.
type Series = (String, Vec<(f64, f64)>, usize, u32);

fn chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    log_y: bool,
) -> Result<String, Failure> {
    let xs = series.iter().flat_map(|s| s.1.iter().map(|q| q.0));
    let ys = series.iter().flat_map(|s| s.1.iter().map(|q| q.1));
    let (x_lo, x_hi) = xs.fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let (y_lo, y_hi) = ys.fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let x_range = (x_lo * 0.8).max(1e-3)..(x_hi * 1.25).max(x_lo * 1.25 + 1e-3);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 440)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70);
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .light_line_style(WHITE)
                    .x_label_formatter(&|x| format!("{x:.0}"))
                    .y_label_formatter(&|y| format!("{y}"))
                    .x_desc(x_desc)
                    .y_desc(y_desc)
                    .draw()?;
                for (name, pts, i, width) in series {
                    let (c, w) = (colour(*i), *width);
                    chart
                        .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(w)))?
                        .label(name.as_str())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(w))
                        });
                    chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()?;
            }};
        }
        if log_y {
            let y_range = (y_lo * 0.8).max(1e-3)..(y_hi * 1.25).max(1e-3 + y_lo);
            draw!(builder.build_cartesian_2d(x_range.log_scale(), y_range.log_scale())?);
        } else {
            let y_range = 0.0..(y_hi * 1.15).max(1.0);
            draw!(builder.build_cartesian_2d(x_range.log_scale(), y_range)?);
        }
        root.present()?;
    }
    Ok(svg)
}

fn describe(g: Group) -> (String, String) {
    let slow = match g.slow_readers {
        0 => String::new(),
        n => format!(", {n} slow reader(s)"),
    };
    (
        format!("{}-byte poem{slow}", g.poem_bytes),
        format!(
            "{}B{}{}",
            g.poem_bytes,
            if g.slow_readers > 0 {
                format!("-slow{}", g.slow_readers)
            } else {
                String::new()
            },
            if g.open { "-open" } else { "" }
        ),
    )
}

/// Every plot the bench's results allow.
pub fn plots(b: &Bench) -> Result<Vec<Plot>, Failure> {
    let mut out = Vec::new();
    for g in groups(b) {
        let (mut what, tag) = describe(g);
        if b.sim.is_some() {
            what.push_str(", simulated time");
        }
        let x_desc = if g.open {
            "offered poems/s (open loop)"
        } else {
            "connections (closed loop)"
        };
        let tput: Vec<Series> = lines(b, g, |p| p.poems_per_s.mean)
            .into_iter()
            .enumerate()
            .map(|(i, (name, pts))| (name, pts, i, 2))
            .collect();
        out.push(Plot {
            name: format!("throughput-{tag}.svg"),
            svg: chart(
                &format!("Throughput, {what}"),
                x_desc,
                "poems/s (mean of runs)",
                &tput,
                false,
            )?,
        });
        // Each server in its colour: p99 thick, p50 thin.
        let mut lat: Vec<Series> = Vec::new();
        let p50 = lines(b, g, |p| p.latency_us.last_byte.p50 as f64 / 1e3);
        let p99 = lines(b, g, |p| p.latency_us.last_byte.p99 as f64 / 1e3);
        for (i, ((name, a), (_, b))) in p50.into_iter().zip(p99).enumerate() {
            lat.push((format!("{name} p99"), b, i, 3));
            lat.push((format!("{name} p50"), a, i, 1));
        }
        lat.retain(|s| s.1.iter().all(|p| p.1 > 0.0));
        if !lat.is_empty() {
            out.push(Plot {
                name: format!("latency-{tag}.svg"),
                svg: chart(
                    &format!("Time to the last byte, {what}"),
                    x_desc,
                    "ms (log scale)",
                    &lat,
                    true,
                )?,
            });
        }
    }
    if !b.clients.is_empty() {
        out.push(Plot {
            name: "client-timelines.svg".into(),
            svg: timelines(b)?,
        });
    }
    Ok(out)
}

/// Each client's last run: a bar per download, on one time axis.
fn timelines(b: &Bench) -> Result<String, Failure> {
    let rows: Vec<(String, f64, f64)> = b
        .clients
        .iter()
        .filter_map(|c| c.runs.last().map(|r| (c, r)))
        .flat_map(|(c, r)| {
            r.bars.iter().map(move |bar| {
                (
                    format!("{} poem {}", c.name, bar.server + 1),
                    bar.start_ms,
                    bar.end_ms,
                )
            })
        })
        .collect();
    let end = rows.iter().map(|r| r.2).fold(1.0_f64, f64::max);
    let n = rows.len().max(1);
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (720, (80 + 22 * n) as u32)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Downloads of each client (last run)", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(170)
            .build_cartesian_2d(0.0..end * 1.05, (0..n).into_segmented())?;
        let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => n
                    .checked_sub(i + 1)
                    .and_then(|k| labels.get(k))
                    .cloned()
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .x_desc("ms from the first connection")
            .draw()?;
        let mut client = 0;
        let mut last = String::new();
        for (i, (label, from, to)) in rows.iter().enumerate() {
            let name = label
                .rsplit_once(" poem ")
                .map_or(label.as_str(), |(a, _)| a);
            if name != last {
                if !last.is_empty() {
                    client += 1;
                }
                last = name.to_string();
            }
            // The first row at the top.
            let row = n - 1 - i;
            chart.draw_series(std::iter::once(Rectangle::new(
                [
                    (*from, SegmentValue::Exact(row)),
                    (to.max(*from + end * 0.002), SegmentValue::Exact(row + 1)),
                ],
                colour(client).filled(),
            )))?;
        }
        root.present()?;
    }
    Ok(svg)
}
