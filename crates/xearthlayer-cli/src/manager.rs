//! The mounts of `xearthlayer run`, all over one texture service (one cache,
//! one provider client, one set of limits): one union mount of every
//! package, or one mount per package (see [`crate::union`]).
//!
//! [`MountManager::start`] mounts each in turn and keeps going when one
//! fails: a bad package must not keep the others from X-Plane. A stop
//! signal is looked at between mounts, so a signal while thousands of
//! packages mount ends the run after the current one. Each session then
//! lives in a task of its own that waits for either the stop signal (then
//! unmounts) or the session ending by itself (someone ran `umount`);
//! [`MountManager::next_ended`] reports the latter while serving, and
//! [`MountManager::stop_all`] unmounts whatever is still mounted, or, told
//! to give up waiting, detaches them all at once.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::{Id, JoinError, JoinSet};
use xearthlayer::fs::OverlayFs;
use xearthlayer::fuse::{self, MountConfig, MountSession};
use xearthlayer::texture::TextureService;

use crate::args::CliResult;
use crate::packages::Package;
use crate::start::mount_package;
use crate::status::MountView;

/// One mount of `run`: a package alone, or several as one union.
#[derive(Debug, Clone)]
pub struct Mount {
    pub name: String,
    pub mountpoint: PathBuf,
    /// Highest precedence first; one for a package mounted alone.
    pub packages: Vec<Package>,
    /// Serve `packages` through one union filesystem, even if only one.
    pub union: bool,
}

/// A session task's end: the mount's index in `mounted`, and `Err` if
/// unmounting failed or the session broke.
type Outcome = (usize, Result<(), String>);

/// How one session ended.
#[derive(Debug)]
pub struct Ended {
    pub name: String,
    pub mountpoint: PathBuf,
    /// `Err`: why unmounting failed or the session broke.
    pub result: Result<(), String>,
}

/// The live sessions of a set of mounts.
pub struct MountManager {
    mounted: Vec<Mount>,
    /// The filesystem core of each mount, for the status view.
    filesystems: Vec<Arc<OverlayFs<TextureService>>>,
    failed: Vec<(Mount, String)>,
    stop: watch::Sender<bool>,
    sessions: JoinSet<Outcome>,
    /// Which mount each task serves, to name it even if the task panics.
    tasks: HashMap<Id, usize>,
}

