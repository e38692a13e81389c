//! When a server program is ready: the one readiness rule of every live
//! command (`run`, `pair`, `bench`).
//!
//! A server is ready when it prints a line naming its port. A program whose
//! output is block-buffered (or sent nowhere) may never show that line
//! before it exits, so after a short grace the harness also looks at the
//! port itself: a socket listening on it is ready, since from then on a
//! client's connect completes (into the listen backlog) whether or not the
//! program has called `accept` yet.
//!
//! # Why the port is looked at, not connected to
//!
//! A connection is not a neutral question to a server. A one-at-a-time
//! server (the series' part 2 server) serves a probe connection like any
//! client: it sends the first chunk, sleeps one delay, and only accepts the
//! case's first client after its next write fails. That client then got its
//! first chunk one delay late, and a correct program failed
//! `server.slow-first-chunk-at-once`. A proxy would fetch a poem for it. So
//! on Linux the probe reads the listening sockets from `/proc/self/net/tcp`
//! and `tcp6` (the harness's own network namespace, which its programs
//! share, also under `--sandbox`), and never connects. Only where those
//! files cannot be read does it fall back to connecting, and only for
//! roles a connection does not disturb much.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::process::Program;

/// Grace before looking at the port, so that a program that announces
/// itself is ready by its line, after its own start-up work.
const PROBE_AFTER: Duration = Duration::from_millis(500);

/// Pause between two looks at the port.
const PROBE_EVERY: Duration = Duration::from_millis(20);

/// Waits, for at most `limit`, until a server program is ready: it prints
/// a line naming `port`, or a socket listens on `port` of 127.0.0.1 (or of
/// every address). Returns how it became ready, or the error to report:
/// what the program did not do within `limit`.
///
/// `may_connect`: whether, where listening sockets cannot be listed, the
/// probe may fall back to connecting to the port (not for a proxy, which a
/// connection makes fetch).
pub async fn wait_ready(
    program: &mut Program,
    port: u16,
    limit: Duration,
    may_connect: bool,
) -> Result<String, String> {
    let port_text = port.to_string();
    let names_port = |l: &str| {
        l.split(|c: char| !c.is_ascii_digit())
            .any(|w| w == port_text)
    };
    let ready = tokio::select! {
        line = program.wait_for_line(limit, names_port) => line,
        probed = probe_port(port, limit, may_connect) => probed,
    };
    ready.ok_or_else(|| {
        // A program that could not bind its port: say what holds it.
        let held = match sockets_on(port).unwrap_or_default()[..] {
            [] => String::new(),
            ref sockets => format!(" (port {port} is in use: {})", sockets.join(", ")),
        };
        format!(
            "neither printed a line naming port {port} nor listened on it within {}{held}",
            crate::transcript::secs(limit)
        )
    })
}

async fn probe_port(port: u16, limit: Duration, may_connect: bool) -> Option<String> {
    tokio::time::sleep(PROBE_AFTER).await;
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        match listening(port) {
            Some(true) => return Some(format!("port {port} is listening (no line announced it)")),
            Some(false) => {}
            None if may_connect => {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return Some(format!("port {port} accepts (no line announced it)"));
                }
            }
            // Neither listed nor connectable: only the line can tell.
            None => return std::future::pending().await,
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    None
}

/// Whether a TCP socket listens on `port` where a connection to
/// 127.0.0.1 reaches it; `None` if the listening sockets cannot be listed
/// (no `/proc`).
pub fn listening(port: u16) -> Option<bool> {
    Some(tables()?.iter().any(|table| listens_in(table, port)))
}

/// Every TCP socket on `port` of this network namespace, as `STATE
/// local` or `STATE local -> remote` (`TIME_WAIT 127.0.0.1:20001 ->
/// 127.0.0.1:40000`), in the kernel's order; `None` if the sockets cannot
/// be listed (no `/proc`).
pub fn sockets_on(port: u16) -> Option<Vec<String>> {
    Some(
        tables()?
            .iter()
            .flat_map(|table| sockets_in(table, port))
            .collect(),
    )
}

