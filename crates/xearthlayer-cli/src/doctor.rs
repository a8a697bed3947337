//! `xearthlayer doctor`: checks what serving scenery needs, one line per
//! check, and says how to fix each problem. Problems stop `run` from
//! working; warnings are worth knowing. Each check takes what it looks at
//! as arguments (a device path, a `fuse.conf` path, a folder), so tests
//! can show it a broken system.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use xearthlayer::coord::chunk_at;
use xearthlayer::fetch::{Cause, FetchConfig, ImageryClient, WorkClass};
use xearthlayer::fs::TextureIndex;
use xearthlayer::fuse::user_mount::{self, FuseConf};
use xearthlayer::fuse::{xearthlayer_mounts, MountHealth};
use xearthlayer::metrics::Metrics;
use xearthlayer::provider::set::Choice;
use xearthlayer::provider::{Providers, TileProvider};

use crate::args::{CacheDirArg, CliResult, ProviderArgs, DEFAULT_DISK_CACHE};
use crate::config::{default_packages_dir, ConfigArg};
use crate::mount_model;
use crate::packages;
use crate::system::{free_space, human_bytes, is_root, open_file_limit};
use crate::xplane;

const FUSE_DEVICE: &str = "/dev/fuse";
/// The kernel's list of filesystem types it can mount.
const PROC_FILESYSTEMS: &str = "/proc/filesystems";
/// Warn when the FUSE mounts already made leave fewer than this many of
/// `mount_max` for the packages `run` would mount.
const MOUNT_MAX_MARGIN: u32 = 50;
/// DSF tiles held twice that doctor names one by one.
const SHADOWED_SHOWN: usize = 10;
/// Below this hard open-file limit, a busy scene can run out of descriptors.
const LOW_OPEN_FILES: u64 = 4096;
/// Where the provider check asks for imagery: Seattle, which every
/// built-in provider covers (USGS only covers the United States).
const PROBE_POINT: (f64, f64) = (47.45, -122.31);

#[derive(Args, Debug)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub provider: ProviderArgs,
    #[command(flatten)]
    pub cache_dir: CacheDirArg,
    /// X-Plane's Custom Scenery folder [config: xplane.custom_scenery].
    #[arg(long)]
    pub custom_scenery: Option<PathBuf>,
    /// Check for `run --allow-other` (X-Plane run as another user).
    #[arg(long)]
    pub allow_other: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warning,
    Problem,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub level: Level,
    pub what: String,
    pub fix: Option<String>,
}

impl Finding {
    fn ok(what: impl Into<String>) -> Finding {
        Finding {
            level: Level::Ok,
            what: what.into(),
            fix: None,
        }
    }

    fn warning(what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            level: Level::Warning,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }

    fn problem(what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            level: Level::Problem,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let label = match self.level {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Problem => "PROBLEM",
        };
        write!(f, "{label:<8} {}", self.what)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n         fix: {fix}")?;
        }
        Ok(())
    }
}

