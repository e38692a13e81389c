//! The issue 11 simulator (`backend::simnet`: turmoil-net, vendored and
//! patched, on our event-driven scheduler), one test per TCP behaviour,
//! each asserting exact simulated times. Every link is 50 ms one way, so
//! a round trip is 100 ms.
//!
//! - flow control: `writer_blocks_after_its_buffer_and_the_peer_window_fill_and_resumes_when_the_peer_reads`,
//!   `per_host_and_per_socket_buffer_sizes_set_where_a_writer_blocks`,
//!   `reader_that_fell_behind_and_reads_4_kib_at_a_time_still_gets_everything`,
//!   `zero_window_is_probed_on_the_persist_timer` (these on upstream's
//!   fixed 64 KiB buffers, [`fixed_64k`]), and on the default buffers
//!   `a_writer_to_a_reader_that_never_reads_blocks_after_both_buffers_fill`
//! - window scaling and buffer autotuning: `window_scaling_and_autotuning_move_1_mib_in_4_round_trips`,
//!   `without_window_scaling_on_one_side_neither_scales`
//! - handshake and backlog: `connect_completes_on_the_handshake_one_round_trip_before_accept`,
//!   `backlog_of_5_takes_5_of_12_connects_and_the_rest_resend_their_syn_at_1_3_7_15_s`,
//!   `syn_to_a_silent_host_is_resent_at_1_3_7_15_31_63_s_and_connect_times_out_at_127_s`
//! - resets: `rst_leaves_received_bytes_readable_then_reports_the_reset`, `abort_sends_rst`, `linger_zero_close_sends_rst_and_default_close_sends_fin`,
//!   `data_for_a_socket_its_application_closed_is_answered_with_rst`
//! - loss: `transfer_under_10_percent_loss_completes_later_than_without`
//! - timers: `the_scheduler_does_not_wake_for_a_retransmission_timer_stopped_by_an_ack`
//! - segmentation offload: `segmentation_offload_carries_64_kib_a_packet_and_changes_no_read_or_time`,
//!   `a_host_that_sends_over_a_faulty_link_sends_one_mss_a_packet`
//! - determinism: `two_runs_give_the_same_event_trace`
//! - host identity: `a_socket_moved_to_a_task_spawned_with_plain_tokio_still_uses_its_own_host`
//! - scheduling: `a_reply_from_a_task_of_the_runtime_leaves_at_once`
//! - a writer and a reader sharing one stream in one task (the scripted
//!   server peer): `a_shared_write_blocked_on_a_full_window_leaves_the_stream_to_its_reader`

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use poetry_harness::backend::simnet::{
    self, Faults, KernelConfig, Report, Sim, TcpListener, TcpSocket, TcpStream,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PORT: u16 = 10000;

/// Upstream turmoil-net's buffers: a fixed 64 KiB each way, no window
/// scaling, so a window is at most 65,535 bytes. The flow-control and
/// loss tests below use it to show the mechanics in round numbers; the
/// default (Linux's sizes, growing, with window scaling) is tested by
/// `window_scaling_and_autotuning_move_1_mib_in_4_round_trips` and
/// `a_writer_to_a_reader_that_never_reads_blocks_after_both_buffers_fill`.
fn fixed_64k() -> KernelConfig {
    KernelConfig::default()
        .recv_buf_cap(64 * 1024)
        .recv_buf_max(64 * 1024)
        .send_buf_max(64 * 1024)
        .window_scaling(false)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The lines of `report.trace` containing `needle`.
fn lines<'a>(report: &'a Report, needle: &str) -> Vec<&'a str> {
    report
        .trace
        .iter()
        .filter(|l| l.contains(needle))
        .map(String::as_str)
        .collect()
}

/// The simulated time, in ms, stamped on a trace line.
fn at(line: &str) -> f64 {
    line.split_whitespace().next().unwrap().parse().unwrap()
}

fn dump(report: &Report) -> String {
    report.trace.join("\n")
}

/// A server daemon on `host`: accepts one connection on [`PORT`], hands
/// it to `serve`, then stays (what `serve` kept open stays open).
fn serve_one<F, Fut>(sim: &mut Sim, host: simnet::HostId, serve: F)
where
    F: FnOnce(TcpStream) -> Fut + 'static,
    Fut: std::future::Future<Output = ()>,
{
    sim.spawn_daemon(host, async move {
        let l = TcpListener::bind(("0.0.0.0", PORT)).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        serve(s).await;
        std::future::pending::<()>().await;
    });
}

/// A client on `host`: connects to the server's [`PORT`], reads to the
/// end, and traces "client read N bytes".
fn read_all_on(sim: &mut Sim, host: simnet::HostId) {
    sim.spawn(host, async {
        let mut s = TcpStream::connect(("server", PORT)).await.unwrap();
        let mut poem = Vec::new();
        s.read_to_end(&mut poem).await.unwrap();
        simnet::trace(format!("client read {} bytes", poem.len()));
    });
}

