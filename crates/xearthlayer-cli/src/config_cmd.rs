//! `xearthlayer init` and `xearthlayer config get|set|list|path`: writing
//! and reading the configuration file (see [`crate::config`]). The file is
//! always written whole and atomically, readable by its owner only: it may
//! hold an access token.

use clap::{Args, Subcommand};
use xearthlayer::fetch::FetchConfig;
use xearthlayer::texture::ServiceConfig;

use crate::args::{default_cache_dir, CliResult, DEFAULT_DISK_CACHE};
use crate::config::{
    default_packages_dir, find_key, home_dir, template, ConfigArg, ConfigFile, Key, KEYS,
};
use crate::files;
use crate::system::human_bytes;
use crate::xplane::{find_installs, CUSTOM_SCENERY};

/// The configuration file's permission bits.
const PRIVATE: u32 = 0o600;

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Replace an existing file (its settings are lost).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print one setting (from the file, else its default).
    Get {
        /// section.key, e.g. cache.memory_size.
        key: String,
    },
    /// Set one setting in the file, keeping everything else.
    Set {
        /// section.key, e.g. cache.memory_size.
        key: String,
        /// The new value; empty for the default.
        value: String,
    },
    /// Print every setting and where it comes from (secrets masked).
    List,
    /// Print the file's path.
    Path,
}

pub fn init(args: InitArgs) -> CliResult {
    let (path, _) = args.config.location()?;
    if path.exists() && !args.force {
        return Err(format!(
            "{} exists already; keeping it (use `xearthlayer config set` to change a setting, or --force to replace the file)",
            path.display()
        )
        .into());
    }
    files::replace(&path, template(default_text).as_bytes(), Some(PRIVATE))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

pub fn run(args: ConfigArgs) -> CliResult {
    let (path, _) = args.config.location()?;
    match args.command {
        ConfigCommand::Path => {
            println!("{}", path.display());
            if !path.exists() {
                eprintln!("(not written yet: `xearthlayer init` writes it)");
            }
        }
        ConfigCommand::Get { key } => {
            let key = find_key(&key)?;
            let file = args.config.load()?;
            let value = match file.entry(key) {
                Some(entry) => Some(entry.value.clone()),
                None => default_text(key),
            };
            println!("{}", value.unwrap_or_default());
        }
        ConfigCommand::List => {
            let file = args.config.load()?;
            for key in KEYS {
                let (value, origin) = match file.entry(key) {
                    Some(entry) if key.secret => {
                        ("********".to_string(), format!("line {}", entry.line))
                    }
                    Some(entry) => (entry.value.clone(), format!("line {}", entry.line)),
                    None => (default_text(key).unwrap_or_default(), "default".to_string()),
                };
                println!("{:<34} = {value}  ({origin})", key.dotted());
            }
        }
        ConfigCommand::Set { key, value } => {
            let key = find_key(&key)?;
            let file = match args.config.load()? {
                file if file.exists => file,
                // Start from the commented file so the setting lands in context.
                _ => ConfigFile::parse(&path, template(default_text), false)?,
            };
            let text = file.with_value(key, &value)?;
            files::replace(&path, text.as_bytes(), Some(PRIVATE))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            println!(
                "{} = {}  (in {})",
                key.dotted(),
                if key.secret { "********" } else { value.trim() },
                path.display()
            );
        }
    }
    Ok(())
}

/// A key's default as the file would spell it; `None` when it has none.
fn default_text(key: &Key) -> Option<String> {
    let service = ServiceConfig::default();
    Some(match (key.section, key.name) {
        ("provider", "type") => "auto".to_string(),
        ("provider", "fallback") => "bing".to_string(),
        ("texture", "format") => service.format.to_string(),
        ("cache", "directory") => default_cache_dir().display().to_string(),
        ("cache", "memory_size") => size_text(service.memory_cache_bytes),
        ("cache", "disk_size") => size_text(DEFAULT_DISK_CACHE),
        ("cache", "enabled") => "true".to_string(),
        ("generation", "stall_seconds") => service.stall_window.as_secs_f64().to_string(),
        ("generation", "max_wait_seconds") => service.max_wait.as_secs_f64().to_string(),
        ("generation", "startup_max_wait_seconds") => {
            service.startup_max_wait.as_secs_f64().to_string()
        }
        ("generation", "cpu_threads") => service.cpu_threads.to_string(),
        ("generation", "max_requests_in_flight") => {
            FetchConfig::default().max_in_flight.to_string()
        }
        ("xplane", "custom_scenery") => {
            let install = home_dir().and_then(|home| find_installs(&home).into_iter().next())?;
            install.root.join(CUSTOM_SCENERY).display().to_string()
        }
        ("packages", "directory") => default_packages_dir()?.display().to_string(),
        _ => return None,
    })
}

/// Sizes as the file takes them: `1GiB` rather than 1073741824.
fn size_text(bytes: u64) -> String {
    human_bytes(bytes).replace(".0 ", "").replace(' ', "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::parse_size;

    #[test]
    fn defaults_read_back_as_themselves() {
        for bytes in [1u64 << 30, 20 << 30, 512 << 20] {
            assert_eq!(parse_size(&size_text(bytes)), Ok(bytes));
        }
        let text = template(default_text);
        let uncommented: String = text
            .lines()
            .map(|l| {
                if l.starts_with(";") && l.contains(" = ") {
                    &l[1..]
                } else {
                    l
                }
            })
            .filter(|l| !l.trim_end().ends_with('='))
            .map(|l| format!("{l}\n"))
            .collect();
        let file = ConfigFile::parse(std::path::Path::new("t.ini"), uncommented, true).unwrap();
        assert!(file.warnings.is_empty(), "{:?}", file.warnings);
        assert!(file.settings.memory_cache.is_some() && file.settings.max_in_flight.is_some());
    }
}
