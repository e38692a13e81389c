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

mod cpu_time;
use cpu_time::{cpu_criterion, process_cpu, ProcessCpu};

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use poetry_harness::backend::simnet::{self, Report, Sim, TcpSocket, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The client counts measured, smallest first.
const CLIENTS: &[usize] = &[100, 500, 2000];

const PORT: u16 = 10000;

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

criterion_group! {
    name = benches;
    config = cpu_criterion();
    targets = scaling
}
criterion_main!(benches);