#[test]
fn connect_completes_on_the_handshake_one_round_trip_before_accept() {
    let mut sim = Sim::builder().build();
    let server = sim.add_host("server");
    let client = sim.add_host("client");
    sim.spawn_daemon(server, async {
        // Listening, never accepting: the kernel completes the handshake.
        let _l = TcpListener::bind(("0.0.0.0", PORT)).await.unwrap();
        std::future::pending::<()>().await;
    });
    sim.spawn(client, async {
        TcpStream::connect(("server", PORT)).await.unwrap();
        simnet::trace("connected");
    });
    let report = sim.run();
    assert_eq!(
        report.trace,
        ["   100.000 ms  connected"],
        "{}",
        dump(&report)
    );
}

/// A writer of 1 MiB in 16 KiB writes to a reader that reads nothing for
/// 10 s, then everything in 64 KiB reads.
fn blocked_writer(sim: &mut Sim, client_socket: TcpSocket) -> Rc<RefCell<usize>> {
    let server = sim.add_host("server");
    let client = sim.add_host("client");
    let got = Rc::new(RefCell::new(0usize));
    sim.spawn(server, async {
        let l = TcpListener::bind(("0.0.0.0", PORT)).await.unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        let chunk = vec![b'p'; 16 * 1024];
        let mut total = 0;
        let mut blocked_at = None;
        while total < 1 << 20 {
            // A write that does not complete within 1 ms is blocked.
            let n = chunk.len().min((1 << 20) - total);
            match tokio::time::timeout(ms(1), s.write(&chunk[..n])).await {
                Ok(n) => {
                    if let Some(t) = blocked_at.take() {
                        simnet::trace(format!("writer resumes (blocked since {t:?})"));
                    }
                    total += n.unwrap();
                }
                Err(_) if blocked_at.is_none() => {
                    blocked_at = Some(simnet::now());
                    simnet::trace(format!("writer blocked after {total} bytes"));
                }
                Err(_) => {}
            }
        }
        s.shutdown().await.unwrap();
        simnet::trace(format!("writer done, {total} bytes"));
    });
    let got2 = got.clone();
    sim.spawn(client, async move {
        let addr = simnet_addr("server");
        let mut s = client_socket.connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        simnet::trace("reader starts reading");
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            *got2.borrow_mut() += n;
        }
        simnet::trace(format!("reader done, {} bytes", got2.borrow()));
    });
    got
}

/// `server:PORT` as a socket address (TcpSocket::connect takes one).
fn simnet_addr(host: &str) -> std::net::SocketAddr {
    let ip = simnet::lookup_host(host).expect("host registered");
    std::net::SocketAddr::new(ip, PORT)
}

#[test]
fn writer_blocks_after_its_buffer_and_the_peer_window_fill_and_resumes_when_the_peer_reads() {
    let mut sim = Sim::builder().kernel(fixed_64k()).build();
    let got = blocked_writer(&mut sim, TcpSocket::new_v4().unwrap());
    let report = sim.run();
    assert_eq!(*got.borrow(), 1 << 20, "{}", dump(&report));
    // Connected at 100 ms, the writer is window-limited (64 KiB a round
    // trip) until the reader's 64 KiB receive buffer is full (a
    // 65,535-byte window, then 1 byte), and then blocks for good with 64
    // KiB more in its own send buffer: 131,072 bytes. (A write that does
    // not complete within 1 ms counts as blocked.) The reader reads at
    // 10.1 s; its window update reaches the writer at 10.15 s, which sends,
    // and the ACKs that free its buffer are back at 10.25 s.
    for line in [
        "   351.000 ms  writer blocked after 131072 bytes",
        " 10100.000 ms  reader starts reading",
        " 10250.000 ms  writer resumes (blocked since 351ms)",
    ] {
        assert!(
            report.trace.iter().any(|l| l == line),
            "{line}\n{}",
            dump(&report)
        );
    }
    assert_eq!(lines(&report, "blocked since 351ms").len(), 1);
}

#[test]
fn per_host_and_per_socket_buffer_sizes_set_where_a_writer_blocks() {
    let mut sim = Sim::builder().kernel(fixed_64k()).build();
    // The server's host has 8 KiB send buffers; the client's socket an
    // 8 KiB receive buffer (window).
    let small = fixed_64k().send_buf_cap(8 * 1024).send_buf_max(8 * 1024);
    let server = sim.add_host_with_config("server", small);
    let client = sim.add_host("client");
    sim.spawn(server, async {
        let l = TcpListener::bind(("0.0.0.0", PORT)).await.unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        let mut total = 0;
        // Blocked for a second over 50 ms links: blocked for good.
        while tokio::time::timeout(Duration::from_secs(1), s.write(&[b'p'; 1024]))
            .await
            .is_ok()
        {
            total += 1024;
        }
        simnet::trace(format!("writer blocked after {total} bytes"));
    });
    sim.spawn_daemon(client, async {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(8 * 1024).unwrap();
        assert_eq!(socket.recv_buffer_size().unwrap(), 8 * 1024);
        let _s = socket.connect(simnet_addr("server")).await.unwrap();
        std::future::pending::<()>().await;
    });
    let report = sim.run();
    // 8 KiB in the reader's buffer, 8 KiB in the writer's.
    assert_eq!(
        lines(&report, "writer blocked after 16384 bytes").len(),
        1,
        "{}",
        dump(&report)
    );
}

