//! The poetry servers (fast and slow) and the poetry client, against each
//! other and against scripted peers.

use std::time::Duration;

use bytes::Bytes;
use poetry_harness::reference::{
    get_poem, get_poems, ClientConfig, FetchError, Pacing, PoetryServer,
};
use rstest::rstest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::backend::{since, Backend, Scenario, CLIENT, P};
use super::scripted::{send_then_reset, send_then_stall, Probe};
use super::{loreley, science, tyger};

/// The fast server: the whole poem in one write.
const FAST: Option<Pacing> = None;

/// A slow server quick enough for real sockets; 7-byte chunks split the
/// poem's multi-byte characters between writes.
const SLOW: Option<Pacing> = Some(Pacing {
    num_bytes: 7,
    delay: Duration::from_millis(2),
});

fn server(poem: Bytes, pacing: Option<Pacing>) -> PoetryServer {
    match pacing {
        None => PoetryServer::fast(poem),
        Some(p) => PoetryServer::slow(poem, p),
    }
}

#[rstest]
#[case::sim(Backend::Sim)]
#[case::real(Backend::Real)]
fn client_receives_the_exact_bytes_of_a_non_ascii_poem(
    #[case] backend: Backend,
    #[values(FAST, SLOW)] pacing: Option<Pacing>,
) {
    let poem = loreley();
    let served = poem.clone();
    Scenario::new()
        .server("poet", move |_, l| server(served.clone(), pacing).serve(l))
        .run(backend, |cx| async move {
            let got = get_poem(cx.net, &cx.addr("poet"), ClientConfig::default()).await?;
            assert_eq!(got, poem);
            cx.assert_no_connections(&["poet", CLIENT]).await;
            Ok(())
        });
}

#[rstest]
#[case::sim(Backend::Sim)]
#[case::real(Backend::Real)]
fn downloads_run_at_once_and_results_come_in_argument_order(#[case] backend: Backend) {
    let pace = Pacing {
        num_bytes: 10,
        delay: Duration::from_millis(3),
    };
    // Time spent in pauses: one delay between two chunks.
    let paced = |poem: &Bytes| pace.delay * (poem.len().div_ceil(pace.num_bytes) - 1) as u32;
    let slowest = paced(&science());
    let sum = slowest + paced(&loreley());
    Scenario::new()
        // The first server finishes last, the second first.
        .server("poet1", move |_, l| {
            PoetryServer::slow(science(), pace).serve(l)
        })
        .server("poet2", |_, l| PoetryServer::fast(tyger()).serve(l))
        .server("poet3", move |_, l| {
            PoetryServer::slow(loreley(), pace).serve(l)
        })
        .run(backend, move |cx| async move {
            let addrs = ["poet1", "poet2", "poet3"].map(|n| cx.addr(n));
            let start = cx.sim_now();
            let results = get_poems(cx.net, &addrs, ClientConfig::default()).await;
            assert_eq!(results, vec![Ok(science()), Ok(tyger()), Ok(loreley())]);
            if let Some(took) = since(&cx, start) {
                assert!(
                    took >= slowest && took < sum,
                    "took {took:?}: not the slowest download ({slowest:?}) but the sum ({sum:?})?"
                );
            }
            cx.assert_no_connections(&["poet1", "poet2", "poet3", CLIENT])
                .await;
            Ok(())
        });
}

#[rstest]
#[case::sim(Backend::Sim)]
#[case::real(Backend::Real)]
fn refused_address_is_refused_without_hiding_the_other_results(#[case] backend: Backend) {
    Scenario::new()
        .server("poet1", |_, l| PoetryServer::fast(loreley()).serve(l))
        .refusing("nobody")
        .server("poet2", |_, l| PoetryServer::fast(tyger()).serve(l))
        .run(backend, |cx| async move {
            let addrs = ["poet1", "nobody", "poet2"].map(|n| cx.addr(n));
            let results = get_poems(cx.net, &addrs, ClientConfig::default()).await;
            assert_eq!(
                results,
                vec![Ok(loreley()), Err(FetchError::Refused), Ok(tyger())]
            );
            // A refused attempt leaves no socket behind either (the vendored
            // turmoil's `PendingConnect` patch).
            cx.assert_no_connections(&["poet1", "poet2", CLIENT]).await;
            Ok(())
        });
}

#[rstest]
#[case::sim(Backend::Sim)]
#[case::real(Backend::Real)]
fn empty_poem_is_an_immediate_empty_success(
    #[case] backend: Backend,
    // The slow server at its default 0.7 s must not wait before closing.
    #[values(FAST, Some(Pacing::default()))] pacing: Option<Pacing>,
) {
    Scenario::new()
        .server("poet", move |_, l| server(Bytes::new(), pacing).serve(l))
        .run(backend, |cx| async move {
            let start = cx.sim_now();
            let got = get_poem(cx.net, &cx.addr("poet"), ClientConfig::default()).await;
            assert_eq!(got, Ok(Bytes::new()));
            if let Some(took) = since(&cx, start) {
                assert!(took <= P, "an empty poem took {took:?}");
            }
            cx.assert_no_connections(&["poet", CLIENT]).await;
            Ok(())
        });
}

