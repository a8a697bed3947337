//! The texture index of many packages kept on disk between runs, so that a
//! start over thousands of packages reads one file instead of every `.ter`.
//!
//! Each package's part is valid while the modification times of the
//! package folder and of its `terrain/` are those recorded: adding or
//! removing a `.ter` (or a package re-made by Ortho4XP) changes them; a
//! `.ter` edited in place does not, and is seen once its package is
//! touched. Packages whose times changed, or that are new, are scanned
//! again and the file rewritten. A file that cannot be read or parsed
//! counts as empty.
//!
//! The format is text, one line each: `xearthlayer package index 1`, then
//! per package `P <folder ns> <terrain ns> <ter files> <path>` followed by
//! its textures, `T <lat> <lon> <name>`.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

use super::{scan_package, IndexedTexture, PackageIndex, Scan};
use crate::coord::TextureId;

const HEADER: &str = "xearthlayer package index 1";

/// What was recorded of one package.
struct StoredPackage {
    stamp: (u128, u128),
    ter_files: usize,
    textures: Vec<IndexedTexture>,
}

/// Modification times (ns) of the package folder and its `terrain/`
/// (0 when it has none).
fn stamp(root: &Path) -> io::Result<(u128, u128)> {
    let nanos = |path: &Path| -> io::Result<u128> {
        let modified = std::fs::metadata(path)?.modified()?;
        Ok(modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()))
    };
    Ok((nanos(root)?, nanos(&root.join("terrain")).unwrap_or(0)))
}

fn load(file: &Path) -> HashMap<PathBuf, StoredPackage> {
    let mut packages = HashMap::new();
    let Ok(text) = std::fs::read_to_string(file) else {
        return packages;
    };
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return packages;
    }
    let mut current: Option<(PathBuf, StoredPackage)> = None;
    for line in lines {
        if let Some(rest) = line.strip_prefix("P ") {
            let mut fields = rest.splitn(4, ' ');
            let parsed = (|| {
                let folder = fields.next()?.parse().ok()?;
                let terrain = fields.next()?.parse().ok()?;
                let ter_files = fields.next()?.parse().ok()?;
                let path = PathBuf::from(fields.next()?);
                Some((
                    path,
                    StoredPackage {
                        stamp: (folder, terrain),
                        ter_files,
                        textures: Vec::new(),
                    },
                ))
            })();
            let Some(next) = parsed else {
                return HashMap::new();
            };
            if let Some((path, package)) = current.replace(next) {
                packages.insert(path, package);
            }
        } else if let Some(rest) = line.strip_prefix("T ") {
            let mut fields = rest.splitn(3, ' ');
            let texture = (|| {
                let lat = fields.next()?.parse().ok()?;
                let lon = fields.next()?.parse().ok()?;
                let name = fields.next()?;
                Some(IndexedTexture {
                    id: TextureId::parse(name).ok()?,
                    name: name.into(),
                    center: (lat, lon),
                })
            })();
            match (texture, current.as_mut()) {
                (Some(texture), Some((_, package))) => package.textures.push(texture),
                _ => return HashMap::new(),
            }
        }
    }
    if let Some((path, package)) = current {
        packages.insert(path, package);
    }
    packages
}

fn save(file: &Path, packages: &[(PathBuf, StoredPackage)]) -> io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let partial = file.with_extension("partial");
    let mut out = io::BufWriter::new(std::fs::File::create(&partial)?);
    writeln!(out, "{HEADER}")?;
    for (path, package) in packages {
        let Some(path) = path.to_str().filter(|p| !p.contains('\n')) else {
            continue;
        };
        writeln!(
            out,
            "P {} {} {} {path}",
            package.stamp.0, package.stamp.1, package.ter_files
        )?;
        for t in &package.textures {
            writeln!(out, "T {} {} {}", t.center.0, t.center.1, t.name)?;
        }
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(partial, file)
}