#[test]
fn reader_that_fell_behind_and_reads_4_kib_at_a_time_still_gets_everything() {
    // Upstream turmoil-net stalled here for good: it advertised a window
    // only when one read freed half the buffer.
    let mut sim = Sim::builder().kernel(fixed_64k()).build();
    let server = sim.add_host("server");
    let client = sim.add_host("client");
    sim.spawn(server, async {
        let l = TcpListener::bind(("0.0.0.0", PORT)).await.unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        s.write_all(&vec![b'p'; 1 << 20]).await.unwrap();
        s.shutdown().await.unwrap();
        simnet::trace("writer done");
    });
    sim.spawn(client, async {
        let mut s = TcpStream::connect(("server", PORT)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        let mut buf = vec![0u8; 4 * 1024];
        let mut total = 0;
        loop {
            match s.read(&mut buf).await.unwrap() {
                0 => break,
                n => total += n,
            }
        }
        simnet::trace(format!("reader done, {total} bytes"));
    });
    let report = sim.run();
    assert!(!report.timed_out, "{}", dump(&report));
    // The reader starts at 10.1 s (connected at 100 ms); each 4 KiB read
    // opens the window by more than an MSS and is advertised, and the
    // last 1 MiB takes about 16 round trips of 64 KiB.
    assert_eq!(
        report.trace,
        [
            " 11650.000 ms  writer done",
            " 11700.000 ms  reader done, 1048576 bytes"
        ],
        "{}",
        dump(&report)
    );
}

#[test]
fn zero_window_is_probed_on_the_persist_timer() {
    let mut sim = Sim::builder()
        .kernel(fixed_64k())
        .trace_packets(true)
        .build();
    let server = sim.add_host("server");
    let client = sim.add_host("client");
    sim.spawn_daemon(server, async {
        let l = TcpListener::bind(("0.0.0.0", PORT)).await.unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        s.write_all(&vec![b'p'; 1 << 20]).await.unwrap();
    });
    sim.spawn(client, async {
        let _s = TcpStream::connect(("server", PORT)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(20)).await;
    });
    let report = sim.run();
    // The client never reads: its window is shut at 350 ms (64 KiB
    // received). A probe is an ACK carrying no data, sent on the persist
    // timer: the RTO (300 ms over a 100 ms round trip: SRTT plus the 200
    // ms floor), doubling. Each is answered with the (shut) window.
    let probes: Vec<f64> = lines(&report, "send server:10000 > client")
        .into_iter()
        .filter(|l| l.ends_with("len=0") && l.contains("[.]"))
        .map(at)
        .collect();
    assert_eq!(
        probes,
        [650.0, 1250.0, 2450.0, 4850.0, 9650.0, 19250.0],
        "{}",
        dump(&report)
    );
    let answers: Vec<f64> = lines(&report, "send client:49152 > server:10000 [.]")
        .into_iter()
        .filter(|l| l.contains("win=0 len=0"))
        .map(at)
        .collect();
    // The first is the ACK that shut the window (sent at 300 ms).
    assert_eq!(
        answers,
        [300.0, 700.0, 1300.0, 2500.0, 4900.0, 9700.0, 19300.0],
        "{}",
        dump(&report)
    );
}

#[test]
fn backlog_of_5_takes_5_of_12_connects_and_the_rest_resend_their_syn_at_1_3_7_15_s() {
    let mut sim = Sim::builder().trace_packets(true).build();
    let server = sim.add_host("server");
    let clients: Vec<_> = (0..12).map(|i| sim.add_host(&format!("c{i}"))).collect();
    sim.spawn_daemon(server, async {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(([0, 0, 0, 0], PORT).into()).unwrap();
        let l = socket.listen(5).unwrap();
        // Accepts nothing for 5 s: the backlog fills with 5 connections.
        tokio::time::sleep(Duration::from_secs(5)).await;
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            simnet::spawn(async move {
                s.write_all(b"poem").await.unwrap();
            });
        }
    });
    for (i, c) in clients.into_iter().enumerate() {
        sim.spawn(c, async move {
            let mut s = TcpStream::connect(("server", PORT)).await.unwrap();
            simnet::trace(format!("c{i} connected"));
            let mut poem = Vec::new();
            s.read_to_end(&mut poem).await.unwrap();
            assert_eq!(poem, b"poem");
        });
    }
    let report = sim.run();
    assert!(!report.timed_out, "{}", dump(&report));
    let connected = |i: usize| at(lines(&report, &format!("c{i} connected"))[0]);
    // The first five SYNs fill the backlog and connect on the handshake;
    // the other seven are dropped, and resent at 1 s and 3 s (still
    // full: nothing accepted yet), then 7 s, when the server (accepting
    // since 5 s) has room for five; the last two wait until 15 s.
    let times: Vec<f64> = (0..12).map(connected).collect();
    assert_eq!(
        times,
        [
            100.0, 100.0, 100.0, 100.0, 100.0, 7100.0, 7100.0, 7100.0, 7100.0, 7100.0, 15100.0,
            15100.0
        ],
        "{}",
        dump(&report)
    );
    let syns = |host: &str| -> Vec<f64> {
        lines(&report, &format!("send {host}:"))
            .into_iter()
            .filter(|l| l.contains("[S]"))
            .map(at)
            .collect()
    };
    assert_eq!(syns("c0"), [0.0], "{}", dump(&report));
    assert_eq!(
        syns("c5"),
        [0.0, 1000.0, 3000.0, 7000.0],
        "{}",
        dump(&report)
    );
    assert_eq!(
        syns("c11"),
        [0.0, 1000.0, 3000.0, 7000.0, 15000.0],
        "{}",
        dump(&report)
    );
}

