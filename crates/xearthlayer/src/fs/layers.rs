//! The package folders one mount shows, highest precedence first, and which
//! of them each path of the mount comes from.
//!
//! One folder (a `start` mount) maps every path straight onto it. Several
//! (the union mount of `run`) are merged directory by directory: a directory
//! of the mount lists the names that directory has in every folder holding
//! it; a file comes from the first folder that has it, and the later ones
//! lose (counted and logged per directory). So where two packages hold the
//! same DSF tile, X-Plane sees the one of the package ranked first.
//!
//! A merged directory is built on first use, in the blocking pool, and
//! kept: a lookup is then a binary search, never a probe of every folder.
//! Names are packed into one buffer per directory, 12 bytes per entry plus
//! the name (the 472,000 `.ter` names of 2,000 packages: about 20 MB), and
//! only subdirectories keep the list of folders holding them.
//!
//! What the mount serves of a path (attributes, bytes, link targets,
//! listings of a single package) is read through a [`PackageDir`] handle
//! on the folder it comes from, never through a symlink. A union opens a
//! folder's handle the first time one of its paths is used: one open file
//! per package in use, not per package installed. (A union's merged
//! listings take their names by path; a name is all they take.)

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::package_dir::PackageDir;

/// Where the paths of one mount come from.
pub struct Layers {
    /// Highest precedence first; never empty.
    roots: Vec<PathBuf>,
    /// A handle on each folder, opened on first use.
    dirs: Box<[std::sync::OnceLock<Arc<PackageDir>>]>,
    /// Merged directories of a union, by path relative to the mount.
    merged: Mutex<HashMap<PathBuf, Arc<OnceCell<Arc<MergedDir>>>>>,
}

/// One name of a merged directory.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The name is `names[start..start + len]`.
    start: u32,
    len: u16,
    /// The folder it comes from.
    layer: u16,
    is_dir: bool,
}

/// A directory of a union: every name any folder has there, each once.
#[derive(Debug, Default)]
struct MergedDir {
    names: Vec<u8>,
    /// Sorted by name.
    entries: Vec<Entry>,
    /// For each subdirectory (by index in `entries`), every folder that has
    /// it, in precedence order.
    subdir_layers: HashMap<u32, Box<[u16]>>,
}

impl MergedDir {
    fn name(&self, entry: &Entry) -> &[u8] {
        &self.names[entry.start as usize..entry.start as usize + usize::from(entry.len)]
    }

    fn find(&self, name: &[u8]) -> Option<(usize, Entry)> {
        let at = self
            .entries
            .binary_search_by(|e| self.name(e).cmp(name))
            .ok()?;
        Some((at, self.entries[at]))
    }
}

impl Layers {
    /// One package folder.
    pub fn single(root: PathBuf) -> Layers {
        Layers::union(vec![root])
    }

    /// Several package folders, highest precedence first (at least one, at
    /// most 65,535).
    pub fn union(roots: Vec<PathBuf>) -> Layers {
        assert!(
            !roots.is_empty() && roots.len() <= usize::from(u16::MAX),
            "a mount shows 1 to 65,535 folders"
        );
        Layers {
            dirs: roots.iter().map(|_| std::sync::OnceLock::new()).collect(),
            roots,
            merged: Mutex::new(HashMap::new()),
        }
    }

    /// The handle on folder number `layer`.
    pub fn dir(&self, layer: usize) -> io::Result<Arc<PackageDir>> {
        if let Some(dir) = self.dirs[layer].get() {
            return Ok(Arc::clone(dir));
        }
        let opened = Arc::new(PackageDir::open(&self.roots[layer])?);
        // Two first uses at once: one handle is kept, the other dropped.
        Ok(Arc::clone(self.dirs[layer].get_or_init(|| opened)))
    }

    /// The folders, highest precedence first.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The first folder (the only one of a single package).
    pub fn primary(&self) -> &Path {
        &self.roots[0]
    }

    /// The folder (its number) the mount's `rel` comes from, or `None`
    /// when no folder has it. For a single folder, that one (the path may
    /// not exist in it).
    pub async fn locate(&self, rel: &Path) -> io::Result<Option<usize>> {
        if self.roots.len() == 1 || rel.as_os_str().is_empty() {
            return Ok(Some(0));
        }
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Ok(None);
        };
        let Some(dir) = self.merged_dir(parent).await? else {
            return Ok(None);
        };
        Ok(dir
            .find(name.as_bytes())
            .map(|(_, entry)| usize::from(entry.layer)))
    }

    /// The names of directory `rel` of the mount, each with the folder (its
    /// number) it comes from, sorted by name. `NotFound` if no folder has it.
    pub async fn list(&self, rel: &Path) -> io::Result<Vec<(OsString, usize)>> {
        if self.roots.len() == 1 {
            let (dir, rel) = (self.dir(0)?, rel.to_path_buf());
            return tokio::task::spawn_blocking(move || {
                let mut entries = Vec::new();
                for entry in dir.read_dir(&rel)? {
                    entries.push((entry?.file_name(), 0));
                }
                entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                Ok(entries)
            })
            .await
            .map_err(io::Error::other)?;
        }
        let dir = self
            .merged_dir(rel)
            .await?
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(dir
            .entries
            .iter()
            .map(|entry| {
                let name = OsStr::from_bytes(dir.name(entry));
                (name.to_os_string(), usize::from(entry.layer))
            })
            .collect())
    }

    /// The merged directory `rel` of a union, built on first use; `None`
    /// when no folder has it.
    async fn merged_dir(&self, rel: &Path) -> io::Result<Option<Arc<MergedDir>>> {
        // Every folder has the root; a subdirectory's folders are known
        // from its parent's merged listing, so walk down from the root.
        let mut layers: Box<[u16]> = (0..self.roots.len() as u16).collect();
        let mut at = PathBuf::new();
        let mut components = rel.components().peekable();
        loop {
            let dir = self.merged_at(&at, layers).await?;
            let Some(component) = components.next() else {
                return Ok(Some(dir));
            };
            let name = component.as_os_str();
            let Some((index, entry)) = dir.find(name.as_bytes()) else {
                return Ok(None);
            };
            if !entry.is_dir {
                return Ok(None);
            }
            layers = dir
                .subdir_layers
                .get(&(index as u32))
                .cloned()
                .unwrap_or_default();
            at.push(name);
        }
    }

    async fn merged_at(&self, rel: &Path, layers: Box<[u16]>) -> io::Result<Arc<MergedDir>> {
        let cell = {
            let mut merged = self.merged.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(merged.entry(rel.to_path_buf()).or_default())
        };
        let dir = cell
            .get_or_try_init(|| {
                let roots: Vec<PathBuf> = layers
                    .iter()
                    .map(|&l| self.roots[usize::from(l)].clone())
                    .collect();
                let rel = rel.to_path_buf();
                async move {
                    tokio::task::spawn_blocking(move || merge(&rel, &roots, &layers))
                        .await
                        .map_err(io::Error::other)?
                        .map(Arc::new)
                }
            })
            .await?;
        Ok(Arc::clone(dir))
    }
}

