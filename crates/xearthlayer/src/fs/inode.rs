//! Inode numbers and the kernel's lookup counts.
//!
//! A node is known by its path relative to the package root. Its inode
//! number is a hash of that path, so the same path gets the same number for
//! the whole mount, even after the kernel forgot it and looks it up again;
//! the rare collision with another live path is resolved by probing the
//! next numbers. The table keeps a node only while the kernel holds lookups
//! on it (`forget` drops it at zero), so it never grows beyond what the
//! kernel caches. The root and `textures/` have fixed numbers and are never
//! dropped.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::coord::TextureId;

use crate::package::TEXTURES_DIR;

/// Inode number of the mount root.
pub const ROOT_INO: u64 = 1;
/// Inode number of `textures/`.
pub const TEXTURES_INO: u64 = 2;

/// What a node is, as decided by the lookup that found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// A real directory of the package (the root included).
    Dir,
    /// `textures/`: the real directory if there is one, plus the virtual textures.
    TexturesDir,
    /// A real non-directory (file, symlink, ...).
    Real,
    /// A virtual texture, named by its path's file name (see
    /// [`texture_id`]): not kept here, as a mount may hold half a million.
    Texture,
}

impl NodeKind {
    pub(crate) fn is_dir(&self) -> bool {
        matches!(self, NodeKind::Dir | NodeKind::TexturesDir)
    }
}

/// The texture a [`NodeKind::Texture`] node at `rel` is.
pub(crate) fn texture_id(rel: &Path) -> Option<TextureId> {
    TextureId::parse(rel.file_name()?.to_str()?).ok()
}

/// A node: its path relative to the package root and what it is.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub rel: Arc<Path>,
    pub kind: NodeKind,
}

struct Slot {
    node: Node,
    lookups: u64,
}

/// Live nodes by inode number.
pub(crate) struct InodeTable {
    slots: RwLock<HashMap<u64, Slot>>,
}

impl InodeTable {
    pub fn new() -> Self {
        let mut slots = HashMap::new();
        for (ino, rel, kind) in [
            (ROOT_INO, "", NodeKind::Dir),
            (TEXTURES_INO, TEXTURES_DIR, NodeKind::TexturesDir),
        ] {
            let node = Node {
                rel: Arc::from(Path::new(rel)),
                kind,
            };
            slots.insert(ino, Slot { node, lookups: 0 });
        }
        InodeTable {
            slots: RwLock::new(slots),
        }
    }

    pub fn get(&self, ino: u64) -> Option<Node> {
        self.read().get(&ino).map(|slot| slot.node.clone())
    }

    /// The inode number `rel` has, or would get if looked up now.
    pub fn ino_for(&self, rel: &Path) -> u64 {
        if let Some(ino) = fixed_ino(rel) {
            return ino;
        }
        let slots = self.read();
        candidates(rel)
            .find(|ino| slots.get(ino).is_none_or(|slot| &*slot.node.rel == rel))
            .unwrap_or(0)
    }

    /// Counts one kernel lookup of `rel` and returns its inode number.
    pub fn remember(&self, rel: &Path, kind: NodeKind) -> u64 {
        if let Some(ino) = fixed_ino(rel) {
            self.count_at(ino, rel, kind);
            return ino;
        }
        let mut slots = self.write();
        for ino in candidates(rel) {
            match slots.entry(ino) {
                Entry::Occupied(mut slot) if &*slot.get().node.rel == rel => {
                    let slot = slot.get_mut();
                    slot.lookups += 1;
                    // The package may have changed since: the newest lookup is right.
                    slot.node.kind = kind;
                    return ino;
                }
                Entry::Occupied(_) => continue,
                Entry::Vacant(vacant) => {
                    let node = Node {
                        rel: Arc::from(rel),
                        kind,
                    };
                    vacant.insert(Slot { node, lookups: 1 });
                    return ino;
                }
            }
        }
        unreachable!("the candidate sequence is endless")
    }

