//! The issue 11 simulator (`backend::simnet`: turmoil-net, vendored and
//! patched, on our event-driven scheduler), one test per TCP behaviour,
//! each asserting exact simulated times. Every link is 50 ms one way, so
//! a round trip is 100 ms.
//!
//! - flow control: `writer_blocks_after_its_buffer_and_the_peer_window_fill_and_resumes_when_the_peer_reads`,
//!   `per_host_and_per_socket_buffer_sizes_set_where_a_writer_blocks`,
//!   `reader_that_fell_behind_and_reads_4_kib_at_a_time_still_gets_everything`,
//!   `zero_window_is_probed_on_the_persist_timer`
//! - handshake and backlog: `connect_completes_on_the_handshake_one_round_trip_before_accept`,
//!   `backlog_of_5_takes_5_of_12_connects_and_the_rest_resend_their_syn_at_1_3_7_15_s`,
//!   `syn_to_a_silent_host_is_resent_at_1_3_7_15_31_63_s_and_connect_times_out_at_127_s`
//! - resets: `rst_discards_unread_data`, `abort_sends_rst`, `linger_zero_close_sends_rst_and_default_close_sends_fin`
//! - loss: `transfer_under_10_percent_loss_completes_later_than_without`
//! - determinism: `two_runs_give_the_same_event_trace`

use std::cell::RefCell;
use std::io::ErrorKind;
use std::rc::Rc;
use std::time::Duration;

use poetry_harness::backend::simnet::{
    self, KernelConfig, Report, Sim, TcpListener, TcpSocket, TcpStream,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PORT: u16 = 10000;

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
    assert_eq!(report.trace, ["   100.000 ms  connected"], "{}", dump(&report));
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
    let mut sim = Sim::builder().build();
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
        assert!(report.trace.iter().any(|l| l == line), "{line}\n{}", dump(&report));
    }
    assert_eq!(lines(&report, "blocked since 351ms").len(), 1);
}

#[test]
fn per_host_and_per_socket_buffer_sizes_set_where_a_writer_blocks() {
    let mut sim = Sim::builder().build();
    // The server's host has 8 KiB send buffers; the client's socket an
    // 8 KiB receive buffer (window).
    let small = KernelConfig::default().send_buf_cap(8 * 1024);
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
    assert_eq!(lines(&report, "writer blocked after 16384 bytes").len(), 1, "{}", dump(&report));
}

#[test]
fn reader_that_fell_behind_and_reads_4_kib_at_a_time_still_gets_everything() {
    // Upstream turmoil-net stalled here for good: it advertised a window
    // only when one read freed half the buffer.
    let mut sim = Sim::builder().build();
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
        [" 11650.000 ms  writer done", " 11700.000 ms  reader done, 1048576 bytes"],
        "{}",
        dump(&report)
    );
}

#[test]
fn zero_window_is_probed_on_the_persist_timer() {
    let mut sim = Sim::builder().trace_packets(true).build();
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
