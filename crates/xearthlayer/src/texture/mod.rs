//! The texture engine: from a texture name and a byte range to DDS bytes.
//!
//! - [`plan`]: which units of work make which bytes.
//! - [`build`]: the CPU pipeline (decode, fill, mips, encode), pure.
//! - [`state`]: the bytes built so far of one texture.
//! - [`entry`]: one texture's shared entry (state, builds, stand-ins).
//! - [`registry`]: the one entry of each texture, beside the memory cache.
//! - [`shared_work`]: work done once for all who want it, cancelled when
//!   nobody does.
//! - [`reader`]: what a read needs built, and waiting for it.
//! - [`patience`]: how long a read waits, when it gives up, visits.
//! - [`unit_build`]: one unit's downloads and CPU work.
//! - [`downloads`]: chunk downloads shared across textures.
//! - [`fallback`]: what stands in for late or missing imagery.
//! - [`pool`]: the bounded CPU pool, live jobs first, the oldest read's first.
//! - [`memory_budget`]: bytes background work may hold outside the caches.
//! - [`service`]: the front the filesystem and the prefetcher call.
//! - [`source`]: the filesystem's view of the service.

pub mod build;
pub mod downloads;
pub mod entry;
pub mod fallback;
pub mod memory_budget;
pub mod patience;
pub mod plan;
pub mod pool;
mod reader;
pub mod registry;
pub mod service;
pub mod shared_work;
pub mod source;
pub mod state;
mod unit_build;

pub use entry::TextureEntry;
pub use patience::Visit;
pub use service::{
    ServiceConfig, ServiceError, Texture, TextureService, WorkCounts, DEFAULT_MAX_WAIT,
    DEFAULT_STALL_WINDOW, DEFAULT_STARTUP_MAX_WAIT,
};

use tokio::sync::watch;

use crate::sched::{Urgency, WorkClass};

/// The class work runs in, given its urgency now.
fn class_of(urgency: &watch::Receiver<Urgency>) -> WorkClass {
    WorkClass::of(*urgency.borrow())
}

/// Resolves when the urgency changes (never, if it cannot any more).
async fn changed(urgency: &mut watch::Receiver<Urgency>) {
    if urgency.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
