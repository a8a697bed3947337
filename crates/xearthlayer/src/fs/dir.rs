//! Directory listings.
//!
//! `opendir` takes a snapshot (real entries with their `lstat`, plus the
//! virtual textures for `textures/`) so that offsets stay valid across the
//! `readdir` calls of one open directory. An entry's offset is its position
//! in the snapshot: `.`, `..`, the real entries, then the indexed textures
//! (those shadowed by a real file of the same name are skipped but keep
//! their position).

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::attr::{Attr, DirEntry, DirEntryPlus, FileKind};
use super::inode::{InodeTable, NodeKind};

/// One real entry of a directory, as seen at `opendir`.
pub(crate) struct RealEntry {
    pub name: OsString,
    pub kind: NodeKind,
    /// Attributes with `ino` left to be filled when listed.
    pub attr: Attr,
}

/// The virtual part of the `textures/` listing.
pub(crate) struct VirtualEntries {
    /// The indexed textures, listed in its (sorted) order.
    pub index: crate::package::PackageIndex,
    /// Indexed names that a real file shadows.
    pub shadowed: HashSet<OsString>,
    /// Attributes every virtual texture has, `ino` left to be filled.
    pub attr: Attr,
}

/// A directory listing taken at `opendir`.
pub(crate) struct DirSnapshot {
    pub ino: u64,
    pub parent_ino: u64,
    pub rel: Arc<Path>,
    /// The directory's own attributes (sent for `.` and `..`, which the
    /// kernel ignores in readdirplus).
    pub attr: Attr,
    pub real: Vec<RealEntry>,
    pub virtuals: Option<VirtualEntries>,
}

/// One listed entry before the inode number is assigned.
struct Listed {
    name: OsString,
    kind: FileKind,
    /// `None` for `.` and `..`.
    node: Option<(PathBuf, NodeKind)>,
    ino: Option<u64>,
    attr: Attr,
}

impl DirSnapshot {
    fn len(&self) -> u64 {
        let virtuals = self.virtuals.as_ref().map_or(0, |v| v.index.len());
        (2 + self.real.len() + virtuals) as u64
    }

    /// The entry at `pos`, `None` if it is a shadowed texture.
    fn entry(&self, pos: u64) -> Option<Listed> {
        let dot = |name: &str, ino| Listed {
            name: name.into(),
            kind: FileKind::Directory,
            node: None,
            ino: Some(ino),
            attr: Attr { ino, ..self.attr },
        };
        match pos {
            0 => return Some(dot(".", self.ino)),
            1 => return Some(dot("..", self.parent_ino)),
            _ => {}
        }
        let i = (pos - 2) as usize;
        if let Some(real) = self.real.get(i) {
            return Some(Listed {
                name: real.name.clone(),
                kind: real.attr.kind,
                node: Some((self.rel.join(&real.name), real.kind.clone())),
                ino: None,
                attr: real.attr,
            });
        }
        let virtuals = self.virtuals.as_ref()?;
        let name = OsString::from(virtuals.index.name_at(i - self.real.len())?);
        if virtuals.shadowed.contains(&name) {
            return None;
        }
        Some(Listed {
            node: Some((self.rel.join(&name), NodeKind::Texture)),
            name,
            kind: FileKind::RegularFile,
            ino: None,
            attr: virtuals.attr,
        })
    }
}

/// Walks a snapshot from an offset, assigning inode numbers.
struct Cursor<'a> {
    inodes: &'a InodeTable,
    snap: Arc<DirSnapshot>,
    pos: u64,
}

impl Cursor<'_> {
    /// The next entry with its node (for lookup counting) and full attributes.
    fn next(&mut self) -> Option<(DirEntryPlus, Option<(PathBuf, NodeKind)>)> {
        while self.pos < self.snap.len() {
            let pos = self.pos;
            self.pos += 1;
            let Some(listed) = self.snap.entry(pos) else {
                continue;
            };
            let ino = match (&listed.node, listed.ino) {
                (_, Some(ino)) => ino,
                (Some((rel, _)), None) => self.inodes.ino_for(rel),
                (None, None) => continue,
            };
            let entry = DirEntry {
                ino,
                kind: listed.kind,
                name: listed.name,
                next_offset: pos + 1,
            };
            let attr = Attr { ino, ..listed.attr };
            return Some((DirEntryPlus { entry, attr }, listed.node));
        }
        None
    }
}

/// Entries of an open directory from an offset on (`readdir`).
pub struct Readdir<'a> {
    cursor: Cursor<'a>,
}

impl<'a> Readdir<'a> {
    pub(crate) fn new(inodes: &'a InodeTable, snap: Arc<DirSnapshot>, offset: u64) -> Self {
        Readdir {
            cursor: Cursor {
                inodes,
                snap,
                pos: offset,
            },
        }
    }
}

impl Iterator for Readdir<'_> {
    type Item = DirEntry;

    fn next(&mut self) -> Option<DirEntry> {
        self.cursor.next().map(|(plus, _)| plus.entry)
    }
}

/// Entries with attributes of an open directory from an offset on
/// (`readdirplus`).
///
/// The kernel counts a lookup for every entry it receives (except `.` and
/// `..`), but the consumer may take one entry more than fits its reply and
/// drop it. So an entry's lookup is counted only when the next one is asked
/// for, or when the listing ends: that is, once the consumer has kept it.
/// fuse3 consumes the stream exactly this way (it writes each entry before
/// pulling the next and stops at the first that does not fit).
pub struct ReaddirPlus<'a> {
    cursor: Cursor<'a>,
    pending: Option<(u64, PathBuf, NodeKind)>,
}

impl<'a> ReaddirPlus<'a> {
    pub(crate) fn new(inodes: &'a InodeTable, snap: Arc<DirSnapshot>, offset: u64) -> Self {
        ReaddirPlus {
            cursor: Cursor {
                inodes,
                snap,
                pos: offset,
            },
            pending: None,
        }
    }

    fn commit(&mut self) {
        if let Some((ino, rel, kind)) = self.pending.take() {
            self.cursor.inodes.count_at(ino, &rel, kind);
        }
    }
}

impl Iterator for ReaddirPlus<'_> {
    type Item = DirEntryPlus;

    fn next(&mut self) -> Option<DirEntryPlus> {
        self.commit();
        let (plus, node) = self.cursor.next()?;
        self.pending = node.map(|(rel, kind)| (plus.entry.ino, rel, kind));
        Some(plus)
    }
}
