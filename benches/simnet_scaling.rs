//! CPU cost of issue 11's simulator (`backend::simnet`: turmoil-net on our
//! event-driven scheduler) as connections grow: N clients connect at
//! once to a server that accepts, writes a 1,000-byte poem and closes,
//! over 50 ms links, for N = 100, 500 and 2,000. The target: 2,000
//! clients under 1 s of CPU. `benches/sim_scaling.rs` measures the same
//! shape on today's sim backend (turmoil 0.7.2), through the engine.
//!
//! Measured in process CPU time (`CLOCK_PROCESS_CPUTIME_ID`), as
//! `sim_scaling` is. Each N is first run once outside criterion to print
//! what happened (simulated end, clients served, packets, scheduler
//! wakes) and its CPU. The listener's backlog is N (`listen(n)`), so
//! every client connects on its first SYN; with Linux's default of 1,024
//! the rest would resend theirs at 1 s, a real effect that a load case
//! sizes.
//!
//! Run: `cargo bench -p poetry-harness --bench simnet_scaling -- --quick`.
//! `SIMNET_SCALING_CLIENTS=5000` (a comma-separated list) measures other N.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use poetry_harness::backend::simnet::{self, Report, Sim, TcpSocket, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The client counts measured, smallest first.
const CLIENTS: &[usize] = &[100, 500, 2000];

const PORT: u16 = 10000;

/// Process CPU time, user and system, of every thread.
struct ProcessCpu;

fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to write.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ProcessCpu {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        process_cpu()
    }
    fn end(&self, start: Duration) -> Duration {
        process_cpu().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Formats nanoseconds of CPU as criterion formats wall time, with "CPU".
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if ns < 1e3 {
            (1.0, "ns CPU")
        } else if ns < 1e6 {
            (1e-3, "µs CPU")
        } else if ns < 1e9 {
            (1e-6, "ms CPU")
        } else {
            (1e-9, "s CPU")
        };
        for v in values {
            *v *= factor;
        }
        unit
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        // Connections per CPU second: flat when cost is linear.
        let per = match *throughput {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                n as f64
            }
        };
        for v in values {
            *v = per * 1e9 / *v;
        }
        "conn/CPU s"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// One run: `n` clients at once, each reading the whole poem. Returns the
/// report and how many clients got all 1,000 bytes.
fn clients_at_once(n: usize) -> (Report, usize) {
    let mut sim = Sim::builder().latency(Duration::from_millis(50)).build();
    let server = sim.add_host("server");
    let clients: Vec<_> = (0..n).map(|i| sim.add_host(&format!("c{i}"))).collect();
    sim.spawn_daemon(server, async move {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(([0, 0, 0, 0], PORT).into()).unwrap();
        let listener = socket.listen(n as u32).unwrap();
        let poem: Rc<Vec<u8>> = Rc::new((0..1000).map(|i| b'a' + (i % 26) as u8).collect());
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let poem = poem.clone();
            simnet::spawn(async move {
                let _ = s.write_all(&poem).await;
                let _ = s.shutdown().await;
            });
        }
    });
    let ok = Rc::new(Cell::new(0usize));
    for c in clients {
        let ok = ok.clone();
        sim.spawn(c, async move {
            if let Ok(mut s) = TcpStream::connect(("server", PORT)).await {
                let mut poem = Vec::with_capacity(1000);
                if let Ok(1000) = s.read_to_end(&mut poem).await {
                    ok.set(ok.get() + 1);
                }
            }
        });
    }
    let report = sim.run();
    (report, ok.get())
}

/// The client counts to measure: `SIMNET_SCALING_CLIENTS`, or [`CLIENTS`].
fn clients() -> Vec<usize> {
    match std::env::var("SIMNET_SCALING_CLIENTS") {
        Ok(list) => list
            .split(',')
            .map(|n| n.trim().parse().expect("SIMNET_SCALING_CLIENTS: numbers"))
            .collect(),
        Err(_) => CLIENTS.to_vec(),
    }
}

fn scaling(c: &mut Criterion<ProcessCpu>) {
    let mut group = c.benchmark_group("simnet_scaling/clients_at_once");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(500));
    for n in clients() {
        let start = process_cpu();
        let (report, ok) = clients_at_once(n);
        let cpu = (process_cpu() - start).as_secs_f64();
        println!(
            "probe N = {n}: {ok}/{n} clients got the poem, simulated end {:?}{}, \
             {} packets, {} scheduler wakes, {cpu:.3} s CPU",
            report.end,
            if report.timed_out { " (timed out)" } else { "" },
            report.packets,
            report.wakes,
        );
        assert_eq!(ok, n, "every client gets the poem");
        group.measurement_time(Duration::from_secs_f64((cpu * 9.0).max(2.0)));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| clients_at_once(n))
        });
    }
    group.finish();
}

fn cpu_criterion() -> Criterion<ProcessCpu> {
    Criterion::default().with_measurement(ProcessCpu)
}

criterion_group! {
    name = benches;
    config = cpu_criterion();
    targets = scaling
}
criterion_main!(benches);