    /// Counts one kernel lookup of `rel` under `ino`, a number [`Self::ino_for`]
    /// gave out earlier (readdirplus hands the number out before it knows
    /// the kernel took the entry).
    pub fn count_at(&self, ino: u64, rel: &Path, kind: NodeKind) {
        let mut slots = self.write();
        match slots.entry(ino) {
            Entry::Occupied(mut slot) => {
                let slot = slot.get_mut();
                if &*slot.node.rel != rel {
                    // Another path took this number in between: only a hash
                    // collision racing a lookup gets here.
                    tracing::warn!(ino, old = %slot.node.rel.display(), new = %rel.display(), "inode number collision");
                }
                slot.lookups += 1;
                if fixed_ino(rel).is_none() {
                    slot.node.kind = kind;
                }
            }
            Entry::Vacant(vacant) => {
                let node = Node {
                    rel: Arc::from(rel),
                    kind,
                };
                vacant.insert(Slot { node, lookups: 1 });
            }
        }
    }

    /// The kernel dropped `nlookup` lookups of `ino`.
    pub fn forget(&self, ino: u64, nlookup: u64) {
        let mut slots = self.write();
        if let Entry::Occupied(mut slot) = slots.entry(ino) {
            let lookups = &mut slot.get_mut().lookups;
            *lookups = lookups.saturating_sub(nlookup);
            if *lookups == 0 && ino != ROOT_INO && ino != TEXTURES_INO {
                slot.remove();
            }
        }
    }

    /// Live nodes, the root and `textures/` included.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Lookups the kernel holds on `ino` (0 if unknown).
    #[cfg(test)]
    pub fn lookups(&self, ino: u64) -> u64 {
        self.read().get(&ino).map_or(0, |slot| slot.lookups)
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<u64, Slot>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<u64, Slot>> {
        self.slots.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn fixed_ino(rel: &Path) -> Option<u64> {
    if rel.as_os_str().is_empty() {
        Some(ROOT_INO)
    } else if rel == Path::new(TEXTURES_DIR) {
        Some(TEXTURES_INO)
    } else {
        None
    }
}

/// Inode numbers to try for `rel`, best first: its hash, then the numbers
/// after it, skipping 0 and the fixed ones.
fn candidates(rel: &Path) -> impl Iterator<Item = u64> {
    // SipHash with fixed keys: the same path hashes the same for the life of
    // the process, which is all a mount needs.
    let mut hasher = DefaultHasher::new();
    rel.hash(&mut hasher);
    let start = hasher.finish();
    (0u64..)
        .map(move |i| start.wrapping_add(i))
        .filter(|&ino| ino > TEXTURES_INO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_path_same_inode_across_forget() {
        let table = InodeTable::new();
        let rel = Path::new("terrain/a.ter");
        let ino = table.remember(rel, NodeKind::Real);
        assert_eq!(table.remember(rel, NodeKind::Real), ino);
        assert_eq!(table.lookups(ino), 2);
        table.forget(ino, 2);
        assert!(table.get(ino).is_none());
        assert_eq!(table.len(), 2);
        assert_eq!(table.ino_for(rel), ino);
        assert_eq!(table.remember(rel, NodeKind::Real), ino);
    }

    #[test]
    fn fixed_nodes_survive_forget() {
        let table = InodeTable::new();
        assert_eq!(
            table.remember(Path::new("textures"), NodeKind::TexturesDir),
            TEXTURES_INO
        );
        table.forget(TEXTURES_INO, 10);
        table.forget(ROOT_INO, 10);
        assert!(table.get(TEXTURES_INO).is_some());
        assert!(table.get(ROOT_INO).is_some());
    }

    #[test]
    fn collisions_probe_to_the_next_number() {
        let table = InodeTable::new();
        let rel = Path::new("x");
        let first = candidates(rel).next().unwrap();
        // Occupy the hash slot with another path.
        table.count_at(first, Path::new("other"), NodeKind::Real);
        let ino = table.remember(rel, NodeKind::Real);
        assert_ne!(ino, first);
        assert_eq!(table.ino_for(rel), ino);
        assert_eq!(&*table.get(ino).unwrap().rel, rel);
    }
}