#[test]
fn syn_to_a_silent_host_is_resent_at_1_3_7_15_31_63_s_and_connect_times_out_at_127_s() {
    let mut sim = Sim::builder()
        .loss(1.0)
        .limit(Duration::from_secs(200))
        .trace_packets(true)
        .build();
    let _server = sim.add_host("server");
    let client = sim.add_host("client");
    sim.spawn(client, async {
        let e = TcpStream::connect(("server", PORT)).await.unwrap_err();
        simnet::trace(format!("connect failed: {:?}", e.kind()));
    });
    let report = sim.run();
    let syns: Vec<f64> = lines(&report, "lost client").into_iter().map(at).collect();
    assert_eq!(
        syns,
        [0.0, 1000.0, 3000.0, 7000.0, 15000.0, 31000.0, 63000.0],
        "{}",
        dump(&report)
    );
    assert_eq!(
        lines(&report, "connect failed")[0],
        "127000.000 ms  connect failed: TimedOut"
    );
}

/// As on Linux (measured on this machine's 6.18 kernel with two Python
/// sockets: 300 bytes written, then a close with `SO_LINGER` 0; the
/// reader, after both arrived, reads 300 bytes, then gets
/// `ECONNRESET`), bytes received before a RST stay readable and the
/// reset is reported after them. The side that resets discards what it
/// had not read (the client's byte here) and what it had not sent.
#[test]
fn rst_leaves_received_bytes_readable_then_reports_the_reset() {
    let mut sim = Sim::builder().build();
    let server = sim.add_host("server");
    let client = sim.add_host("client");
    serve_one(&mut sim, server, |mut s| async move {
        tokio::time::sleep(ms(200)).await;
        s.write_all(b"poem").await.unwrap();
        // Dropped with the client's byte unread: a RST follows the poem.
        drop(s);
    });
    sim.spawn(client, async {
        let mut s = TcpStream::connect(("server", PORT)).await.unwrap();
        s.write_all(b"x").await.unwrap();
        // The poem and the RST have both arrived by now.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).await.unwrap();
        simnet::trace(format!("read: {:?}", String::from_utf8_lossy(&buf[..n])));
        let e = s.read(&mut buf).await.unwrap_err();
        simnet::trace(format!("read: {:?}", e.kind()));
        let e = s.write_all(b"y").await.unwrap_err();
        simnet::trace(format!("write: {:?}", e.kind()));
    });
    let report = sim.run();
    assert_eq!(
        report.trace,
        [
            "  1100.000 ms  read: \"poem\"",
            "  1100.000 ms  read: ConnectionReset",
            "  1100.000 ms  write: ConnectionReset"
        ],
        "{}",
        dump(&report)
    );
}

/// A server that accepts one connection and reads it to the end,
/// tracing how the read ended.
fn reading_server(sim: &mut Sim) {
    let server = sim.add_host("server");
    sim.spawn_daemon(server, async {
        let l = TcpListener::bind(("0.0.0.0", PORT)).await.unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = Vec::new();
        match s.read_to_end(&mut buf).await {
            Ok(n) => simnet::trace(format!("server read {n} bytes, then end of stream")),
            Err(e) => simnet::trace(format!("server read failed: {:?}", e.kind())),
        }
    });
}

#[test]
fn abort_sends_rst() {
    let mut sim = Sim::builder().trace_packets(true).build();
    reading_server(&mut sim);
    let client = sim.add_host("client");
    sim.spawn(client, async {
        let mut s = TcpStream::connect(("server", PORT)).await.unwrap();
        s.write_all(b"half a poem").await.unwrap();
        tokio::time::sleep(ms(500)).await;
        s.abort();
        tokio::time::sleep(ms(500)).await;
    });
    let report = sim.run();
    let server_lines: Vec<&str> = lines(&report, "server read");
    assert_eq!(
        server_lines,
        ["   650.000 ms  server read failed: ConnectionReset"],
        "{}",
        dump(&report)
    );
    assert_eq!(
        lines(&report, "send client:49152 > server:10000 [R.]").len(),
        1
    );
    assert!(lines(&report, "[F").is_empty(), "{}", dump(&report));
}

