//! The kernel side: a thin `fuse3` adapter over the filesystem core and the
//! mount session.
//!
//! - `adapter`: [`FuseAdapter`] implements `fuse3::raw::Filesystem`; each
//!   operation calls the same-named method of [`OverlayFs`](crate::fs::OverlayFs)
//!   and turns its error into an errno in one place. Nothing else lives there.
//! - `session`: [`mount`] checks and prepares the mountpoint (creating it,
//!   clearing a stale mount left by a killed process, refusing a live one),
//!   mounts read-only and returns a [`MountSession`] to wait on or unmount.
//! - `connections`: the runtime the sessions run on, whose threads nothing
//!   but the kernel connections use, so that no number of mounts starves
//!   the service.
//! - `user_mount`: mounting as an ordinary user through `fusermount3`, and
//!   what `/etc/fuse.conf` allows it.

mod adapter;
mod connections;
mod session;
pub mod user_mount;

pub use adapter::FuseAdapter;
pub use connections::MAX_ROOT_SESSIONS;
pub use session::{
    detach_now, mount, mount_shared, xearthlayer_mounts, MountConfig, MountError, MountHealth,
    MountSession, FS_NAME,
};
