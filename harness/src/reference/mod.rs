//! Reference implementations of the five roles, written once against
//! [`crate::net::Net`] so each runs as a real program and inside turmoil.
//!
//! Each meets every strict clause of `suites/SPEC.md`; the conformance
//! catalog checks that they do.

mod linger;
pub mod one_write;
pub mod poetry_client;
pub mod poetry_server;
pub mod proxy;
pub mod transform_client;
pub mod transform_server;

pub use linger::{close_gracefully, LINGER};
pub use poetry_client::{
    get_poem, get_poem_watched, get_poems, get_poems_watched, ClientConfig, FetchError, OnBytes,
    Progress,
};
pub use poetry_server::{Pacing, PoetryServer};
pub use proxy::PoetryProxy;
pub use transform_client::{OnTransformed, TransformClient, TransformFailure, Transformed};
pub use transform_server::TransformServer;
