//! Wall time of the catalog in the simulator (DESIGN.md targets: the whole
//! catalog under 2 s on 2 cores; a ten-minute slow-poem case under 100 ms).
//!
//! Run: `cargo bench --bench catalog`

use criterion::{criterion_group, criterion_main, Criterion};
use poetry_harness::backend::sim::{self, RunOptions};
use poetry_harness::catalog::Catalog;
use poetry_harness::engine::{run_all, EngineOptions};
use poetry_harness::roles::Implementation;

fn whole_catalog(c: &mut Criterion) {
    let catalog = Catalog::builtin().expect("catalog loads");
    let cases: Vec<_> = catalog.cases.iter().collect();
    let imp = Implementation::reference();
    let opts = EngineOptions {
        jobs: 2,
        ..EngineOptions::default()
    };
    let mut group = c.benchmark_group("sim");
    group.sample_size(10);
    group.bench_function(
        format!("whole catalog ({} cases, 2 jobs)", cases.len()),
        |b| b.iter(|| run_all(&cases, &imp, &opts, &|_| {})),
    );
    let slow = catalog
        .get("client.slow-poem-ten-minutes")
        .expect("case exists");
    group.bench_function("ten-minute slow poem (client.slow-poem-ten-minutes)", |b| {
        b.iter(|| sim::run(slow, &imp, RunOptions::default()))
    });
    group.finish();
}

criterion_group!(benches, whole_catalog);
criterion_main!(benches);
