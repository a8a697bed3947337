//! `xearthlayer run`: every ortho package found (see [`packages`]) mounted
//! through one union mount `Custom Scenery/zzXEL_ortho_xel`, or each at its
//! own `Custom Scenery/<name>_xel` (see [`mount_model`]), all served by one
//! texture service, until SIGINT, SIGTERM or SIGHUP (see
//! [`crate::shutdown`]; a second signal stops waiting for readers and
//! detaches the mounts at once). One mount failing is
//! reported and the others serve on. X-Plane must also be told to load the
//! mounts instead of their sources: `run` prints the `scenery_packs.ini`
//! changes that takes, or makes them with `--update-scenery-packs`.

use std::path::PathBuf;

use clap::Args;

use crate::args::{CliResult, ServiceArgs};
use crate::config::default_packages_dir;
use crate::manager::MountManager;
use crate::mount_model::{self, MountModel};
use crate::packages::{self, Origin};
use crate::scenery_packs::{self, Pack};
use crate::screen::SCREEN;
use crate::shutdown::shutdown_signal;
use crate::status;
use crate::system::is_root;
use crate::xplane::{self, CustomScenery};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// X-Plane's Custom Scenery folder [config: xplane.custom_scenery;
    /// default: found from ~/.x-plane/x-plane_install_12.txt].
    #[arg(long)]
    pub custom_scenery: Option<PathBuf>,
    /// Folder of ortho packages to mount [config: packages.directory;
    /// default: ~/.xearthlayer/packages].
    #[arg(long)]
    pub packages: Option<PathBuf>,
    /// Let other users (X-Plane run as another user) read the mounts.
    #[arg(long)]
    pub allow_other: bool,
    /// How to mount the packages: `union` (all through one mount,
    /// Custom Scenery/zzXEL_ortho_xel) or `per-package` (each at
    /// <name>_xel).
    #[arg(long, value_enum, default_value_t)]
    pub mount: MountModel,
    /// Edit Custom Scenery/scenery_packs.ini so that X-Plane loads the
    /// mounts and not their sources (the old file is kept as a backup).
    #[arg(long)]
    pub update_scenery_packs: bool,
    /// Plain periodic log lines instead of the live view in a terminal.
    #[arg(long)]
    pub no_tui: bool,
    #[command(flatten)]
    pub stats_file: status::StatsFileArg,
    #[command(flatten)]
    pub telemetry: crate::flight::TelemetryArg,
    #[command(flatten)]
    pub service: ServiceArgs,
}

