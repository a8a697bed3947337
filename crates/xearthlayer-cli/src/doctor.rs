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
use xearthlayer::fetch::{FetchConfig, FetchError, ImageryClient, WorkClass};
use xearthlayer::fs::TextureIndex;
use xearthlayer::fuse::{xearthlayer_mounts, MountHealth};
use xearthlayer::metrics::Metrics;
use xearthlayer::provider::set::Choice;
use xearthlayer::provider::{Providers, TileProvider};

use crate::args::{CacheDirArg, CliResult, ProviderArgs, DEFAULT_DISK_CACHE};
use crate::config::{default_packages_dir, ConfigArg};
use crate::packages;
use crate::system::{free_space, human_bytes, is_root, open_file_limit};
use crate::xplane;

const FUSE_DEVICE: &str = "/dev/fuse";
const FUSE_CONF: &str = "/etc/fuse.conf";
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
    findings.push(fuse_device(Path::new(FUSE_DEVICE)));
    findings.push(privileges(is_root()));
    findings.push(fusermount3(std::env::var_os("PATH").as_deref()));
    findings.push(allow_other(
        Path::new(FUSE_CONF),
        args.allow_other,
        is_root(),
    ));
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
    findings.push(match &providers {
        Ok(providers) => provider_answers(Arc::clone(providers.primary())).await,
        Err(e) => Finding::problem(
            format!("the imagery provider is not usable: {e}"),
            "fix provider.type / provider.url in the configuration, or the flags",
        ),
    });
    if let (Ok(providers), Ok(scenery)) = (&providers, scenery) {
        let packages_dir = config.packages_dir.clone().or_else(default_packages_dir);
        let codes = tokio::task::spawn_blocking(move || {
            package_codes(packages_dir.as_deref(), &scenery.dir)
        })
        .await?;
        findings.extend(unmapped_codes(providers, &codes));
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

/// The FUSE device: present, a character device, and ours to open.
pub fn fuse_device(path: &Path) -> Finding {
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
            Err(e) => Finding::problem(
                format!("{shown} cannot be opened: {e}"),
                "run xearthlayer as root, or give your user access to /dev/fuse (`sudo chmod 666 /dev/fuse`)",
            ),
        },
    }
}

/// Mounting calls mount(2) directly, which takes root.
fn privileges(root: bool) -> Finding {
    if root {
        Finding::ok("running as root: mounting is allowed")
    } else {
        Finding::problem(
            "not running as root: this build mounts with mount(2), which needs root (or CAP_SYS_ADMIN)",
            "run `sudo xearthlayer run --allow-other`",
        )
    }
}

/// `fusermount3` unmounts a user's mounts and clears stale ones without root.
fn fusermount3(path_var: Option<&std::ffi::OsStr>) -> Finding {
    let found = path_var
        .map(std::env::split_paths)
        .and_then(|mut dirs| dirs.find(|d| d.join("fusermount3").is_file()));
    match found {
        Some(dir) => Finding::ok(format!("fusermount3 found in {}", dir.display())),
        None => Finding::warning(
            "fusermount3 is not installed: stale mounts cannot be cleared without root",
            "`sudo apt install fuse3`",
        ),
    }
}

/// Other users (X-Plane's) can read a mount only with `allow_other`; a
/// mount made as root needs it, and a user's mount needs `user_allow_other`
/// in `fuse.conf` for it.
pub fn allow_other(fuse_conf: &Path, wanted: bool, root: bool) -> Finding {
    if root && !wanted {
        return Finding::warning(
            "mounts made as root without --allow-other can be read by root only, not by X-Plane",
            "run `xearthlayer run --allow-other` (as root, /etc/fuse.conf need not change)",
        );
    }
    if root || !wanted {
        return Finding::ok("allow_other: nothing needed");
    }
    let allowed = std::fs::read_to_string(fuse_conf)
        .map(|text| text.lines().any(|l| l.trim() == "user_allow_other"))
        .unwrap_or(false);
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
                "add the line `user_allow_other` to {} (as root)",
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

/// How many textures of each code the packages `run` would mount name.
/// Blocking: it reads their `.ter` files. Packages that cannot be read are
/// left out (`run` says why).
fn package_codes(packages_dir: Option<&Path>, custom_scenery: &Path) -> BTreeMap<String, usize> {
    let mut codes = BTreeMap::new();
    let Ok(found) = packages::discover(packages_dir, custom_scenery) else {
        return codes;
    };
    for package in &found.packages {
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

/// Asks the provider for one chunk, once, without retries.
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
        Err(e) if e.is_no_data() => Finding::warning(
            format!("{name} answers, but has no imagery at {url} ({e})"),
            "nothing to do if it covers where you fly",
        ),
        Err(FetchError::Permanent(status)) if matches!(status.as_u16(), 401 | 403) => Finding::problem(
            format!("{name} refuses requests (HTTP {status}) for {url}"),
            "check the access token (provider.mapbox_token), or choose another provider",
        ),
        Err(e) => Finding::problem(
            format!("{name} does not answer: {e}"),
            "check the network connection and the provider's URL; `xearthlayer run` still serves textures, filled in where imagery is missing",
        ),
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
        let codes = package_codes(Some(&packages_dir), &scenery);
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
        let finding = fuse_device(&dir.path().join("fuse"));
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
        assert_eq!(fuse_device(&not_a_device).level, Level::Problem);
        if Path::new(FUSE_DEVICE).exists() {
            assert_eq!(fuse_device(Path::new(FUSE_DEVICE)).level, Level::Ok);
        }
    }

    #[test]
    fn allow_other_needs_fuse_conf_only_for_users() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("fuse.conf");
        std::fs::write(&conf, "# mount_max = 1000\n#user_allow_other\n").unwrap();
        assert_eq!(allow_other(&conf, true, false).level, Level::Problem);
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
            fusermount3(Some(dir.path().as_os_str())).level,
            Level::Warning
        );
    }
}