#[test]
fn linger_zero_close_sends_rst_and_default_close_sends_fin() {
    for linger in [Some(Duration::ZERO), None] {
        let mut sim = Sim::builder().trace_packets(true).build();
        reading_server(&mut sim);
        let client = sim.add_host("client");
        sim.spawn(client, async move {
            let mut s = TcpStream::connect(("server", PORT)).await.unwrap();
            s.set_linger(linger).unwrap();
            assert_eq!(s.linger().unwrap(), linger);
            s.write_all(b"half a poem").await.unwrap();
            tokio::time::sleep(ms(500)).await;
            drop(s);
            tokio::time::sleep(ms(500)).await;
        });
        let report = sim.run();
        let expected = match linger {
            Some(_) => "   650.000 ms  server read failed: ConnectionReset",
            None => "   650.000 ms  server read 11 bytes, then end of stream",
        };
        assert_eq!(
            lines(&report, "server read"),
            [expected],
            "{}",
            dump(&report)
        );
        let rsts = lines(&report, "send client:49152 > server:10000 [R.]").len();
        let fins = lines(&report, "send client:49152 > server:10000 [F.]").len();
        assert_eq!((rsts, fins), if linger.is_some() { (1, 0) } else { (0, 1) });
    }
}

/// 100,000 bytes from server to client over links losing `loss` of the
/// packets (seeded); the report, and the bytes the client got.
fn transfer(loss: f64, seed: u64, trace_packets: bool) -> (Report, usize) {
    let mut sim = Sim::builder()
        .kernel(fixed_64k())
        .loss(loss)
        .seed(seed)
        .trace_packets(trace_packets)
        .limit(Duration::from_secs(120))
        .build();
    let server = sim.add_host("server");
    let client = sim.add_host("client");
    serve_one(&mut sim, server, |mut s| async move {
        let poem: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        s.write_all(&poem).await.unwrap();
        s.shutdown().await.unwrap();
    });
    let got = Rc::new(RefCell::new(0));
    let got2 = got.clone();
    sim.spawn(client, async move {
        let mut s = TcpStream::connect(("server", PORT)).await.unwrap();
        let mut poem = Vec::new();
        s.read_to_end(&mut poem).await.unwrap();
        assert!(poem
            .iter()
            .enumerate()
            .all(|(i, b)| *b == b'a' + (i % 26) as u8));
        *got2.borrow_mut() = poem.len();
        simnet::trace(format!("client read {} bytes", poem.len()));
    });
    let report = sim.run();
    let got = *got.borrow();
    (report, got)
}

#[test]
fn transfer_under_10_percent_loss_completes_later_than_without() {
    let (clean, got) = transfer(0.0, 0, false);
    assert_eq!(got, 100_000);
    // The handshake's last ACK reaches the server at 150 ms; it sends a
    // window (65,535 bytes), which arrives at 200 ms and is ACKed; the
    // rest and the FIN leave at 250 ms and arrive at 300 ms.
    assert_eq!(clean.end, ms(300), "{}", dump(&clean));
    assert_eq!(clean.lost, 0);
    for seed in 1..=5 {
        let (lossy, got) = transfer(0.1, seed, false);
        assert!(!lossy.timed_out, "seed {seed}: {}", dump(&lossy));
        assert_eq!(got, 100_000, "seed {seed}");
        assert!(lossy.lost > 0, "seed {seed}");
        assert!(lossy.end > clean.end, "seed {seed}: {:?}", lossy.end);
    }
    // One seed, exactly (deterministic). Slow: the SYN-ACK is lost (1 s),
    // and every later loss costs a retransmission timeout (300 ms and up)
    // and a go-back-N resend of the window, as the receiver keeps no
    // out-of-order segments and the sender has no fast retransmit.
    let (lossy, _) = transfer(0.1, 1, false);
    assert_eq!(
        (lossy.end, lossy.packets, lossy.lost),
        (ms(6200), 762, 84),
        "{}",
        dump(&lossy)
    );
}

/// 1 MiB from server to client, the client tracing each read (64 KiB at
/// most) and the packets traced; the sizes of the data packets the server
/// sent. `offload` is both hosts' segmentation offload; `faults`, if any,
/// are on the link from server to client.
fn reads_of_one_mib(offload: u32, faults: Option<Faults>) -> (Report, Vec<usize>) {
    let mut sim = Sim::builder().trace_packets(true).build();
    let cfg = KernelConfig::default().segment_offload(offload);
    let server = sim.add_host_with_config("server", cfg.clone());
    let client = sim.add_host_with_config("client", cfg);
    if let Some(faults) = faults {
        sim.faults("server", "client", faults).unwrap();
    }
    serve_one(&mut sim, server, |mut s| async move {
        s.write_all(&vec![b'p'; 1 << 20]).await.unwrap();
        s.shutdown().await.unwrap();
    });
    sim.spawn(client, async {
        let mut s = TcpStream::connect(("server", PORT)).await.unwrap();
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            simnet::trace(format!("client read {n}"));
            if n == 0 {
                break;
            }
        }
    });
    let report = sim.run();
    let sizes = lines(&report, " send server:10000 > client")
        .iter()
        .map(|l| l.rsplit("len=").next().unwrap().parse().unwrap())
        .filter(|&len| len > 0)
        .collect();
    (report, sizes)
}

