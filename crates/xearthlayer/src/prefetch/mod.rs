//! Prefetch: textures ready before X-Plane asks for them.
//!
//! - [`catalog`]: the textures of each DSF tile, with their centres.
//! - [`predict`]: which tiles X-Plane loads next, in which order.
//! - [`ranges`]: which parts of a texture X-Plane will read.
//! - [`prefetcher`]: the bounded background work, and the mount observer
//!   that tells it what X-Plane opens and reads.
//! - [`stats`]: what it did, for the status view.

pub mod catalog;
pub mod predict;
pub mod prefetcher;
pub mod ranges;
pub mod stats;

pub use catalog::{Catalog, CatalogTexture, IndexCatalog, Tile};
pub use prefetcher::{Job, PrefetchConfig, Prefetcher};
pub use stats::{PrefetchStats, PrefetchStatus};