/// This network namespace's `/proc/net/tcp` and `tcp6` tables; `None`
/// without the first (no `/proc`). Without IPv6 in the kernel there is
/// no tcp6 table: it reads as empty.
fn tables() -> Option<[String; 2]> {
    let v4 = std::fs::read_to_string("/proc/self/net/tcp").ok()?;
    let v6 = std::fs::read_to_string("/proc/self/net/tcp6").unwrap_or_default();
    Some([v4, v6])
}

/// One socket of a `/proc/net/tcp` or `tcp6` table.
struct Row<'t> {
    local: (IpAddr, u16),
    remote: (IpAddr, u16),
    /// The state's number, in hex (`0A` is `LISTEN`).
    state: &'t str,
}

/// The sockets of a table, lines that do not parse left out.
fn rows(table: &str) -> impl Iterator<Item = Row<'_>> {
    table.lines().skip(1).filter_map(|line| {
        let mut fields = line.split_whitespace();
        let (_slot, local, remote, state) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        Some(Row {
            local: endpoint(local)?,
            remote: endpoint(remote)?,
            state,
        })
    })
}

/// [`sockets_on`] for one `/proc/net/tcp` or `tcp6` table.
fn sockets_in(table: &str, port: u16) -> Vec<String> {
    rows(table)
        .filter(|row| row.local.1 == port)
        .map(
            |Row {
                 local,
                 remote,
                 state,
             }| {
                let name = STATES
                    .iter()
                    .find(|(code, _)| *code == state)
                    .map_or(state, |(_, name)| name);
                let here = format!("{}:{}", show(local.0), local.1);
                if remote.1 == 0 {
                    format!("{name} {here}")
                } else {
                    format!("{name} {here} -> {}:{}", show(remote.0), remote.1)
                }
            },
        )
        .collect()
}

/// An IPv4-mapped IPv6 address as IPv4, the way it was connected to.
fn show(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        v4 => v4.to_string(),
    }
}

/// An `ADDR:PORT` field of `/proc/net/tcp`, both in hex.
fn endpoint(field: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = field.split_once(':')?;
    Some((kernel_addr(addr)?, u16::from_str_radix(port, 16).ok()?))
}

/// TCP states as `/proc/net/tcp` numbers them (`include/net/tcp_states.h`).
const STATES: &[(&str, &str)] = &[
    ("01", "ESTABLISHED"),
    ("02", "SYN_SENT"),
    ("03", "SYN_RECV"),
    ("04", "FIN_WAIT1"),
    ("05", "FIN_WAIT2"),
    ("06", "TIME_WAIT"),
    ("07", "CLOSE"),
    ("08", "CLOSE_WAIT"),
    ("09", "LAST_ACK"),
    (LISTEN, "LISTEN"),
    ("0B", "CLOSING"),
];

/// TCP state `LISTEN` in `/proc/net/tcp`.
const LISTEN: &str = "0A";

/// Whether a `/proc/net/tcp` or `tcp6` table has a socket listening on
/// `port` of 127.0.0.1, of every address, or (IPv6) of `::` or
/// `::ffff:127.0.0.1`.
fn listens_in(table: &str, port: u16) -> bool {
    rows(table)
        .any(|row| row.state == LISTEN && row.local.1 == port && reaches_loopback(row.local.0))
}

/// Whether a listening socket's local address takes connections made to
/// 127.0.0.1.
fn reaches_loopback(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_unspecified() || a == Ipv4Addr::LOCALHOST,
        IpAddr::V6(a) => a.is_unspecified() || a.to_ipv4_mapped() == Some(Ipv4Addr::LOCALHOST),
    }
}

