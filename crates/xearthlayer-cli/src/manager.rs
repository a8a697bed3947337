//! The mounts of `xearthlayer run`: one FUSE session per package, all over
//! one texture service (one cache, one provider client, one set of limits).
//!
//! [`MountManager::start`] mounts each package in turn and keeps going when
//! one fails: a bad package must not keep the others from X-Plane. Each
//! session then lives in a task of its own that waits for either the stop
//! signal (then unmounts) or the session ending by itself (someone ran
//! `umount`); [`MountManager::next_ended`] reports the latter while serving,
//! and [`MountManager::stop_all`] unmounts whatever is still mounted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::{Id, JoinError, JoinSet};
use xearthlayer::fs::OverlayFs;
use xearthlayer::texture::TextureService;

use crate::packages::Package;
use crate::start::mount_package;
use crate::status::MountView;

/// A session task's end: the package's index in `mounted`, and `Err` if
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

/// The live sessions of a set of packages.
pub struct MountManager {
    mounted: Vec<Package>,
    /// The filesystem core of each mounted package, for the status view.
    filesystems: Vec<Arc<OverlayFs<TextureService>>>,
    failed: Vec<(Package, String)>,
    stop: watch::Sender<bool>,
    sessions: JoinSet<Outcome>,
    /// Which package each task serves, to name it even if the task panics.
    tasks: HashMap<Id, usize>,
}

impl MountManager {
    /// Mounts every package over `service`; a failure is recorded and the
    /// rest still mount.
    pub async fn start(
        packages: Vec<Package>,
        service: &TextureService,
        allow_other: bool,
    ) -> MountManager {
        let (stop, _) = watch::channel(false);
        let mut manager = MountManager {
            mounted: Vec::new(),
            filesystems: Vec::new(),
            failed: Vec::new(),
            stop,
            sessions: JoinSet::new(),
            tasks: HashMap::new(),
        };
        for package in packages {
            let session = mount_package(
                &package.source,
                &package.mountpoint,
                service.clone(),
                allow_other,
            )
            .await;
            let mut session = match session {
                Ok((session, fs)) => {
                    manager.filesystems.push(fs);
                    session
                }
                Err(e) => {
                    manager.failed.push((package, e.to_string()));
                    continue;
                }
            };
            let index = manager.mounted.len();
            manager.mounted.push(package);
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
        manager
    }

    /// The packages mounted, in order.
    pub fn mounted(&self) -> &[Package] {
        &self.mounted
    }

    /// Each mount as the status view shows it.
    pub fn views(&self) -> Vec<MountView> {
        self.mounted
            .iter()
            .zip(&self.filesystems)
            .map(|(package, fs)| MountView {
                mountpoint: package.mountpoint.clone(),
                fs: Arc::clone(fs),
            })
            .collect()
    }

    /// The packages that could not be mounted, and why.
    pub fn failed(&self) -> &[(Package, String)] {
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

    /// Unmounts every live session and reports how each ended.
    pub async fn stop_all(mut self) -> Vec<Ended> {
        self.stop.send_replace(true);
        let mut ended = Vec::new();
        while let Some(joined) = self.sessions.join_next_with_id().await {
            ended.push(self.ended(joined));
        }
        ended.sort_by_key(|e| e.mountpoint.clone());
        ended
    }

    fn ended(&self, joined: Result<(Id, Outcome), JoinError>) -> Ended {
        let (index, result) = match joined {
            Ok((_, outcome)) => outcome,
            Err(e) => (
                self.tasks.get(&e.id()).copied().unwrap_or_default(),
                Err(format!("the session's task failed: {e}")),
            ),
        };
        let package = &self.mounted[index];
        Ended {
            name: package.name.clone(),
            mountpoint: package.mountpoint.clone(),
            result,
        }
    }
}
