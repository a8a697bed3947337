//! Options shared by several commands, and turning them into library types.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use xearthlayer::dds::DdsFormat;
use xearthlayer::provider::{ProviderKind, ProviderSettings, TemplateProvider, TileProvider};
use xearthlayer::texture::{ServiceConfig, TextureService};

/// Boxed errors with readable messages: the CLI prints and exits.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

#[derive(Args, Debug, Clone)]
pub struct ProviderArgs {
    /// Imagery provider: bing, go2, arcgis, usgs, eox, mapbox, custom.
    #[arg(long, default_value = "bing")]
    pub provider: String,
    /// URL template for the custom provider ({z} {x} {y} {quadkey} {server});
    /// implies --provider custom.
    #[arg(long)]
    pub url: Option<String>,
    /// Access token for mapbox.
    #[arg(long, env = "XEARTHLAYER_MAPBOX_TOKEN", hide_env_values = true)]
    pub mapbox_token: Option<String>,
}

impl ProviderArgs {
    pub fn provider(&self) -> CliResult<Arc<dyn TileProvider>> {
        let kind: ProviderKind = if self.url.is_some() {
            ProviderKind::Custom
        } else {
            self.provider.parse()?
        };
        let settings = ProviderSettings {
            url: self.url.clone(),
            mapbox_token: self.mapbox_token.clone(),
        };
        Ok(Arc::new(TemplateProvider::new(kind, &settings)?))
    }
}

#[derive(Args, Debug, Clone)]
pub struct FormatArg {
    /// Texture compression: bc1 (DXT1) or bc3 (DXT5).
    #[arg(long, default_value = "bc1", value_parser = parse_format)]
    pub format: DdsFormat,
}

fn parse_format(s: &str) -> Result<DdsFormat, String> {
    s.parse()
}

/// Everything that shapes the texture service.
#[derive(Args, Debug, Clone)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub provider: ProviderArgs,
    #[command(flatten)]
    pub format: FormatArg,
    /// Disk cache folder (default ~/.cache/xearthlayer).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Memory cache size, e.g. 1GiB.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub memory_cache: u64,
    /// Disk cache size, e.g. 20GiB.
    #[arg(long, default_value = "20GiB", value_parser = parse_size)]
    pub disk_cache: u64,
    /// Neither read nor write the disk cache.
    #[arg(long)]
    pub no_disk_cache: bool,
    /// Seconds a texture may take before it is served with what arrived.
    #[arg(long, default_value_t = 20.0)]
    pub timeout: f64,
    /// Texture parts built at once (1: one at a time, the old serial model).
    #[arg(long, default_value_t = 1024)]
    pub max_builds: usize,
}

impl ServiceArgs {
    /// The service these options describe.
    pub fn service(&self) -> CliResult<TextureService> {
        if !(self.timeout.is_finite() && self.timeout > 0.0) {
            return Err(format!("--timeout must be a positive number of seconds, not {}", self.timeout).into());
        }
        let config = ServiceConfig {
            format: self.format.format,
            budget: Duration::from_secs_f64(self.timeout),
            memory_cache_bytes: self.memory_cache,
            max_builds: self.max_builds,
            disk_cache: (!self.no_disk_cache).then(|| {
                (
                    self.cache_dir.clone().unwrap_or_else(default_cache_dir),
                    self.disk_cache,
                )
            }),
            ..ServiceConfig::default()
        };
        Ok(TextureService::new(self.provider.provider()?, config)?)
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
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
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
        other => return Err(format!("unknown size unit '{other}' in '{s}' (use KiB, MiB, GiB, TiB, or KB, MB, GB, TB)")),
    };
    Ok((number * factor as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
