//! The scripted transform server: reads one request netstring and answers,
//! or misbehaves, the way a transforming-client case says.
//!
//! Like the series' Twisted server (no half-close support), it takes a FIN
//! from the client before its reply as the end of the connection and
//! closes without replying, so a client that half-closes after its request
//! (NET-7) loses the reply. When it stalls, it still logs the moment the
//! client gives up (NET-5, TCLIENT-5).

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Decoder;

use super::{note, Endpoint, Recorder, Shared};
use crate::case::{XformBehaviour, XformPeer};
use crate::net::{Net, TcpStream};
use crate::protocol::netstring::{self, NetstringCodec};
use crate::protocol::transform;
use crate::transcript::preview;

/// The transform peer's host name.
pub const NAME: &str = "xform";

/// Largest request the peer reads: larger than any receiver's limit, so
/// the peer sees exactly what a client sent.
const PEER_LIMIT: usize = 16 * 1024 * 1024;

/// Runs the scripted transform server until the simulation ends.
pub async fn run(
    net: Net,
    spec: XformPeer,
    bind: impl Into<Endpoint>,
    rec: Recorder,
    seen: Shared,
) -> std::io::Result<()> {
    if spec.behaviour == XformBehaviour::Absent {
        std::future::pending::<()>().await;
    }
    let listener = bind.into().listen(net).await?;
    loop {
        let stream = super::accept(&listener, NAME, &rec, &seen).await?;
        rec.log(NAME, "accept");
        note(&seen, |o| o.accepted(rec.now()));
        let (spec, rec, seen) = (spec.clone(), rec.clone(), seen.clone());
        tokio::spawn(async move { answer(stream, spec, rec, seen).await });
    }
}

async fn answer(mut stream: TcpStream, spec: XformPeer, rec: Recorder, seen: Shared) {
    let mut codec = NetstringCodec::new(PEER_LIMIT);
    let mut buf = BytesMut::new();
    let payload = loop {
        match codec.decode(&mut buf) {
            Ok(Some(p)) => break p,
            Ok(None) => {}
            Err(e) => {
                rec.log(NAME, format!("bad request: {e}"));
                note(&seen, |o| o.bad_requests.push(e.to_string()));
                return;
            }
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                let why = format!(
                    "client closed after an incomplete request ({} bytes buffered)",
                    buf.len()
                );
                rec.log(NAME, why.clone());
                note(&seen, |o| o.bad_requests.push(why));
                return;
            }
            Ok(_) => {}
        }
    };
    rec.log(NAME, format!("request {}", preview(&payload)));
    note(&seen, |o| o.requests.push(payload.to_vec()));
    // Until the reply goes out, watch the client as the series' Twisted
    // server does: bytes after the request are ignored, but a FIN is the
    // end of the connection (no half-close support, NET-7), so a client
    // that half-closes before the reply gets none.
    let mut sink = [0u8; 256];
    let wait = tokio::time::sleep(spec.delay.0);
    tokio::pin!(wait);
    loop {
        tokio::select! {
            biased;
            r = stream.read(&mut sink) => match r {
                Ok(0) => {
                    rec.log(NAME, "client closed (FIN) before the reply: closing without a reply");
                    let _ = stream.shutdown().await;
                    return;
                }
                Ok(n) => rec.log(NAME, format!("recv after the request {}", preview(&sink[..n]))),
                Err(_) => {
                    rec.log(NAME, "client reset the connection (RST) before the reply");
                    return;
                }
            },
            _ = &mut wait => break,
        }
    }
    let reply: &[u8] = match spec.behaviour {
        XformBehaviour::Answer => match transform::respond(&payload) {
            Ok(poem) => {
                let frame = netstring::encode(poem.as_bytes());
                let _ = stream.write_all(&frame).await;
                rec.log(NAME, format!("reply {}", preview(&frame)));
                b""
            }
            Err(e) => {
                rec.log(NAME, format!("cannot answer ({e}); closing"));
                b""
            }
        },
        XformBehaviour::Close | XformBehaviour::Absent => b"",
        XformBehaviour::Reset => {
            rec.log(NAME, "close RST without reply");
            stream.abort();
            return;
        }
        XformBehaviour::Stall => {
            rec.log(NAME, "stall (never replies)");
            // Never reply, but note when the client gives up (NET-5).
            loop {
                match stream.read(&mut sink).await {
                    Ok(0) => rec.log(NAME, "client closed (FIN)"),
                    Ok(n) => {
                        rec.log(
                            NAME,
                            format!("recv after the request {}", preview(&sink[..n])),
                        );
                        continue;
                    }
                    Err(_) => rec.log(NAME, "client reset the connection (RST)"),
                }
                std::future::pending::<()>().await;
            }
        }
        XformBehaviour::Malformed => b"5x:hello,",
        XformBehaviour::Truncated => b"40:only part of a repl",
        // "café poème" in Latin-1: a well-formed netstring, not UTF-8.
        XformBehaviour::InvalidUtf8 => b"10:caf\xe9 po\xe8me,",
    };
    if !reply.is_empty() {
        let _ = stream.write_all(reply).await;
        rec.log(NAME, format!("reply {}", preview(reply)));
    }
    let _ = stream.shutdown().await;
    rec.log(NAME, "close FIN");
    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
}