pub async fn run(args: DoctorArgs) -> CliResult {
    let mut findings = Vec::new();
    let config = match args.config.load() {
        Ok(config) => {
            findings.push(Finding::ok(if config.exists {
                format!(
                    "configuration {} read ({} warnings)",
                    config.path.display(),
                    config.warnings.len()
                )
            } else {
                format!(
                    "no configuration file at {}: defaults apply",
                    config.path.display()
                )
            }));
            config.settings
        }
        Err(e) => {
            findings.push(Finding::problem(
                e.to_string(),
                "correct the file, or write a fresh one with `xearthlayer init --force`",
            ));
            Default::default()
        }
    };
    let root = is_root();
    findings.push(fuse_device(Path::new(FUSE_DEVICE), root));
    findings.push(fuse_module(
        &std::fs::read_to_string(PROC_FILESYSTEMS).unwrap_or_default(),
    ));
    findings.push(privileges(root));
    findings.push(fusermount3(std::env::var_os("PATH").as_deref(), root));
    let fuse_conf = Path::new(user_mount::FUSE_CONF);
    findings.push(allow_other(fuse_conf, args.allow_other, root));
    if !root {
        findings.push(mount_limit(fuse_conf, fuse_mounts()));
    }
    findings.extend(stale_mounts(&xearthlayer_mounts()));
    let disk_size = config
        .disk_cache_enabled
        .unwrap_or(true)
        .then(|| config.disk_cache.unwrap_or(DEFAULT_DISK_CACHE));
    findings.push(cache_folder(&args.cache_dir.dir(&config), disk_size));
    findings.push(open_files());
    let scenery = xplane::custom_scenery(
        args.custom_scenery.as_deref(),
        &config,
        &args
            .config
            .location()
            .map(|(path, _)| path)
            .unwrap_or_default(),
    );
    findings.push(match &scenery {
        Ok(found) => Finding::ok(format!(
            "Custom Scenery: {} ({})",
            found.dir.display(),
            found.origin
        )),
        Err(e) => Finding::problem("X-Plane's Custom Scenery folder is unknown", e.to_string()),
    });
    let providers = args.provider.providers(&config);
    match &providers {
        Ok(providers) => {
            let probes = providers.configured().into_iter().map(provider_answers);
            findings.extend(futures_util::future::join_all(probes).await);
        }
        Err(e) => findings.push(Finding::problem(
            format!("the imagery provider is not usable: {e}"),
            "fix provider.type / provider.url in the configuration, or the flags",
        )),
    }
    if let Ok(scenery) = scenery {
        let packages_dir = config.packages_dir.clone().or_else(default_packages_dir);
        let (codes, served) = tokio::task::spawn_blocking(move || {
            let found = packages::discover(packages_dir.as_deref(), &scenery.dir)
                .map(|found| found.packages)
                .unwrap_or_default();
            (
                package_codes(&found),
                packages_served(found, &scenery, root),
            )
        })
        .await?;
        findings.extend(served);
        if let Ok(providers) = &providers {
            findings.extend(unmapped_codes(providers, &codes));
        }
    }

    for finding in &findings {
        println!("{finding}");
    }
    let count = |level| findings.iter().filter(|f| f.level == level).count();
    let (problems, warnings) = (count(Level::Problem), count(Level::Warning));
    if problems > 0 {
        return Err(format!(
            "{}, {}",
            plural(problems, "problem"),
            plural(warnings, "warning")
        )
        .into());
    }
    println!("no problems, {}", plural(warnings, "warning"));
    Ok(())
}

/// The FUSE device: present, a character device, and ours to open (as a
/// user too: `fusermount3` opens it with the user's rights).
pub fn fuse_device(path: &Path, root: bool) -> Finding {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Finding::problem(
            format!("{shown} is missing: the kernel's FUSE support is not loaded or not passed in"),
            "load it with `sudo modprobe fuse` and install `fuse3` (`sudo apt install fuse3`); \
             in a container, start it with `--device /dev/fuse --cap-add SYS_ADMIN`",
        ),
        Err(e) => Finding::problem(format!("{shown} cannot be examined: {e}"), "check the device's permissions (`ls -l /dev/fuse`)"),
        Ok(md) if !md.file_type().is_char_device() => Finding::problem(
            format!("{shown} is not a character device"),
            "remove it and load the FUSE module (`sudo modprobe fuse`), which creates the device",
        ),
        Ok(_) => match OpenOptions::new().read(true).write(true).open(path) {
            Ok(_) => Finding::ok(format!("{shown} is present and usable")),
            Err(e) if !root && e.kind() == io::ErrorKind::PermissionDenied => Finding::problem(
                format!("{shown} cannot be opened by this user ({e}); fusermount3 opens it with the user's rights"),
                format!("`sudo chmod 0666 {shown}` (desktops' udev rule makes it 0666; in a container, pass it with `--device /dev/fuse` and chmod it), or run as root"),
            ),
            Err(e) => Finding::problem(
                format!("{shown} cannot be opened: {e}"),
                "check the device node (`ls -l /dev/fuse`; `sudo modprobe -r fuse && sudo modprobe fuse` recreates it); in a container, pass it with `--device /dev/fuse`",
            ),
        },
    }
}

