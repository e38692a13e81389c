//! The transforming client: transformed poems in argument order, the
//! original poem when the transformation fails, nothing when the download
//! fails.

use std::time::Duration;

use poetry_harness::protocol::netstring::read_netstring;
use poetry_harness::protocol::DEFAULT_MAX_PAYLOAD;
use poetry_harness::reference::{
    FetchError, Pacing, PoetryServer, TransformClient, TransformFailure, TransformServer,
    Transformed,
};
use rstest::rstest;
use tokio::io::AsyncWriteExt;

use super::backend::{since, Backend, Ctx, Scenario, CLIENT, P};
use super::scripted::{send_then_reset, until_peer_closes, Probe};
use super::{loreley, lower, science};

/// A transform timeout short enough for real sockets.
const TRANSFORM_TIMEOUT: Duration = Duration::from_millis(300);

fn client(cx: &Ctx) -> TransformClient {
    TransformClient {
        transform_timeout: TRANSFORM_TIMEOUT,
        ..TransformClient::new(cx.addr("xform"))
    }
}

#[rstest]
#[case::sim(Backend::Sim)]
#[case::real(Backend::Real)]
fn transformed_poems_are_output_in_argument_order(#[case] backend: Backend) {
    let slow = Pacing {
        num_bytes: 50,
        delay: Duration::from_millis(3),
    };
    Scenario::new()
        // The first poem arrives last.
        .server("poet1", move |_, l| {
            PoetryServer::slow(science(), slow).serve(l)
        })
        .server("poet2", |_, l| PoetryServer::fast(loreley()).serve(l))
        .server("xform", |_, l| TransformServer::default().serve(l))
        .run(backend, |cx| async move {
            let addrs = [cx.addr("poet1"), cx.addr("poet2")];
            let results = client(&cx).run(cx.net, &addrs).await;
            assert_eq!(
                results,
                vec![
                    Transformed::Poem(lower(&science())),
                    Transformed::Poem(lower(&loreley())),
                ]
            );
            cx.assert_no_connections(&["poet1", "poet2", "xform", CLIENT])
                .await;
            Ok(())
        });
}

/// What is wrong with the transformation server.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Nothing listens.
    Absent,
    /// Reads the whole request, then closes with FIN without a reply.
    ClosesWithoutReply,
    /// Reads the request and says nothing, past the transform timeout.
    Stalls,
    /// Replies with a netstring cut short by its FIN.
    TruncatedReply,
    /// Resets the connection after the request.
    Resets,
}

impl Fault {
    fn scenario(self, probe: &Probe) -> Scenario {
        let scenario =
            Scenario::new().server("poet", |_, l| PoetryServer::fast(loreley()).serve(l));
        if let Fault::Absent = self {
            return scenario.refusing("xform");
        }
        scenario.scripted("xform", probe, move |conn, mut stream, probe| async move {
            let request = read_netstring(&mut stream, DEFAULT_MAX_PAYLOAD).await;
            assert!(request.is_ok(), "bad request: {request:?}");
            match self {
                Fault::Absent => unreachable!(),
                Fault::ClosesWithoutReply => {
                    let _ = stream.shutdown().await;
                    until_peer_closes(conn, &mut stream, &probe).await;
                }
                Fault::Stalls => until_peer_closes(conn, &mut stream, &probe).await,
                Fault::TruncatedReply => {
                    let _ = stream.write_all(b"10:abc").await;
                    let _ = stream.shutdown().await;
                    until_peer_closes(conn, &mut stream, &probe).await;
                }
                Fault::Resets => send_then_reset(stream, bytes::Bytes::new()).await,
            }
        })
    }

    fn expected(self, failure: &TransformFailure) -> bool {
        match self {
            Fault::Absent => matches!(failure, TransformFailure::Connect(_)),
            Fault::ClosesWithoutReply => *failure == TransformFailure::NoReply,
            Fault::Stalls => *failure == TransformFailure::Timeout,
            Fault::TruncatedReply | Fault::Resets => {
                matches!(failure, TransformFailure::BadReply(_))
            }
        }
    }
}

#[rstest]
#[case::sim(Backend::Sim)]
#[case::real(Backend::Real)]
fn failed_transformation_outputs_the_original_and_names_the_failure(
    #[case] backend: Backend,
    #[values(
        Fault::Absent,
        Fault::ClosesWithoutReply,
        Fault::Stalls,
        Fault::TruncatedReply,
        Fault::Resets
    )]
    fault: Fault,
) {
    let probe = Probe::default();
    fault.scenario(&probe).run(backend, move |cx| async move {
        let start = cx.sim_now();
        let results = client(&cx).run(cx.net, &[cx.addr("poet")]).await;
        let took = since(&cx, start);
        match &results[..] {
            [Transformed::Fallback { original, failure }] => {
                assert_eq!(original, &loreley());
                assert!(fault.expected(failure), "{fault:?} gave {failure:?}");
            }
            other => panic!("{fault:?} gave {other:?}"),
        }
        assert_eq!(results[0].output(), &loreley()[..]);
        if let Some(took) = took {
            // The transform timeout bounds the whole exchange.
            assert!(took <= TRANSFORM_TIMEOUT + P, "took {took:?}");
            if let Fault::Stalls = fault {
                assert!(took >= TRANSFORM_TIMEOUT, "gave up after {took:?}");
            }
        }
        let hosts: &[&str] = match fault {
            Fault::Absent => &["poet", CLIENT],
            _ => &["poet", "xform", CLIENT],
        };
        cx.assert_no_connections(hosts).await;
        Ok(())
    });
}

#[rstest]
#[case::sim(Backend::Sim)]
#[case::real(Backend::Real)]
fn failed_download_outputs_nothing_and_sends_no_request(#[case] backend: Backend) {
    let probe = Probe::default();
    let xform = probe.clone();
    Scenario::new()
        .refusing("nobody")
        .scripted("resetter", &Probe::default(), |_, stream, _| {
            send_then_reset(stream, loreley().slice(..100))
        })
        .server("poet", |_, l| PoetryServer::fast(loreley()).serve(l))
        // A real transformation server that counts its connections.
        .scripted("xform", &probe, |_, stream, _| async move {
            let _ = TransformServer::default().handle(stream).await;
        })
        .run(backend, move |cx| async move {
            let addrs = ["nobody", "resetter", "poet"].map(|n| cx.addr(n));
            let results = client(&cx).run(cx.net, &addrs).await;
            match &results[..] {
                [Transformed::DownloadFailed(FetchError::Refused), Transformed::DownloadFailed(FetchError::Reset { .. }), Transformed::Poem(poem)] => {
                    assert_eq!(poem, &lower(&loreley()))
                }
                other => panic!("got {other:?}"),
            }
            assert_eq!(results[0].output(), b"");
            assert_eq!(results[1].output(), b"");
            assert_eq!(xform.count("accepted"), 1, "requests for failed downloads");
            cx.assert_no_connections(&["resetter", "poet", "xform", CLIENT])
                .await;
            Ok(())
        });
}
