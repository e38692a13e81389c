//! TCP state machine.
//!
//! Handshake, streaming data, FIN/RST, half-close, and go-back-N
//! retransmit.
//!
//! PATCH (poetry-harness): retransmission is timed in simulated time
//! (the kernel's `now`, given by the caller) — see [`fire_timers`]: an
//! RFC 6298 retransmission timer (SRTT/RTTVAR, Karn's rule, exponential
//! backoff, Linux's minimum of 200 ms and initial 1 s for SYN and
//! SYN-ACK), a persist timer that probes a zero window, window updates
//! when a read opens at least one MSS (or half the buffer), ACKs for
//! duplicate and out-of-order segments (so a lost ACK does not turn
//! into a timeout), RST on demand and `SO_LINGER` 0, a backlog counted
//! from the listener's own sets, and segmentation of dirty sockets
//! only. No congestion control: a sender sends its whole window.
//!
//! PATCH (poetry-harness): window scaling and buffer sizes as on Linux.
//! A SYN offers a window scale (RFC 7323: [`TcpSegment::wscale`]; the
//! shift is log2 of the largest receive buffer minus 15, 7 for 6 MiB, as
//! Linux's `tcp_select_initial_window`); scaling is on when the SYN-ACK
//! answers with one, and then every window but a SYN's is shifted, so a
//! window can pass 64 KiB. A receive buffer starts at 128 KiB
//! (`tcp_rmem[1]`) and, unless `SO_RCVBUF` is set, grows while the
//! application keeps up (`autotune_recv`: twice what it read in a round
//! trip, up to 6 MiB, `tcp_rmem[2]`); a send buffer starts at 64 KiB and,
//! unless `SO_SNDBUF` is set, grows to twice the peer's largest window
//! (up to 4 MiB, `tcp_wmem[2]`; Linux sizes it from the congestion
//! window, which is not modelled). `KernelConfig::window_scaling(false)`
//! and maximums equal to the initial sizes give upstream's fixed 64 KiB.
//!
//! PATCH (poetry-harness): RST where Linux sends one. New data reaching
//! a socket its application closed (FIN_WAIT1, FIN_WAIT2, CLOSING after
//! `close`, not after a half-close) is answered with a RST and the
//! connection is dropped (`data_after_close`; upstream ACKed and
//! discarded it, so the peer wrote on into the void). A connection that
//! was reset or timed out, still held by its application, answers any
//! segment but a RST with a RST (Linux has unhashed it). As before:
//! closing with unread data, `SO_LINGER` 0 and `abort` send a RST, and a
//! segment for no socket at all gets one.
//!
//! ## Go-back-N, not SACK
//!
//! On retransmit we rewind `snd_nxt = snd_una` and re-emit the entire
//! unacked window. Real TCP typically negotiates SACK and resends
//! only the gaps. We don't, for two reasons:
//!
//! - **No reassembly on receive.** Our receiver accepts segments
//!   strictly in order (`seq == rcv_nxt`, else drop). Selective retx
//!   would only pay off if the receiver buffered out-of-order
//!   segments; without that, resending the tail is necessary anyway.
//! - **Simpler state.** No per-segment tracking, no retx queue, no
//!   SACK option parsing.
//!
//! App-visible behavior is identical: bytes arrive in-order and
//! intact. The cost is wire inefficiency under loss — a test that
//! counts packets could tell the difference, but the socket API
//! can't.
//!
//! # Perf TODO
//! - `segment_all` still sweeps every socket via `SocketTable::iter`
//!   each egress to find ones with transmittable bytes. A dirty-set
//!   (fd pushed whenever send_buf grows or a FIN becomes pending) would
//!   cut that to an O(writers) scan.
//!
//! PATCH (poetry-harness): see the module doc below.

