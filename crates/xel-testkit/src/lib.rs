//! Test support for XEarthLayer: deterministic synthetic imagery, a local
//! HTTP imagery server with injectable latency and faults, and sample
//! Ortho4XP-style scenery packages. Used by tests, benchmarks and the offline
//! demo so none of them needs the internet.

pub mod burst;
pub mod imagery;
pub mod package;
pub mod server;
pub mod verify;

pub use imagery::{chunk_jpeg, chunk_rgb};
pub use package::{create_package, package_for_texture_names, PackageSpec, SamplePackage};
pub use server::{
    start_in_background, BackgroundServer, Faults, ImageryServer, ServerConfig, ServerStats,
};
pub mod mounts;
