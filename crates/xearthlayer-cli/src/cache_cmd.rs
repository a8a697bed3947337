//! `xearthlayer cache stats|clear`: the disk cache. It holds one folder per
//! provider and format (`<cache>/<provider>/<format>/`), each bounded by
//! the disk cache size on its own; both commands cover every such folder.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use xearthlayer::cache::DiskCache;
use xearthlayer::dds::DdsFormat;
use xearthlayer::fuse::{xearthlayer_mounts, MountHealth};

use crate::args::{CacheDirArg, CliResult, DEFAULT_DISK_CACHE};
use crate::config::ConfigArg;
use crate::system::{free_space, human_bytes};

#[derive(Args, Debug)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub cache_dir: CacheDirArg,
}

#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// What the disk cache holds, per provider and format.
    Stats,
    /// Delete every cached texture.
    Clear {
        /// Do not ask first.
        #[arg(short, long)]
        yes: bool,
    },
}

/// One provider's textures in one format.
struct Part {
    label: String,
    cache: Arc<DiskCache>,
}

/// Opens every provider/format folder under `dir`. Nothing is evicted:
/// the bound given is unlimited, this is for looking.
fn open_parts(dir: &Path) -> CliResult<Vec<Part>> {
    let mut parts = Vec::new();
    let providers = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(parts),
        Err(e) => {
            return Err(format!("cannot read the cache folder {}: {e}", dir.display()).into())
        }
    };
    for provider in providers {
        let provider = provider?;
        let provider_name = provider.file_name().to_string_lossy().into_owned();
        if !provider.path().is_dir() {
            continue;
        }
        for format in [DdsFormat::Bc1, DdsFormat::Bc3] {
            if !provider.path().join(format.name()).is_dir() {
                continue;
            }
            let cache = DiskCache::open(dir, &provider_name, format, u64::MAX).map_err(|e| {
                format!(
                    "cannot read {}: {e}",
                    provider.path().join(format.name()).display()
                )
            })?;
            parts.push(Part {
                label: format!("{provider_name}/{format}"),
                cache,
            });
        }
    }
    parts.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(parts)
}

pub fn run(args: CacheArgs) -> CliResult {
    let file = args.config.load()?.settings;
    let dir = args.cache_dir.dir(&file);
    let parts = open_parts(&dir)?;
    match args.command {
        CacheCommand::Stats => stats(&dir, &parts, file.disk_cache.unwrap_or(DEFAULT_DISK_CACHE)),
        CacheCommand::Clear { yes } => clear(&dir, &parts, yes),
    }
}

fn stats(dir: &Path, parts: &[Part], limit: u64) -> CliResult {
    println!(
        "disk cache {} (limit {} per provider and format)",
        dir.display(),
        human_bytes(limit)
    );
    if parts.is_empty() {
        println!("  empty");
    }
    let (mut entries, mut bytes) = (0, 0);
    for part in parts {
        let s = part.cache.stats();
        println!(
            "  {:<16} {:>8} textures {:>10}",
            part.label,
            s.entries,
            human_bytes(s.bytes)
        );
        entries += s.entries;
        bytes += s.bytes;
    }
    if parts.len() > 1 {
        println!(
            "  {:<16} {:>8} textures {:>10}",
            "total",
            entries,
            human_bytes(bytes)
        );
    }
    let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(dir);
    match free_space(existing) {
        Ok(free) => println!("free space there: {}", human_bytes(free)),
        Err(e) => println!("free space there: unknown ({e})"),
    }
    Ok(())
}

fn clear(dir: &Path, parts: &[Part], yes: bool) -> CliResult {
    let total: usize = parts.iter().map(|p| p.cache.stats().entries).sum();
    let bytes: u64 = parts.iter().map(|p| p.cache.stats().bytes).sum();
    if total == 0 {
        println!("disk cache {} is empty", dir.display());
        return Ok(());
    }
    let serving = xearthlayer_mounts()
        .into_iter()
        .filter(|(_, health)| *health == MountHealth::Serving)
        .count();
    if serving > 0 {
        eprintln!(
            "warning: {serving} xearthlayer mounts are serving: textures they load from disk will be rebuilt instead"
        );
    }
    if !yes
        && !confirm(&format!(
            "Delete {total} cached textures ({}) from {}? [y/N] ",
            human_bytes(bytes),
            dir.display()
        ))?
    {
        println!("nothing deleted");
        return Ok(());
    }
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} textures, {eta} left") {
        bar.set_style(style);
    }
    for part in parts {
        let before = bar.position();
        part.cache
            .clear(|done, _| bar.set_position(before + done as u64))
            .map_err(|e| format!("clearing {} stopped: {e}", part.cache.dir().display()))?;
    }
    bar.finish_and_clear();
    println!("deleted {total} cached textures ({})", human_bytes(bytes));
    Ok(())
}

/// Asks on the terminal; refuses to guess when there is none.
fn confirm(question: &str) -> CliResult<bool> {
    if !std::io::stdin().is_terminal() {
        return Err("not deleting without confirmation: pass --yes (no terminal to ask on)".into());
    }
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
