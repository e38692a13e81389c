//! The scripted client: connects to the subject (a server, a transform
//! server or a proxy), sends what the case says, reads the way it says
//! (all, slowly, or up to a limit), leaves early if told, and notes what
//! arrived and how the subject ended the connection.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    decode_hex, is_harness_shortage, is_reset, note, note_shortage, ClientSeen, Ending, Kept,
    Recorder, Shared,
};
use crate::case::{ClientPeer, Leave};
use crate::net::Net;
use crate::protocol::netstring;
use crate::transcript::Way;

/// The bytes a client peer sends, and the request payload among them.
pub fn outgoing(spec: &ClientPeer) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut out = Vec::new();
    if let Some(s) = &spec.send {
        out.extend_from_slice(s.as_bytes());
    }
    if let Some(h) = &spec.send_hex {
        out.extend(decode_hex(h).unwrap_or_default());
    }
    let request = spec.request.as_ref().map(|r| {
        let mut payload = r.as_bytes().to_vec();
        if let Some(poem) = &spec.request_poem {
            payload.push(b'.');
            payload.extend_from_slice(&poem.bytes());
        }
        payload
    });
    if let Some(payload) = &request {
        for _ in 0..spec.repeat.max(1) {
            out.extend(netstring::encode(payload));
        }
    }
    (out, request)
}

