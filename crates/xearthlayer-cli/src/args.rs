//! Options shared by several commands, and turning them into library types.
//!
//! Each value is resolved here in one order: the command-line flag, then the
//! configuration file ([`FileSettings`]), then the library's default.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use xearthlayer::dds::DdsFormat;
use xearthlayer::provider::{ProviderKind, ProviderSettings, ProviderSetup, Providers};
use xearthlayer::texture::{ServiceConfig, TextureService};

use crate::config::{ConfigArg, FileSettings};

/// Boxed errors with readable messages: the CLI prints and exits.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Disk cache size when neither a flag nor the file sets one.
pub const DEFAULT_DISK_CACHE: u64 = 20 << 30;

#[derive(Args, Debug, Clone)]
pub struct ProviderArgs {
    /// Imagery provider: auto (each texture from the provider its name's
    /// code maps to), or one of bing, go2, arcgis, usgs, eox, naip, firefly,
    /// mapbox, custom for every texture [config: provider.type; default: auto].
    #[arg(long, value_parser = parse_provider)]
    pub provider: Option<ProviderChoice>,
    /// URL template for the custom provider ({z} {x} {y} {quadkey} {server});
    /// implies --provider custom [config: provider.url].
    #[arg(long)]
    pub url: Option<String>,
    /// Access token for mapbox [config: provider.mapbox_token].
    #[arg(long, env = "XEARTHLAYER_MAPBOX_TOKEN", hide_env_values = true)]
    pub mapbox_token: Option<String>,
}

/// `--provider`: by each texture's code, or one provider for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderChoice {
    Auto,
    Forced(ProviderKind),
}

pub fn parse_provider(s: &str) -> Result<ProviderChoice, String> {
    if s.trim().eq_ignore_ascii_case("auto") {
        return Ok(ProviderChoice::Auto);
    }
    s.parse()
        .map(ProviderChoice::Forced)
        .map_err(|e: xearthlayer::provider::ProviderError| format!("{e}, or auto"))
}

/// A built-in provider's name (not `custom`, which has no URL of its own).
pub fn parse_provider_kind(s: &str) -> Result<ProviderKind, String> {
    match s.parse() {
        Ok(ProviderKind::Custom) => Err("custom has no URL to replace: use a URL template".into()),
        Ok(kind) => Ok(kind),
        Err(e) => Err(e.to_string()),
    }
}

impl ProviderArgs {
    /// How providers are chosen: a URL given anywhere means `custom`
    /// unless a type is given at the same level or above; `auto` otherwise.
    pub fn setup(&self, file: &FileSettings) -> ProviderSetup {
        let custom = ProviderChoice::Forced(ProviderKind::Custom);
        let choice = self
            .provider
            .or(self.url.as_ref().map(|_| custom))
            .or(file.provider)
            .or(file.url.as_ref().map(|_| custom))
            .unwrap_or(ProviderChoice::Auto);
        ProviderSetup {
            forced: match choice {
                ProviderChoice::Auto => None,
                ProviderChoice::Forced(kind) => Some(kind),
            },
            fallback: file.fallback.unwrap_or(ProviderSetup::default().fallback),
            settings: ProviderSettings {
                url: self.url.clone().or_else(|| file.url.clone()),
                mapbox_token: self
                    .mapbox_token
                    .clone()
                    .or_else(|| file.mapbox_token.clone()),
            },
            urls: file.provider_urls.clone(),
            codes: file.codes.clone(),
        }
    }

    /// The providers textures are served from.
    pub fn providers(&self, file: &FileSettings) -> CliResult<Providers> {
        Ok(Providers::build(&self.setup(file))?)
    }
}

#[derive(Args, Debug, Clone)]
pub struct FormatArg {
    /// Texture compression: bc1 (DXT1) or bc3 (DXT5) [config: texture.format;
    /// default: bc1].
    #[arg(long, value_parser = parse_format)]
    pub format: Option<DdsFormat>,
}

fn parse_format(s: &str) -> Result<DdsFormat, String> {
    s.parse()
}

impl FormatArg {
    pub fn format(&self, file: &FileSettings) -> DdsFormat {
        self.format
            .or(file.format)
            .unwrap_or(ServiceConfig::default().format)
    }
}

#[derive(Args, Debug, Clone)]
pub struct CacheDirArg {
    /// Disk cache folder [config: cache.directory; default:
    /// ~/.cache/xearthlayer].
    #[arg(long, global = true)]
    pub cache_dir: Option<PathBuf>,
}

impl CacheDirArg {
    pub fn dir(&self, file: &FileSettings) -> PathBuf {
        self.cache_dir
            .clone()
            .or_else(|| file.cache_dir.clone())
            .unwrap_or_else(default_cache_dir)
    }
}