pub async fn run(args: RunArgs) -> CliResult {
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    // A signal that came before we mount anything ends the run at once.
    let early = tokio::select! {
        biased;
        name = &mut shutdown => Some(name),
        () = std::future::ready(()) => None,
    };
    if let Some(name) = early {
        return Err(format!("{name} before anything was mounted").into());
    }

    let config = args.service.config.load()?;
    let file = &config.settings;
    let scenery = xplane::custom_scenery(args.custom_scenery.as_deref(), file, &config.path)?;
    let packages_dir = args
        .packages
        .clone()
        .or_else(|| file.packages_dir.clone())
        .or_else(default_packages_dir);
    let found = {
        let (packages_dir, dir) = (packages_dir.clone(), scenery.dir.clone());
        tokio::task::spawn_blocking(move || packages::discover(packages_dir.as_deref(), &dir))
            .await??
    };
    for note in &found.notes {
        println!("note: {note}");
    }
    if found.packages.is_empty() {
        return Err(format!(
            "no ortho package to mount: none in the packages folder ({}) and none in {} lacking its textures; \
             put packages in the packages folder, or name it with --packages or packages.directory",
            packages_dir.as_deref().map_or("not set".into(), |d| d.display().to_string()),
            scenery.dir.display()
        )
        .into());
    }
    let mut found_packages = found.packages;
    let ini = scenery.dir.join("scenery_packs.ini");
    let listed = scenery_packs::listed_folders(&ini, scenery.xplane_root())?;
    mount_model::by_precedence(&mut found_packages, &listed);
    let total = found_packages.len();
    let mounts = mount_model::mounts(args.mount, found_packages, &scenery.dir);
    let service = args.service.service_with(file)?;
    // Before mounting: whoever signals once the mounts are up must find the handler.
    let stats = args.stats_file.start(&service)?;
    println!(
        "Custom Scenery: {} ({})",
        scenery.dir.display(),
        scenery.origin
    );
    println!(
        "one texture service for all packages: {}, {}, {}",
        service.providers().describe(),
        service.format(),
        match service.disk_cache() {
            Some(cache) => format!("disk cache {}", cache.dir().display()),
            None => "no disk cache".to_string(),
        }
    );

    if is_root() && !args.allow_other {
        println!("note: mounted as root without --allow-other, only root can read the mounts; run xearthlayer as the user who runs X-Plane (no root needed), or add --allow-other");
    }
    let as_user = xearthlayer::fuse::user_mount::mounts_as_user();
    let conf = xearthlayer::fuse::user_mount::FuseConf::read().unwrap_or_default();
    let (limit, what) = mount_model::mount_limit(as_user, &conf);
    if let Some(warning) = mount_model::limit_warning(mounts.len(), limit, &what) {
        println!("warning: {warning}");
    }
    if let [union] = mounts.as_slice() {
        if union.union {
            report_union(union).await;
        }
    }
    let (mut manager, signalled) =
        MountManager::start(mounts, &service, args.allow_other, &mut shutdown).await;
    for mount in manager.mounted() {
        if let [package] = mount.packages.as_slice() {
            let what = match package.origin {
                Origin::PackagesFolder => "from the packages folder".to_string(),
                Origin::CustomScenery { textures, missing } => {
                    format!("{missing} of its {textures} textures missing")
                }
            };
            println!(
                "mounted  {} at {} ({what})",
                package.source.display(),
                mount.mountpoint.display()
            );
        } else {
            println!(
                "mounted  {} packages at {}",
                mount.packages.len(),
                mount.mountpoint.display()
            );
        }
    }
    for (mount, why) in manager.failed() {
        println!("FAILED   {}: {why}", mount.name);
    }
    let mut problems: Vec<String> = Vec::new();
    let failed_packages: usize = manager.failed().iter().map(|(m, _)| m.packages.len()).sum();
    if failed_packages > 0 {
        problems.push(format!(
            "{failed_packages} of {total} packages could not be mounted"
        ));
    }
    if let Some(name) = signalled {
        println!(
            "{name} while mounting: unmounting {} mounts",
            manager.live()
        );
        stop(manager, &mut problems).await;
        return Err(format!("{name} before every package was mounted").into());
    }
    if manager.mounted().is_empty() {
        return Err(problems.join("; ").into());
    }
    if let Err(e) = scenery_packs_step(&manager, &scenery, args.update_scenery_packs) {
        eprintln!("error: {e}");
        problems.push(e);
    }

    let serving: usize = manager.mounted().iter().map(|m| m.packages.len()).sum();
    println!(
        "serving {serving} packages through {} mounts; Ctrl-C to stop",
        manager.mounted().len()
    );
    let filesystems = manager.filesystems().to_vec();
    if let Some(stats) = &stats {
        stats.set_mounts(filesystems.clone());
    }
    // Prefetch plans from the texture index, which a union builds while it serves.
    let indexed = async {
        for fs in &filesystems {
            fs.indexed().await;
        }
    };
    let signalled = tokio::select! {
        name = &mut shutdown => Some(name),
        () = indexed => None,
    };
    if let Some(name) = signalled {
        println!("{name}: unmounting {} mounts", manager.live());
        stop(manager, &mut problems).await;
        return finish(&service, stats, problems).await;
    }
    let prefetch = crate::flight::start_with_status(
        &args.telemetry.spec(file),
        &service,
        &filesystems,
        stats.as_ref(),
    );
    let trimmer = crate::heap::spawn_trimmer(service.clone());
    let reporter = status::spawn_reporter(
        service.clone(),
        manager.views(),
        !args.no_tui,
        crate::flight::status_lines(prefetch.as_ref()),
    );
    loop {
        tokio::select! {
            name = &mut shutdown => {
                println!("{name}: unmounting {} mounts", manager.live());
                break;
            }
            ended = manager.next_ended() => match ended {
                Some(ended) => {
                    // Above the live view's block, which stays at the bottom.
                    SCREEN.println(&match &ended.result {
                        Ok(()) => format!("{} was unmounted from outside; the others serve on", ended.mountpoint.display()),
                        Err(e) => format!("{} stopped: {e}", ended.mountpoint.display()),
                    });
                }
                None => {
                    println!("every mount is gone; stopping");
                    break;
                }
            },
        }
    }
    reporter.stop();
    trimmer.abort();
    drop(prefetch);
    stop(manager, &mut problems).await;
    finish(&service, stats, problems).await
}