/// Runs one copy of a scripted client against `target`.
pub async fn run(
    net: Net,
    name: String,
    spec: ClientPeer,
    target: String,
    start: Duration,
    rec: Recorder,
    seen: Shared,
) {
    let (out, request) = outgoing(&spec);
    note(&seen, |o| {
        o.clients.insert(
            name.clone(),
            ClientSeen {
                request: request.clone(),
                ..ClientSeen::default()
            },
        )
    });
    if !start.is_zero() {
        tokio::time::sleep(start).await;
    }
    rec.log(&name, format!("connect to {target}"));
    // `deadline` counts from here, the connect included.
    let give_up_at = spec.deadline.map(|d| rec.now() + d.0);
    let clock = rec.clone();
    let give_up = async move {
        match give_up_at {
            Some(t) => tokio::time::sleep(t.saturating_sub(clock.now())).await,
            None => std::future::pending().await,
        }
    };
    let connected = tokio::select! {
        biased;
        r = net.connect(&target) => Some(r),
        _ = give_up => None,
    };
    let mut stream = match connected {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            // On loopback a subject that accepts and resets at once can
            // beat the connect call's own completion: that is the
            // subject's RST, not a refusal. Anything else is no act of the
            // subject's (the harness short of ports or descriptors).
            let ending = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => Ending::Refused,
                _ if is_reset(&e) => Ending::Rst,
                _ => Ending::ConnectFailed,
            };
            if is_harness_shortage(&e) {
                note_shortage(&seen, &rec, &name, "connect", &e);
            } else {
                rec.log(&name, format!("connect failed: {e}"));
            }
            note(&seen, |o| o.clients[&name].ending = Some(ending));
            return;
        }
        None => {
            rec.log(&name, "give up: still not connected at the deadline");
            let left_at = rec.now();
            note(&seen, |o| {
                let c = &mut o.clients[&name];
                c.ending = Some(Ending::Left);
                c.left_at = Some(left_at);
            });
            return;
        }
    };
    let connected = rec.now();
    let leave_at = match (spec.leave_at.map(|d| connected + d.0), give_up_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let clock = rec.clone();
    let deadline = async move {
        match leave_at {
            Some(t) => tokio::time::sleep(t.saturating_sub(clock.now())).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);

    // Send, in pieces if asked; `leave_at` applies while sending too.
    let mut time_to_leave = false;
    if !out.is_empty() {
        let piece = spec.send_chunk.unwrap_or(out.len()).max(1);
        // On a schedule, so real timers' overshoots do not add up (as in
        // the poetry server peer).
        let mut next = tokio::time::Instant::now();
        for (i, chunk) in out.chunks(piece).enumerate() {
            if i > 0 && !spec.send_delay.0.is_zero() {
                next = (next + spec.send_delay.0).max(tokio::time::Instant::now());
                tokio::select! {
                    biased;
                    _ = &mut deadline => {
                        time_to_leave = true;
                        break;
                    }
                    _ = tokio::time::sleep_until(next) => {}
                }
            }
            if let Err(e) = stream.write_all(chunk).await {
                rec.log(&name, format!("write failed: {e}"));
                break;
            }
            rec.log_bytes(&name, Way::Send, chunk);
        }
    }
    if spec.half_close && !time_to_leave {
        let _ = stream.shutdown().await;
        rec.log(&name, "half-close (FIN), still reading");
    }

    // Read until the subject closes, or until it is time to leave.
    let mut received = Kept::with_budget(note(&seen, |o| o.keep_budget.clone()));
    let mut buf = vec![0u8; spec.read_chunk.unwrap_or(64 * 1024).max(1)];
    let ending = loop {
        if time_to_leave {
            break None;
        }
        if spec.read_limit.is_some_and(|n| received.len() >= n as u64) {
            break None;
        }
        if spec
            .stop_reading_after
            .is_some_and(|n| received.len() >= n as u64)
        {
            rec.log(
                &name,
                format!(
                    "stop reading after {} bytes (holding the connection open)",
                    received.len()
                ),
            );
            (&mut deadline).await;
            break None;
        }
        let want = spec
            .read_limit
            .into_iter()
            .chain(spec.stop_reading_after)
            .map(|n| (n as u64).saturating_sub(received.len()))
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .fold(buf.len(), usize::min);
        tokio::select! {
            biased;
            _ = &mut deadline => break None,
            r = stream.read(&mut buf[..want]) => match r {
                Ok(0) => break Some(Ending::Fin),
                Ok(n) => {
                    rec.log_bytes(&name, Way::Recv, &buf[..n]);
                    received.push(&buf[..n]);
                }
                Err(e) if is_reset(&e) => break Some(Ending::Rst),
                Err(e) => {
                    rec.log(&name, format!("read failed: {e}"));
                    break Some(Ending::Rst);
                }
            },
        }
        if !spec.read_delay.0.is_zero() {
            tokio::select! {
                biased;
                _ = &mut deadline => break None,
                _ = tokio::time::sleep(spec.read_delay.0) => {}
            }
        }
    };
    match ending {
        Some(Ending::Fin) => rec.log(
            &name,
            format!("subject closed (FIN) after {} bytes", received.len()),
        ),
        Some(_) => rec.log(
            &name,
            format!(
                "subject reset the connection (RST) after {} bytes",
                received.len()
            ),
        ),
        None => match spec.leave {
            Leave::Fin => {
                rec.log(&name, format!("leave (FIN) after {} bytes", received.len()));
                let _ = stream.shutdown().await;
            }
            Leave::Rst => rec.log(&name, format!("leave (RST) after {} bytes", received.len())),
        },
    }
    if received.truncated() {
        rec.log(
            &name,
            format!(
                "kept the first {} of {} bytes",
                received.prefix().len(),
                received.len()
            ),
        );
    }
    let left_at = ending.is_none().then(|| rec.now());
    note(&seen, |o| {
        let c = &mut o.clients[&name];
        c.received_len = received.len();
        c.received_digest = if received.truncated() {
            received.digest()
        } else {
            0
        };
        c.received = Bytes::from(received.take_prefix());
        c.ending = Some(ending.unwrap_or(Ending::Left));
        c.left_at = left_at;
    });
    if ending.is_none() && spec.leave == Leave::Rst {
        stream.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::PoemSpec;

    #[test]
    fn request_is_framed_and_repeated() {
        let spec = ClientPeer {
            request: Some("cummingsify".into()),
            request_poem: Some(PoemSpec::Text("Hi".into())),
            repeat: 2,
            ..ClientPeer::default()
        };
        let (out, req) = outgoing(&spec);
        assert_eq!(out, b"14:cummingsify.Hi,14:cummingsify.Hi,");
        assert_eq!(req.unwrap(), b"cummingsify.Hi");
    }

    #[test]
    fn leave_at_interrupts_a_slow_send() {
        use std::sync::{Arc, Mutex};

        use crate::duration::Dur;
        use crate::peers::{Observations, PORT};

        let got: Arc<Mutex<Vec<u8>>> = Arc::default();
        let seen: Shared = Arc::new(Mutex::new(Observations::default()));
        let mut sim = turmoil::Builder::new()
            .tick_duration(Duration::from_millis(10))
            .min_message_latency(Duration::from_millis(10))
            .max_message_latency(Duration::from_millis(10))
            .build();
        let sink = got.clone();
        sim.host("subject", move || {
            let sink = sink.clone();
            async move {
                let listener = Net::Sim.bind(&format!("0.0.0.0:{PORT}")).await?;
                let (mut s, _) = listener.accept().await?;
                let mut buf = [0u8; 16];
                loop {
                    let n = s.read(&mut buf).await?;
                    if n == 0 {
                        return Ok(());
                    }
                    sink.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }
        });
        let spec = ClientPeer {
            send: Some("abcdef".into()),
            send_chunk: Some(1),
            send_delay: Dur(Duration::from_secs(1)),
            leave_at: Some(Dur(Duration::from_millis(2500))),
            ..ClientPeer::default()
        };
        let (rec, seen2) = (Recorder::new(), seen.clone());
        sim.client("c1", async move {
            let target = format!("subject:{PORT}");
            run(
                Net::Sim,
                "c1".into(),
                spec,
                target,
                Duration::ZERO,
                rec,
                seen2,
            )
            .await;
            Ok(())
        });
        sim.run().unwrap();
        let o = seen.lock().unwrap();
        let c = &o.clients["c1"];
        assert_eq!(c.ending, Some(Ending::Left));
        let left = c.left_at.expect("left early");
        assert!(
            left >= Duration::from_millis(2500) && left < Duration::from_millis(2600),
            "left at {left:?}"
        );
        // Sent at 0, 1 and 2 s after connecting; not at 3, 4 and 5 s.
        assert_eq!(&got.lock().unwrap()[..], b"abc");
    }

    /// Regression (issue 9): a client peer kept every byte an endless
    /// server sent.
    #[test]
    fn a_flood_past_the_cap_is_counted_hashed_and_said() {
        use std::sync::{Arc, Mutex};

        use crate::peers::{Kept, Observations, KEEP_CAP, PORT};

        const EXTRA: usize = 100_000;
        let stream: Vec<u8> = (0..KEEP_CAP + EXTRA).map(|i| (i % 251) as u8).collect();
        let seen: Shared = Arc::new(Mutex::new(Observations::default()));
        let mut sim = turmoil::Builder::new()
            .tick_duration(Duration::from_millis(10))
            .build();
        let served = stream.clone();
        sim.host("subject", move || {
            let served = served.clone();
            async move {
                let listener = Net::Sim.bind(&format!("0.0.0.0:{PORT}")).await?;
                let (mut s, _) = listener.accept().await?;
                for piece in served.chunks(1 << 20) {
                    s.write_all(piece).await?;
                }
                s.shutdown().await?;
                std::future::pending::<()>().await;
                Ok(())
            }
        });
        let (rec, seen2) = (Recorder::new(), seen.clone());
        let log = rec.clone();
        sim.client("c1", async move {
            let target = format!("subject:{PORT}");
            let spec = ClientPeer::default();
            run(
                Net::Sim,
                "c1".into(),
                spec,
                target,
                Duration::ZERO,
                rec,
                seen2,
            )
            .await;
            Ok(())
        });
        sim.run().unwrap();
        let o = seen.lock().unwrap();
        let c = &o.clients["c1"];
        assert_eq!(c.ending, Some(Ending::Fin));
        assert_eq!(c.received.len(), KEEP_CAP);
        assert_eq!(c.received_len, stream.len() as u64);
        assert_eq!(c.received_digest, Kept::digest_of(&stream));
        assert!(c.received_equals(&stream));
        let said = format!("kept the first {KEEP_CAP} of {} bytes", stream.len());
        assert!(
            log.events().iter().any(|e| e.what == said),
            "no event '{said}'"
        );
    }

    #[test]
    fn raw_bytes_come_first() {
        let spec = ClientPeer {
            send: Some("GET / HTTP/1.0\r\n".into()),
            send_hex: Some("00ff".into()),
            ..ClientPeer::default()
        };
        let (out, req) = outgoing(&spec);
        assert_eq!(out, b"GET / HTTP/1.0\r\n\x00\xff");
        assert!(req.is_none());
    }
}
