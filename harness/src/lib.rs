//! poetry-harness: a conformance harness for the poetry protocols of Dave
//! Peticolas's *Twisted Introduction*.
//!
//! The crate is layered the way the modules read:
//! - [`protocol`]: wire formats (netstrings, transform requests);
//! - [`net`]: one socket API over real tokio sockets and turmoil's
//!   simulated network;
//! - [`mod@reference`]: reference implementations of the five roles;
//! - [`cli`]: the `poetry-harness` command line.
//!
//! A reference server and client, inside the simulator, in a few lines:
//!
//! ```
//! use poetry_harness::net::Net;
//! use poetry_harness::reference::{get_poem, ClientConfig, PoetryServer};
//!
//! let mut sim = turmoil::Builder::new().build();
//! sim.host("poet", || async {
//!     let listener = Net::Sim.bind("0.0.0.0:10000").await?;
//!     PoetryServer::fast("Ode to a byte\n").serve(listener).await?;
//!     Ok(())
//! });
//! sim.client("reader", async {
//!     let poem = get_poem(Net::Sim, "poet:10000", ClientConfig::default()).await?;
//!     assert_eq!(&poem[..], b"Ode to a byte\n");
//!     Ok(())
//! });
//! sim.run().unwrap();
//! ```

pub mod backend;
pub mod bench;
pub mod byte_diff;
pub mod case;
pub mod catalog;
pub mod cli;
pub mod duration;
pub mod engine;
pub mod failure;
pub mod faultproxy;
pub mod github;
pub mod hints;
pub mod merge;
#[path = "../fixtures/mutants/mod.rs"]
pub mod mutants;
pub mod net;
pub mod peers;
pub mod policy;
pub mod protocol;
pub mod reference;
pub mod repeat;
pub mod replay;
pub mod report;
pub mod roles;
pub mod selection;
pub mod shard;
pub mod shrink;
pub mod spec;
pub mod testing;
pub mod transcript;
pub mod verdict;