/// The kernel can mount FUSE filesystems: `fuse` in `/proc/filesystems`.
fn fuse_module(proc_filesystems: &str) -> Finding {
    let listed = proc_filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("fuse"));
    if listed {
        Finding::ok("the kernel supports FUSE (`fuse` in /proc/filesystems)")
    } else {
        Finding::problem(
            "the kernel does not list the `fuse` filesystem: its module is not loaded",
            "`sudo modprobe fuse` (and `echo fuse | sudo tee /etc/modules-load.d/fuse.conf` to load it at boot)",
        )
    }
}

/// How this process mounts: mount(2) as root, `fusermount3` otherwise.
fn privileges(root: bool) -> Finding {
    if root {
        Finding::ok("running as root: mounts with mount(2)")
    } else {
        Finding::ok(
            "running as a user: mounts through fusermount3, no root needed; X-Plane run as the same user reads the mounts",
        )
    }
}

/// `fusermount3` mounts and unmounts for a user (and clears stale mounts);
/// it can only if it is setuid root.
fn fusermount3(path_var: Option<&std::ffi::OsStr>, root: bool) -> Finding {
    let found = path_var
        .map(std::env::split_paths)
        .and_then(|mut dirs| dirs.find(|d| d.join("fusermount3").is_file()))
        .map(|dir| dir.join("fusermount3"));
    match found {
        Some(binary) if user_mount::is_setuid_root(&binary) => {
            Finding::ok(format!("{} is installed and setuid root", binary.display()))
        }
        Some(binary) => {
            let what = format!(
                "{} is not setuid root, so it cannot mount for a user",
                binary.display()
            );
            let fix = format!(
                "`sudo chmod u+s {}` (or `sudo apt install --reinstall fuse3`)",
                binary.display()
            );
            if root {
                Finding::warning(what, fix)
            } else {
                Finding::problem(what, fix)
            }
        }
        None if root => Finding::warning(
            "fusermount3 is not installed: fine as root, but a user cannot mount",
            "`sudo apt install fuse3`",
        ),
        None => Finding::problem(
            "fusermount3 is not installed: a user cannot mount without it",
            "`sudo apt install fuse3`",
        ),
    }
}

/// FUSE mounts in this mount namespace (what `fusermount3` counts against
/// `mount_max`).
fn fuse_mounts() -> u32 {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let count = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(2))
        .filter(|fstype| *fstype == "fuse" || fstype.starts_with("fuse."))
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// `fusermount3` refuses a user mount once `mount_max` FUSE mounts exist.
pub fn mount_limit(fuse_conf: &Path, mounted: u32) -> Finding {
    let conf = std::fs::read_to_string(fuse_conf)
        .map(|text| FuseConf::parse(&text))
        .unwrap_or_default();
    let left = conf.mount_max.saturating_sub(mounted);
    if left < MOUNT_MAX_MARGIN {
        Finding::warning(
            format!(
                "{mounted} FUSE mounts exist and {} allows {}: only {left} more packages can mount",
                fuse_conf.display(),
                conf.mount_max
            ),
            format!(
                "raise it: add `mount_max = {}` to {} (as root)",
                conf.mount_max.saturating_add(1000),
                fuse_conf.display()
            ),
        )
    } else {
        Finding::ok(format!(
            "{mounted} FUSE mounts of at most {} (mount_max)",
            conf.mount_max
        ))
    }
}

/// Other users (X-Plane's) can read a mount only with `allow_other`; a
/// mount made as root needs it, and a user's mount needs `user_allow_other`
/// in `fuse.conf` for it.
pub fn allow_other(fuse_conf: &Path, wanted: bool, root: bool) -> Finding {
    if root && !wanted {
        return Finding::warning(
            "mounts made as root without --allow-other can be read by root only, not by X-Plane",
            "run xearthlayer as the user who runs X-Plane (no root needed), or `xearthlayer run --allow-other` as root",
        );
    }
    if root || !wanted {
        return Finding::ok("allow_other: nothing needed");
    }
    let allowed = std::fs::read_to_string(fuse_conf)
        .is_ok_and(|text| FuseConf::parse(&text).user_allow_other);
    if allowed {
        Finding::ok(format!(
            "user_allow_other is set in {}",
            fuse_conf.display()
        ))
    } else {
        Finding::problem(
            format!(
                "--allow-other as a user needs `user_allow_other` in {}",
                fuse_conf.display()
            ),
            format!(
                "add the line `user_allow_other` to {0}: `echo user_allow_other | sudo tee -a {0}`; \
                 or leave --allow-other out (X-Plane running as you needs no allow_other)",
                fuse_conf.display()
            ),
        )
    }
}

