//! Which scenery packages `xearthlayer run` mounts, and where.
//!
//! Two places hold them. The packages folder is XEarthLayer's own: every
//! folder in it with a `terrain/` is mounted. X-Plane's Custom Scenery holds
//! everyone's packages: an Ortho4XP-style one counts only when its `.ter`
//! files name textures its `textures/` lacks, since a package with all its
//! textures needs no help. Each package is mounted at
//! `Custom Scenery/<name>_xel`, which X-Plane loads instead of the source.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use xearthlayer::fs::{TextureIndex, TEXTURES_DIR};

/// Appended to a package's name to name its mount.
pub const MOUNT_SUFFIX: &str = "_xel";

/// Where a package was found.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    PackagesFolder,
    /// In Custom Scenery, naming `textures` textures of which `missing` are absent.
    CustomScenery {
        textures: usize,
        missing: usize,
    },
}

/// A package to mount.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    pub name: String,
    pub source: PathBuf,
    pub mountpoint: PathBuf,
    pub origin: Origin,
}

/// What a search found, and what it passed over that is worth saying.
#[derive(Debug, Default)]
pub struct Discovery {
    pub packages: Vec<Package>,
    pub notes: Vec<String>,
}

/// Finds the packages of `packages_dir` (if any) and of `custom_scenery`,
/// each mounted in `custom_scenery`. Blocking: it reads every `.ter` file
/// of Custom Scenery packages that have `terrain/`.
pub fn discover(packages_dir: Option<&Path>, custom_scenery: &Path) -> io::Result<Discovery> {
    let mut found = Discovery::default();
    let mut sources = HashSet::new();
    let mut mountpoints = HashSet::new();
    let mut add = |found: &mut Discovery, name: String, source: PathBuf, origin: Origin| {
        let mountpoint = custom_scenery.join(format!("{name}{MOUNT_SUFFIX}"));
        if !sources.insert(source.canonicalize().unwrap_or_else(|_| source.clone())) {
            return;
        }
        if !mountpoints.insert(mountpoint.clone()) {
            found.notes.push(format!(
                "{} is skipped: a package of the same name is mounted at {} already",
                source.display(),
                mountpoint.display()
            ));
            return;
        }
        found.packages.push(Package {
            name,
            source,
            mountpoint,
            origin,
        });
    };
    if let Some(dir) = packages_dir {
        match package_folders(dir) {
            Ok(folders) => {
                for (name, source) in folders {
                    if source.join("terrain").is_dir() {
                        add(&mut found, name, source, Origin::PackagesFolder);
                    } else {
                        found.notes.push(format!(
                            "{} has no terrain/ folder: not a scenery package",
                            source.display()
                        ));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                found.notes.push(format!(
                    "the packages folder {} does not exist",
                    dir.display()
                ));
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot list {}: {e}", dir.display()),
                ))
            }
        }
    }
    let folders = package_folders(custom_scenery).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot list {}: {e}", custom_scenery.display()),
        )
    })?;
    for (name, source) in folders {
        if !source.join("terrain").is_dir() {
            continue;
        }
        let index = match TextureIndex::build(&source) {
            Ok(index) => index,
            Err(e) => {
                found.notes.push(format!(
                    "{} is skipped: cannot read its terrain: {e}",
                    source.display()
                ));
                continue;
            }
        };
        let textures = source.join(TEXTURES_DIR);
        let missing = index.names().filter(|n| !textures.join(n).exists()).count();
        if missing > 0 {
            let origin = Origin::CustomScenery {
                textures: index.len(),
                missing,
            };
            add(&mut found, name, source, origin);
        }
    }
    Ok(found)
}

/// The folders of `dir` that may be packages, by name: hidden folders and
/// our own mounts left out.
fn package_folders(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        // `is_dir` follows symlinks: packages are often linked into Custom Scenery.
        if name.starts_with('.') || name.ends_with(MOUNT_SUFFIX) || !path.is_dir() {
            continue;
        }
        folders.push((name, path));
    }
    folders.sort();
    Ok(folders)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(dir: &Path, texture: &str, with_texture: bool) {
        std::fs::create_dir_all(dir.join("terrain")).unwrap();
        std::fs::write(
            dir.join("terrain").join(texture.replace(".dds", ".ter")),
            format!("A\n800\nTERRAIN\n\nBASE_TEX_NOWRAP ../textures/{texture}\n"),
        )
        .unwrap();
        if with_texture {
            std::fs::create_dir_all(dir.join("textures")).unwrap();
            std::fs::write(dir.join("textures").join(texture), b"dds").unwrap();
        }
    }

    #[test]
    fn finds_packages_that_need_textures() {
        let root = tempfile::tempdir().unwrap();
        let cs = root.path().join("Custom Scenery");
        let pkgs = root.path().join("packages");
        package(&pkgs.join("zzXEL_eu"), "25264_10368_BI16.dds", false);
        std::fs::create_dir_all(pkgs.join("notes")).unwrap();
        package(&cs.join("zOrtho4XP_+47-006"), "25264_10368_BI16.dds", false);
        package(&cs.join("zOrtho4XP_complete"), "25264_10384_BI16.dds", true);
        package(
            &cs.join("zOrtho4XP_+47-006_xel"),
            "25264_10368_BI16.dds",
            false,
        );
        std::fs::create_dir_all(cs.join("KSEA Demo Area")).unwrap();
        // The same package linked into Custom Scenery is mounted once.
        std::os::unix::fs::symlink(pkgs.join("zzXEL_eu"), cs.join("zzXEL_eu")).unwrap();

        let found = discover(Some(&pkgs), &cs).unwrap();
        let names: Vec<&str> = found.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["zzXEL_eu", "zOrtho4XP_+47-006"]);
        assert_eq!(found.packages[0].mountpoint, cs.join("zzXEL_eu_xel"));
        assert_eq!(found.packages[0].origin, Origin::PackagesFolder);
        assert_eq!(
            found.packages[1].origin,
            Origin::CustomScenery {
                textures: 1,
                missing: 1
            }
        );
        assert_eq!(found.notes.len(), 1, "{:?}", found.notes);
        assert!(found.notes[0].contains("no terrain/"));

        let found = discover(Some(&root.path().join("none")), &cs).unwrap();
        assert!(found.notes[0].contains("does not exist"));
        assert!(discover(None, &root.path().join("none")).is_err());
    }
}
