//! `Custom Scenery/scenery_packs.ini`: X-Plane's list of scenery packages,
//! highest priority first.
//!
//! ```text
//! I
//! 1000 Version
//! SCENERY
//!
//! SCENERY_PACK Custom Scenery/KSEA Demo Area/
//! SCENERY_PACK_DISABLED Custom Scenery/zOrtho4XP_+47-006/
//! ```
//!
//! Paths are relative to the X-Plane folder, or absolute. Every mount must
//! be listed, and no source in Custom Scenery may be: X-Plane would load it
//! with its textures missing. So a source's line is disabled and its mount's
//! line goes just above it, taking its place in the order; a mount with no
//! source line goes at the end (orthophotos rank low). Every other line,
//! its line ending included, stays as it was. A mount the user disabled
//! stays disabled: that is their choice.

use std::io;
use std::path::{Path, PathBuf};

use crate::files;

const ENABLED: &str = "SCENERY_PACK";
const DISABLED: &str = "SCENERY_PACK_DISABLED";
/// What X-Plane writes at the top of a new file.
const HEADER: &str = "I\n1000 Version\nSCENERY\n\n";

/// A mounted package: its source folder and where it is mounted.
#[derive(Debug, Clone)]
pub struct Pack {
    pub source: PathBuf,
    pub mount: PathBuf,
}

/// What bringing the file up to date takes.
#[derive(Debug, Default, PartialEq)]
pub struct Edit {
    /// The new contents.
    pub text: String,
    /// Each change, readable: `added SCENERY_PACK ...`.
    pub changes: Vec<String>,
    /// Things left alone that the user should know about.
    pub notes: Vec<String>,
}

/// A `SCENERY_PACK` line: enabled or not, and the folder it names.
struct Listed {
    enabled: bool,
    folder: PathBuf,
}

fn parse_line(line: &str, xplane_root: &Path) -> Option<Listed> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (keyword, path) = line.split_once(' ')?;
    let enabled = match keyword {
        ENABLED => true,
        DISABLED => false,
        _ => return None,
    };
    // `Path` equality ignores a trailing slash.
    let folder = Path::new(path.trim());
    Some(Listed {
        enabled,
        folder: if folder.is_absolute() {
            folder.to_path_buf()
        } else {
            xplane_root.join(folder)
        },
    })
}

/// How the file names `folder`: relative to the X-Plane folder when inside
/// it, with the trailing slash X-Plane writes.
fn entry_path(folder: &Path, xplane_root: &Path) -> String {
    let shown = folder.strip_prefix(xplane_root).unwrap_or(folder);
    format!("{}/", shown.display())
}

/// The file `text` brought up to date for `packs`; `xplane_root` is the
/// folder relative paths start from (the parent of Custom Scenery).
pub fn plan(text: &str, packs: &[Pack], xplane_root: &Path) -> Edit {
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let base = if text.trim().is_empty() {
        HEADER.replace('\n', eol)
    } else {
        text.to_string()
    };
    let mut lines: Vec<String> = base.split_inclusive('\n').map(str::to_string).collect();
    let mut edit = Edit::default();
    let find = |lines: &[String], folder: &Path| {
        lines
            .iter()
            .position(|l| parse_line(l, xplane_root).is_some_and(|listed| listed.folder == folder))
    };
    for pack in packs {
        let mount_line = format!("{ENABLED} {}", entry_path(&pack.mount, xplane_root));
        let mount_at = find(&lines, &pack.mount);
        if let Some(at) = mount_at {
            if parse_line(&lines[at], xplane_root).is_some_and(|l| !l.enabled) {
                edit.notes.push(format!(
                    "{} is disabled in scenery_packs.ini, so X-Plane will not load it; enable it to use the mount",
                    entry_path(&pack.mount, xplane_root)
                ));
            }
        }
        let source_at = find(&lines, &pack.source)
            .filter(|&at| parse_line(&lines[at], xplane_root).is_some_and(|l| l.enabled));
        if let Some(at) = source_at {
            let ending = if lines[at].ends_with('\n') { eol } else { "" };
            let disabled = format!("{DISABLED} {}", entry_path(&pack.source, xplane_root));
            edit.changes.push(format!(
                "disabled {ENABLED} {} (the mount serves it)",
                entry_path(&pack.source, xplane_root)
            ));
            lines[at] = format!("{disabled}{ending}");
            if mount_at.is_none() {
                edit.changes
                    .push(format!("added {mount_line} (in the source's place)"));
                lines.insert(at, format!("{mount_line}{eol}"));
            }
        } else if mount_at.is_none() {
            if lines.last().is_some_and(|l| !l.ends_with('\n')) {
                if let Some(last) = lines.last_mut() {
                    last.push_str(eol);
                }
            }
            edit.changes
                .push(format!("added {mount_line} (at the end)"));
            lines.push(format!("{mount_line}{eol}"));
        }
    }
    edit.text = if edit.changes.is_empty() {
        text.to_string()
    } else {
        lines.concat()
    };
    edit
}

/// Where the backup of the file goes before it is edited.
pub fn backup_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(".xel-backup");
    PathBuf::from(name)
}

/// Reads the file (a missing one is empty) and plans the edit.
pub fn read_and_plan(file: &Path, packs: &[Pack], xplane_root: &Path) -> io::Result<Edit> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot read {}: {e}", file.display()),
            ))
        }
    };
    Ok(plan(&text, packs, xplane_root))
}

/// The folders the file lists, enabled or not, in its order: X-Plane's
/// precedence, highest first. A missing file lists none.
pub fn listed_folders(file: &Path, xplane_root: &Path) -> io::Result<Vec<PathBuf>> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot read {}: {e}", file.display()),
            ))
        }
    };
    Ok(text
        .lines()
        .filter_map(|line| parse_line(line, xplane_root))
        .map(|listed| listed.folder)
        .collect())
}

