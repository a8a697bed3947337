//! How `xearthlayer run` mounts the packages it found: all through one
//! union mount (the default), or one mount per package.
//!
//! The union is one `scenery_packs.ini` entry, one FUSE session and no
//! thread per package, at any package count; per-package mounts cost a
//! session each (and, as root, a thread each) and a user's mounts are
//! capped by `mount_max` in `/etc/fuse.conf` (1,000 by default). BENCHMARKS.md
//! has both measured over 2,000 packages.
//!
//! In the union, where two packages hold the same file (a DSF tile, a
//! `.ter`), the one X-Plane would prefer serves it: the package listed
//! higher in `scenery_packs.ini` (the source's line, enabled or disabled),
//! and for packages it does not list, the order X-Plane gives folders it
//! has no list for: by name.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use xearthlayer::fuse::user_mount::FuseConf;
use xearthlayer::fuse::MAX_ROOT_SESSIONS;

use crate::manager::Mount;
use crate::packages::{Package, MOUNT_SUFFIX};

/// The union mount's folder name in Custom Scenery (with [`MOUNT_SUFFIX`]).
pub const UNION_NAME: &str = "zzXEL_ortho";

/// How the packages are mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum MountModel {
    /// Every package through one mount, `Custom Scenery/zzXEL_ortho_xel`.
    #[default]
    Union,
    /// Each package at its own `Custom Scenery/<name>_xel`.
    PerPackage,
}

/// Where the union mount goes in `custom_scenery`.
pub fn union_mountpoint(custom_scenery: &Path) -> PathBuf {
    custom_scenery.join(format!("{UNION_NAME}{MOUNT_SUFFIX}"))
}

/// Sorts `packages` by X-Plane's precedence, highest first: in the order
/// `listed` (the folders of `scenery_packs.ini`) names their sources, then
/// the unlisted ones by name.
pub fn by_precedence(packages: &mut [Package], listed: &[PathBuf]) {
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let listed: Vec<PathBuf> = listed.iter().map(|p| canonical(p)).collect();
    packages.sort_by_cached_key(|package| {
        let source = canonical(&package.source);
        let rank = listed
            .iter()
            .position(|l| *l == source)
            .unwrap_or(usize::MAX);
        (rank, package.name.clone())
    });
}

/// The mounts that serve `packages` (already in precedence order).
pub fn mounts(model: MountModel, packages: Vec<Package>, custom_scenery: &Path) -> Vec<Mount> {
    match model {
        MountModel::Union => vec![Mount {
            name: UNION_NAME.to_string(),
            mountpoint: union_mountpoint(custom_scenery),
            packages,
            union: true,
        }],
        MountModel::PerPackage => packages
            .into_iter()
            .map(|package| Mount {
                name: package.name.clone(),
                mountpoint: package.mountpoint.clone(),
                packages: vec![package],
                union: false,
            })
            .collect(),
    }
}

/// The most mounts this process may hold, and what sets that limit.
pub fn mount_limit(as_user: bool, conf: &FuseConf) -> (usize, String) {
    if as_user {
        (
            conf.mount_max as usize,
            "mount_max in /etc/fuse.conf, for all of this user's FUSE mounts".to_string(),
        )
    } else {
        (
            MAX_ROOT_SESSIONS,
            "one reader thread per root mount".to_string(),
        )
    }
}

/// What to say before mounting `mounts` mounts when `limit` (see
/// [`mount_limit`]) is close or passed; `None` when it is far.
pub fn limit_warning(mounts: usize, limit: usize, what: &str) -> Option<String> {
    if mounts * 10 < limit * 8 {
        return None;
    }
    let verdict = if mounts > limit {
        format!(
            "only the first {limit} can mount, the other {} will fail",
            mounts - limit
        )
    } else {
        "close to the limit".to_string()
    };
    Some(format!(
        "{mounts} mounts against a limit of {limit} ({what}): {verdict}; serve every package through one mount with `--mount union`{}",
        if what.starts_with("mount_max") {
            ", or raise mount_max in /etc/fuse.conf"
        } else {
            ""
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packages::Origin;

    fn package(dir: &Path, name: &str) -> Package {
        Package {
            name: name.to_string(),
            source: dir.join(name),
            mountpoint: dir.join(format!("{name}_xel")),
            origin: Origin::PackagesFolder,
        }
    }

    #[test]
    fn listed_packages_rank_in_list_order_then_the_rest_by_name() {
        let dir = Path::new("/cs");
        let mut packages = vec![
            package(dir, "zOrtho4XP_b"),
            package(dir, "zOrtho4XP_c"),
            package(dir, "zOrtho4XP_a"),
            package(dir, "zOrtho4XP_d"),
        ];
        let listed = [dir.join("zOrtho4XP_d"), dir.join("zOrtho4XP_b")];
        by_precedence(&mut packages, &listed);
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["zOrtho4XP_d", "zOrtho4XP_b", "zOrtho4XP_a", "zOrtho4XP_c"]
        );
    }

    #[test]
    fn warns_near_and_past_the_limit_only() {
        assert_eq!(
            limit_warning(100, 1000, "mount_max in /etc/fuse.conf"),
            None
        );
        let near = limit_warning(850, 1000, "mount_max in /etc/fuse.conf").unwrap();
        assert!(near.contains("close to the limit"), "{near}");
        assert!(near.contains("raise mount_max"), "{near}");
        let past = limit_warning(1200, 1000, "mount_max in /etc/fuse.conf").unwrap();
        assert!(past.contains("the other 200 will fail"), "{past}");
        assert!(past.contains("--mount union"), "{past}");
    }
}