/// Our mounts left behind by a killed process, or hung.
fn stale_mounts(mounts: &[(PathBuf, MountHealth)]) -> Vec<Finding> {
    if mounts.is_empty() {
        return vec![Finding::ok("no xearthlayer mounts, so none stale")];
    }
    mounts
        .iter()
        .map(|(path, health)| {
            let shown = path.display();
            match health {
                MountHealth::Serving => Finding::ok(format!("{shown} is served by a running xearthlayer")),
                MountHealth::Stale => Finding::problem(
                    format!("{shown} is a stale mount (its process was killed)"),
                    format!("`fusermount3 -uz '{shown}'` (or `sudo umount -l '{shown}'`); `run` also clears it"),
                ),
                MountHealth::NotResponding => Finding::problem(
                    format!("{shown} is mounted but its process does not answer"),
                    format!("stop that xearthlayer, or `fusermount3 -uz '{shown}'`"),
                ),
            }
        })
        .collect()
}

/// The disk cache folder: writable, with room for the cache's bound.
/// `disk_size`: `None` when the disk cache is off.
pub fn cache_folder(dir: &Path, disk_size: Option<u64>) -> Finding {
    let Some(disk_size) = disk_size else {
        return Finding::ok("the disk cache is off");
    };
    // A missing folder is created on first use: check where it would go.
    let Some(existing) = dir.ancestors().find(|d| d.exists()) else {
        return Finding::problem(
            format!("no part of {} exists", dir.display()),
            "set cache.directory to a folder on a local disk",
        );
    };
    let probe = existing.join(format!(".xearthlayer-doctor-{}", std::process::id()));
    if let Err(e) = std::fs::write(&probe, b"") {
        return Finding::problem(
            format!("the cache folder {} is not writable: {e}", existing.display()),
            "choose another with --cache-dir or `xearthlayer config set cache.directory DIR`, or fix its owner",
        );
    }
    let _ = std::fs::remove_file(&probe);
    match free_space(existing) {
        Ok(free) if free < disk_size => Finding::warning(
            format!(
                "the cache folder {} has {} free, less than the disk cache size {}",
                dir.display(),
                human_bytes(free),
                human_bytes(disk_size)
            ),
            "free some space, or lower it: `xearthlayer config set cache.disk_size 10GiB`",
        ),
        Ok(free) => Finding::ok(format!(
            "cache folder {} is writable, {} free",
            dir.display(),
            human_bytes(free)
        )),
        Err(e) => Finding::warning(
            format!("free space of {} unknown: {e}", dir.display()),
            "check the disk with `df -h`",
        ),
    }
}

/// The hard limit is what counts: the soft one is raised to it at start.
fn open_files() -> Finding {
    match open_file_limit() {
        Ok((_, hard)) if hard < LOW_OPEN_FILES => Finding::warning(
            format!("the open-file limit is {hard}: a busy scene may run out"),
            "raise the hard limit: `nofile` in /etc/security/limits.conf, or LimitNOFILE= for a systemd service",
        ),
        Ok((soft, hard)) => Finding::ok(format!(
            "open-file limit {soft} (hard {})",
            if hard == u64::MAX { "unlimited".to_string() } else { hard.to_string() }
        )),
        Err(e) => Finding::warning(format!("the open-file limit is unknown: {e}"), "check `ulimit -n`"),
    }
}