/// Everything that shapes the texture service.
#[derive(Args, Debug, Clone)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub provider: ProviderArgs,
    #[command(flatten)]
    pub format: FormatArg,
    #[command(flatten)]
    pub cache_dir: CacheDirArg,
    /// Memory cache size, e.g. 1GiB [config: cache.memory_size; default: 1GiB].
    #[arg(long, value_parser = parse_size)]
    pub memory_cache: Option<u64>,
    /// Disk cache size, e.g. 20GiB [config: cache.disk_size; default: 20GiB].
    #[arg(long, value_parser = parse_size)]
    pub disk_cache: Option<u64>,
    /// Neither read nor write the disk cache [config: cache.enabled = false].
    #[arg(long)]
    pub no_disk_cache: bool,
    /// Seconds the provider may leave every request it has in flight
    /// unanswered; then the reads waiting for it get stand-ins
    /// (lower-resolution imagery of the texture, else neutral). A read
    /// waits as long as its imagery keeps coming [config:
    /// generation.stall_seconds; default: 4].
    #[arg(long, visible_alias = "timeout", value_parser = parse_seconds)]
    pub stall_window: Option<Duration>,
    /// Longest a read waits in flight however its imagery moves, from the
    /// first read of its visit to the texture [config:
    /// generation.max_wait_seconds; default: 60].
    #[arg(long, value_parser = parse_seconds)]
    pub max_wait: Option<Duration>,
    /// The same during X-Plane's first scenery load [config:
    /// generation.startup_max_wait_seconds; default: 600].
    #[arg(long, value_parser = parse_seconds)]
    pub startup_max_wait: Option<Duration>,
    /// Textures decoded and compressed at once [config:
    /// generation.cpu_threads; default: the number of cores].
    #[arg(long, value_parser = parse_count)]
    pub cpu_threads: Option<usize>,
    /// Imagery downloads in flight at once [config:
    /// generation.max_requests_in_flight; default: 256].
    #[arg(long, value_parser = parse_count)]
    pub max_requests: Option<usize>,
    /// Texture parts built at once; 1 builds one at a time, the serial model
    /// this design replaces (for benchmarks) [default: 256].
    #[arg(long, value_parser = parse_count)]
    pub max_builds: Option<usize>,
    /// Build whole textures on any read, as before reads built only what
    /// they touch (for benchmarks).
    #[arg(long)]
    pub whole_textures: bool,
}

impl ServiceArgs {
    /// The service these options and the configuration file describe.
    pub fn service(&self) -> CliResult<TextureService> {
        self.service_with(&self.config.load()?.settings)
    }

    /// The service, with the configuration file already read.
    pub fn service_with(&self, file: &FileSettings) -> CliResult<TextureService> {
        Ok(TextureService::new(
            self.provider.providers(file)?,
            self.service_config(file),
        )?)
    }

    /// Flags over the file over the library's defaults.
    pub fn service_config(&self, file: &FileSettings) -> ServiceConfig {
        let defaults = ServiceConfig::default();
        let mut fetch = defaults.fetch.clone();
        fetch.max_in_flight = self
            .max_requests
            .or(file.max_in_flight)
            .unwrap_or(fetch.max_in_flight);
        let disk_enabled = !self.no_disk_cache && file.disk_cache_enabled.unwrap_or(true);
        ServiceConfig {
            format: self.format.format(file),
            stall_window: self
                .stall_window
                .or(file.stall_window)
                .unwrap_or(defaults.stall_window),
            max_wait: self.max_wait.or(file.max_wait).unwrap_or(defaults.max_wait),
            startup_max_wait: self
                .startup_max_wait
                .or(file.startup_max_wait)
                .unwrap_or(defaults.startup_max_wait),
            cpu_threads: self
                .cpu_threads
                .or(file.cpu_threads)
                .unwrap_or(defaults.cpu_threads),
            memory_cache_bytes: self
                .memory_cache
                .or(file.memory_cache)
                .unwrap_or(defaults.memory_cache_bytes),
            disk_cache: disk_enabled.then(|| {
                (
                    self.cache_dir.dir(file),
                    self.disk_cache
                        .or(file.disk_cache)
                        .unwrap_or(DEFAULT_DISK_CACHE),
                )
            }),
            max_builds: self.max_builds.unwrap_or(defaults.max_builds),
            whole_textures: self.whole_textures,
            fetch,
            ..defaults
        }
    }
}

/// The default disk cache folder: `~/.cache/xearthlayer`.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("xearthlayer")
}

/// Parses sizes such as `512MiB`, `2GiB`, `20GB`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 512MiB, 2GiB, 20GB)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{s}' (use KiB, MiB, GiB, TiB, or KB, MB, GB, TB)"
            ))
        }
    };
    Ok((number * factor as f64) as u64)
}

/// A positive, finite number of seconds, e.g. `20` or `2.5`.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => {
            Ok(Duration::from_secs_f64(secs))
        }
        _ => Err(format!("'{s}' is not a positive number of seconds")),
    }
}