impl MountManager {
    /// Mounts every mount over `service`; a failure is recorded and the rest
    /// still mount. Stops mounting once `shutdown` is ready, and returns
    /// its answer with what was mounted so far.
    pub async fn start<F>(
        mounts: Vec<Mount>,
        service: &TextureService,
        allow_other: bool,
        shutdown: &mut F,
    ) -> (MountManager, Option<&'static str>)
    where
        F: Future<Output = &'static str> + Unpin,
    {
        let (stop, _) = watch::channel(false);
        let mut manager = MountManager {
            mounted: Vec::new(),
            filesystems: Vec::new(),
            failed: Vec::new(),
            stop,
            sessions: JoinSet::new(),
            tasks: HashMap::new(),
        };
        for mount in mounts {
            // Between mounts only: a mount cut off halfway could be left behind.
            let signalled = tokio::select! {
                biased;
                name = &mut *shutdown => Some(name),
                () = std::future::ready(()) => None,
            };
            if signalled.is_some() {
                return (manager, signalled);
            }
            let session = if mount.union {
                mount_union(&mount, service.clone(), allow_other).await
            } else {
                mount_package(
                    &mount.packages[0].source,
                    &mount.mountpoint,
                    service.clone(),
                    allow_other,
                )
                .await
            };
            let mut session = match session {
                Ok((session, fs)) => {
                    manager.filesystems.push(fs);
                    session
                }
                Err(e) => {
                    manager.failed.push((mount, e.to_string()));
                    continue;
                }
            };
            let index = manager.mounted.len();
            manager.mounted.push(mount);
            let mut stop = manager.stop.subscribe();
            let task = manager.sessions.spawn(async move {
                tokio::select! {
                    // A dropped sender means stop too.
                    _ = stop.wait_for(|stop| *stop) => {}
                    ended = session.wait() => return (index, ended.map_err(|e| e.to_string())),
                }
                (index, session.unmount().await.map_err(|e| e.to_string()))
            });
            manager.tasks.insert(task.id(), index);
        }
        (manager, None)
    }

    /// The mounts made, in order.
    pub fn mounted(&self) -> &[Mount] {
        &self.mounted
    }

    /// The filesystem core of each mount made, in order.
    pub fn filesystems(&self) -> &[Arc<OverlayFs<TextureService>>] {
        &self.filesystems
    }

    /// Each mount as the status view shows it.
    pub fn views(&self) -> Vec<MountView> {
        self.mounted
            .iter()
            .zip(&self.filesystems)
            .map(|(mount, fs)| MountView {
                mountpoint: mount.mountpoint.clone(),
                fs: Arc::clone(fs),
            })
            .collect()
    }

    /// The mounts that could not be made, and why.
    pub fn failed(&self) -> &[(Mount, String)] {
        &self.failed
    }

    /// Sessions still serving.
    pub fn live(&self) -> usize {
        self.sessions.len()
    }

    /// The next session to end by itself (unmounted from outside, or its
    /// connection lost); `None` once none is left. Cancel-safe.
    pub async fn next_ended(&mut self) -> Option<Ended> {
        let joined = self.sessions.join_next_with_id().await?;
        Some(self.ended(joined))
    }

    /// Unmounts every live session and reports how each ended. Once
    /// `give_up` is ready (a second signal), the sessions still unmounting
    /// are stopped and their mounts detached at once.
    pub async fn stop_all(mut self, give_up: impl Future<Output = ()>) -> Vec<Ended> {
        self.stop.send_replace(true);
        tokio::pin!(give_up);
        let mut given_up = false;
        let mut ended = Vec::new();
        loop {
            tokio::select! {
                joined = self.sessions.join_next_with_id() => match joined {
                    Some(joined) => ended.push(self.ended(joined)),
                    None => break,
                },
                () = &mut give_up, if !given_up => {
                    given_up = true;
                    // Dropping a session detaches its mount.
                    self.sessions.abort_all();
                }
            }
        }
        ended.sort_by_key(|e| e.mountpoint.clone());
        ended
    }

    fn ended(&self, joined: Result<(Id, Outcome), JoinError>) -> Ended {
        let (index, result) = match joined {
            Ok((_, outcome)) => outcome,
            Err(e) => (
                self.tasks.get(&e.id()).copied().unwrap_or_default(),
                Err(if e.is_cancelled() {
                    "detached without waiting for its readers".to_string()
                } else {
                    format!("the session's task failed: {e}")
                }),
            ),
        };
        let mount = &self.mounted[index];
        Ended {
            name: mount.name.clone(),
            mountpoint: mount.mountpoint.clone(),
            result,
        }
    }
}

/// Where the union keeps its texture index between runs, in
/// `~/.xearthlayer`.
const UNION_INDEX_FILE: &str = "package-index.txt";

/// Mounts `mount`'s packages as one filesystem; their textures are indexed
/// in the background while the mount serves, from the index kept by the
/// last run for packages unchanged since.
async fn mount_union(
    mount: &Mount,
    service: TextureService,
    allow_other: bool,
) -> CliResult<(MountSession, Arc<OverlayFs<TextureService>>)> {
    let sources: Vec<PathBuf> = mount.packages.iter().map(|p| p.source.clone()).collect();
    let fs = tokio::task::spawn_blocking(move || OverlayFs::union(sources, service)).await??;
    let fs = Arc::new(match crate::config::xearthlayer_dir() {
        Some(dir) => fs.with_index_file(dir.join(UNION_INDEX_FILE)),
        None => fs,
    });
    let config = MountConfig {
        allow_other,
        ..MountConfig::default()
    };
    let session = fuse::mount_shared(Arc::clone(&fs), &mount.mountpoint, &config).await?;
    let indexing = Arc::clone(&fs);
    tokio::spawn(async move {
        indexing.indexed().await;
        let _ = tokio::task::spawn_blocking(crate::heap::trim).await;
    });
    Ok((session, fs))
}