/// How `run` would serve `packages`: how many, through which mount model,
/// how close the other model comes to its mount limit, and which package
/// serves each DSF tile that several hold. Blocking: it lists their
/// `Earth nav data/`.
fn packages_served(
    mut packages: Vec<packages::Package>,
    scenery: &xplane::CustomScenery,
    root: bool,
) -> Vec<Finding> {
    let mut findings = vec![Finding::ok(format!(
        "{} for run, served through one union mount at {} (run's default; --mount per-package: one mount each)",
        plural(packages.len(), "package"),
        mount_model::union_mountpoint(&scenery.dir).display()
    ))];
    let conf = std::fs::read_to_string(user_mount::FUSE_CONF)
        .map(|text| FuseConf::parse(&text))
        .unwrap_or_default();
    let (limit, what) = mount_model::mount_limit(!root, &conf);
    if let Some(warning) = mount_model::limit_warning(packages.len(), limit, &what) {
        findings.push(Finding::warning(
            format!("with --mount per-package: {warning}"),
            "keep the union mount (run's default)",
        ));
    }
    let ini = scenery.dir.join("scenery_packs.ini");
    let listed =
        crate::scenery_packs::listed_folders(&ini, scenery.xplane_root()).unwrap_or_default();
    mount_model::by_precedence(&mut packages, &listed);
    let sources: Vec<PathBuf> = packages.iter().map(|p| p.source.clone()).collect();
    let shadowed = xearthlayer::fs::shadowed_tiles(&sources);
    for tile in shadowed.iter().take(SHADOWED_SHOWN) {
        let losers: Vec<&str> = tile
            .losers
            .iter()
            .map(|&i| packages[i].name.as_str())
            .collect();
        findings.push(Finding::warning(
            format!(
                "{} is in {} packages: {} serves it, not {}",
                tile.path.display(),
                losers.len() + 1,
                packages[tile.winner].name,
                losers.join(", ")
            ),
            format!(
                "to have another served, list its source above {} in {}",
                packages[tile.winner].name,
                ini.display()
            ),
        ));
    }
    if shadowed.len() > SHADOWED_SHOWN {
        findings.push(Finding::warning(
            format!(
                "{} more DSF tiles are in more than one package",
                shadowed.len() - SHADOWED_SHOWN
            ),
            "run logs every one at start",
        ));
    }
    findings
}

/// How many textures of each code `packages` name. Blocking: it reads
/// their `.ter` files. Packages that cannot be read are left out (`run`
/// says why).
fn package_codes(packages: &[packages::Package]) -> BTreeMap<String, usize> {
    let mut codes = BTreeMap::new();
    for package in packages {
        if let Ok(index) = TextureIndex::build(&package.source) {
            for texture in index.textures() {
                *codes.entry(texture.id.map_type.clone()).or_insert(0) += 1;
            }
        }
    }
    codes
}

/// One warning per code that no provider maps: its textures come from
/// the fallback provider, which may not be the imagery the package was
/// made with.
fn unmapped_codes(providers: &Providers, codes: &BTreeMap<String, usize>) -> Vec<Finding> {
    codes
        .iter()
        .filter_map(|(code, &count)| {
            let (fallback, choice) = providers.resolve(code);
            (choice == Choice::Unmapped).then(|| {
                Finding::warning(
                    format!(
                        "texture code '{code}' ({}): no provider maps it, so {} serves it",
                        plural(count, "texture"),
                        fallback.display_name()
                    ),
                    format!(
                        "map it in the [codes] section of the configuration \
                         (`{code} = arcgis`, or a URL template)"
                    ),
                )
            })
        })
        .collect()
}

/// Asks the provider for one chunk, once, without retries, and says why
/// it failed the way the status view does.
async fn provider_answers(provider: Arc<dyn TileProvider>) -> Finding {
    let config = FetchConfig {
        retries: 0,
        first_byte_timeout: Duration::from_secs(10),
        ..FetchConfig::default()
    };
    let client = match ImageryClient::new(config, Arc::new(Metrics::default())) {
        Ok(client) => client,
        Err(e) => {
            return Finding::problem(
                format!("no HTTP client: {e}"),
                "check the system's TLS setup",
            )
        }
    };
    let chunk = chunk_at(provider.max_zoom().min(12), PROBE_POINT.0, PROBE_POINT.1);
    let url = provider.chunk_url(chunk);
    let name = provider.display_name();
    match client.fetch(&provider, chunk, WorkClass::Live).await {
        Ok(body) => Finding::ok(format!("{name} answers ({} bytes for {url})", body.len())),
        Err(e) => match Cause::of(&e) {
            Some(Cause::NoCoverage) => Finding::warning(
                format!("{name} answers, but has no imagery at {url} ({e})"),
                "nothing to do if it covers where you fly",
            ),
            Some(cause) => Finding::problem(
                format!("{name} does not answer for {url}: {cause}"),
                format!(
                    "{}; `xearthlayer run` still serves textures, filled in where imagery is missing",
                    cause.hint()
                ),
            ),
            None => Finding::problem(format!("{name} cannot be asked: {e}"), "check the system's TLS setup"),
        },
    }
}

