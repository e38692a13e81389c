//! The scripted poetry server: serves a poem the way a case says, slowly,
//! in odd pieces, with pauses, resets and stalls, and notes how the subject
//! closes each connection.

use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{is_reset, note, Ending, Endpoint, Recorder, Shared};
use crate::case::{End, ServerPeer};
use crate::net::{read_in, write_all_shared_in, Net, TcpStream};
use crate::transcript::Way;

/// One write of the plan, and the pause before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Pause before this write.
    pub pause: Duration,
    /// The bytes written.
    pub bytes: Bytes,
}

/// Cuts the poem into writes as the spec says; `rng` drives
/// `random_chunks` (and all chunking when `perturb` is set, for
/// exploration with random seeds).
pub fn plan(spec: &ServerPeer, poem: &Bytes, rng: &mut ChaCha8Rng, perturb: bool) -> Vec<Step> {
    plan_spread(spec, poem, rng, perturb, Duration::ZERO)
}

/// The gap [`plan_spread`] puts between the pieces of a perturbed write
/// on a byte-stream simulator (`--engine simnet`): tokio's timers count
/// whole milliseconds, so this is the shortest pause a peer can take.
pub const PIECE_GAP: Duration = Duration::from_millis(1);

/// [`plan`], with the pieces a perturbed write is cut into `gap` apart
/// instead of back to back (`gap` zero: exactly [`plan`]; the same random
/// draws either way, so a seed cuts the same pieces).
///
/// Why: turmoil delivers each write as a message of its own, so pieces
/// written back to back reach the reader as separate reads. A TCP that
/// carries bytes (simnet) delivers whatever arrived at one instant as
/// one read, so pieces written at one instant would reach the subject
/// whole and a seed would perturb nothing. Spread `gap` apart, they
/// arrive at distinct instants and the reader meets the cuts. The gaps
/// are taken out of the pauses around the write, not added to them: the
/// first pieces leave earlier (out of the pause before the write), or
/// the last ones later (out of the pause after it, so the next write
/// still leaves on the case's schedule), and the poem's last byte leaves
/// when the case says. Pauses too short for every gap (writes back to
/// back) leave the first pieces back to back, as [`plan`] does.
pub fn plan_spread(
    spec: &ServerPeer,
    poem: &Bytes,
    rng: &mut ChaCha8Rng,
    perturb: bool,
    gap: Duration,
) -> Vec<Step> {
    let sent = poem.slice(..spec.truncate.unwrap_or(poem.len()).min(poem.len()));
    let mut sizes: Vec<usize> = Vec::new();
    let mut at = 0;
    if spec.split_utf8 {
        // End the first write one byte into the first multi-byte character.
        if let Some(pos) = sent.iter().position(|b| *b >= 0xc0) {
            sizes.push(pos + 1);
            at = pos + 1;
        }
    }
    let mut k = 0;
    while at < sent.len() {
        let size = if let Some([lo, hi]) = spec.random_chunks {
            rng.random_range(lo.max(1)..=hi.max(lo).max(1))
        } else if let Some(chunks) = &spec.chunks {
            chunks
                .get(k)
                .or(chunks.last())
                .copied()
                .unwrap_or(sent.len())
                .max(1)
        } else {
            sent.len() - at
        };
        let mut size = size.min(sent.len() - at);
        // A boundary falls exactly at `pause_after`.
        if let Some(n) = spec.pause_after.filter(|n| at < *n && *n < at + size) {
            size = n - at;
        }
        sizes.push(size);
        at += size;
        k += 1;
    }
    // Each write: the pause before it and the pieces it is cut into.
    let mut writes: Vec<(Duration, Vec<Bytes>)> = Vec::with_capacity(sizes.len());
    let mut offset = 0;
    let mut paused = false;
    for (i, size) in sizes.into_iter().enumerate() {
        let mut pause = if i == 0 {
            spec.first_delay.0
        } else {
            spec.delay.0
        };
        if i > 0 && !spec.jitter.0.is_zero() {
            let steps =
                (spec.jitter.0.as_millis() / crate::case::peers::JITTER_STEP.as_millis()) as u32;
            pause += crate::case::peers::JITTER_STEP * rng.random_range(0..=steps);
        }
        if !paused && spec.pause_after.is_some_and(|n| offset >= n) {
            pause += spec.pause.0;
            paused = true;
        }
        // Exploring: the same bytes at the same times, cut into a few
        // back-to-back writes at seeded random points.
        let pieces = if perturb && size > 1 {
            rng.random_range(1..=3.min(size))
        } else {
            1
        };
        let mut cuts: Vec<usize> = (1..pieces).map(|_| rng.random_range(1..size)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut from = 0;
        let mut bytes = Vec::with_capacity(cuts.len() + 1);
        for cut in cuts.into_iter().chain([size]) {
            bytes.push(sent.slice(offset + from..offset + cut));
            from = cut;
        }
        writes.push((pause, bytes));
        offset += size;
    }
    let mut steps = Vec::with_capacity(writes.len());
    for w in 0..writes.len() {
        let gaps = writes[w].1.len() - 1;
        // Spread: gaps taken out of the pause before the write (its
        // first piece leaves earlier), then out of the pause after it
        // (its last piece leaves later, the next write on time). The
        // poem's last write takes none after it, so the poem ends when
        // the case says.
        let fits = |pause: Duration| match gap.as_nanos() {
            0 => 0,
            g => (pause.as_nanos() / g) as usize,
        };
        let before = gaps.min(fits(writes[w].0));
        let after = match writes.get_mut(w + 1) {
            Some(next) => {
                let after = (gaps - before).min(fits(next.0));
                next.0 -= gap * after as u32;
                after
            }
            None => 0,
        };
        let back_to_back = gaps - before - after;
        let (pause, pieces) = &writes[w];
        for (piece, bytes) in pieces.iter().enumerate() {
            let pause = match piece {
                0 => *pause - gap * before as u32,
                p if p <= back_to_back => Duration::ZERO,
                _ => gap,
            };
            steps.push(Step {
                pause,
                bytes: bytes.clone(),
            });
        }
    }
    steps
}

/// Runs a scripted poetry server named `name`, listening on `bind`, until
/// the run ends.
#[allow(clippy::too_many_arguments)] // each is one plain fact of the peer; a struct would only rename them
pub async fn run(
    net: Net,
    name: String,
    spec: ServerPeer,
    bind: impl Into<Endpoint>,
    seed: u64,
    perturb: bool,
    rec: Recorder,
    seen: Shared,
) -> std::io::Result<()> {
    note(&seen, |o| {
        o.accepts.insert(name.clone(), 0);
        o.closes.insert(name.clone(), Vec::new());
    });
    if spec.refuse || spec.blackhole {
        // Nothing listens; a blackhole also never answers (held link).
        std::future::pending::<()>().await;
    }
    let listener = bind.into().listen(net).await?;
    let poem = spec.poem.bytes();
    let mut conn = 0u64;
    loop {
        let stream = super::accept(&listener, &name, &rec, &seen).await?;
        conn += 1;
        let n = note(&seen, |o| {
            o.accepted(rec.now());
            let n = o.accepts.entry(name.clone()).or_default();
            *n += 1;
            *n
        });
        rec.log(&name, format!("accept connection {n}"));
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ conn.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        // Past `misbehave_first` connections, a well-behaved server.
        let spec = match spec.misbehave_first {
            Some(first) if n > first => ServerPeer {
                poem: spec.poem.clone(),
                ..ServerPeer::default()
            },
            _ => spec.clone(),
        };
        // On simnet a perturbed write's pieces go out apart, so that a
        // byte stream delivers them apart (see `plan_spread`).
        let gap = match net {
            Net::Simnet(_) if perturb => PIECE_GAP,
            _ => Duration::ZERO,
        };
        let steps = plan_spread(&spec, &poem, &mut rng, perturb, gap);
        let (name, rec, seen) = (name.clone(), rec.clone(), seen.clone());
        tokio::spawn(async move { serve_one(stream, name, spec, steps, rec, seen).await });
    }
}

/// How the writing of a poem ended.
enum Written {
    /// Every byte, and the end delay.
    All,
    /// A write was blocked past `write_timeout`.
    GaveUp,
}

/// The send buffer of a connection whose writes are watched
/// (`write_timeout`): small, so a subject that stops reading blocks the
/// peer's writes after about its own receive buffer, not after the
/// megabytes loopback TCP would otherwise hold.
pub const WATCHED_SEND_BUFFER: usize = 16 * 1024;

/// Serves one connection while watching for the subject closing it.
async fn serve_one(
    stream: TcpStream,
    name: String,
    spec: ServerPeer,
    steps: Vec<Step>,
    rec: Recorder,
    seen: Shared,
) {
    if spec.write_timeout.is_some() {
        // A write that must block when the subject stops reading: on real
        // sockets, only once a small send buffer is full.
        let _ = stream.set_send_buffer(WATCHED_SEND_BUFFER);
    }
    // When the FIN follows the last write at once, it travels with the
    // last bytes (live): a client must keep what arrives with the FIN.
    let last_segment = (spec.end == End::Fin && spec.end_delay.0.is_zero())
        .then(|| stream.last_segment_holder())
        .flatten();
    // The writer and the watching reader share the stream in this task,
    // each locking it only while polled; the writes are shared bytes of
    // the poem, not copies (on simnet).
    let shared = std::sync::Mutex::new(stream);
    let mut buf = [0u8; 1024];
    let mut closed: Option<Ending> = None;
    let record_close = |how: Ending| {
        rec.log(
            &name,
            match how {
                Ending::Fin => "subject closed (FIN)",
                _ => "subject reset the connection (RST)",
            },
        );
        note(&seen, |o| {
            o.closes
                .entry(name.clone())
                .or_default()
                .push((rec.now(), how))
        });
    };
    let wrote = {
        let writer = async {
            // Pauses run on a schedule, not one after another: on real
            // timers each sleep overshoots a little, and a hundred pauses
            // would add a hundred overshoots to the peer's own pacing. A
            // write that blocks past the next deadline pushes the schedule
            // back. In the simulator, where timers are exact and the
            // schedule is never late, this is the same thing.
            let mut next = tokio::time::Instant::now();
            for (i, step) in steps.iter().enumerate() {
                if !step.pause.is_zero() {
                    next = (next + step.pause).max(tokio::time::Instant::now());
                    tokio::time::sleep_until(next).await;
                }
                if let (true, Some(h)) = (i + 1 == steps.len(), &last_segment) {
                    let _ = h.hold();
                }
                match spec.write_timeout {
                    None => write_all_shared_in(&shared, step.bytes.clone()).await?,
                    Some(limit) => {
                        let write = tokio::time::timeout(
                            limit.0,
                            write_all_shared_in(&shared, step.bytes.clone()),
                        );
                        if write.await.is_err() {
                            rec.log(
                                &name,
                                format!(
                                    "write blocked for {}: the subject stopped reading",
                                    crate::transcript::secs(limit.0)
                                ),
                            );
                            return Ok(Written::GaveUp);
                        }
                    }
                }
                rec.log_bytes(&name, Way::Send, &step.bytes);
            }
            if !spec.end_delay.0.is_zero() {
                tokio::time::sleep(spec.end_delay.0).await;
            }
            Ok::<_, std::io::Error>(Written::All)
        };
        tokio::pin!(writer);
        loop {
            tokio::select! {
                biased;
                res = &mut writer => break res,
                r = read_in(&shared, &mut buf), if closed.is_none() => match r {
                    Ok(0) => { closed = Some(Ending::Fin); record_close(Ending::Fin); }
                    Ok(n) => rec.log_bytes(&name, Way::Recv, &buf[..n]),
                    Err(_) => { closed = Some(Ending::Rst); record_close(Ending::Rst); break Ok(Written::All); }
                },
            }
        }
    };
    if let Err(e) = wrote {
        rec.log(
            &name,
            format!(
                "write failed: {}",
                if is_reset(&e) {
                    "connection reset".to_string()
                } else {
                    e.to_string()
                }
            ),
        );
        if closed.is_none() {
            record_close(Ending::Rst);
        }
        return;
    }
    if closed == Some(Ending::Rst) {
        return;
    }
    let mut stream = shared
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Ok(Written::GaveUp) = wrote {
        rec.log(&name, "close RST");
        stream.abort();
        return;
    }
    match spec.end {
        End::Fin => {
            let _ = stream.shutdown().await;
            rec.log(&name, "close FIN");
        }
        End::Rst => {
            rec.log(&name, "close RST");
            stream.abort();
            note(&seen, |o| *o.resets.entry(name.clone()).or_default() += 1);
            return;
        }
        End::Stall => rec.log(&name, "stall (holds the connection, sends nothing more)"),
    }
    // Wait for the subject to close its side, and note when.
    while closed.is_none() {
        match stream.read(&mut buf).await {
            Ok(0) => {
                closed = Some(Ending::Fin);
                record_close(Ending::Fin);
            }
            Ok(n) => rec.log_bytes(&name, Way::Recv, &buf[..n]),
            Err(_) => {
                closed = Some(Ending::Rst);
                record_close(Ending::Rst);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::PoemSpec;
    use crate::duration::Dur;

    fn sizes(spec: &ServerPeer, poem: &[u8]) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        plan(spec, &Bytes::copy_from_slice(poem), &mut rng, false)
            .iter()
            .map(|s| s.bytes.len())
            .collect()
    }

    #[test]
    fn default_is_one_write() {
        assert_eq!(sizes(&ServerPeer::default(), b"hello"), vec![5]);
    }

    #[test]
    fn last_chunk_size_repeats() {
        let spec = ServerPeer {
            chunks: Some(vec![1, 3]),
            ..ServerPeer::default()
        };
        assert_eq!(sizes(&spec, b"abcdefghij"), vec![1, 3, 3, 3]);
    }

    #[test]
    fn split_utf8_cuts_inside_the_first_multibyte_character() {
        let spec = ServerPeer {
            split_utf8: true,
            ..ServerPeer::default()
        };
        let poem = "weiß nicht".as_bytes();
        let steps = sizes(&spec, poem);
        assert_eq!(steps, vec![4, poem.len() - 4]);
        assert!(std::str::from_utf8(&poem[..4]).is_err());
    }

    #[test]
    fn truncate_sends_a_prefix() {
        let spec = ServerPeer {
            truncate: Some(3),
            chunks: Some(vec![2]),
            ..ServerPeer::default()
        };
        assert_eq!(sizes(&spec, b"abcdef"), vec![2, 1]);
    }

    #[test]
    fn pauses_come_between_writes_and_at_pause_after() {
        let spec = ServerPeer {
            chunks: Some(vec![2]),
            delay: Dur(Duration::from_millis(100)),
            first_delay: Dur(Duration::from_millis(5)),
            pause_after: Some(4),
            pause: Dur(Duration::from_secs(60)),
            poem: PoemSpec::Text("abcdef".into()),
            ..ServerPeer::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let steps = plan(&spec, &spec.poem.bytes(), &mut rng, false);
        let pauses: Vec<u128> = steps.iter().map(|s| s.pause.as_millis()).collect();
        assert_eq!(pauses, vec![5, 100, 60_100]);
    }

    #[test]
    fn same_seed_same_random_plan() {
        let spec = ServerPeer {
            random_chunks: Some([1, 7]),
            ..ServerPeer::default()
        };
        let poem = Bytes::from_static(&[b'x'; 200]);
        let a = plan(&spec, &poem, &mut ChaCha8Rng::seed_from_u64(3), false);
        let b = plan(&spec, &poem, &mut ChaCha8Rng::seed_from_u64(3), false);
        assert_eq!(a, b);
        assert_eq!(a.iter().map(|s| s.bytes.len()).sum::<usize>(), 200);
    }

    #[test]
    fn spread_pieces_are_the_same_bytes_apart_and_the_poem_ends_on_time() {
        let spec = ServerPeer {
            chunks: Some(vec![40]),
            delay: Dur(Duration::from_millis(100)),
            poem: PoemSpec::Text("x".repeat(400)),
            ..ServerPeer::default()
        };
        let poem = spec.poem.bytes();
        let seed = || ChaCha8Rng::seed_from_u64(9);
        let flat = plan(&spec, &poem, &mut seed(), true);
        assert_eq!(
            flat,
            plan_spread(&spec, &poem, &mut seed(), true, Duration::ZERO)
        );
        let spread = plan_spread(&spec, &poem, &mut seed(), true, PIECE_GAP);
        // The same pieces, cut at the same points.
        let bytes = |steps: &[Step]| steps.iter().map(|s| s.bytes.clone()).collect::<Vec<_>>();
        assert_eq!(bytes(&flat), bytes(&spread));
        assert!(flat.len() > 12, "seed 9 cuts some writes: {}", flat.len());
        // When each piece leaves, on the writer's schedule.
        let times = |steps: &[Step]| {
            let mut at = Duration::ZERO;
            steps
                .iter()
                .map(|s| {
                    at += s.pause;
                    at
                })
                .collect::<Vec<_>>()
        };
        let (flat_at, spread_at) = (times(&flat), times(&spread));
        // Every piece apart (even those of the first write, which has no
        // pause before it), each within 2 ms of its time, the last on time.
        assert!(spread[1..].iter().all(|s| !s.pause.is_zero()), "{spread:?}");
        for (i, (f, s)) in flat_at.iter().zip(&spread_at).enumerate() {
            assert!(f.abs_diff(*s) <= 2 * PIECE_GAP, "piece {i}: {f:?} {s:?}");
        }
        assert_eq!(flat_at.last(), spread_at.last());
    }
}