/// An address as `/proc/net/tcp` and `tcp6` print it: each 32-bit word in
/// hex, in the machine's byte order; 8 digits for IPv4, 32 for IPv6.
fn kernel_addr(addr: &str) -> Option<IpAddr> {
    let word = |i: usize| {
        addr.get(i * 8..i * 8 + 8)
            .and_then(|w| u32::from_str_radix(w, 16).ok())
            .map(u32::to_ne_bytes)
    };
    match addr.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's spelling of an address: each 32-bit word of it read in
    /// the machine's byte order, in hex.
    fn kernel_hex(bytes: &[u8]) -> String {
        bytes
            .chunks(4)
            .map(|w| format!("{:08X}", u32::from_ne_bytes(w.try_into().unwrap())))
            .collect()
    }

    fn table(lines: &[(&str, u16, &str)]) -> String {
        let mut t = String::from("  sl  local_address rem_address   st tx_queue ...\n");
        for (i, (addr, port, st)) in lines.iter().enumerate() {
            t += &format!("  {i}: {addr}:{port:04X} 00000000:0000 {st} 00000000:00000000\n");
        }
        t
    }

    #[test]
    fn a_listening_socket_counts_only_on_its_port_in_listen_state_and_where_127_0_0_1_reaches_it() {
        let lo = kernel_hex(&[127, 0, 0, 1]);
        let any = kernel_hex(&[0, 0, 0, 0]);
        let other = kernel_hex(&[127, 0, 0, 2]);
        let t = table(&[(&lo, 4000, "0A"), (&any, 4001, "0A"), (&other, 4002, "0A")]);
        assert!(listens_in(&t, 4000));
        assert!(listens_in(&t, 4001));
        assert!(!listens_in(&t, 4002), "127.0.0.2 does not take 127.0.0.1");
        assert!(!listens_in(&t, 4003), "no socket on that port");
        // An established connection from the port is not a listener.
        assert!(!listens_in(&table(&[(&lo, 4000, "01")]), 4000));

        let any6 = kernel_hex(&[0; 16]);
        let mapped = kernel_hex(&Ipv4Addr::LOCALHOST.to_ipv6_mapped().octets());
        let lo6 = kernel_hex(&Ipv6Addr::LOCALHOST.octets());
        let t6 = table(&[
            (&any6, 5000, "0A"),
            (&mapped, 5001, "0A"),
            (&lo6, 5002, "0A"),
        ]);
        assert!(listens_in(&t6, 5000));
        assert!(listens_in(&t6, 5001));
        assert!(!listens_in(&t6, 5002), "::1 does not take 127.0.0.1");
        assert!(!listens_in("garbage\n 0: nonsense", 5000));
    }

    #[test]
    fn the_sockets_on_a_port_are_named_with_their_state_and_ends() {
        let lo = kernel_hex(&[127, 0, 0, 1]);
        let mapped = kernel_hex(&Ipv4Addr::LOCALHOST.to_ipv6_mapped().octets());
        let t = format!(
            "  sl  local_address rem_address   st ...\n\
             0: {lo}:4E21 00000000:0000 0A 0\n\
             1: {lo}:4E21 {lo}:9C40 06 0\n\
             2: {lo}:9C40 {lo}:4E21 05 0\n\
             3: {mapped}:4E21 {mapped}:9C41 01 0\n\
             4: {lo}:4E21 {lo}:9C42 0C 0\n"
        );
        assert_eq!(
            sockets_in(&t, 20001),
            [
                "LISTEN 127.0.0.1:20001",
                "TIME_WAIT 127.0.0.1:20001 -> 127.0.0.1:40000",
                "ESTABLISHED 127.0.0.1:20001 -> 127.0.0.1:40001",
                // A state the table does not name is shown as its number.
                "0C 127.0.0.1:20001 -> 127.0.0.1:40002",
            ]
        );
        assert!(sockets_in(&t, 20002).is_empty());
        assert!(sockets_in("garbage\n 0: nonsense", 20001).is_empty());
    }

    #[test]
    fn a_listener_is_seen_without_being_connected_to() {
        let Some(false) = listening(0) else {
            // No /proc here (not Linux): the fallback is connecting.
            return;
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(listening(port), Some(true));
        // Looking made no connection: nothing waits to be accepted.
        listener.set_nonblocking(true).unwrap();
        let err = listener.accept().expect_err("no connection was made");
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        assert_eq!(
            sockets_on(port).unwrap(),
            [format!("LISTEN 127.0.0.1:{port}")]
        );
        drop(listener);
        assert_eq!(listening(port), Some(false));
        assert_eq!(sockets_on(port).unwrap(), Vec::<String>::new());
    }
}
