//! The simulated world XEarthLayer runs against when the real one is not
//! there: deterministic synthetic imagery, a local HTTP imagery server with
//! injectable latency and faults, sample Ortho4XP-style scenery packages and
//! an X-Plane-like reader, and a simulated X-Plane (telemetry protocols and
//! scenery loading by X-Plane's rule). The offline demo, the tests and the benchmarks
//! share it, so none of them needs the internet or X-Plane.

pub mod burst;
pub mod grid;
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
pub mod xplane;
