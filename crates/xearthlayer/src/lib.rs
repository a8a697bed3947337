//! XEarthLayer: satellite orthophotos streamed into X-Plane as DDS textures.
//!
//! The modules follow the data flow, top to bottom:
//!
//! - [`coord`]: texture names, tiles, quadkeys, bounds (pure arithmetic).
//! - [`provider`]: where each chunk's imagery is downloaded from.
//! - [`fetch`]: the one shared HTTP client (limits, retries, timeouts).
//! - [`image`]: chunk decoding, stand-in fill, box-filter halving.
//! - [`dds`]: the DDS file layout and header, BCn encoding.
//! - [`texture`]: the engine: build pipeline, CPU pool, the service with
//!   coalescing and time budgets.
//! - [`cache`]: memory and disk tiers of finished textures.
//! - [`package`]: what an Ortho4XP package holds (textures with their
//!   positions, DSF tiles).
//! - [`fs`]: the filesystem core: inodes, handles, reads over a package
//!   (testable without a kernel).
//! - [`fuse`]: the thin `fuse3` adapter and the mount session.
//! - [`telemetry`]: where the aircraft is (X-Plane's UDP and Web API, or
//!   inferred from what X-Plane reads).
//! - [`prefetch`]: predicting X-Plane's next loads and building them in
//!   the background.
//! - [`metrics`]: counters every stage shares.
//! - [`log_limit`]: repeated warnings said once per interval.
//! - [`sched`]: live and background classes of work and their permits.

pub mod cache;
pub mod coord;
pub mod dds;
pub mod fetch;
pub mod fs;
pub mod fuse;
pub mod image;
pub mod log_limit;
pub mod metrics;
pub mod package;
pub mod prefetch;
pub mod provider;
pub mod sched;
pub mod telemetry;
pub mod texture;
