//! The transformation server: one netstring request, one netstring reply,
//! then FIN; anything it cannot serve gets no reply at all.

use std::io;

use poetry_harness::protocol::netstring::encode;
use poetry_harness::protocol::{encode_request, DEFAULT_MAX_PAYLOAD};
use poetry_harness::reference::TransformServer;
use rstest::rstest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::backend::{since, Backend, Ctx, Scenario, CLIENT, P};
use super::{loreley, lower};

/// The backends, for tests that take their cases from elsewhere.
const SIM: Backend = Backend::Sim;
const REAL: Backend = Backend::Real;

/// How a connection ended for the client.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Fin,
    Reset,
}

/// Sends `request` in one write, then reads until the server closes.
async fn exchange(cx: &Ctx, request: &[u8]) -> io::Result<(Vec<u8>, End)> {
    let mut stream = cx.net.connect(&cx.addr("xform")).await?;
    stream.write_all(request).await?;
    read_until_closed(&mut stream).await
}

async fn read_until_closed(
    stream: &mut poetry_harness::net::TcpStream,
) -> io::Result<(Vec<u8>, End)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return Ok((got, End::Fin)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok((got, End::Reset)),
            Err(e) => return Err(e),
        }
    }
}

fn transform_server() -> Scenario {
    Scenario::new().server("xform", |_, l| TransformServer::default().serve(l))
}

#[rstest]
#[case::cummingsify(
    "cummingsify",
    "Ich weiß nicht, ÄÖÜ SO TRAURIG",
    "ich weiß nicht, äöü so traurig"
)]
#[case::shout("shout", "Ich weiß nicht, äöü", "ICH WEISS NICHT, ÄÖÜ")]
#[case::reverse("reverse", "Ich weiß,\r\n", "\n\r,ßiew hcI")]
#[case::empty_poem("cummingsify", "", "")]
#[case::dots_in_poem("shout", "a.b.c", "A.B.C")]
fn valid_request_gets_one_netstring_reply_then_fin(
    #[case] name: &'static str,
    #[case] poem: &'static str,
    #[case] reply: &'static str,
    #[values(SIM, REAL)] backend: Backend,
) {
    transform_server().run(backend, move |cx| async move {
        let start = cx.sim_now();
        let (got, end) = exchange(&cx, &encode_request(name, poem.as_bytes())).await?;
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&encode(reply.as_bytes()))
        );
        assert_eq!(end, End::Fin);
        if let Some(took) = since(&cx, start) {
            assert!(took <= P, "reply took {took:?}");
        }
        cx.assert_no_connections(&["xform", CLIENT]).await;
        Ok(())
    });
}

#[rstest]
#[case::sim(Backend::Sim)]
#[case::real(Backend::Real)]
fn whole_poem_is_cummingsified(#[case] backend: Backend) {
    transform_server().run(backend, |cx| async move {
        let (got, end) = exchange(&cx, &encode_request("cummingsify", &loreley())).await?;
        assert_eq!(got, encode(lower(&loreley()).as_bytes()));
        assert_eq!(end, End::Fin);
        Ok(())
    });
}

#[rstest]
#[case::unknown_name(encode_request("lower", b"ABC"))]
#[case::wrong_case_name(encode_request("Cummingsify", b"ABC"))]
#[case::empty_name(b"5:.poem,".to_vec())]
#[case::no_dot(b"11:cummingsify,".to_vec())]
#[case::invalid_utf8(encode_request("cummingsify", b"\xc3"))]
#[case::missing_comma(b"5:hello;".to_vec())]
#[case::leading_zero(b"05:hello,".to_vec())]
#[case::not_a_netstring(b"hello".to_vec())]
#[case::over_the_limit(format!("{}:", DEFAULT_MAX_PAYLOAD + 1).into_bytes())]
fn request_it_cannot_serve_gets_no_reply(
    #[case] request: Vec<u8>,
    #[values(SIM, REAL)] backend: Backend,
) {
    transform_server().run(backend, move |cx| async move {
        let start = cx.sim_now();
        // FIN or RST are both fine (NET-2); a single byte is not.
        let (got, _end) = exchange(&cx, &request).await?;
        assert_eq!(
            String::from_utf8_lossy(&got),
            "",
            "a reply to {:?}",
            String::from_utf8_lossy(&request)
        );
        if let Some(took) = since(&cx, start) {
            // Dropped at once, not after the 30 s idle timeout.
            assert!(took <= P, "closed after {took:?}");
        }
        cx.assert_no_connections(&["xform", CLIENT]).await;
        Ok(())
    });
}

/// When the second request is sent.
#[derive(Debug, Clone, Copy)]
enum Second {
    /// In the same write as the first.
    SameWrite,
    /// After the whole reply to the first has arrived.
    AfterReply,
}

#[rstest]
#[case::sim(Backend::Sim)]
#[case::real(Backend::Real)]
fn second_request_on_a_connection_gets_no_second_reply(
    #[case] backend: Backend,
    #[values(Second::SameWrite, Second::AfterReply)] second: Second,
) {
    transform_server().run(backend, move |cx| async move {
        let first = encode_request("cummingsify", b"ABC");
        let again = encode_request("cummingsify", b"DEF");
        let mut stream = cx.net.connect(&cx.addr("xform")).await?;
        let (got, end) = match second {
            Second::SameWrite => {
                stream.write_all(&[first, again].concat()).await?;
                read_until_closed(&mut stream).await?
            }
            Second::AfterReply => {
                stream.write_all(&first).await?;
                let mut reply = [0u8; 6];
                stream.read_exact(&mut reply).await?;
                stream.write_all(&again).await?;
                let (rest, end) = read_until_closed(&mut stream).await?;
                ([&reply[..], &rest].concat(), end)
            }
        };
        assert_eq!(String::from_utf8_lossy(&got), "3:abc,");
        assert_eq!(end, End::Fin);
        drop(stream);
        cx.assert_no_connections(&["xform", CLIENT]).await;
        Ok(())
    });
}
