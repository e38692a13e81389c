//! The transforming client of parts 13, 17 and 18: download each poem,
//! have it transformed, fall back to the original when that fails.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use super::poetry_client::{get_poem, ClientConfig, FetchError};
use crate::net::Net;
use crate::protocol::netstring::{self, DEFAULT_MAX_PAYLOAD};
use crate::protocol::transform;

/// Longest wait for the transform server's whole reply (TCLIENT clauses).
pub const DEFAULT_TRANSFORM_TIMEOUT: Duration = Duration::from_secs(10);

/// What the transforming client does with each poem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformClient {
    /// Transform server address, `host:port`.
    pub xform_addr: String,
    /// Transform name sent in each request, e.g. `cummingsify`.
    pub transform: String,
    /// Download timeouts.
    pub client: ClientConfig,
    /// Longest wait for connect + request + reply at the transform server.
    pub transform_timeout: Duration,
}

impl TransformClient {
    /// A client that cummingsifies through `xform_addr` with default timeouts.
    pub fn new(xform_addr: impl Into<String>) -> Self {
        TransformClient {
            xform_addr: xform_addr.into(),
            transform: transform::Transform::Cummingsify.name().to_string(),
            client: ClientConfig::default(),
            transform_timeout: DEFAULT_TRANSFORM_TIMEOUT,
        }
    }
}

/// Why a transformation failed; the original poem is used instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransformFailure {
    /// Connecting to the transform server failed.
    Connect(String),
    /// The server closed without replying.
    NoReply,
    /// The reply was cut short, malformed or not UTF-8.
    BadReply(String),
    /// No reply within the timeout.
    Timeout,
}

impl TransformFailure {
    /// The spec's reason word for stderr (TCLIENT-4): `refused`, `reset`,
    /// `timeout`, `closed` (no reply), `malformed`, or `error`.
    pub fn kind(&self) -> &'static str {
        match self {
            TransformFailure::Connect(e) if e.to_ascii_lowercase().contains("refused") => "refused",
            TransformFailure::Connect(_) => "error",
            TransformFailure::NoReply => "closed",
            TransformFailure::BadReply(e) if e.to_ascii_lowercase().contains("reset") => "reset",
            TransformFailure::BadReply(_) => "malformed",
            TransformFailure::Timeout => "timeout",
        }
    }
}

impl fmt::Display for TransformFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransformFailure::Connect(e) => write!(f, "cannot reach transform server: {e}"),
            TransformFailure::NoReply => write!(f, "transform server closed without a reply"),
            TransformFailure::BadReply(e) => write!(f, "bad reply from transform server: {e}"),
            TransformFailure::Timeout => write!(f, "transform server did not answer in time"),
        }
    }
}

/// The outcome for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transformed {
    /// Downloaded and transformed.
    Poem(String),
    /// Downloaded; the transform failed, so this is the original poem.
    Fallback {
        /// The untransformed poem.
        original: Bytes,
        /// What went wrong (reported on stderr).
        failure: TransformFailure,
    },
    /// The download itself failed: nothing is printed for this poem.
    DownloadFailed(FetchError),
}

/// Told of each poem's result as soon as it is known: the index of its
/// address (in the order given) and the result. How `get --transform`
/// prints each poem as soon as it, and every poem before it, is done.
pub type OnTransformed = std::sync::Arc<dyn Fn(usize, &Transformed) + Send + Sync>;

impl Transformed {
    /// The bytes printed on stdout for this poem.
    pub fn output(&self) -> &[u8] {
        match self {
            Transformed::Poem(p) => p.as_bytes(),
            Transformed::Fallback { original, .. } => original,
            Transformed::DownloadFailed(_) => b"",
        }
    }
}

impl TransformClient {
    /// Asks the transform server to transform one poem.
    pub async fn transform(&self, net: Net, poem: &[u8]) -> Result<String, TransformFailure> {
        let exchange = async {
            let mut stream = net
                .connect(&self.xform_addr)
                .await
                .map_err(|e| TransformFailure::Connect(e.to_string()))?;
            let payload = [self.transform.as_bytes(), b".", poem].concat();
            netstring::write_netstring(&mut stream, &payload)
                .await
                .map_err(|e| TransformFailure::BadReply(e.to_string()))?;
            let reply = netstring::read_netstring(&mut stream, DEFAULT_MAX_PAYLOAD)
                .await
                .map_err(|e| match e {
                    netstring::NetstringError::Eof => TransformFailure::NoReply,
                    other => TransformFailure::BadReply(other.to_string()),
                })?;
            transform::decode_response(&reply)
                .map_err(|e| TransformFailure::BadReply(e.to_string()))
        };
        tokio::time::timeout(self.transform_timeout, exchange)
            .await
            .unwrap_or(Err(TransformFailure::Timeout))
    }

    /// Downloads and transforms every poem at once; results in address order.
    pub async fn run(&self, net: Net, addrs: &[String]) -> Vec<Transformed> {
        self.run_reported(net, addrs, None).await
    }

    /// [`TransformClient::run`], telling `on_result` (if given) of each
    /// poem's result as soon as it is known (in the order they end).
    pub async fn run_reported(
        &self,
        net: Net,
        addrs: &[String],
        on_result: Option<OnTransformed>,
    ) -> Vec<Transformed> {
        let tasks: Vec<_> = addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let (me, addr, on_result) = (self.clone(), addr.clone(), on_result.clone());
                tokio::spawn(async move {
                    let result = match get_poem(net, &addr, me.client).await {
                        Err(e) => Transformed::DownloadFailed(e),
                        Ok(original) => match me.transform(net, &original).await {
                            Ok(poem) => Transformed::Poem(poem),
                            Err(failure) => Transformed::Fallback { original, failure },
                        },
                    };
                    if let Some(f) = &on_result {
                        f(i, &result);
                    }
                    result
                })
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks {
            out.push(task.await.unwrap_or_else(|e| {
                Transformed::DownloadFailed(FetchError::Other(format!("task failed: {e}")))
            }));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_the_spec_reason_word() {
        let words: Vec<_> = [
            TransformFailure::Connect("Connection refused (os error 111)".into()),
            TransformFailure::NoReply,
            TransformFailure::BadReply("io error: Connection reset by peer".into()),
            TransformFailure::BadReply("non-digit 'x' in the length at byte 1".into()),
            TransformFailure::Timeout,
        ]
        .iter()
        .map(TransformFailure::kind)
        .collect();
        assert_eq!(
            words,
            ["refused", "closed", "reset", "malformed", "timeout"]
        );
    }
}