/// Writes `edit` to `file`: the old file copied to [`backup_path`] first,
/// then the new one put in place atomically.
pub fn apply(file: &Path, edit: &Edit) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    if let Ok(md) = std::fs::metadata(file) {
        // Written anew in place of whatever is at the backup's name: never
        // through a symlink someone put there.
        let backup = std::fs::read(file).and_then(|old| {
            files::write_in_place_of(
                &backup_path(file),
                &old,
                md.mode() & 0o7777,
                Some((md.uid(), md.gid())),
            )
        });
        backup.map_err(|e| {
            io::Error::new(e.kind(), format!("cannot back up {}: {e}", file.display()))
        })?;
    }
    files::replace(file, edit.text.as_bytes(), None)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot write {}: {e}", file.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "/xp";

    fn pack(name: &str) -> Pack {
        Pack {
            source: PathBuf::from(format!("/xp/Custom Scenery/{name}")),
            mount: PathBuf::from(format!("/xp/Custom Scenery/{name}_xel")),
        }
    }

    const EXISTING: &str = "I\r\n1000 Version\r\nSCENERY\r\n\r\n\
        SCENERY_PACK Custom Scenery/KSEA Demo Area/\r\n\
        SCENERY_PACK *GLOBAL_AIRPORTS*\r\n\
        SCENERY_PACK Custom Scenery/zOrtho4XP_+47-006/\r\n\
        SCENERY_PACK_DISABLED Custom Scenery/Old Mesh/\r\n\
        SCENERY_PACK /elsewhere/zzMesh/\r\n";

    #[test]
    fn mounts_take_their_sources_place_and_every_other_line_stays() {
        let packs = [
            pack("zOrtho4XP_+47-006"),
            Pack {
                source: PathBuf::from("/home/me/.xearthlayer/packages/zzXEL_eu"),
                mount: PathBuf::from("/xp/Custom Scenery/zzXEL_eu_xel"),
            },
        ];
        let edit = plan(EXISTING, &packs, Path::new(ROOT));
        let expected = "I\r\n1000 Version\r\nSCENERY\r\n\r\n\
            SCENERY_PACK Custom Scenery/KSEA Demo Area/\r\n\
            SCENERY_PACK *GLOBAL_AIRPORTS*\r\n\
            SCENERY_PACK Custom Scenery/zOrtho4XP_+47-006_xel/\r\n\
            SCENERY_PACK_DISABLED Custom Scenery/zOrtho4XP_+47-006/\r\n\
            SCENERY_PACK_DISABLED Custom Scenery/Old Mesh/\r\n\
            SCENERY_PACK /elsewhere/zzMesh/\r\n\
            SCENERY_PACK Custom Scenery/zzXEL_eu_xel/\r\n";
        assert_eq!(edit.text, expected);
        assert_eq!(edit.changes.len(), 3, "{:?}", edit.changes);
        // Every line of the old file is still there, in order, but the source's.
        let kept: Vec<&str> = edit
            .text
            .lines()
            .filter(|l| EXISTING.lines().any(|o| o == *l))
            .collect();
        let old: Vec<&str> = EXISTING
            .lines()
            .filter(|l| !l.contains("zOrtho4XP"))
            .collect();
        assert_eq!(kept, old);
        // A second pass finds nothing to do.
        let again = plan(&edit.text, &packs, Path::new(ROOT));
        assert!(again.changes.is_empty(), "{:?}", again.changes);
        assert_eq!(again.text, edit.text);
    }

    #[test]
    fn a_new_file_gets_the_header_and_a_disabled_mount_stays_disabled() {
        let edit = plan("", &[pack("a")], Path::new(ROOT));
        assert_eq!(
            edit.text,
            "I\n1000 Version\nSCENERY\n\nSCENERY_PACK Custom Scenery/a_xel/\n"
        );
        let user_disabled =
            "I\n1000 Version\nSCENERY\n\nSCENERY_PACK_DISABLED Custom Scenery/a_xel/";
        let edit = plan(user_disabled, &[pack("a")], Path::new(ROOT));
        assert!(edit.changes.is_empty());
        assert_eq!(edit.text, user_disabled);
        assert_eq!(edit.notes.len(), 1);
        // No final newline: one is added before the new line.
        let edit = plan(
            "I\n1000 Version\nSCENERY\n\nSCENERY_PACK /x/",
            &[pack("b")],
            Path::new(ROOT),
        );
        assert!(
            edit.text
                .ends_with("SCENERY_PACK /x/\nSCENERY_PACK Custom Scenery/b_xel/\n"),
            "{}",
            edit.text
        );
    }

    #[test]
    fn the_backup_is_never_written_through_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("scenery_packs.ini");
        std::fs::write(&file, EXISTING).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, backup_path(&file)).unwrap();
        let edit = read_and_plan(&file, &[pack("zOrtho4XP_+47-006")], Path::new(ROOT)).unwrap();
        apply(&file, &edit).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(
            std::fs::read_to_string(backup_path(&file)).unwrap(),
            EXISTING
        );
    }

    #[test]
    fn apply_keeps_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("scenery_packs.ini");
        std::fs::write(&file, EXISTING).unwrap();
        let edit = read_and_plan(&file, &[pack("zOrtho4XP_+47-006")], Path::new(ROOT)).unwrap();
        apply(&file, &edit).unwrap();
        assert_eq!(
            std::fs::read_to_string(backup_path(&file)).unwrap(),
            EXISTING
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), edit.text);
    }
}