/// "1 warning", "2 warnings".
fn plural(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_no_provider_maps_gets_one_line() {
        let tmp = tempfile::tempdir().unwrap();
        let (packages_dir, scenery) = (tmp.path().join("packages"), tmp.path().join("cs"));
        std::fs::create_dir_all(&scenery).unwrap();
        let spec = xel_sim::package::PackageSpec {
            textures: 14,
            mixed: true,
            dsf_bytes: 1024,
            ..Default::default()
        };
        xel_sim::package::create_package(&packages_dir.join("zOrtho4XP_+47-006"), &spec).unwrap();
        let found = packages::discover(Some(&packages_dir), &scenery).unwrap();
        let codes = package_codes(&found.packages);
        assert_eq!(codes.values().sum::<usize>(), 14);
        assert_eq!(codes["CH_ZH"], 2);

        let by_code = Providers::build(&Default::default()).unwrap();
        let lines = unmapped_codes(&by_code, &codes);
        let codes_said: Vec<&str> = lines
            .iter()
            .map(|f| f.what.split('\'').nth(1).unwrap())
            .collect();
        // BI, GO2 and CA_NAIP are built-in codes; Arc@ is not ArcGIS's.
        assert_eq!(codes_said, ["Arc@", "CH_ZH", "DOP40", "FR2010_"]);
        assert!(lines.iter().all(|f| f.level == Level::Warning));
        assert!(lines[1].what.contains("(2 textures)"), "{}", lines[1]);
        assert!(lines[1].what.contains("Bing"), "{}", lines[1]);

        let forced = xearthlayer::provider::ProviderSetup {
            forced: Some(xearthlayer::provider::ProviderKind::Arcgis),
            ..Default::default()
        };
        let forced = Providers::build(&forced).unwrap();
        assert!(unmapped_codes(&forced, &codes).is_empty());
    }

    #[test]
    fn a_missing_fuse_device_is_a_problem_with_its_fix() {
        let dir = tempfile::tempdir().unwrap();
        let finding = fuse_device(&dir.path().join("fuse"), true);
        assert_eq!(finding.level, Level::Problem);
        assert!(finding.what.contains("is missing"), "{finding}");
        assert!(
            finding
                .to_string()
                .contains("fix: load it with `sudo modprobe fuse`"),
            "{finding}"
        );

        let not_a_device = dir.path().join("file");
        std::fs::write(&not_a_device, b"").unwrap();
        assert_eq!(fuse_device(&not_a_device, true).level, Level::Problem);
        if Path::new(FUSE_DEVICE).exists() && is_root() {
            assert_eq!(fuse_device(Path::new(FUSE_DEVICE), true).level, Level::Ok);
        }
    }

    #[test]
    fn the_fuse_module_mount_limit_and_fusermount3() {
        let listed = "nodev\tsysfs\n\text4\nnodev\tfuse\n\tfuseblk\n";
        assert_eq!(fuse_module(listed).level, Level::Ok);
        let missing = fuse_module("nodev\tsysfs\n\tfuseblk\n");
        assert_eq!(missing.level, Level::Problem);
        assert!(
            missing.to_string().contains("sudo modprobe fuse"),
            "{missing}"
        );

        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("fuse.conf");
        assert_eq!(mount_limit(&conf, 3).level, Level::Ok, "no file: 1000");
        std::fs::write(&conf, "mount_max = 10\n").unwrap();
        let full = mount_limit(&conf, 8);
        assert_eq!(full.level, Level::Warning);
        assert!(full.to_string().contains("mount_max = 1010"), "{full}");

        // A fusermount3 that is not setuid: a problem for a user only.
        let fake = dir.path().join("fusermount3");
        std::fs::write(&fake, "").unwrap();
        let not_setuid = fusermount3(Some(dir.path().as_os_str()), false);
        assert_eq!(not_setuid.level, Level::Problem);
        assert!(not_setuid.to_string().contains("chmod u+s"), "{not_setuid}");
        assert_eq!(
            fusermount3(Some(dir.path().as_os_str()), true).level,
            Level::Warning
        );
    }

    #[test]
    fn allow_other_needs_fuse_conf_only_for_users() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("fuse.conf");
        std::fs::write(&conf, "# mount_max = 1000\n#user_allow_other\n").unwrap();
        assert_eq!(allow_other(&conf, true, false).level, Level::Problem);
        let missing = allow_other(&conf, true, false).to_string();
        assert!(
            missing.contains("`user_allow_other`") && missing.contains(&conf.display().to_string()),
            "names the line and the file: {missing}"
        );
        std::fs::write(&conf, "user_allow_other\n").unwrap();
        assert_eq!(allow_other(&conf, true, false).level, Level::Ok);
        assert_eq!(allow_other(&conf, true, true).level, Level::Ok);
        assert_eq!(allow_other(&conf, false, true).level, Level::Warning);
        assert_eq!(allow_other(&conf, false, false).level, Level::Ok);
    }

    #[test]
    fn stale_mounts_and_cache_folders() {
        let found = stale_mounts(&[
            (PathBuf::from("/cs/a_xel"), MountHealth::Stale),
            (PathBuf::from("/cs/b_xel"), MountHealth::Serving),
        ]);
        assert_eq!(found[0].level, Level::Problem);
        assert!(found[0]
            .fix
            .as_deref()
            .unwrap_or_default()
            .contains("fusermount3 -uz '/cs/a_xel'"));
        assert_eq!(found[1].level, Level::Ok);

        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            cache_folder(&dir.path().join("new/cache"), Some(1)).level,
            Level::Ok
        );
        assert_eq!(
            cache_folder(dir.path(), Some(u64::MAX)).level,
            Level::Warning
        );
        assert_eq!(cache_folder(dir.path(), None).level, Level::Ok);
        assert_eq!(
            fusermount3(Some(dir.path().as_os_str()), true).level,
            Level::Warning
        );
        assert_eq!(
            fusermount3(Some(dir.path().as_os_str()), false).level,
            Level::Problem
        );
    }

    #[test]
    fn packages_served_counts_them_and_names_the_tile_each_serves() {
        let root = tempfile::tempdir().unwrap();
        let cs = root.path().join("Custom Scenery");
        let package = |name: &str, dsf: &[u8]| {
            let source = cs.join(name);
            let tile = source.join("Earth nav data/+40-010/+47-006.dsf");
            std::fs::create_dir_all(tile.parent().unwrap()).unwrap();
            std::fs::write(tile, dsf).unwrap();
            packages::Package {
                name: name.to_string(),
                source,
                mountpoint: cs.join(format!("{name}_xel")),
                origin: packages::Origin::PackagesFolder,
            }
        };
        let found = vec![package("zOrtho4XP_a", b"a"), package("zOrtho4XP_b", b"b")];
        // scenery_packs.ini ranks b first, against the names' order.
        std::fs::write(
            cs.join("scenery_packs.ini"),
            "I\n1000 Version\nSCENERY\n\nSCENERY_PACK Custom Scenery/zOrtho4XP_b/\n",
        )
        .unwrap();
        let scenery = xplane::CustomScenery {
            dir: cs.clone(),
            origin: "test".into(),
        };
        let findings = packages_served(found, &scenery, true);
        assert_eq!(findings[0].level, Level::Ok);
        assert!(
            findings[0].what.starts_with("2 packages for run"),
            "{}",
            findings[0]
        );
        assert!(
            findings[0].what.contains("zzXEL_ortho_xel"),
            "{}",
            findings[0]
        );
        let tile = findings
            .iter()
            .find(|f| f.what.contains("+47-006.dsf"))
            .expect("the tile both hold is named");
        assert!(
            tile.what.contains("zOrtho4XP_b serves it, not zOrtho4XP_a"),
            "{tile}"
        );
    }
}