#[rstest]
#[case::sim(Backend::Sim)]
#[case::real(Backend::Real)]
fn reset_mid_poem_is_a_failure_not_a_short_poem(
    #[case] backend: Backend,
    #[values(0, 100)] sent: usize,
) {
    let probe = Probe::default();
    Scenario::new()
        .scripted("poet", &probe, move |_, stream, _| {
            send_then_reset(stream, loreley().slice(..sent))
        })
        .run(backend, move |cx| async move {
            let got = get_poem(cx.net, &cx.addr("poet"), ClientConfig::default()).await;
            match got {
                Err(FetchError::Reset { after }) if after <= sent => {}
                other => panic!("a reset after {sent} bytes gave {other:?}"),
            }
            cx.assert_no_connections(&["poet", CLIENT]).await;
            Ok(())
        });
}

#[rstest]
#[case::sim(Backend::Sim)]
#[case::real(Backend::Real)]
fn stalled_server_times_out_and_the_client_hangs_up(#[case] backend: Backend) {
    let idle = Duration::from_millis(300);
    let probe = Probe::default();
    let watched = probe.clone();
    Scenario::new()
        .scripted("poet", &probe, |conn, stream, probe| async move {
            send_then_stall(conn, stream, probe, &loreley()[..100]).await
        })
        .run(backend, move |cx| async move {
            let config = ClientConfig {
                idle_timeout: idle,
                ..ClientConfig::default()
            };
            let start = cx.sim_now();
            let got = get_poem(cx.net, &cx.addr("poet"), config).await;
            let failed_at = cx.sim_now();
            assert_eq!(
                got,
                Err(FetchError::Timeout {
                    waiting_for: "data",
                    after: 100
                })
            );
            if let Some(took) = since(&cx, start) {
                // Connecting and the first bytes take a few latencies, the
                // timer then runs its whole length, and fires at most 1 s late.
                assert!(took >= idle && took <= idle + P, "timed out after {took:?}");
            }
            // The client abandons the connection at once (NET-5).
            let closed = watched.wait_for(0, "peer closed", 2 * P).await;
            if let (Some(closed), Some(failed)) = (closed.at, failed_at) {
                assert!(
                    closed - failed <= P,
                    "closed {:?} after the timeout",
                    closed - failed
                );
            }
            cx.assert_no_connections(&["poet", CLIENT]).await;
            Ok(())
        });
}

/// How the early client leaves.
#[derive(Debug, Clone, Copy)]
enum Leave {
    /// Closes the socket (FIN, or RST if poem bytes are still unread).
    Close,
    /// Resets the connection.
    Reset,
}

#[rstest]
#[case::sim(Backend::Sim)]
#[case::real(Backend::Real)]
fn client_leaving_early_disturbs_neither_other_clients_nor_the_next_one(
    #[case] backend: Backend,
    #[values(Leave::Close, Leave::Reset)] leave: Leave,
) {
    let pacing = Pacing {
        num_bytes: 10,
        delay: Duration::from_millis(3),
    };
    Scenario::new()
        .server("poet", move |_, l| {
            PoetryServer::slow(loreley(), pacing).serve(l)
        })
        .run(backend, move |cx| async move {
            let addr = cx.addr("poet");
            let mut leaver = cx.net.connect(&addr).await?;
            let stayer = tokio::spawn({
                let (net, addr) = (cx.net, addr.clone());
                async move { get_poem(net, &addr, ClientConfig::default()).await }
            });
            let mut first = [0u8; 10];
            let n = leaver.read(&mut first).await?;
            assert!(n > 0, "the leaving client got no first chunk");
            match leave {
                Leave::Close => drop(leaver),
                Leave::Reset => leaver.abort(),
            }
            assert_eq!(stayer.await?, Ok(loreley()), "the client that stayed");
            let next = get_poem(cx.net, &addr, ClientConfig::default()).await;
            assert_eq!(next, Ok(loreley()), "the next client");
            cx.assert_no_connections(&["poet", CLIENT]).await;
            Ok(())
        });
}

#[rstest]
#[case::sim(Backend::Sim)]
#[case::real(Backend::Real)]
fn bytes_from_the_client_are_ignored_and_the_poem_still_ends_with_fin(
    #[case] backend: Backend,
    #[values(FAST, SLOW)] pacing: Option<Pacing>,
) {
    Scenario::new()
        .server("poet", move |_, l| server(loreley(), pacing).serve(l))
        .run(backend, |cx| async move {
            let mut stream = cx.net.connect(&cx.addr("poet")).await?;
            stream.write_all(b"GET /poem HTTP/1.0\r\n\r\n").await?;
            let mut got = Vec::new();
            // read_to_end fails on a RST: it must be the poem, then FIN.
            stream.read_to_end(&mut got).await?;
            assert_eq!(got, loreley());
            drop(stream);
            cx.assert_no_connections(&["poet", CLIENT]).await;
            Ok(())
        });
}
