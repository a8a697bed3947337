//! Finding X-Plane. Its installer lists each install folder, one a line, in
//! `~/.x-plane/x-plane_install_12.txt` (`x-plane_install_11.txt` for X-Plane
//! 11); scenery packages live in `<install>/Custom Scenery`. A folder given
//! by flag or configuration wins over what is found.

use std::path::{Path, PathBuf};

use crate::config::{home_dir, FileSettings};

/// The folder scenery packages go in, under an X-Plane install.
pub const CUSTOM_SCENERY: &str = "Custom Scenery";

/// The X-Plane versions looked for, newest first.
const VERSIONS: [u8; 2] = [12, 11];

/// An X-Plane install found from its installer's list.
#[derive(Debug, Clone, PartialEq)]
pub struct Install {
    pub version: u8,
    pub root: PathBuf,
    /// The `x-plane_install_NN.txt` that lists it.
    pub listed_in: PathBuf,
}

/// The installs listed under `home/.x-plane`, newest X-Plane first; only
/// those whose folder holds `Custom Scenery`.
pub fn find_installs(home: &Path) -> Vec<Install> {
    let mut found = Vec::new();
    for version in VERSIONS {
        let listed_in = home
            .join(".x-plane")
            .join(format!("x-plane_install_{version}.txt"));
        let Ok(text) = std::fs::read_to_string(&listed_in) else {
            continue;
        };
        for line in text.lines() {
            let root = PathBuf::from(line.trim().trim_end_matches('/'));
            if line.trim().is_empty() || !root.join(CUSTOM_SCENERY).is_dir() {
                continue;
            }
            found.push(Install {
                version,
                root,
                listed_in: listed_in.clone(),
            });
        }
    }
    found
}

/// X-Plane's Custom Scenery folder and where that came from.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomScenery {
    pub dir: PathBuf,
    /// `--custom-scenery`, `xplane.custom_scenery in FILE`, or the install list.
    pub origin: String,
}

impl CustomScenery {
    /// The X-Plane folder above it, which `scenery_packs.ini` paths are
    /// relative to.
    pub fn xplane_root(&self) -> &Path {
        self.dir.parent().unwrap_or(&self.dir)
    }
}

/// The Custom Scenery folder: the flag, else the file, else the newest
/// X-Plane found. The error says how to name it.
pub fn custom_scenery(
    flag: Option<&Path>,
    file: &FileSettings,
    file_path: &Path,
) -> Result<CustomScenery, String> {
    let named = match (flag, &file.custom_scenery) {
        (Some(dir), _) => Some((dir.to_path_buf(), "--custom-scenery".to_string())),
        (None, Some(dir)) => Some((
            dir.clone(),
            format!("xplane.custom_scenery in {}", file_path.display()),
        )),
        (None, None) => None,
    };
    if let Some((dir, origin)) = named {
        if !dir.is_dir() {
            return Err(format!(
                "the Custom Scenery folder {} (from {origin}) is not a directory: give X-Plane's `Custom Scenery` folder",
                dir.display()
            ));
        }
        return Ok(CustomScenery { dir, origin });
    }
    let install = home_dir()
        .map(|home| find_installs(&home))
        .and_then(|installs| installs.into_iter().next())
        .ok_or_else(|| {
            "X-Plane was not found (no install with a Custom Scenery folder is listed in \
             ~/.x-plane/x-plane_install_12.txt or x-plane_install_11.txt): pass --custom-scenery DIR, \
             or run `xearthlayer config set xplane.custom_scenery DIR`"
                .to_string()
        })?;
    Ok(CustomScenery {
        dir: install.root.join(CUSTOM_SCENERY),
        origin: format!(
            "X-Plane {} listed in {}",
            install.version,
            install.listed_in.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_installs_newest_first_skipping_missing_folders() {
        let home = tempfile::tempdir().unwrap();
        let xp12 = home.path().join("X-Plane 12");
        let xp11 = home.path().join("X-Plane 11");
        std::fs::create_dir_all(xp12.join(CUSTOM_SCENERY)).unwrap();
        std::fs::create_dir_all(xp11.join(CUSTOM_SCENERY)).unwrap();
        std::fs::create_dir_all(home.path().join(".x-plane")).unwrap();
        std::fs::write(
            home.path().join(".x-plane/x-plane_install_12.txt"),
            format!("/gone/X-Plane 12/\r\n{}/\r\n", xp12.display()),
        )
        .unwrap();
        std::fs::write(
            home.path().join(".x-plane/x-plane_install_11.txt"),
            format!("{}\n", xp11.display()),
        )
        .unwrap();
        let found = find_installs(home.path());
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].version, &found[0].root), (12, &xp12));
        assert_eq!((found[1].version, &found[1].root), (11, &xp11));
        assert!(find_installs(&home.path().join("nobody")).is_empty());
    }

    #[test]
    fn the_flag_beats_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = FileSettings {
            custom_scenery: Some(PathBuf::from("/nonexistent/Custom Scenery")),
            ..FileSettings::default()
        };
        let found = custom_scenery(Some(dir.path()), &file, Path::new("c.ini")).unwrap();
        assert_eq!(found.dir, dir.path());
        let err = custom_scenery(None, &file, Path::new("c.ini")).unwrap_err();
        assert!(err.contains("xplane.custom_scenery in c.ini"), "{err}");
    }
}