#[test]
fn segmentation_offload_carries_64_kib_a_packet_and_changes_no_read_or_time() {
    let (offload, big) = reads_of_one_mib(65536, None);
    let (one_mss, small) = reads_of_one_mib(0, None);
    // Packets of up to 64 KiB less the headers, or one MSS (1500 - 40).
    assert_eq!(big.iter().sum::<usize>(), 1 << 20);
    assert_eq!(small.iter().sum::<usize>(), 1 << 20);
    assert_eq!(big.iter().max(), Some(&(65536 - 40)), "{big:?}");
    assert_eq!(small.iter().max(), Some(&1460));
    assert_eq!((big.len(), small.len()), (21, 720), "{big:?}");
    // The same reads, of the same sizes, at the same times; the same end.
    let reads = |r: &Report| -> Vec<String> {
        lines(r, "client read")
            .iter()
            .map(|l| l.to_string())
            .collect()
    };
    assert_eq!(reads(&offload), reads(&one_mss), "{}", dump(&offload));
    assert_eq!(reads(&offload).len(), 17, "{}", dump(&offload));
    assert_eq!(offload.end, one_mss.end);
    assert!(
        offload.packets * 10 < one_mss.packets,
        "{} {}",
        offload.packets,
        one_mss.packets
    );
}

#[test]
fn a_host_that_sends_over_a_faulty_link_sends_one_mss_a_packet() {
    // A link that only duplicates, with probability zero, is still a link
    // whose packets are drawn for one by one; a fault-free `Faults` is none.
    let dup = Faults {
        duplicate: 1e-9,
        ..Faults::default()
    };
    let (_, sizes) = reads_of_one_mib(65536, Some(dup));
    assert_eq!(sizes.iter().max(), Some(&1460));
    let (_, sizes) = reads_of_one_mib(65536, Some(Faults::default()));
    assert_eq!(sizes.iter().max(), Some(&(65536 - 40)));
}

/// Ten chunks of 10 bytes, 700 ms apart, from server to client (the
/// ten-minute case's shape); the report.
fn paced_chunks() -> Report {
    let mut sim = Sim::builder().build();
    let server = sim.add_host("server");
    let client = sim.add_host("client");
    serve_one(&mut sim, server, |mut s| async move {
        for _ in 0..10 {
            s.write_all(&[b'p'; 10]).await.unwrap();
            tokio::time::sleep(ms(700)).await;
        }
        s.shutdown().await.unwrap();
    });
    read_all_on(&mut sim, client);
    sim.run()
}

#[test]
fn the_scheduler_does_not_wake_for_a_retransmission_timer_stopped_by_an_ack() {
    let report = paced_chunks();
    assert_eq!(
        lines(&report, "client read"),
        ["  7200.000 ms  client read 100 bytes"],
        "{}",
        dump(&report)
    );
    // Three wakes a chunk: the server's timer, the chunk's arrival, its
    // ACK's arrival; and a few for the handshake and the FINs (34 in
    // all). Each chunk also arms a retransmission timer, which its ACK
    // stops 100 ms later; when the scheduler still woke at the stopped
    // timers' deadlines (a stale entry in the kernel's timer list), that
    // was a fourth wake a chunk: 46.
    assert!(report.wakes < 40, "{} wakes", report.wakes);
}

#[test]
fn two_runs_give_the_same_event_trace() {
    let (a, _) = transfer(0.1, 7, true);
    let (b, _) = transfer(0.1, 7, true);
    assert!(a.trace.len() > 100, "{}", dump(&a));
    assert_eq!(a, b);
    // Another seed loses other packets.
    let (c, _) = transfer(0.1, 8, true);
    assert_ne!(a.trace, c.trace);
}

#[test]
fn a_socket_moved_to_a_task_spawned_with_plain_tokio_still_uses_its_own_host() {
    let mut sim = Sim::builder().build();
    let server = sim.add_host("server");
    let client = sim.add_host("client");
    serve_one(&mut sim, server, |mut s| async move {
        // Not `simnet::spawn`: nothing pins this task to the server, and
        // when it wakes the client's task was the last one pinned.
        tokio::task::spawn_local(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            s.write_all(b"poem").await.unwrap();
        });
    });
    sim.spawn(client, async {
        let mut s = TcpStream::connect(("server", PORT)).await.unwrap();
        tokio::time::sleep(ms(1049)).await;
        // 1,149 ms: the client host is pinned just before the writer runs.
        let mut poem = [0u8; 4];
        s.read_exact(&mut poem).await.unwrap();
        simnet::trace(String::from_utf8_lossy(&poem));
    });
    let report = sim.run();
    // Accepted at 150 ms, written at 1,150 ms, read at 1,200 ms.
    assert_eq!(report.trace, ["  1200.000 ms  poem"], "{}", dump(&report));
}