/// A whole number of at least 1, e.g. a thread count.
pub fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}' is not a whole number of at least 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("20GB"), Ok(20_000_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("2 parsecs").is_err());
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        service: ServiceArgs,
    }

    fn args(flags: &[&str]) -> ServiceArgs {
        Cli::try_parse_from(std::iter::once("xearthlayer").chain(flags.iter().copied()))
            .unwrap()
            .service
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let file = FileSettings {
            format: Some(DdsFormat::Bc3),
            cache_dir: Some(PathBuf::from("/file/cache")),
            memory_cache: Some(2 << 30),
            disk_cache: Some(5 << 30),
            stall_window: Some(Duration::from_secs(3)),
            max_wait: Some(Duration::from_secs(30)),
            cpu_threads: Some(3),
            max_in_flight: Some(17),
            ..FileSettings::default()
        };
        let defaults = ServiceConfig::default();
        let plain = args(&[]).service_config(&FileSettings::default());
        assert_eq!(plain.format, defaults.format);
        assert_eq!(plain.stall_window, defaults.stall_window);
        assert_eq!(plain.max_wait, defaults.max_wait);
        assert_eq!(plain.startup_max_wait, defaults.startup_max_wait);
        assert_eq!(plain.cpu_threads, defaults.cpu_threads);
        assert_eq!(plain.memory_cache_bytes, defaults.memory_cache_bytes);
        assert_eq!(plain.fetch.max_in_flight, defaults.fetch.max_in_flight);
        assert_eq!(
            plain.disk_cache,
            Some((default_cache_dir(), DEFAULT_DISK_CACHE))
        );

        let from_file = args(&[]).service_config(&file);
        assert_eq!(from_file.format, DdsFormat::Bc3);
        assert_eq!(from_file.stall_window, Duration::from_secs(3));
        assert_eq!(from_file.max_wait, Duration::from_secs(30));
        assert_eq!(from_file.cpu_threads, 3);
        assert_eq!(from_file.memory_cache_bytes, 2 << 30);
        assert_eq!(from_file.fetch.max_in_flight, 17);
        assert_eq!(
            from_file.disk_cache,
            Some((PathBuf::from("/file/cache"), 5 << 30))
        );

        let flagged = args(&[
            "--format",
            "bc1",
            "--cache-dir",
            "/flag",
            "--memory-cache",
            "1MiB",
            "--disk-cache",
            "2MiB",
            "--timeout",
            "4",
            "--max-wait",
            "20",
            "--cpu-threads",
            "1",
            "--max-requests",
            "9",
        ])
        .service_config(&file);
        assert_eq!(flagged.format, DdsFormat::Bc1);
        assert_eq!(flagged.stall_window, Duration::from_secs(4), "the old name");
        assert_eq!(flagged.max_wait, Duration::from_secs(20));
        assert_eq!(flagged.cpu_threads, 1);
        assert_eq!(flagged.memory_cache_bytes, 1 << 20);
        assert_eq!(flagged.fetch.max_in_flight, 9);
        assert_eq!(flagged.disk_cache, Some((PathBuf::from("/flag"), 2 << 20)));

        let off = FileSettings {
            disk_cache_enabled: Some(false),
            ..file
        };
        assert_eq!(args(&[]).service_config(&off).disk_cache, None);
        assert_eq!(
            args(&["--no-disk-cache"])
                .service_config(&FileSettings::default())
                .disk_cache,
            None
        );
        assert!(Cli::try_parse_from(["x", "--timeout", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--memory-cache", "lots"]).is_err());
    }

    #[test]
    fn provider_flags_beat_the_file() {
        let name = |flags: &[&str], file: &FileSettings| {
            args(flags)
                .provider
                .providers(file)
                .unwrap()
                .primary()
                .name()
                .to_string()
        };
        let none = FileSettings::default();
        assert_eq!(name(&[], &none), "bing");
        let arcgis = FileSettings {
            provider: Some(ProviderChoice::Forced(ProviderKind::Arcgis)),
            ..FileSettings::default()
        };
        assert_eq!(name(&[], &arcgis), "arcgis");
        assert_eq!(name(&["--provider", "usgs"], &arcgis), "usgs");
        assert_eq!(name(&["--url", "http://h/{z}/{x}/{y}"], &arcgis), "custom");
        let url_only = FileSettings {
            url: Some("http://h/{z}/{x}/{y}".into()),
            ..FileSettings::default()
        };
        assert_eq!(name(&[], &url_only), "custom");
        assert_eq!(name(&["--provider", "bing"], &url_only), "bing");
        let mapbox = FileSettings {
            provider: Some(ProviderChoice::Forced(ProviderKind::Mapbox)),
            mapbox_token: Some("pk.file".into()),
            ..FileSettings::default()
        };
        assert_eq!(name(&[], &mapbox), "mapbox");
        assert!(Cli::try_parse_from(["x", "--provider", "osm"]).is_err());
        // auto beats a provider the file forces.
        let auto = args(&["--provider", "auto"]).provider.setup(&arcgis);
        assert_eq!(auto.forced, None);
        assert_eq!(
            args(&[]).provider.setup(&arcgis).forced,
            Some(ProviderKind::Arcgis)
        );
    }
}