/// Merges directory `rel` of the folders `roots` (whose layer numbers are
/// `layers`, in precedence order). A folder whose copy cannot be read is
/// left out, with a warning.
fn merge(rel: &Path, roots: &[PathBuf], layers: &[u16]) -> io::Result<MergedDir> {
    let mut names = Vec::new();
    let mut all = Vec::new();
    for (root, &layer) in roots.iter().zip(layers) {
        let entries = match std::fs::read_dir(root.join(rel)) {
            Ok(entries) => entries,
            Err(err) => {
                tracing::warn!(dir = %root.join(rel).display(), %err, "cannot list a package's directory; the union mount leaves it out");
                continue;
            }
        };
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().into_vec();
            let Ok(len) = u16::try_from(name.len()) else {
                continue;
            };
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            all.push(Entry {
                start: names.len() as u32,
                len,
                layer,
                is_dir,
            });
            names.extend_from_slice(&name);
        }
    }
    let name_of = |e: &Entry| &names[e.start as usize..e.start as usize + usize::from(e.len)];
    all.sort_unstable_by(|a, b| name_of(a).cmp(name_of(b)).then(a.layer.cmp(&b.layer)));

    let mut dir = MergedDir::default();
    let mut shadowed = 0usize;
    let mut group = 0;
    while group < all.len() {
        let name = name_of(&all[group]);
        let end = group
            + all[group..]
                .iter()
                .take_while(|e| name_of(e) == name)
                .count();
        let winner = all[group];
        let index = dir.entries.len() as u32;
        dir.entries.push(Entry {
            start: dir.names.len() as u32,
            ..winner
        });
        dir.names.extend_from_slice(name);
        if winner.is_dir {
            let layers: Box<[u16]> = all[group..end]
                .iter()
                .filter(|e| e.is_dir)
                .map(|e| e.layer)
                .collect();
            dir.subdir_layers.insert(index, layers);
        } else {
            shadowed += end - group - 1;
        }
        group = end;
    }
    dir.names.shrink_to_fit();
    dir.entries.shrink_to_fit();
    if shadowed > 0 {
        tracing::info!(
            dir = %rel.display(),
            files = shadowed,
            "files held by more than one package: the package ranked first serves each"
        );
    }
    Ok(dir)
}

/// A DSF tile held by more than one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowedTile {
    /// `Earth nav data/+40-010/+47-006.dsf`.
    pub path: PathBuf,
    /// Index in the folders of the one served.
    pub winner: usize,
    /// Indexes of the ones hidden, in precedence order.
    pub losers: Vec<usize>,
}

/// The DSF tiles that more than one of `roots` (highest precedence first)
/// holds, by path. Blocking: lists every folder's `Earth nav data/`.
pub fn shadowed_tiles(roots: &[PathBuf]) -> Vec<ShadowedTile> {
    let mut holders: HashMap<PathBuf, Vec<usize>> = HashMap::new();
    for (i, root) in roots.iter().enumerate() {
        let nav = root.join(crate::package::DSF_DIR);
        let Ok(boxes) = std::fs::read_dir(&nav) else {
            continue;
        };
        for tile_box in boxes.flatten() {
            let Ok(tiles) = std::fs::read_dir(tile_box.path()) else {
                continue;
            };
            for tile in tiles.flatten() {
                let name = tile.file_name();
                if Path::new(&name).extension() != Some(OsStr::new("dsf")) {
                    continue;
                }
                let path = Path::new(crate::package::DSF_DIR)
                    .join(tile_box.file_name())
                    .join(name);
                holders.entry(path).or_default().push(i);
            }
        }
    }
    let mut shadowed: Vec<ShadowedTile> = holders
        .into_iter()
        .filter(|(_, held)| held.len() > 1)
        .map(|(path, held)| ShadowedTile {
            path,
            winner: held[0],
            losers: held[1..].to_vec(),
        })
        .collect();
    shadowed.sort_by(|a, b| a.path.cmp(&b.path));
    shadowed
}