#[test]
fn a_reply_from_a_task_of_the_runtime_leaves_at_once() {
    let mut sim = Sim::builder().build();
    let server = sim.add_host("server");
    let client = sim.add_host("client");
    serve_one(&mut sim, server, |mut s| async move {
        // A task of the runtime's own queue, not of the simulation's
        // `LocalSet`: the request wakes it while the scheduler waits (no
        // task of the set runs), so its reply must wake the scheduler.
        tokio::spawn(async move {
            let mut req = [0u8; 4];
            s.read_exact(&mut req).await.unwrap();
            s.write_all(b"pong").await.unwrap();
        });
    });
    sim.spawn(client, async {
        let mut s = TcpStream::connect(("server", PORT)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        s.write_all(b"ping").await.unwrap();
        let mut reply = [0u8; 4];
        s.read_exact(&mut reply).await.unwrap();
        simnet::trace(String::from_utf8_lossy(&reply));
    });
    let report = sim.run();
    // Connected at 100 ms, "ping" sent at 1,100 ms and answered on its
    // arrival at 1,150 ms, "pong" read at 1,200 ms (not when the next
    // timer happens to wake the scheduler).
    assert_eq!(report.trace, ["  1200.000 ms  pong"], "{}", dump(&report));
}

/// 1 MiB from a server on `server_cfg` to a client on the default
/// settings; the report (with packets).
fn one_mib(server_cfg: KernelConfig) -> Report {
    let mut sim = Sim::builder().trace_packets(true).build();
    let server = sim.add_host_with_config("server", server_cfg);
    let client = sim.add_host("client");
    serve_one(&mut sim, server, |mut s| async move {
        s.write_all(&vec![b'p'; 1 << 20]).await.unwrap();
        s.shutdown().await.unwrap();
    });
    read_all_on(&mut sim, client);
    sim.run()
}

/// The SYN and SYN-ACK as sent.
fn sent_syns(report: &Report) -> Vec<&str> {
    lines(report, "[S")
        .into_iter()
        .filter(|l| l.contains(" send "))
        .collect()
}

#[test]
fn window_scaling_and_autotuning_move_1_mib_in_4_round_trips() {
    let report = one_mib(KernelConfig::default());
    // Both SYNs offer a shift of 7 (a 6 MiB maximum receive buffer:
    // log2 minus 15, as Linux), with an unscaled window.
    let syns = sent_syns(&report);
    assert_eq!(syns.len(), 2, "{}", dump(&report));
    for syn in syns {
        assert!(syn.contains("win=65535 wscale=7 len=0"), "{syn}");
    }
    // After the SYN-ACK, the client advertises its 128 KiB buffer scaled:
    // 131072 >> 7.
    assert!(
        report
            .trace
            .iter()
            .any(|l| l.contains("send client:49152 > server:10000 [.]") && l.contains("win=1024 ")),
        "{}",
        dump(&report)
    );
    // Receive autotuning: the client reads 128 KiB at 200 ms and 300 ms
    // (its first period, one RTT), so its buffer grows to 512 KiB; the
    // server's send buffer grows with that window (to twice it), and the
    // rest arrives at 400 and 500 ms. Without scaling, 64 KiB a round
    // trip: see the next test.
    assert_eq!(
        lines(&report, "client read"),
        ["   500.000 ms  client read 1048576 bytes"],
        "{}",
        dump(&report)
    );
}

#[test]
fn without_window_scaling_on_one_side_neither_scales() {
    let report = one_mib(KernelConfig::default().window_scaling(false));
    // The client offers a shift; the server's SYN-ACK carries none, so
    // both advertise unscaled windows, at most 65,535 bytes however large
    // the buffer grows.
    let syns = sent_syns(&report);
    assert!(syns[0].contains("wscale=7"), "{}", syns[0]);
    assert!(!syns[1].contains("wscale"), "{}", syns[1]);
    assert!(
        report
            .trace
            .iter()
            .any(|l| l.contains("send client:49152 > server:10000 [.]") && l.contains("win=65535 ")),
        "{}",
        dump(&report)
    );
    // 64 KiB a round trip: 16 of them after the first window.
    let done = lines(&report, "client read");
    assert_eq!(done.len(), 1, "{}", dump(&report));
    assert!(at(done[0]) > 1600.0, "{}", done[0]);
}

#[test]
fn a_writer_to_a_reader_that_never_reads_blocks_after_both_buffers_fill() {
    // The default buffers: the reader's 128 KiB never grows (it never
    // reads), and the writer's grows to twice the window it was offered,
    // 256 KiB: 384 KiB in all, where upstream's fixed 64 KiB each way
    // blocked at 128 KiB.
    let mut sim = Sim::builder().build();
    let server = sim.add_host("server");
    let client = sim.add_host("client");
    sim.spawn(server, async {
        let l = TcpListener::bind(("0.0.0.0", PORT)).await.unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        let mut total = 0;
        while tokio::time::timeout(Duration::from_secs(1), s.write(&[b'p'; 1024]))
            .await
            .is_ok()
        {
            total += 1024;
        }
        simnet::trace(format!("writer blocked after {total} bytes"));
    });
    sim.spawn_daemon(client, async {
        let _s = TcpStream::connect(("server", PORT)).await.unwrap();
        std::future::pending::<()>().await;
    });
    let report = sim.run();
    assert_eq!(
        lines(&report, "writer blocked after"),
        ["  1250.000 ms  writer blocked after 393216 bytes"],
        "{}",
        dump(&report)
    );
}

#[test]
fn data_for_a_socket_its_application_closed_is_answered_with_rst() {
    // The client reads the first chunk and closes (FIN, nothing unread).
    // The server's next chunk reaches a socket nobody can read from any
    // more: Linux answers with a RST (and so does this stack; upstream
    // ACKed it), and the server's following write fails.
    let mut sim = Sim::builder().trace_packets(true).build();
    let server = sim.add_host("server");
    let client = sim.add_host("client");
    sim.spawn(server, async {
        let l = TcpListener::bind(("0.0.0.0", PORT)).await.unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        for chunk in 0..3 {
            if chunk > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            if let Err(e) = s.write_all(b"0123456789").await {
                simnet::trace(format!("chunk {chunk}: {:?}", e.kind()));
                return;
            }
        }
        simnet::trace("every chunk written");
    });
    sim.spawn(client, async {
        let mut s = TcpStream::connect(("server", PORT)).await.unwrap();
        let mut chunk = [0u8; 10];
        s.read_exact(&mut chunk).await.unwrap();
        drop(s);
        simnet::trace("client closed");
    });
    let report = sim.run();
    let events: Vec<&str> = report
        .trace
        .iter()
        .filter(|l| !l.contains(" send ") && !l.contains(" recv "))
        .map(String::as_str)
        .collect();
    // Written at 150 ms (accepted) and read at 200 ms; the second chunk
    // leaves at 1,150 ms and is answered at 1,200 ms with a RST, which
    // reaches the server at 1,250 ms; its third write fails.
    assert_eq!(
        events,
        [
            "   200.000 ms  client closed",
            "  2150.000 ms  chunk 2: ConnectionReset"
        ],
        "{}",
        dump(&report)
    );
    assert_eq!(
        lines(&report, "send client:49152 > server:10000 [R]"),
        ["  1200.000 ms  send client:49152 > server:10000 [R] seq=16777218 ack=0 win=0 len=0"],
        "{}",
        dump(&report)
    );
}

/// A writer and a reader sharing one stream in one task, as the scripted
/// server peer does (`net::write_all_shared_in`, `net::read_in`, each
/// locking the stream for one poll): while the write is blocked on a full
/// window, the reader reads the client's "ping", and the write then
/// finishes with every byte in order. (Holding the stream across the
/// blocked write would deadlock here, and cannot compile in the peer,
/// whose task must be `Send`.)
#[test]
fn a_shared_write_blocked_on_a_full_window_leaves_the_stream_to_its_reader() {
    use poetry_harness::net::{read_in, write_all_shared_in};
    const POEM: usize = 1 << 20;
    // 64 KiB buffers each way: the server's write cannot finish while the
    // client waits with half of it read.
    let mut sim = Sim::builder().kernel(fixed_64k()).build();
    let server = sim.add_host("server");
    let client = sim.add_host("client");
    let (pinged, was_pinged) = tokio::sync::oneshot::channel::<()>();
    sim.spawn(server, async move {
        let l = TcpListener::bind(("0.0.0.0", PORT)).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        let shared = std::sync::Mutex::new(poetry_harness::net::TcpStream::from(s));
        let write = write_all_shared_in(&shared, bytes::Bytes::from(vec![b'p'; POEM]));
        tokio::pin!(write);
        let mut buf = [0u8; 16];
        let mut pinged = Some(pinged);
        loop {
            tokio::select! {
                biased;
                r = &mut write => break r.unwrap(),
                n = read_in(&shared, &mut buf) => {
                    let n = n.unwrap();
                    simnet::trace(format!("server read {:?}", String::from_utf8_lossy(&buf[..n])));
                    if let Some(p) = pinged.take() {
                        p.send(()).unwrap();
                    }
                }
            }
        }
        simnet::trace("server wrote the whole poem");
    });
    sim.spawn(client, async move {
        let mut s = TcpStream::connect(("server", PORT)).await.unwrap();
        let mut got = vec![0u8; POEM / 2];
        s.read_exact(&mut got).await.unwrap();
        simnet::trace("client read half, sends ping");
        s.write_all(b"ping").await.unwrap();
        was_pinged.await.unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        got.extend(rest);
        let all_p = got.iter().all(|&b| b == b'p');
        simnet::trace(format!(
            "client read {} bytes in all, all 'p': {all_p}",
            got.len()
        ));
    });
    let report = sim.run();
    let events: Vec<&str> = report
        .trace
        .iter()
        .filter_map(|l| l.split("  ").last())
        .collect();
    assert_eq!(
        events,
        [
            "client read half, sends ping",
            "server read \"ping\"",
            "server wrote the whole poem",
            "client read 1048576 bytes in all, all 'p': true",
        ],
        "{}",
        dump(&report)
    );
}