/// Unmounts everything; a second signal stops waiting and detaches.
async fn stop(manager: MountManager, problems: &mut Vec<String>) {
    let second_signal = async {
        let name = shutdown_signal().await;
        println!("{name} again: detaching the mounts without waiting for their readers");
    };
    for ended in manager.stop_all(second_signal).await {
        match ended.result {
            Ok(()) => println!("unmounted {}", ended.mountpoint.display()),
            Err(e) => {
                println!("FAILED   to unmount {}: {e}", ended.mountpoint.display());
                problems.push(format!("{} did not unmount cleanly", ended.name));
            }
        }
    }
}

/// The last words of a run: caches flushed, summary, stats file, verdict.
async fn finish(
    service: &xearthlayer::texture::TextureService,
    stats: Option<status::StatsFile>,
    problems: Vec<String>,
) -> CliResult {
    service.flush().await;
    println!("{}", status::summary(service));
    if let Some(stats) = stats {
        stats.write().await?;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; ").into())
    }
}

/// Prints what `scenery_packs.ini` needs for the mounts, or makes the
/// changes when asked.
fn scenery_packs_step(
    manager: &MountManager,
    scenery: &CustomScenery,
    update: bool,
) -> Result<(), String> {
    let packs: Vec<Pack> = manager
        .mounted()
        .iter()
        .flat_map(|mount| {
            mount.packages.iter().map(|p| Pack {
                source: p.source.clone(),
                mount: mount.mountpoint.clone(),
            })
        })
        .collect();
    let ini = scenery.dir.join("scenery_packs.ini");
    let edit = scenery_packs::read_and_plan(&ini, &packs, scenery.xplane_root())
        .map_err(|e| e.to_string())?;
    for note in &edit.notes {
        println!("note: {note}");
    }
    if edit.changes.is_empty() {
        println!("{} already lists every mount", ini.display());
        return Ok(());
    }
    if update {
        scenery_packs::apply(&ini, &edit).map_err(|e| e.to_string())?;
        println!(
            "updated {} (backup: {}):",
            ini.display(),
            scenery_packs::backup_path(&ini).display()
        );
    } else {
        println!(
            "X-Plane needs these changes to {} (quit X-Plane first; or run with --update-scenery-packs):",
            ini.display()
        );
    }
    for change in &edit.changes {
        println!("  {change}");
    }
    Ok(())
}

/// Says which package serves each DSF tile that several hold.
async fn report_union(union: &crate::manager::Mount) {
    let sources: Vec<PathBuf> = union.packages.iter().map(|p| p.source.clone()).collect();
    let names: Vec<String> = union.packages.iter().map(|p| p.name.clone()).collect();
    let shadowed = tokio::task::spawn_blocking(move || xearthlayer::fs::shadowed_tiles(&sources))
        .await
        .unwrap_or_default();
    for tile in &shadowed {
        let losers: Vec<&str> = tile.losers.iter().map(|&i| names[i].as_str()).collect();
        let line = format!(
            "{} is in {} packages: {} serves it (ranked first), not {}",
            tile.path.display(),
            losers.len() + 1,
            names[tile.winner],
            losers.join(", ")
        );
        println!("note: {line}");
        tracing::info!("{line}");
    }
}
