//! The texture engine: from a texture name to its DDS bytes.
//!
//! - [`build`]: the CPU pipeline (decode, fill, mips, encode), pure.
//! - [`pool`]: the bounded pool that runs it.
//! - [`service`]: caches, coalescing, downloads, budgets.
//! - [`source`]: what the filesystem calls.

pub mod build;
pub mod pool;
pub mod service;
pub mod source;

pub use service::{ServiceConfig, ServiceError, Texture, TextureService};