impl PackageIndex {
    /// [`PackageIndex::build_union`], taking each package whose times are
    /// unchanged from `file` and scanning only the others; `file` is then
    /// rewritten if anything changed (a failure to write is logged).
    pub fn build_union_stored(roots: &[PathBuf], file: &Path) -> PackageIndex {
        let started = Instant::now();
        let mut stored = load(file);
        let mut all = Scan::default();
        let mut ter_files = 0;
        let mut kept = Vec::with_capacity(roots.len());
        let mut scanned = 0;
        for root in roots {
            let Ok(now) = stamp(root) else {
                tracing::warn!(package = %root.display(), "cannot read the package's folder; it adds no textures");
                continue;
            };
            let package = match stored.remove(root) {
                Some(package) if package.stamp == now => package,
                _ => match scan_package(root) {
                    Ok((scan, files)) => {
                        scanned += 1;
                        all.skipped += scan.skipped;
                        all.unreadable += scan.unreadable;
                        StoredPackage {
                            stamp: now,
                            ter_files: files,
                            textures: scan.found,
                        }
                    }
                    Err(err) => {
                        tracing::warn!(package = %root.display(), %err, "cannot index the package's textures");
                        continue;
                    }
                },
            };
            ter_files += package.ter_files;
            kept.push((root.clone(), package));
        }
        if scanned > 0 || !stored.is_empty() {
            if let Err(err) = save(file, &kept) {
                tracing::warn!(file = %file.display(), %err, "cannot keep the package index for the next start");
            }
        }
        tracing::info!(
            packages = roots.len(),
            scanned,
            from_file = kept.len() - scanned,
            "package index: {scanned} packages scanned, the others read from {}",
            file.display()
        );
        for (_, package) in kept {
            all.found.extend(package.textures);
        }
        PackageIndex::from_scan(all, ter_files, started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(root: &Path, textures: &[&str]) {
        std::fs::create_dir_all(root.join("terrain")).unwrap();
        for texture in textures {
            std::fs::write(
                root.join("terrain").join(texture.replace(".dds", ".ter")),
                format!("A\n800\nTERRAIN\n\nLOAD_CENTER 47.5 -5.6 2443 4096\nBASE_TEX_NOWRAP ../textures/{texture}\n"),
            )
            .unwrap();
        }
    }

    fn names(index: &PackageIndex) -> Vec<&str> {
        index.names().collect()
    }

    #[test]
    fn unchanged_packages_come_from_the_file_changed_ones_are_scanned() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        package(&a, &["25264_10368_BI16.dds"]);
        package(&b, &["25264_10384_BI16.dds"]);
        let file = dir.path().join("index.txt");
        let roots = [a.clone(), b.clone()];

        let first = PackageIndex::build_union_stored(&roots, &file);
        assert_eq!(
            names(&first),
            ["25264_10368_BI16.dds", "25264_10384_BI16.dds"]
        );
        assert_eq!(first.ter_files(), 2);
        assert_eq!(first.textures().next().unwrap().center, (47.5, -5.6));

        // Rewritten in place, a's .ter keeps its folder's times: the file
        // still answers for a (which proves it was not read again).
        std::fs::write(
            a.join("terrain/25264_10368_BI16.ter"),
            "A\n800\nTERRAIN\n\nBASE_TEX_NOWRAP ../textures/25280_10368_BI16.dds\n",
        )
        .unwrap();
        // A new .ter in b changes b's terrain/: b is scanned again. (The
        // time is set: two writes within one clock tick keep the same.)
        package(&b, &["25296_10384_BI16.dds"]);
        std::fs::File::open(b.join("terrain"))
            .unwrap()
            .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
            .unwrap();
        let second = PackageIndex::build_union_stored(&roots, &file);
        assert_eq!(
            names(&second),
            [
                "25264_10368_BI16.dds",
                "25264_10384_BI16.dds",
                "25296_10384_BI16.dds"
            ]
        );
        assert_eq!(second.ter_files(), 3);

        // A file that is not an index counts as empty: everything is scanned.
        std::fs::write(&file, "garbage").unwrap();
        let third = PackageIndex::build_union_stored(&roots, &file);
        assert_eq!(
            names(&third),
            [
                "25264_10384_BI16.dds",
                "25280_10368_BI16.dds",
                "25296_10384_BI16.dds"
            ]
        );
    }
}