use std::io::{Error, ErrorKind, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::ReadBuf;

use crate::kernel::packet::{self, Packet, TcpFlags, TcpSegment, Transport};
use crate::kernel::socket::{
    Addr, BindKey, Domain, Fd, RecvQueue, SendQueue, Socket, Tcb, TcpState, TimerKind, Type,
    DEFAULT_RECV_BUF_CAP, DEFAULT_SEND_BUF_CAP,
};
use crate::kernel::{Kernel, SendBuf};

/// Drives `Kernel::poll_connect` for `SOCK_STREAM`. First poll builds a
/// TCB in `SynSent`, enqueues the SYN, and parks. Later polls observe
/// the TCB transitioning to `Established` (handshake done) and return
/// `Ready`.
pub(super) fn poll_connect(
    k: &mut Kernel,
    fd: Fd,
    cx: &mut Context<'_>,
    domain: Domain,
    peer: SocketAddr,
    is_bound: bool,
) -> Poll<Result<()>> {
    // Already in flight? Just check state and re-park.
    if let Some(tcb) = &k.lookup(fd).expect("fd validated").tcb {
        return match tcb.state {
            TcpState::Established => Poll::Ready(Ok(())),
            TcpState::SynSent | TcpState::SynReceived => {
                park_connect(k, fd, cx);
                Poll::Pending
            }
            // Close mid-connect: SYN retx exhaustion surfaces as
            // TimedOut (Linux's ETIMEDOUT); anything else is the
            // peer RST'ing, which Linux reports as ECONNREFUSED.
            TcpState::Closed
            | TcpState::FinWait1
            | TcpState::FinWait2
            | TcpState::CloseWait
            | TcpState::LastAck
            | TcpState::Closing => {
                if tcb.timed_out {
                    Poll::Ready(Err(Error::from(ErrorKind::TimedOut)))
                } else {
                    Poll::Ready(Err(Error::from(ErrorKind::ConnectionRefused)))
                }
            }
        };
    }

    // First poll: auto-bind if needed, build the TCB, emit SYN.
    if !is_bound {
        auto_bind(k, fd, domain, peer.ip())?;
    }
    let src = local_endpoint(k, fd);
    let isn = initial_sequence(k);
    let (now, syn_rto) = (k.now, k.syn_rto);
    let (window, wscale) = {
        let (rcv_cap, snd_cap) = (k.recv_buf_cap, k.send_buf_cap);
        let wscale = offered_wscale(k, fd);
        let st = k.lookup_mut(fd).expect("fd validated");
        let mut tcb = new_tcb(
            TcpState::SynSent,
            peer,
            isn,
            0,
            DEFAULT_WINDOW,
            now,
            syn_rto,
        );
        // PATCH (poetry-harness): the SYN offers a window scale.
        (tcb.rcv_cap, tcb.snd_cap) = (rcv_cap, snd_cap);
        tcb.syn_wscale = wscale;
        tcb.rcv_wscale = wscale.unwrap_or(0);
        st.tcb = Some(tcb);
        st.peer = Some(Addr::Inet(peer));
        (initial_window(st), wscale)
    };
    k.sockets.insert_connection(src, peer, fd);
    // PATCH (poetry-harness): the SYN is resent on a timer (1 s, then
    // doubling), not after a count of egress passes.
    arm(k, fd, now + syn_rto, TimerKind::Retransmit);
    emit(
        k,
        src,
        peer,
        TcpSegment {
            src_port: src.port(),
            dst_port: peer.port(),
            seq: isn,
            ack: 0,
            flags: TcpFlags {
                syn: true,
                ..TcpFlags::default()
            },
            window,
            wscale,
            payload: Bytes::new(),
        },
    );
    park_connect(k, fd, cx);
    Poll::Pending
}

/// Inbound TCP dispatch.
pub(super) fn deliver(k: &mut Kernel, pkt: &Packet, s: &TcpSegment) {
    let local = SocketAddr::new(pkt.dst, s.dst_port);
    let remote = SocketAddr::new(pkt.src, s.src_port);

    // First try to demux to an established/in-progress connection by
    // 4-tuple. Listener fallback only runs if that misses.
    if let Some(fd) = k.sockets.find_connection(local, remote) {
        // PATCH (poetry-harness): an ACK may open the window or finish a
        // close; egress visits dirty sockets only.
        k.dirty.insert(fd);
        handle_on_connection(k, fd, local, remote, s);
        return;
    }

    // Listener fallback — SYN on an otherwise-unknown 4-tuple.
    if s.flags.syn && !s.flags.ack {
        if let Some(listener) = find_listener(k, local) {
            accept_syn(k, listener, local, remote, s);
            return;
        }
        // No listener at this port — reply with RST so the peer sees
        // `ConnectionRefused` instead of timing out.
        emit_rst(k, local, remote, s);
        return;
    }

    // Non-SYN to an unknown 4-tuple. RFC 793 says RST, unless the
    // segment is itself a RST (that would be infinite ping-pong).
    if !s.flags.rst {
        emit_rst(k, local, remote, s);
    }
}

/// Emit a RST in response to `s`. Follows RFC 793's ACK/SEQ rules:
/// if the offending segment carried ACK, reflect `ack` as our `seq`
/// and leave the RST unacked; otherwise set `ack = seq + segment_len`
/// and flag ACK.
fn emit_rst(k: &mut Kernel, local: SocketAddr, remote: SocketAddr, s: &TcpSegment) {
    let (seq, ack, ack_flag) = if s.flags.ack {
        (s.ack, 0, false)
    } else {
        let seg_len = s.payload.len() as u32
            + if s.flags.syn { 1 } else { 0 }
            + if s.flags.fin { 1 } else { 0 };
        (0, s.seq.wrapping_add(seg_len), true)
    };
    emit(
        k,
        local,
        remote,
        TcpSegment {
            src_port: local.port(),
            dst_port: remote.port(),
            seq,
            ack,
            flags: TcpFlags {
                rst: true,
                ack: ack_flag,
                ..TcpFlags::default()
            },
            window: 0,
            wscale: None,
            payload: Bytes::new(),
        },
    );
}

fn handle_on_connection(
    k: &mut Kernel,
    fd: Fd,
    local: SocketAddr,
    remote: SocketAddr,
    s: &TcpSegment,
) {
    // RST trumps all other processing. Tear the connection down and
    // wake every parked task with ConnectionReset.
    if s.flags.rst {
        abort_with(k, fd, AbortReason::ResetByPeer);
        return;
    }
    // PATCH (poetry-harness): new data for a socket the application has
    // closed (not just shut down for writing) cannot be read by anyone:
    // Linux answers it with a RST and drops the connection (its
    // `TCPAbortOnData`), so the peer's next write fails instead of
    // filling a buffer nobody reads. Upstream ACKed it.
    if data_after_close(k, fd, s) {
        emit_rst(k, local, remote, s);
        abort_connection(k, fd);
        return;
    }

    let now = k.now;
    let (rto_min, rto_max, snd_max) = (k.rto_min, k.rto_max, k.send_buf_max);
    let recv_cap = recv_cap_of(k, fd);
    let tcb = k
        .lookup(fd)
        .expect("fd present")
        .tcb
        .as_ref()
        .expect("tcb present");
    let state = tcb.state;
    match state {
        // Client received SYN-ACK. Move to Established and ACK.
        TcpState::SynSent if s.flags.syn && s.flags.ack && s.ack == tcb.snd_nxt => {
            let (snd_nxt, rcv_nxt, window) = {
                let tcb = k.lookup_mut(fd).unwrap().tcb.as_mut().unwrap();
                tcb.state = TcpState::Established;
                tcb.rcv_nxt = s.seq.wrapping_add(1);
                // PATCH (poetry-harness): scaling is on if both SYNs carried
                // the option; the SYN-ACK's own window is not scaled.
                match s.wscale {
                    Some(shift) if tcb.syn_wscale.is_some() => {
                        tcb.snd_wscale = shift.min(MAX_WSCALE);
                    }
                    _ => tcb.rcv_wscale = 0,
                }
                set_snd_wnd(tcb, u32::from(s.window), snd_max);
                // PATCH (poetry-harness): the handshake is the first RTT
                // sample (unless the SYN was resent: Karn), and its timer
                // stops.
                handshake_done(tcb, now, rto_min, rto_max);
                let window = advertise(tcb, recv_cap);
                (tcb.snd_nxt, tcb.rcv_nxt, window)
            };
            wake_connect(k, fd);
            emit(
                k,
                local,
                remote,
                TcpSegment {
                    src_port: local.port(),
                    dst_port: remote.port(),
                    seq: snd_nxt,
                    ack: rcv_nxt,
                    flags: TcpFlags {
                        ack: true,
                        ..TcpFlags::default()
                    },
                    window,
                    wscale: None,
                    payload: Bytes::new(),
                },
            );
        }
        // Server received ACK of its SYN-ACK. Promote to Established
        // and push onto the listener's ready queue.
        TcpState::SynReceived if s.flags.ack && !s.flags.syn => {
            let expected_ack = tcb.snd_nxt;
            if s.ack != expected_ack {
                return;
            }
            {
                let tcb = k.lookup_mut(fd).unwrap().tcb.as_mut().unwrap();
                tcb.state = TcpState::Established;
                let window = u32::from(s.window) << tcb.snd_wscale;
                set_snd_wnd(tcb, window, snd_max);
                handshake_done(tcb, now, rto_min, rto_max);
            }
            forget_handshaking(k, fd);
            push_to_listener(k, fd, local);
            // PATCH (poetry-harness): the handshake's last ACK may carry
            // data (the client wrote at once); upstream dropped it, to
            // be retransmitted.
            if !s.payload.is_empty() || s.flags.fin {
                handle_established(k, fd, local, remote, s);
            }
        }
        // PATCH (poetry-harness): a resent SYN (our SYN-ACK was lost or is
        // late) gets the SYN-ACK again.
        TcpState::SynReceived if s.flags.syn && !s.flags.ack => emit_handshake(k, fd),
        // Data / ACK / FIN on an open or half-closed connection.
        TcpState::Established
        | TcpState::FinWait1
        | TcpState::FinWait2
        | TcpState::CloseWait
        | TcpState::Closing
        | TcpState::LastAck => handle_established(k, fd, local, remote, s),
        TcpState::Closed => {
            // Socket is torn down but the TCB lingers until the shim
            // drops its Fd.
            // PATCH (poetry-harness): as on Linux, where such a socket is
            // no longer in the lookup tables: a connection that was reset
            // or timed out answers anything but a RST with a RST. One
            // that closed cleanly (Linux's TIME_WAIT) ACKs a resent FIN.
            if tcb.reset || tcb.timed_out {
                emit_rst(k, local, remote, s);
            } else if s.flags.fin {
                emit_ack(k, fd, local, remote, recv_cap);
            }
        }
        TcpState::SynSent | TcpState::SynReceived => {
            // Handshake still in progress but segment doesn't match
            // the expected SYN-ACK / ACK. Drop for v1 — RST-on-
            // unexpected is a polish pass.
        }
    }
}

/// PATCH (poetry-harness): `s` carries data past `rcv_nxt` for a socket
/// the application closed while its peer could still send (FIN_WAIT1,
/// FIN_WAIT2, CLOSING): Linux's `RCV_SHUTDOWN` check in
/// `tcp_rcv_state_process`.
fn data_after_close(k: &Kernel, fd: Fd, s: &TcpSegment) -> bool {
    let Some(st) = k.sockets.get(fd) else {
        return false;
    };
    let Some(tcb) = st.tcb.as_ref() else {
        return false;
    };
    let end = s.seq.wrapping_add(s.payload.len() as u32);
    st.fd_closed
        && !s.payload.is_empty()
        && matches!(
            tcb.state,
            TcpState::FinWait1 | TcpState::FinWait2 | TcpState::Closing
        )
        && seq_lt(tcb.rcv_nxt, end)
}

/// ACK processing, in-order data receipt, FIN handling, and waker
/// plumbing. Out-of-order segments are dropped — v1's fabric is
/// reliable.
fn handle_established(
    k: &mut Kernel,
    fd: Fd,
    local: SocketAddr,
    remote: SocketAddr,
    s: &TcpSegment,
) {
    let mut wake_write = false;
    let mut wake_read = false;
    let mut send_ack = false;
    let mut progress = false;
    let recv_cap = recv_cap_of(k, fd);
    let now = k.now;
    let (rto_min, rto_max, snd_max) = (k.rto_min, k.rto_max, k.send_buf_max);

    {
        let st = k.lookup_mut(fd).unwrap();
        let tcb = st.tcb.as_mut().unwrap();

        // ACK: drain ACK'd bytes from send_buf, refresh advertised
        // window. Any ACK is worth waking a parked writer for — either
        // bytes drained or the window grew.
        if s.flags.ack {
            let acked = s.ack.wrapping_sub(tcb.snd_una);
            // PATCH (poetry-harness): acceptable up to `snd_max`, not
            // `snd_nxt`: after a timeout rewinds `snd_nxt`, ACKs for the
            // bytes first sent are still on their way.
            let outstanding = tcb.snd_max.wrapping_sub(tcb.snd_una);
            if acked > 0 && acked <= outstanding {
                // FIN (if sent) sits at `fin_seq` and consumes one seq
                // past the data. Don't try to drain buffer bytes for
                // the FIN's byte.
                let fin_acked = tcb
                    .fin_seq
                    .map(|fs| s.ack == fs.wrapping_add(1))
                    .unwrap_or(false);
                let data_bytes = if fin_acked { acked - 1 } else { acked };
                if data_bytes > 0 {
                    // PATCH (poetry-harness): `advance`, not `split_to`:
                    // splitting made the buffer shared, and its next
                    // growth copied every unacknowledged byte.
                    tcb.send_buf.advance(data_bytes as usize);
                }
                tcb.snd_una = s.ack;
                // PATCH (poetry-harness): past a rewound snd_nxt; RTT
                // sample or end of backoff; the persist backoff ends
                // when the window reopens (below).
                if seq_lt(tcb.snd_nxt, tcb.snd_una) {
                    tcb.snd_nxt = tcb.snd_una;
                }
                // Progress — retx machinery resets.
                tcb.retx_attempts = 0;
                match tcb.rtt_probe {
                    Some((end, sent)) if seq_le(end, s.ack) => {
                        rtt_sample(tcb, now - sent, rto_min, rto_max);
                        tcb.rtt_probe = None;
                    }
                    // No sample (Karn: only resent bytes were ACKed), but
                    // progress ends the backoff: the RTO returns to the
                    // estimate, as Linux's does (its timestamps give a
                    // sample for every ACK). Without this, under steady
                    // loss the RTO only ever doubled.
                    _ => {
                        if let Some(srtt) = tcb.srtt {
                            tcb.rto = rto_of(srtt, tcb.rttvar, rto_min, rto_max);
                        }
                    }
                }
                progress = true;

                // Advance state machine on FIN-ACK.
                if fin_acked {
                    tcb.state = match tcb.state {
                        TcpState::FinWait1 => TcpState::FinWait2,
                        TcpState::Closing => TcpState::Closed,
                        TcpState::LastAck => TcpState::Closed,
                        other => other,
                    };
                }
            }
            if acked <= outstanding {
                // PATCH (poetry-harness): scaled, except in a (resent)
                // SYN-ACK.
                let shift = if s.flags.syn { 0 } else { tcb.snd_wscale };
                let window = u32::from(s.window) << shift;
                if tcb.snd_wnd == 0 && window > 0 {
                    // The window reopened: the persist backoff is over.
                    tcb.retx_attempts = 0;
                }
                set_snd_wnd(tcb, window, snd_max);
            }
            wake_write = true;
        }

        // Data: accept if it lands exactly at rcv_nxt and fits under
        // the receive cap. Gaps, overlaps, and overruns all drop.
        let tcb = st.tcb.as_mut().unwrap();
        if !s.payload.is_empty() {
            if s.seq == tcb.rcv_nxt && !tcb.peer_fin {
                let room = recv_cap.saturating_sub(tcb.recv_buf.len());
                let n = s.payload.len().min(room);
                if n > 0 {
                    tcb.recv_buf.push(s.payload.slice(..n));
                    tcb.rcv_nxt = tcb.rcv_nxt.wrapping_add(n as u32);
                    wake_read = true;
                }
            }
            // PATCH (poetry-harness): every data segment is ACKed, the
            // dropped ones too (a duplicate, out of order, past the
            // window): with loss, a lost ACK would otherwise leave the
            // sender resending bytes the receiver silently drops until
            // it gives up.
            send_ack = true;
        } else if !s.flags.fin && !s.flags.syn && seq_lt(s.seq, tcb.rcv_nxt) {
            // PATCH (poetry-harness): a zero-window probe (an old sequence
            // number, no payload) is answered with the current window.
            send_ack = true;
        }
        if s.flags.syn {
            // PATCH (poetry-harness): a resent SYN-ACK (our ACK was lost)
            // is ACKed again.
            send_ack = true;
        }

        // FIN: consumes one sequence number right after any payload.
        // Accept only if it lands in order.
        let tcb = st.tcb.as_mut().unwrap();
        if s.flags.fin && tcb.peer_fin {
            // PATCH (poetry-harness): a resent FIN (our ACK was lost).
            send_ack = true;
        }
        if s.flags.fin && !tcb.peer_fin {
            let fin_seq = s.seq.wrapping_add(s.payload.len() as u32);
            if fin_seq == tcb.rcv_nxt {
                tcb.peer_fin = true;
                tcb.rcv_nxt = tcb.rcv_nxt.wrapping_add(1);
                send_ack = true;
                // Wake any parked reader so it can observe EOF once
                // the buffer drains.
                wake_read = true;
                let tcb = st.tcb.as_mut().unwrap();
                tcb.state = match tcb.state {
                    TcpState::Established => TcpState::CloseWait,
                    TcpState::FinWait1 => TcpState::Closing,
                    TcpState::FinWait2 => TcpState::Closed,
                    other => other,
                };
            }
        }

        if wake_write {
            st.wake_write();
        }
        if wake_read {
            st.wake_read();
        }
    }

    if send_ack {
        emit_ack(k, fd, local, remote, recv_cap);
    }
    update_timer(k, fd, progress);
}

fn accept_syn(
    k: &mut Kernel,
    listener_fd: Fd,
    local: SocketAddr,
    remote: SocketAddr,
    s: &TcpSegment,
) {
    // Check backlog capacity before we allocate anything.
    let (backlog, domain, ty, in_flight, ready, snd_cap, rcv_cap) = {
        let st = k.lookup(listener_fd).expect("listener present");
        let listen = st.listen.as_ref().expect("listener has ListenState");
        (
            listen.backlog,
            st.domain,
            st.ty,
            listen.handshaking.len(),
            listen.ready.len(),
            st.send_buf_cap,
            st.recv_buf_cap,
        )
    };
    // Count in-progress (SynReceived) children + ready children
    // against backlog. Linux separates SYN backlog from accept backlog;
    // we collapse them for v1.
    // PATCH (poetry-harness): counted from the listener's own set of
    // handshaking children, not by scanning every connection.
    if in_flight + ready >= backlog {
        return; // drop — client will perceive as SYN loss
    }

    let child = k.sockets.insert(Socket::new(domain, ty));
    let bind_key = BindKey {
        domain,
        ty,
        local_addr: local.ip(),
        local_port: local.port(),
    };
    // Server child shares the listener's tuple. insert_binding allows
    // multiple fds at one key (REUSEPORT); demux to an accepted child
    // runs by 4-tuple (find_connection) before listener fallback, so
    // this doesn't cross wires.
    k.sockets.insert_binding(bind_key.clone(), child);
    let isn = initial_sequence(k);
    let (now, syn_rto) = (k.now, k.syn_rto);
    let (kernel_rcv_cap, kernel_snd_cap) = (k.recv_buf_cap, k.send_buf_cap);
    // PATCH (poetry-harness): window scaling if the SYN offered it (and
    // this host does it): the SYN-ACK answers with this side's shift.
    let wscale = s.wscale.and(offered_wscale_for(k, rcv_cap.unwrap_or(0)));
    let window = {
        let st = k.sockets.get_mut(child).unwrap();
        st.bound = Some(bind_key);
        st.peer = Some(Addr::Inet(remote));
        // PATCH (poetry-harness): an accepted socket inherits its
        // listener's SO_SNDBUF and SO_RCVBUF, as on Linux.
        st.send_buf_cap = snd_cap;
        st.recv_buf_cap = rcv_cap;
        let mut tcb = new_tcb(
            TcpState::SynReceived,
            remote,
            isn,
            s.seq.wrapping_add(1),
            u32::from(s.window),
            now,
            syn_rto,
        );
        (tcb.rcv_cap, tcb.snd_cap) = (kernel_rcv_cap, kernel_snd_cap);
        if let (Some(ours), Some(theirs)) = (wscale, s.wscale) {
            tcb.syn_wscale = Some(ours);
            tcb.rcv_wscale = ours;
            tcb.snd_wscale = theirs.min(MAX_WSCALE);
        }
        st.tcb = Some(tcb);
        initial_window(st)
    };
    k.sockets.insert_connection(local, remote, child);
    k.lookup_mut(listener_fd)
        .unwrap()
        .listen
        .as_mut()
        .unwrap()
        .handshaking
        .insert(child);
    arm(k, child, now + syn_rto, TimerKind::Retransmit);
    emit(
        k,
        local,
        remote,
        TcpSegment {
            src_port: local.port(),
            dst_port: remote.port(),
            seq: isn,
            ack: s.seq.wrapping_add(1),
            flags: TcpFlags {
                syn: true,
                ack: true,
                ..TcpFlags::default()
            },
            window,
            wscale,
            payload: Bytes::new(),
        },
    );
}

fn push_to_listener(k: &mut Kernel, child: Fd, local: SocketAddr) {
    // The listener shares `local` with the child. Find it.
    let Some(listener_fd) = find_listener(k, local) else {
        return;
    };
    let wakers: Vec<_> = {
        let listen = k
            .lookup_mut(listener_fd)
            .unwrap()
            .listen
            .as_mut()
            .expect("listener");
        listen.ready.push_back(child);
        listen.accept_wakers.drain(..).collect()
    };
    for w in wakers {
        w.wake();
    }
}

fn park_connect(k: &mut Kernel, fd: Fd, cx: &mut Context<'_>) {
    let st = k.lookup_mut(fd).expect("fd present");
    st.connect_waker = Some(cx.waker().clone());
}

fn wake_connect(k: &mut Kernel, fd: Fd) {
    if let Some(w) = k.lookup_mut(fd).unwrap().connect_waker.take() {
        w.wake();
    }
}

/// Decide how to close a TCP socket being dropped by the shim. Returns
/// `true` if the caller should reap the table entry immediately; `false`
/// means "leave the entry alive so the kernel can keep draining queued
/// bytes / FIN / ACKs, reap later via `reap_closed`".
///
/// RST-worthy cases (unread bytes, or dropping with a live write side)
/// get an immediate RST and are reaped here. Clean drops on a
/// still-active connection queue FIN (if not already) and leave the
/// TCB alive through its close states. Non-TCP / listener / already
/// terminal sockets are reaped immediately.
pub(super) fn on_close(k: &mut Kernel, fd: Fd) -> bool {
    enum Action {
        Reap,
        Linger,
        Rst {
            local: SocketAddr,
            remote: SocketAddr,
        },
        CloseListener {
            local: SocketAddr,
        },
    }

    let action = {
        let Some(st) = k.sockets.get(fd) else {
            return true;
        };
        match (st.ty, st.tcb.as_ref(), st.listen.as_ref()) {
            (Type::Stream, None, Some(_)) => {
                // Listener being closed — RST any unaccepted children
                // (both accept-ready and still-handshaking) before
                // reaping the listener itself.
                Action::CloseListener {
                    local: bound_endpoint(st),
                }
            }
            (Type::Stream, Some(tcb), _)
                if !tcb.reset
                    && !tcb.timed_out
                    && tcb.state != TcpState::Closed
                    && tcb.state != TcpState::SynSent
                    && tcb.state != TcpState::SynReceived =>
            {
                // PATCH (poetry-harness): SO_LINGER 0 makes any close
                // abortive, as on Linux.
                if !tcb.recv_buf.is_empty() || st.linger == Some(Duration::ZERO) {
                    // Unread bytes on drop → RST (Linux behavior).
                    Action::Rst {
                        local: bound_endpoint(st),
                        remote: tcb.peer,
                    }
                } else {
                    // Clean drop: let TCP finish closing in the
                    // background. Our helper path below queues FIN if
                    // the app never called shutdown.
                    Action::Linger
                }
            }
            _ => Action::Reap,
        }
    };

    match action {
        Action::Reap => true,
        Action::Rst { local, remote } => {
            // PATCH (poetry-harness): the written bytes the window takes
            // go out first.
            send_before_reset(k, fd);
            let (seq, ack) = {
                let tcb = k.lookup(fd).unwrap().tcb.as_ref().unwrap();
                (tcb.snd_max, tcb.rcv_nxt)
            };
            emit(
                k,
                local,
                remote,
                TcpSegment {
                    src_port: local.port(),
                    dst_port: remote.port(),
                    seq,
                    ack,
                    flags: TcpFlags {
                        rst: true,
                        ack: true,
                        ..TcpFlags::default()
                    },
                    window: 0,
                    wscale: None,
                    payload: Bytes::new(),
                },
            );
            true
        }
        Action::Linger => {
            // Mark the socket as fd-closed and, if the app hasn't
            // shut the write side yet, queue a FIN. The TCB stays in
            // the table so egress / deliver can finish the close
            // handshake. `reap_closed` reaps once TCP reaches a
            // terminal state.
            let st = k.sockets.get_mut(fd).unwrap();
            st.fd_closed = true;
            let tcb = st.tcb.as_mut().unwrap();
            if !tcb.wr_closed {
                let fin_seq = tcb.snd_una.wrapping_add(tcb.send_buf.len() as u32);
                tcb.fin_seq = Some(fin_seq);
                tcb.wr_closed = true;
                tcb.state = match tcb.state {
                    TcpState::Established => TcpState::FinWait1,
                    TcpState::CloseWait => TcpState::LastAck,
                    other => other,
                };
            }
            false
        }
        Action::CloseListener { local } => {
            // Collect every unaccepted child and RST each. Real Linux
            // does this synchronously on listener destroy.
            //
            // Unaccepted = sitting in `listen.ready` (established but
            // not yet handed to the app) OR still handshaking in
            // SynReceived. Accepted children own their own lifecycle
            // via the user's TcpStream.
            // PATCH (poetry-harness): the handshaking children come from
            // the listener's own set instead of a sweep of every socket.
            let _ = local;
            let children: Vec<Fd> = k
                .sockets
                .get(fd)
                .and_then(|s| s.listen.as_ref())
                .map(|l| {
                    l.ready
                        .iter()
                        .chain(l.handshaking.iter())
                        .copied()
                        .collect()
                })
                .unwrap_or_default();
            for child in children {
                let Some(st) = k.sockets.get(child) else {
                    continue;
                };
                let Some(tcb) = st.tcb.as_ref() else {
                    k.sockets.remove(child);
                    continue;
                };
                let child_local = bound_endpoint(st);
                let (seq, ack, peer) = (tcb.snd_nxt, tcb.rcv_nxt, tcb.peer);
                emit(
                    k,
                    child_local,
                    peer,
                    TcpSegment {
                        src_port: child_local.port(),
                        dst_port: peer.port(),
                        seq,
                        ack,
                        flags: TcpFlags {
                            rst: true,
                            ack: true,
                            ..TcpFlags::default()
                        },
                        window: 0,
                        wscale: None,
                        payload: Bytes::new(),
                    },
                );
                k.sockets.remove(child);
            }
            true
        }
    }
}

/// Reap any sockets the shim has dropped that have now reached a
/// terminal TCP state. Called at the end of each `egress` pass.
pub(super) fn reap_closed(k: &mut Kernel, visited: &[Fd]) {
    // PATCH (poetry-harness): only the sockets this egress visited (the
    // dirty ones): a socket reaches a terminal state only through an
    // event that marks it dirty.
    for &fd in visited {
        let reap = k.sockets.get(fd).is_some_and(|s| {
            s.fd_closed
                && s.tcb
                    .as_ref()
                    .map(|t| t.state == TcpState::Closed || t.reset)
                    .unwrap_or(true)
        });
        if reap {
            k.sockets.remove(fd);
        }
    }
}

/// Mark a connection as aborted. Buffers are cleared (post-RST reads
/// should see the error, not stale data; PATCH (poetry-harness): but a
/// RST from the peer leaves received bytes readable, see
/// [`AbortReason::ResetByPeer`]), state moves to `Closed`,
/// `reset` is set so subsequent ops return `ConnectionReset`, and all
/// parked tasks wake so they can observe the new state.
fn abort_connection(k: &mut Kernel, fd: Fd) {
    abort_with(k, fd, AbortReason::Reset);
}

/// Abort via retransmit exhaustion. Same flush/wake as
/// [`abort_connection`] but surfaces as `TimedOut` rather than
/// `ConnectionReset`, matching Linux's `ETIMEDOUT` from
/// `tcp_retries2`. No RST is emitted — exhaustion means packets
/// weren't reaching the peer, so another RST would fare no better.
fn abort_timed_out(k: &mut Kernel, fd: Fd) {
    abort_with(k, fd, AbortReason::TimedOut);
}

enum AbortReason {
    Reset,
    /// PATCH (poetry-harness): a RST from the peer. As on Linux, the
    /// bytes already received stay readable, and reads report the reset
    /// only once they are drained (`tcp_recvmsg` reads the receive queue
    /// before it looks at `sk_err`; measured on Linux 6.18: a peer that
    /// writes 300 bytes and closes with `SO_LINGER` 0 is read as 300
    /// bytes, then `ECONNRESET`). Upstream discarded them, so a client
    /// lost the end of a poem whose RST came right behind it.
    ResetByPeer,
    TimedOut,
}

/// Returns the post-abort error a syscall should surface, if any.
/// `reset` wins over `timed_out` when both somehow land — RST is the
/// stronger signal — but in practice only one ever fires per TCB.
fn abort_error(tcb: &Tcb) -> Option<Error> {
    if tcb.reset {
        Some(Error::from(ErrorKind::ConnectionReset))
    } else if tcb.timed_out {
        Some(Error::from(ErrorKind::TimedOut))
    } else {
        None
    }
}

fn abort_with(k: &mut Kernel, fd: Fd, reason: AbortReason) {
    let st = k.lookup_mut(fd).unwrap();
    let mut half_open = false;
    if let Some(tcb) = st.tcb.as_mut() {
        half_open = tcb.state == TcpState::SynReceived;
        tcb.state = TcpState::Closed;
        match reason {
            AbortReason::Reset | AbortReason::ResetByPeer => tcb.reset = true,
            AbortReason::TimedOut => tcb.timed_out = true,
        }
        tcb.send_buf.clear();
        if !matches!(reason, AbortReason::ResetByPeer) {
            tcb.recv_buf.clear();
        }
        // PATCH (poetry-harness): a dead connection has no timer.
        tcb.timer = None;
    }
    if let Some(w) = st.connect_waker.take() {
        w.wake();
    }
    st.wake_read();
    st.wake_write();
    k.dirty.insert(fd);
    // PATCH (poetry-harness): a half-open child (reset, or its SYN-ACK
    // never answered) belongs to no application: it leaves the
    // listener's backlog and the table (upstream kept it for good).
    if half_open {
        forget_handshaking(k, fd);
        k.sockets.remove(fd);
    }
}

/// Find a listening socket bound to `local` (or the matching wildcard).
fn find_listener(k: &Kernel, local: SocketAddr) -> Option<Fd> {
    let domain = match local {
        SocketAddr::V4(_) => Domain::Inet,
        SocketAddr::V6(_) => Domain::Inet6,
    };
    let exact = BindKey {
        domain,
        ty: Type::Stream,
        local_addr: local.ip(),
        local_port: local.port(),
    };
    let wildcard_ip = match local {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let wildcard = BindKey {
        domain,
        ty: Type::Stream,
        local_addr: wildcard_ip,
        local_port: local.port(),
    };
    // PATCH (poetry-harness): an index of listeners, not a walk over every
    // socket sharing the binding (each accepted child does).
    k.sockets
        .find_listener(&exact)
        .or_else(|| k.sockets.find_listener(&wildcard))
}

/// PATCH (poetry-harness): take `fd` out of its listener's set of
/// handshaking children (it completed, failed, or is being closed).
pub(super) fn forget_handshaking(k: &mut Kernel, fd: Fd) {
    let Some(st) = k.sockets.get(fd) else {
        return;
    };
    if st.tcb.is_none() || st.listen.is_some() {
        return;
    }
    let Some(bind) = st.bound.as_ref() else {
        return;
    };
    let local = SocketAddr::new(bind.local_addr, bind.local_port);
    if let Some(l) = find_listener(k, local) {
        if let Some(listen) = k.sockets.get_mut(l).and_then(|s| s.listen.as_mut()) {
            listen.handshaking.remove(&fd);
        }
    }
}

fn emit(k: &mut Kernel, src: SocketAddr, dst: SocketAddr, seg: TcpSegment) {
    k.outbound.push_back(Packet {
        src: src.ip(),
        dst: dst.ip(),
        ttl: 64,
        payload: Transport::Tcp(seg),
    });
}

fn local_endpoint(k: &Kernel, fd: Fd) -> SocketAddr {
    let bind = k
        .lookup(fd)
        .unwrap()
        .bound
        .as_ref()
        .expect("fd bound by now");
    let ip = if bind.local_addr.is_unspecified() {
        // Pick a concrete source IP. For loopback peers the shim-side
        // bind uses 127.0.0.1/::1 already; wildcard binds only arise
        // from `0.0.0.0:0`. Match against the TCB peer.
        let peer = k.lookup(fd).unwrap().tcb.as_ref().map(|t| t.peer.ip());
        match peer {
            Some(p) if p.is_loopback() => match p {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            },
            Some(p) => k
                .addresses
                .iter()
                .copied()
                .find(|a| a.is_ipv4() == p.is_ipv4())
                .unwrap_or(bind.local_addr),
            None => bind.local_addr,
        }
    } else {
        bind.local_addr
    };
    SocketAddr::new(ip, bind.local_port)
}

fn auto_bind(k: &mut Kernel, fd: Fd, domain: Domain, dst: IpAddr) -> Result<()> {
    let local_ip = if dst.is_loopback() {
        match dst {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        }
    } else {
        k.addresses
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == dst.is_ipv4())
            .ok_or_else(|| Error::from(ErrorKind::AddrNotAvailable))?
    };
    let port = k
        .sockets
        .allocate_port(domain, Type::Stream)
        .ok_or_else(|| Error::from(ErrorKind::AddrInUse))?;
    let key = BindKey {
        domain,
        ty: Type::Stream,
        local_addr: local_ip,
        local_port: port,
    };
    k.sockets.insert_binding(key.clone(), fd);
    k.sockets.get_mut(fd).expect("fd present").bound = Some(key);
    Ok(())
}

fn initial_sequence(k: &mut Kernel) -> u32 {
    let v = k.tcp_isn;
    // Deterministic bump — real kernels randomize, but we want
    // reproducibility. Large step to keep successive connections'
    // sequence spaces from colliding visually.
    k.tcp_isn = k.tcp_isn.wrapping_add(0x1_0000);
    v
}

/// Copy bytes into the socket's `send_buf`, up to the remaining
/// capacity. Returns `Pending` (parking write-side waker) when the buffer
/// is already full. Segmentation and the actual wire emit happen later,
/// in `segment_all` during `egress`.
pub(super) fn poll_send(
    k: &mut Kernel,
    fd: Fd,
    cx: &mut Context<'_>,
    buf: SendBuf<'_>,
) -> Poll<Result<usize>> {
    let send_cap = match k.lookup(fd) {
        // PATCH (poetry-harness): SO_SNDBUF, else the connection's grown
        // send buffer.
        Ok(st) => st
            .send_buf_cap
            .or(st.tcb.as_ref().map(|t| t.snd_cap))
            .unwrap_or(k.send_buf_cap),
        Err(e) => return Poll::Ready(Err(e)),
    };
    let st = match k.lookup_mut(fd) {
        Ok(st) => st,
        Err(e) => return Poll::Ready(Err(e)),
    };
    let Some(tcb) = st.tcb.as_ref() else {
        return Poll::Ready(Err(Error::from(ErrorKind::NotConnected)));
    };
    if let Some(e) = abort_error(tcb) {
        return Poll::Ready(Err(e));
    }
    if tcb.wr_closed {
        return Poll::Ready(Err(Error::from(ErrorKind::BrokenPipe)));
    }
    // Accept writes while the connection is open for sending. CloseWait
    // means the peer finished but we can keep sending until the app
    // closes too.
    if !matches!(tcb.state, TcpState::Established | TcpState::CloseWait) {
        return Poll::Ready(Err(Error::from(ErrorKind::NotConnected)));
    }
    let space = send_cap.saturating_sub(tcb.send_buf.len());
    if space == 0 {
        st.register_write_waker(cx.waker());
        return Poll::Pending;
    }
    let n = buf.len().min(space);
    // PATCH (poetry-harness): shared bytes are queued as a slice of
    // themselves, not copied.
    let bytes = match buf {
        SendBuf::Copy(b) => Bytes::copy_from_slice(&b[..n]),
        SendBuf::Share(b) => b.slice(..n),
    };
    st.tcb.as_mut().unwrap().send_buf.push(bytes);
    // PATCH (poetry-harness): egress visits dirty sockets only.
    k.dirty.insert(fd);
    Poll::Ready(Ok(n))
}

/// Close the write side. Queues a FIN to ride out after any buffered
/// data drains; state advances on FIN-ACK. Idempotent on an already-
/// shut side.
pub(super) fn poll_shutdown_write(
    k: &mut Kernel,
    fd: Fd,
    _cx: &mut Context<'_>,
) -> Poll<Result<()>> {
    let st = match k.lookup_mut(fd) {
        Ok(st) => st,
        Err(e) => return Poll::Ready(Err(e)),
    };
    let Some(tcb) = st.tcb.as_mut() else {
        return Poll::Ready(Err(Error::from(ErrorKind::NotConnected)));
    };
    if let Some(e) = abort_error(tcb) {
        return Poll::Ready(Err(e));
    }
    if tcb.wr_closed {
        return Poll::Ready(Ok(()));
    }
    // FIN rides out after any queued bytes — its seq sits right past
    // the last byte the app accepted into send_buf.
    let fin_seq = tcb.snd_una.wrapping_add(tcb.send_buf.len() as u32);
    tcb.fin_seq = Some(fin_seq);
    tcb.wr_closed = true;
    tcb.state = match tcb.state {
        TcpState::Established => TcpState::FinWait1,
        TcpState::CloseWait => TcpState::LastAck,
        other => other,
    };
    // PATCH (poetry-harness): egress visits dirty sockets only.
    k.dirty.insert(fd);
    Poll::Ready(Ok(()))
}

/// Drain bytes from the socket's `recv_buf` into `buf`. Returns
/// `Pending` (parking read-side waker) when the buffer is empty. An ACK
/// is emitted afterward if the drain opened enough window to be worth
/// advertising — avoids silly-window syndrome on tiny reads.
///
/// PATCH (poetry-harness): into a `ReadBuf`, whose unfilled part is
/// written, never zeroed first: the shim's `poll_read` used to zero the
/// whole unfilled buffer on every read (`initialize_unfilled`), a large
/// share of the simulator's CPU on megabyte poems.
pub(super) fn poll_recv(
    k: &mut Kernel,
    fd: Fd,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<Result<usize>> {
    let recv_cap = match k.lookup(fd) {
        Ok(_) => recv_cap_of(k, fd),
        Err(e) => return Poll::Ready(Err(e)),
    };
    let mss = mss_for(k, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let (now, rcv_max) = (k.now, k.recv_buf_max);
    let (n, should_update_window, local, remote) = {
        let st = match k.lookup_mut(fd) {
            Ok(st) => st,
            Err(e) => return Poll::Ready(Err(e)),
        };
        // Inspect without holding a borrow across the mutable ops.
        let (empty, peer_fin, abort_err, readable_state, peer) = match st.tcb.as_ref() {
            None => return Poll::Ready(Err(Error::from(ErrorKind::NotConnected))),
            Some(t) => (
                t.recv_buf.is_empty(),
                t.peer_fin,
                abort_error(t),
                matches!(
                    t.state,
                    TcpState::Established
                        | TcpState::FinWait1
                        | TcpState::FinWait2
                        | TcpState::CloseWait
                ),
                t.peer,
            ),
        };
        // PATCH (poetry-harness): the error once the bytes received
        // before it are read (only a RST from the peer keeps any).
        let aborted = abort_err.is_some();
        if let Some(e) = abort_err.filter(|_| empty) {
            return Poll::Ready(Err(e));
        }
        if empty {
            // Clean EOF — peer sent FIN and we've drained everything.
            // `Ready(Ok(0))` is the standard EOF signal.
            if peer_fin {
                return Poll::Ready(Ok(0));
            }
            if !readable_state {
                return Poll::Ready(Err(Error::from(ErrorKind::NotConnected)));
            }
            st.register_read_waker(cx.waker());
            return Poll::Pending;
        }
        let local = bound_endpoint(st);
        let tcb = st.tcb.as_mut().unwrap();
        let n = tcb.recv_buf.len().min(buf.remaining());
        // PATCH (poetry-harness): read in place, then `advance` (as the
        // send side).
        tcb.recv_buf.take(n, |bytes| buf.put_slice(bytes));
        // Window-update trigger.
        // PATCH (poetry-harness): receiver-side SWS avoidance as in RFC
        // 1122: advertise once the window has grown by an MSS or half
        // the buffer since the last advertisement. Upstream required a
        // single read to free half the buffer, so a reader that fell
        // behind and then read 4 KiB at a time stalled for good.
        // PATCH (poetry-harness): receive autotuning may grow the buffer.
        let mut recv_cap = recv_cap;
        if st.recv_buf_cap.is_none() {
            let tcb = st.tcb.as_mut().unwrap();
            autotune_recv(tcb, n, now, rcv_max);
            recv_cap = tcb.rcv_cap;
        }
        let tcb = st.tcb.as_mut().unwrap();
        let window = scaled_window(recv_cap, tcb.recv_buf.len(), tcb.rcv_wscale);
        let opened = window.saturating_sub(tcb.last_adv_wnd) as usize;
        let should_update =
            !aborted && !tcb.peer_fin && opened > 0 && opened >= mss.min(recv_cap / 2);
        (n, should_update, local, peer)
    };

    if should_update_window {
        let recv_cap = recv_cap_of(k, fd);
        emit_ack(k, fd, local, remote, recv_cap);
    }

    Poll::Ready(Ok(n))
}

/// Like [`poll_read`] but leaves `recv_buf` intact. No window update
/// is emitted — we haven't actually freed any buffer space.
pub(super) fn poll_peek(
    k: &mut Kernel,
    fd: Fd,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<Result<usize>> {
    let st = match k.lookup_mut(fd) {
        Ok(st) => st,
        Err(e) => return Poll::Ready(Err(e)),
    };
    let Some(tcb) = st.tcb.as_ref() else {
        return Poll::Ready(Err(Error::from(ErrorKind::NotConnected)));
    };
    // PATCH (poetry-harness): as `poll_recv`, bytes a peer's RST left
    // readable come before the error.
    if let Some(e) = abort_error(tcb).filter(|_| tcb.recv_buf.is_empty()) {
        return Poll::Ready(Err(e));
    }
    if tcb.recv_buf.is_empty() {
        if tcb.peer_fin {
            return Poll::Ready(Ok(0));
        }
        if !matches!(
            tcb.state,
            TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2 | TcpState::CloseWait
        ) {
            return Poll::Ready(Err(Error::from(ErrorKind::NotConnected)));
        }
        st.register_read_waker(cx.waker());
        return Poll::Pending;
    }
    let n = tcb.recv_buf.len().min(buf.len());
    tcb.recv_buf.peek(&mut buf[..n]);
    Poll::Ready(Ok(n))
}

/// PATCH (poetry-harness): fire every TCP timer due at the kernel's `now`
/// (replaces upstream's `check_retx`, which counted egress passes). A
/// retransmission timeout resends the SYN or SYN-ACK, or rewinds
/// `snd_nxt = snd_una` so the next `segment_all` pass re-emits from the
/// oldest unacked byte (go-back-N — see the module-level doc for why we
/// don't do SACK), and doubles the RTO; after `syn_retries`,
/// `synack_retries` or `retx_max` resends the connection fails with
/// `TimedOut`. A persist timeout sends a window probe.
pub(super) fn fire_timers(k: &mut Kernel) {
    let now = k.now;
    while let Some(&(deadline, fd)) = k.timers.first() {
        if deadline > now {
            break;
        }
        k.timers.pop_first();
        // Stale entries (the timer was re-armed or stopped since) skip.
        let Some(kind) = armed(k, deadline, fd) else {
            continue;
        };
        k.sockets.get_mut(fd).unwrap().tcb.as_mut().unwrap().timer = None;
        on_timer(k, fd, kind);
    }
}

/// PATCH (poetry-harness): the kind of `fd`'s timer if it is armed for
/// `deadline`; `None` for an entry of `Kernel::timers` gone stale (the
/// timer was stopped or re-armed since, or the socket is gone).
pub(super) fn armed(k: &Kernel, deadline: Duration, fd: Fd) -> Option<TimerKind> {
    match k.sockets.get(fd)?.tcb.as_ref()?.timer {
        Some((d, kind)) if d == deadline => Some(kind),
        _ => None,
    }
}

/// PATCH (poetry-harness): a TCB's timer fired at `k.now`.
fn on_timer(k: &mut Kernel, fd: Fd, kind: TimerKind) {
    let now = k.now;
    let rto_max = k.rto_max;
    let (syn_retries, synack_retries, retx_max) = (k.syn_retries, k.synack_retries, k.retx_max);
    let tcb = k.sockets.get_mut(fd).unwrap().tcb.as_mut().unwrap();
    match (tcb.state, kind) {
        (TcpState::Closed, _) => {}
        (TcpState::SynSent | TcpState::SynReceived, _) => {
            let max = if tcb.state == TcpState::SynSent {
                syn_retries
            } else {
                synack_retries
            };
            if tcb.retx_attempts >= max {
                abort_timed_out(k, fd);
                return;
            }
            tcb.retx_attempts += 1;
            tcb.rto = (tcb.rto * 2).min(rto_max);
            let deadline = now + tcb.rto;
            // The resent SYN or SYN-ACK is timed (`emit_handshake`).
            emit_handshake(k, fd);
            arm(k, fd, deadline, TimerKind::Retransmit);
        }
        (_, TimerKind::Retransmit) => {
            if tcb.snd_una == tcb.snd_max {
                // Nothing outstanding any more: maybe a persist timer.
                update_timer(k, fd, false);
                return;
            }
            if tcb.retx_attempts >= retx_max {
                abort_timed_out(k, fd);
                return;
            }
            tcb.retx_attempts += 1;
            tcb.rto = (tcb.rto * 2).min(rto_max);
            tcb.rtt_probe = None;
            // Rewind to oldest unacked byte. `segment_all` below
            // will re-chop from snd_una; any in-flight tail gets
            // re-sent too (go-back-N) — wasteful but correct
            // without an out-of-order receive queue on the peer
            // side.
            tcb.snd_nxt = tcb.snd_una;
            let deadline = now + tcb.rto;
            arm(k, fd, deadline, TimerKind::Retransmit);
            k.dirty.insert(fd);
        }
        (_, TimerKind::Persist) => {
            let window_open = tcb.snd_wnd > 0;
            // The probe interval backs off on its own count, leaving the
            // RTO (the connection's estimate) alone.
            tcb.retx_attempts = tcb.retx_attempts.saturating_add(1);
            let backoff = 1u32 << tcb.retx_attempts.min(16);
            let deadline = now + (tcb.rto * backoff).min(rto_max);
            if window_open || tcb.snd_una != tcb.snd_max {
                update_timer(k, fd, false);
                k.dirty.insert(fd);
                return;
            }
            // Probe with the byte before snd_una: already acknowledged,
            // so the peer drops it and answers with an ACK carrying its
            // current window.
            let st = k.sockets.get(fd).unwrap();
            let tcb = st.tcb.as_ref().unwrap();
            let local = bound_endpoint(st);
            let remote = tcb.peer;
            let seg = TcpSegment {
                src_port: local.port(),
                dst_port: remote.port(),
                seq: tcb.snd_una.wrapping_sub(1),
                ack: tcb.rcv_nxt,
                flags: TcpFlags {
                    ack: true,
                    ..TcpFlags::default()
                },
                window: wire_window(tcb.last_adv_wnd as usize, tcb.rcv_wscale),
                wscale: None,
                payload: Bytes::new(),
            };
            emit(k, local, remote, seg);
            arm(k, fd, deadline, TimerKind::Persist);
        }
    }
}

/// PATCH (poetry-harness): arm `fd`'s timer (replacing any armed one).
fn arm(k: &mut Kernel, fd: Fd, deadline: Duration, kind: TimerKind) {
    let tcb = k.sockets.get_mut(fd).unwrap().tcb.as_mut().unwrap();
    tcb.timer = Some((deadline, kind));
    k.timers.insert((deadline, fd));
}

/// PATCH (poetry-harness): after an ACK or a send on an established (or
/// closing) connection, decide the timer: the retransmission timer while
/// anything is outstanding (restarted when an ACK made progress, RFC 6298
/// 5.3), the persist timer while unsent bytes wait on a zero window, else
/// none.
fn update_timer(k: &mut Kernel, fd: Fd, restart: bool) {
    let now = k.now;
    let Some(tcb) = k.sockets.get_mut(fd).and_then(|s| s.tcb.as_mut()) else {
        return;
    };
    if matches!(
        tcb.state,
        TcpState::SynSent | TcpState::SynReceived | TcpState::Closed
    ) {
        if tcb.state == TcpState::Closed {
            tcb.timer = None;
        }
        return;
    }
    let outstanding = tcb.snd_una != tcb.snd_max;
    let in_flight = tcb.snd_nxt.wrapping_sub(tcb.snd_una) as usize;
    let unsent = tcb.send_buf.len().saturating_sub(in_flight);
    let fin_pending = tcb.fin_seq.is_some_and(|fs| tcb.snd_nxt == fs);
    let kind = if outstanding {
        TimerKind::Retransmit
    } else if (unsent > 0 || fin_pending) && tcb.snd_wnd == 0 {
        TimerKind::Persist
    } else {
        tcb.timer = None;
        return;
    };
    match tcb.timer {
        Some((_, armed)) if armed == kind && !(restart && kind == TimerKind::Retransmit) => {}
        _ => {
            let deadline = now + tcb.rto;
            arm(k, fd, deadline, kind);
        }
    }
}

/// PATCH (poetry-harness): a fresh TCB, its SYN or SYN-ACK (sequence
/// number `isn`) just sent at `now` and timed for the first RTT sample.
fn new_tcb(
    state: TcpState,
    peer: SocketAddr,
    isn: u32,
    rcv_nxt: u32,
    snd_wnd: u32,
    now: Duration,
    syn_rto: Duration,
) -> Tcb {
    Tcb {
        state,
        peer,
        snd_nxt: isn.wrapping_add(1),
        snd_una: isn.wrapping_add(1),
        snd_wnd,
        rcv_nxt,
        send_buf: SendQueue::default(),
        recv_buf: RecvQueue::default(),
        wr_closed: false,
        peer_fin: false,
        fin_seq: None,
        reset: false,
        timed_out: false,
        retx_attempts: 0,
        snd_max: isn.wrapping_add(1),
        rto: syn_rto,
        srtt: None,
        rttvar: Duration::ZERO,
        rtt_probe: Some((isn.wrapping_add(1), now)),
        timer: None,
        last_adv_wnd: 0,
        snd_wscale: 0,
        rcv_wscale: 0,
        syn_wscale: None,
        rcv_cap: DEFAULT_RECV_BUF_CAP,
        snd_cap: DEFAULT_SEND_BUF_CAP,
        rcv_space: None,
    }
}

/// PATCH (poetry-harness): the handshake completed at `now`: stop its
/// timer and take its RTT sample from the last SYN (or SYN-ACK) sent,
/// even if it was a resend. Linux (TCP timestamps, on by default) does:
/// the answer echoes the timestamp of the transmission it answers, so
/// Karn's ambiguity does not arise. Skipping the sample, as plain RFC 6298
/// does, left such a connection with no RTT estimate and its backed-off
/// RTO (2 s after one resent SYN) for good: every later loss doubled it
/// again and progress never brought it back, so under 10% loss a
/// 20 KB poem could fall silent for 30 s and more (32 s after four
/// timeouts: 2 + 4 + 8 + 16), which a real Linux stack does not do.
/// Links are tens of milliseconds and the first resend waits 1 s, so the
/// answer is to the last transmission, as the sample assumes.
fn handshake_done(tcb: &mut Tcb, now: Duration, rto_min: Duration, rto_max: Duration) {
    tcb.timer = None;
    if let Some((_, sent)) = tcb.rtt_probe.take() {
        rtt_sample(tcb, now - sent, rto_min, rto_max);
    }
    tcb.retx_attempts = 0;
}

/// PATCH (poetry-harness): RFC 6298 section 2, with Linux's floor: the RTO
/// is SRTT plus the larger of 4 RTTVAR and `rto_min`.
fn rtt_sample(tcb: &mut Tcb, r: Duration, rto_min: Duration, rto_max: Duration) {
    match tcb.srtt {
        None => {
            tcb.srtt = Some(r);
            tcb.rttvar = r / 2;
        }
        Some(srtt) => {
            let err = srtt.abs_diff(r);
            tcb.rttvar = (tcb.rttvar * 3 + err) / 4;
            tcb.srtt = Some((srtt * 7 + r) / 8);
        }
    }
    let srtt = tcb.srtt.unwrap();
    tcb.rto = rto_of(srtt, tcb.rttvar, rto_min, rto_max);
}

/// PATCH (poetry-harness): the RTO from the RTT estimate.
fn rto_of(srtt: Duration, rttvar: Duration, rto_min: Duration, rto_max: Duration) -> Duration {
    (srtt + (rttvar * 4).max(rto_min)).min(rto_max)
}

/// Bytes written and not yet sent (past `snd_nxt`).
fn has_unsent(t: &Tcb) -> bool {
    t.send_buf.len() > (t.snd_nxt.wrapping_sub(t.snd_una)) as usize
}

/// PATCH (poetry-harness): before a reset the application causes, what
/// the peer's window takes of the bytes written goes out, as Linux sends
/// them in the `write` itself (`tcp_push`) before a later close can reset
/// the connection; only the rest is discarded. Here egress runs after the
/// task yields, so a write and an abortive close in one step would
/// otherwise lose bytes that Linux had sent.
fn send_before_reset(k: &mut Kernel, fd: Fd) {
    let unsent = k
        .sockets
        .get(fd)
        .and_then(|st| st.tcb.as_ref())
        .is_some_and(|t| {
            matches!(t.state, TcpState::Established | TcpState::CloseWait) && has_unsent(t)
        });
    if unsent {
        segment_one(k, fd);
    }
}

/// PATCH (poetry-harness): the application aborts the connection
/// (`TcpStream::abort`, or `SO_LINGER` 0 and close): a RST to the peer,
/// unsent and unread data discarded.
pub(super) fn abort_by_app(k: &mut Kernel, fd: Fd) {
    let Some(st) = k.sockets.get(fd) else {
        return;
    };
    let Some(tcb) = st.tcb.as_ref() else {
        return;
    };
    if tcb.reset || tcb.timed_out || tcb.state == TcpState::Closed {
        return;
    }
    send_before_reset(k, fd);
    let Some(st) = k.sockets.get(fd) else {
        return;
    };
    let Some(tcb) = st.tcb.as_ref() else {
        return;
    };
    if tcb.state != TcpState::SynSent {
        let local = bound_endpoint(st);
        let remote = tcb.peer;
        let seg = TcpSegment {
            src_port: local.port(),
            dst_port: remote.port(),
            seq: tcb.snd_max,
            ack: tcb.rcv_nxt,
            flags: TcpFlags {
                rst: true,
                ack: true,
                ..TcpFlags::default()
            },
            window: 0,
            wscale: None,
            payload: Bytes::new(),
        };
        emit(k, local, remote, seg);
    }
    abort_connection(k, fd);
}

/// PATCH (poetry-harness): a pure ACK of everything received, with the
/// current window. Its sequence number is `snd_max`, so the peer never
/// takes it for a window probe.
fn emit_ack(k: &mut Kernel, fd: Fd, local: SocketAddr, remote: SocketAddr, recv_cap: usize) {
    let (seq, ack, window) = {
        let tcb = k.lookup_mut(fd).unwrap().tcb.as_mut().unwrap();
        let window = advertise(tcb, recv_cap);
        (tcb.snd_max, tcb.rcv_nxt, window)
    };
    emit(
        k,
        local,
        remote,
        TcpSegment {
            src_port: local.port(),
            dst_port: remote.port(),
            seq,
            ack,
            flags: TcpFlags {
                ack: true,
                ..TcpFlags::default()
            },
            window,
            wscale: None,
            payload: Bytes::new(),
        },
    );
}

/// PATCH (poetry-harness): the socket's receive buffer cap (SO_RCVBUF or
/// the kernel's).
fn recv_cap_of(k: &Kernel, fd: Fd) -> usize {
    let st = k.sockets.get(fd);
    st.and_then(|s| s.recv_buf_cap)
        .or_else(|| st.and_then(|s| s.tcb.as_ref()).map(|t| t.rcv_cap))
        .unwrap_or(k.recv_buf_cap)
}

/// PATCH (poetry-harness): the window a SYN or SYN-ACK advertises.
/// Never scaled (RFC 7323 section 2.2), so at most 65,535 bytes.
fn initial_window(st: &mut Socket) -> u16 {
    let tcb = st.tcb.as_mut().expect("a handshaking socket has a TCB");
    let cap = st.recv_buf_cap.unwrap_or(tcb.rcv_cap);
    let window = wire_window(cap, 0);
    tcb.last_adv_wnd = u32::from(window);
    window
}

/// PATCH (poetry-harness): sequence-space comparisons (RFC 793, mod 2^32).
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn seq_le(a: u32, b: u32) -> bool {
    a == b || seq_lt(a, b)
}

/// Re-emit the SYN (client, `SynSent`) or SYN-ACK (server,
/// `SynReceived`) for a handshake that's been stuck. Reuses
/// `snd_una - 1` as the seq — matches the ISN used at initial emit,
/// since `snd_una` was set to `isn + 1` there.
fn emit_handshake(k: &mut Kernel, fd: Fd) {
    let st = k.lookup(fd).expect("retx candidate");
    let tcb = st.tcb.as_ref().expect("handshake state has tcb");
    let local = bound_endpoint(st);
    let remote = tcb.peer;
    let seq = tcb.snd_una.wrapping_sub(1);
    let (ack_flag, ack) = match tcb.state {
        TcpState::SynSent => (false, 0),
        TcpState::SynReceived => (true, tcb.rcv_nxt),
        _ => unreachable!("emit_handshake only called for SynSent/SynReceived"),
    };
    let window = wire_window(tcb.last_adv_wnd as usize, 0);
    let wscale = tcb.syn_wscale;
    emit(
        k,
        local,
        remote,
        TcpSegment {
            src_port: local.port(),
            dst_port: remote.port(),
            seq,
            ack,
            flags: TcpFlags {
                syn: true,
                ack: ack_flag,
                ..TcpFlags::default()
            },
            window,
            wscale,
            payload: Bytes::new(),
        },
    );
    // PATCH (poetry-harness): time this transmission, as a timestamp
    // would (see `handshake_done`).
    let now = k.now;
    if let Some(tcb) = k.lookup_mut(fd).ok().and_then(|s| s.tcb.as_mut()) {
        tcb.rtt_probe = Some((tcb.snd_una, now));
    }
}

/// Sweep all TCP sockets with transmittable bytes or a pending FIN
/// and chop them into MSS-sized segments bounded by the peer's
/// advertised window. Invoked by `egress` before the outbound drain,
/// so newly-segmented packets ride the same pump that handles UDP and
/// handshake traffic.
pub(super) fn segment_all(k: &mut Kernel, visited: &mut Vec<Fd>) {
    // PATCH (poetry-harness): the dirty sockets only, not every socket
    // (listed in the kernel's spare list, kept with its capacity).
    let mut candidates = std::mem::take(&mut k.candidates);
    candidates.extend(k.dirty.drain(..));
    for &fd in &candidates {
        let transmittable = k.sockets.get(fd).is_some_and(|s| {
            s.tcb
                .as_ref()
                .map(|t| {
                    let transmittable = matches!(
                        t.state,
                        TcpState::Established
                            | TcpState::CloseWait
                            | TcpState::FinWait1
                            | TcpState::Closing
                            | TcpState::LastAck
                    );
                    let has_data = has_unsent(t);
                    let fin_pending = t.fin_seq.map(|fs| t.snd_nxt == fs).unwrap_or(false);
                    transmittable && (has_data || fin_pending)
                })
                .unwrap_or(false)
        });
        if transmittable {
            segment_one(k, fd);
        }
    }
    visited.append(&mut candidates);
    k.candidates = candidates;
}

fn segment_one(k: &mut Kernel, fd: Fd) {
    let local = {
        let st = k.lookup(fd).unwrap();
        bound_endpoint(st)
    };
    // PATCH (poetry-harness): up to a segmentation offload's worth of
    // bytes per packet (`KernelConfig::segment_offload`).
    let mss = mss_for(k, local.ip()).max(offload_for(k, local.ip()));
    let recv_cap = recv_cap_of(k, fd);
    let now = k.now;

    loop {
        let (seq, payload, is_fin) = {
            let tcb = k.lookup_mut(fd).unwrap().tcb.as_mut().unwrap();
            let in_flight = tcb.snd_nxt.wrapping_sub(tcb.snd_una) as usize;
            let unsent = tcb.send_buf.len().saturating_sub(in_flight);
            let wnd_remaining = (tcb.snd_wnd as usize).saturating_sub(in_flight);
            let fin_pending = tcb.fin_seq.map(|fs| tcb.snd_nxt == fs).unwrap_or(false);

            if unsent > 0 && wnd_remaining > 0 {
                let n = unsent.min(mss).min(wnd_remaining);
                let start = in_flight;
                let end = start + n;
                let payload = tcb.send_buf.slice(start, end);
                let seq = tcb.snd_nxt;
                tcb.snd_nxt = tcb.snd_nxt.wrapping_add(n as u32);
                (seq, payload, false)
            } else if fin_pending && wnd_remaining > 0 {
                // Emit the FIN. It occupies one sequence number but
                // carries no payload.
                let seq = tcb.snd_nxt;
                tcb.snd_nxt = tcb.snd_nxt.wrapping_add(1);
                (seq, Bytes::new(), true)
            } else {
                break;
            }
        };
        let (remote, rcv_nxt, window) = {
            let tcb = k.lookup_mut(fd).unwrap().tcb.as_mut().unwrap();
            // PATCH (poetry-harness): new data (past `snd_max`, not a
            // resend) is timed for an RTT sample if nothing else is.
            if seq_lt(tcb.snd_max, tcb.snd_nxt) {
                if seq == tcb.snd_max && tcb.rtt_probe.is_none() {
                    tcb.rtt_probe = Some((tcb.snd_nxt, now));
                }
                tcb.snd_max = tcb.snd_nxt;
            }
            let window = advertise(tcb, recv_cap);
            (tcb.peer, tcb.rcv_nxt, window)
        };
        emit(
            k,
            local,
            remote,
            TcpSegment {
                src_port: local.port(),
                dst_port: remote.port(),
                seq,
                ack: rcv_nxt,
                flags: TcpFlags {
                    ack: true,
                    psh: !is_fin && !payload.is_empty(),
                    fin: is_fin,
                    ..TcpFlags::default()
                },
                window,
                wscale: None,
                payload,
            },
        );
    }
    // PATCH (poetry-harness): start the retransmission timer for what was
    // just sent (or the persist timer if the window is shut).
    update_timer(k, fd, false);
}

/// Maximum TCP payload for a segment leaving `src_ip`. Mirrors the UDP
/// MTU math: pick the right MTU (loopback vs. external), subtract IP +
/// TCP headers.
fn mss_for(k: &Kernel, src_ip: IpAddr) -> usize {
    let mtu = if src_ip.is_loopback() {
        k.loopback_mtu
    } else {
        k.mtu
    };
    mtu.saturating_sub(headers(src_ip)) as usize
}

/// IP and TCP header bytes of a packet from `src_ip`.
fn headers(src_ip: IpAddr) -> u32 {
    let ip_hdr = match src_ip {
        IpAddr::V4(_) => packet::IPV4_HEADER_SIZE as u32,
        IpAddr::V6(_) => packet::IPV6_HEADER_SIZE as u32,
    };
    ip_hdr + packet::TCP_HEADER_SIZE as u32
}

/// PATCH (poetry-harness): the largest TCP payload of one packet with
/// segmentation offload (`KernelConfig::segment_offload`), headers taken
/// off as in [`mss_for`]; zero when it is off.
fn offload_for(k: &Kernel, src_ip: IpAddr) -> usize {
    k.segment_offload.saturating_sub(headers(src_ip)) as usize
}

/// Pull the local endpoint for an established socket — wildcard binds
/// never reach here (the handshake path concretizes the source IP
/// before inserting into the TCB).
fn bound_endpoint(st: &Socket) -> SocketAddr {
    let bind = st.bound.as_ref().expect("bound at handshake time");
    SocketAddr::new(bind.local_addr, bind.local_port)
}

/// PATCH (poetry-harness): the window field for `space` free bytes under
/// window scale `shift` (rounded down, so never more than the room).
fn wire_window(space: usize, shift: u8) -> u16 {
    (space >> shift).min(u16::MAX as usize) as u16
}

/// PATCH (poetry-harness): the window the peer reads from [`wire_window`]
/// for a buffer of `cap` holding `len` unread bytes, in bytes.
fn scaled_window(cap: usize, len: usize, shift: u8) -> u32 {
    u32::from(wire_window(cap.saturating_sub(len), shift)) << shift
}

/// PATCH (poetry-harness): the window field of a (non-SYN) segment about
/// to leave, recorded as the last advertised window.
fn advertise(tcb: &mut Tcb, recv_cap: usize) -> u16 {
    let window = wire_window(recv_cap.saturating_sub(tcb.recv_buf.len()), tcb.rcv_wscale);
    tcb.last_adv_wnd = u32::from(window) << tcb.rcv_wscale;
    window
}

/// PATCH (poetry-harness): the largest shift RFC 7323 allows.
const MAX_WSCALE: u8 = 14;

/// PATCH (poetry-harness): the window scale `fd`'s SYN offers, if this host
/// scales windows.
fn offered_wscale(k: &Kernel, fd: Fd) -> Option<u8> {
    let so_rcvbuf = k.sockets.get(fd).and_then(|s| s.recv_buf_cap).unwrap_or(0);
    offered_wscale_for(k, so_rcvbuf)
}

/// PATCH (poetry-harness): as Linux's `tcp_select_initial_window`: the
/// shift that lets the window cover the largest receive buffer the
/// connection may grow to (`recv_buf_max`, or a larger `SO_RCVBUF`):
/// log2 of it minus 15, so 7 for the default 6 MiB.
fn offered_wscale_for(k: &Kernel, rcvbuf: usize) -> Option<u8> {
    if !k.window_scaling {
        return None;
    }
    let space = rcvbuf.max(k.recv_buf_max).max(k.recv_buf_cap).max(1);
    let log2 = usize::BITS - 1 - space.leading_zeros();
    Some(log2.saturating_sub(15).min(u32::from(MAX_WSCALE)) as u8)
}

/// PATCH (poetry-harness): the peer's window is now `window` bytes. Unless
/// `SO_SNDBUF` fixed it, the send buffer grows to twice the largest
/// window seen (up to `send_buf_max`): room for a window in flight and
/// another queued behind it. (Linux sizes it from the congestion window,
/// which this stack does not model: a sender sends its whole window.)
fn set_snd_wnd(tcb: &mut Tcb, window: u32, send_buf_max: usize) {
    tcb.snd_wnd = window;
    let want = (window as usize).saturating_mul(2).min(send_buf_max);
    tcb.snd_cap = tcb.snd_cap.max(want);
}

/// PATCH (poetry-harness): receive-buffer autotuning, after the
/// application read `n` bytes at `now`; a simple form of Linux's
/// dynamic right-sizing (`tcp_rcv_space_adjust`). A period starts at a
/// read and ends at the first read at least one smoothed RTT later
/// (which it counts); if the bytes read in it were more than half the
/// buffer, the buffer grows to twice them (up to `max`). So a reader
/// that keeps up with a sender at least doubles its window every round
/// trip (128 KiB, 512 KiB, 1 MiB, ... 6 MiB: the first period holds
/// two windows), while one that stops reading keeps its buffer. The
/// buffer never shrinks. Nothing happens before the first RTT sample
/// (the handshake gives one).
fn autotune_recv(tcb: &mut Tcb, n: usize, now: Duration, max: usize) {
    let Some(srtt) = tcb.srtt else {
        return;
    };
    let (start, copied) = tcb.rcv_space.get_or_insert((now, 0));
    *copied += n;
    if now >= *start + srtt {
        let want = copied.saturating_mul(2).min(max);
        if want > tcb.rcv_cap {
            tcb.rcv_cap = want;
        }
        (*start, *copied) = (now, 0);
    }
}

const DEFAULT_WINDOW: u32 = 65535;
