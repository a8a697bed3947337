//! The texture engine: from a texture name and a byte range to DDS bytes.
//!
//! - [`plan`]: which units of work make which bytes.
//! - [`build`]: the CPU pipeline (decode, fill, mips, encode), pure.
//! - [`state`]: the bytes built so far of one texture.
//! - [`pool`]: the bounded pool that runs the CPU work.
//! - [`service`]: entries, caches, coalescing, downloads, budgets.
//! - [`source`]: what the filesystem calls.
//! - `background`: what the prefetcher calls.

mod background;
pub mod build;
pub mod plan;
pub mod pool;
pub mod service;
pub mod source;
pub mod state;

pub use service::{ServiceConfig, ServiceError, Texture, TextureEntry, TextureService};
