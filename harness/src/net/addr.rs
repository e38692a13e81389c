//! Server addresses as the series' clients take them: `port` or `host:port`.

use thiserror::Error;

/// The host a bare port number refers to, as in the series.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// Why an address was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AddrError {
    /// Nothing was given.
    #[error("empty address")]
    Empty,
    /// The port part is not a number from 1 to 65535.
    #[error("invalid address '{addr}': port '{port}' is not a number from 1 to 65535")]
    BadPort {
        /// The whole address as given.
        addr: String,
        /// The port part.
        port: String,
    },
    /// `host:` with nothing before the colon.
    #[error("invalid address '{0}': empty host")]
    EmptyHost(String),
}

/// Normalises `port` or `host:port` to `host:port` (host defaults to
/// 127.0.0.1). Port 0 is refused: a client cannot connect to it.
///
/// ```
/// use poetry_harness::net::parse_addr;
/// assert_eq!(parse_addr("10000").unwrap(), "127.0.0.1:10000");
/// assert_eq!(parse_addr("poet:10000").unwrap(), "poet:10000");
/// assert!(parse_addr("poet:http").is_err());
/// ```
pub fn parse_addr(s: &str) -> Result<String, AddrError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(AddrError::Empty);
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((host, port)) => (host, port),
        None => (DEFAULT_HOST, s),
    };
    if host.is_empty() {
        return Err(AddrError::EmptyHost(s.to_string()));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(format!("{host}:{p}")),
        _ => Err(AddrError::BadPort {
            addr: s.to_string(),
            port: port.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::bare_port("10000", "127.0.0.1:10000")]
    #[case::host_port("localhost:10001", "localhost:10001")]
    #[case::sim_host("server-1:7", "server-1:7")]
    #[case::surrounding_space(" 10000 ", "127.0.0.1:10000")]
    fn accepts(#[case] input: &str, #[case] want: &str) {
        assert_eq!(parse_addr(input).unwrap(), want);
    }

    #[rstest]
    #[case::empty("", AddrError::Empty)]
    #[case::port_zero("0", AddrError::BadPort { addr: "0".into(), port: "0".into() })]
    #[case::port_too_big("70000", AddrError::BadPort { addr: "70000".into(), port: "70000".into() })]
    #[case::named_port("poet:http", AddrError::BadPort { addr: "poet:http".into(), port: "http".into() })]
    #[case::signed_port("poet:+80", AddrError::BadPort { addr: "poet:+80".into(), port: "+80".into() })]
    #[case::empty_host(":80", AddrError::EmptyHost(":80".into()))]
    fn refuses(#[case] input: &str, #[case] want: AddrError) {
        assert_eq!(parse_addr(input).unwrap_err(), want);
    }
}
