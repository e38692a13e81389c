//! The caching proxy: relays its upstream's poem, caches only complete
//! poems, resets its clients when the fetch fails, and cancels a fetch
//! nobody waits for any more.

use std::time::Duration;

use poetry_harness::reference::{get_poem, ClientConfig, FetchError, PoetryProxy};
use rstest::rstest;
use tokio::io::AsyncReadExt;

use super::backend::{Backend, Ctx, Scenario, CLIENT, P};
use super::loreley;
use super::scripted::{send_poem, send_then_reset, trickle, Probe};

/// A proxy for the server called `upstream`.
fn with_proxy(scenario: Scenario) -> Scenario {
    scenario.server("proxy", |cx: Ctx, l| {
        PoetryProxy::new(cx.addr("upstream")).serve(cx.net, l)
    })
}

async fn get(cx: &Ctx) -> Result<bytes::Bytes, FetchError> {
    get_poem(cx.net, &cx.addr("proxy"), ClientConfig::default()).await
}

#[rstest]
#[case::sim(Backend::Sim)]
#[case::real(Backend::Real)]
fn serves_the_upstream_poem_then_answers_from_its_cache(#[case] backend: Backend) {
    let probe = Probe::default();
    let upstream = probe.clone();
    with_proxy(
        Scenario::new().scripted("upstream", &probe, |_, stream, _| async move {
            send_poem(stream, &loreley()).await
        }),
    )
    .run(backend, move |cx| async move {
        for client in 0..3 {
            assert_eq!(get(&cx).await, Ok(loreley()), "client {client}");
        }
        assert_eq!(upstream.count("accepted"), 1, "upstream fetches");
        cx.assert_no_connections(&["proxy", "upstream", CLIENT])
            .await;
        Ok(())
    });
}

#[rstest]
#[case::sim(Backend::Sim)]
#[case::real(Backend::Real)]
fn upstream_reset_mid_poem_resets_the_client_and_is_not_cached(#[case] backend: Backend) {
    let probe = Probe::default();
    let upstream = probe.clone();
    with_proxy(
        Scenario::new().scripted("upstream", &probe, |conn, stream, _| async move {
            match conn {
                0 => send_then_reset(stream, loreley().slice(..100)).await,
                _ => send_poem(stream, &loreley()).await,
            }
        }),
    )
    .run(backend, move |cx| async move {
        // A reset, not a short (or empty) poem.
        match get(&cx).await {
            Err(FetchError::Reset { .. }) => {}
            other => panic!("after an upstream reset the client got {other:?}"),
        }
        assert_eq!(get(&cx).await, Ok(loreley()), "the next client");
        assert_eq!(upstream.count("accepted"), 2, "upstream fetches");
        cx.assert_no_connections(&["proxy", "upstream", CLIENT])
            .await;
        Ok(())
    });
}

/// How the only waiting client leaves.
#[derive(Debug, Clone, Copy)]
enum Leave {
    /// Closes its socket (FIN).
    Close,
    /// Resets the connection.
    Reset,
}

/// Upstream's pace on the first connection: the whole poem would take
/// 279 × 20 ms = 5.6 s, far longer than the proxy may take to cancel.
const TRICKLE: Duration = Duration::from_millis(20);

#[rstest]
#[case::sim(Backend::Sim)]
#[case::real(Backend::Real)]
fn last_waiting_client_leaving_cancels_the_upstream_fetch(
    #[case] backend: Backend,
    #[values(Leave::Close, Leave::Reset)] leave: Leave,
) {
    let probe = Probe::default();
    let upstream = probe.clone();
    with_proxy(
        Scenario::new().scripted("upstream", &probe, |conn, stream, probe| async move {
            match conn {
                0 => trickle(conn, stream, probe, &loreley(), TRICKLE).await,
                _ => send_poem(stream, &loreley()).await,
            }
        }),
    )
    .run(backend, move |cx| async move {
        let downstream = cx.net.connect(&cx.addr("proxy")).await?;
        upstream.wait_for(0, "accepted", P).await;
        // Let a few bytes of the fetch arrive first.
        tokio::time::sleep(5 * TRICKLE).await;
        let left_at = cx.sim_now();
        match leave {
            Leave::Close => drop(downstream),
            Leave::Reset => downstream.abort(),
        }
        let closed = upstream.wait_for(0, "peer closed", 3 * P).await;
        if let (Some(closed), Some(left)) = (closed.at, left_at) {
            assert!(
                closed - left <= P,
                "upstream closed {:?} after the client left",
                closed - left
            );
        }
        // Nothing was cached: the next client starts a new fetch.
        assert_eq!(get(&cx).await, Ok(loreley()), "the next client");
        assert_eq!(upstream.count("accepted"), 2, "upstream fetches");
        assert_eq!(upstream.count("poem sent"), 0, "the cancelled fetch ran on");
        cx.assert_no_connections(&["proxy", "upstream", CLIENT])
            .await;
        Ok(())
    });
}

#[rstest]
#[case::sim(Backend::Sim)]
#[case::real(Backend::Real)]
fn fetch_goes_on_while_one_client_still_waits(#[case] backend: Backend) {
    let probe = Probe::default();
    let upstream = probe.clone();
    let every = Duration::from_millis(2);
    with_proxy(
        Scenario::new().scripted("upstream", &probe, move |conn, stream, probe| async move {
            trickle(conn, stream, probe, &loreley(), every).await
        }),
    )
    .run(backend, move |cx| async move {
        let mut stayer = cx.net.connect(&cx.addr("proxy")).await?;
        upstream.wait_for(0, "accepted", P).await;
        let leaver = cx.net.connect(&cx.addr("proxy")).await?;
        tokio::time::sleep(5 * every).await;
        drop(leaver);
        let mut got = Vec::new();
        stayer.read_to_end(&mut got).await?;
        assert_eq!(got, loreley(), "the client that stayed");
        assert_eq!(get(&cx).await, Ok(loreley()), "from the cache");
        assert_eq!(upstream.count("accepted"), 1, "upstream fetches");
        drop(stayer);
        cx.assert_no_connections(&["proxy", "upstream", CLIENT])
            .await;
        Ok(())
    });
}
