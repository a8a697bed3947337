//! The configuration file: `~/.xearthlayer/config.ini`, or the file named by
//! `--config FILE` or `XEARTHLAYER_CONFIG`.
//!
//! An INI file: `[section]` headers, `key = value` lines, and comments on
//! lines of their own starting with `;` or `#`. [`KEYS`] lists every key with
//! its help text (for `init`, `config list`); [`FileSettings`] holds the
//! values, typed and checked as the file is read, so a bad value fails at
//! once naming the file, the line and the key. An unknown key is only a
//! warning: a typo must not keep anyone from flying. The file sits between
//! command-line flags and defaults; the commands resolve each value as
//! `flag.or(file).unwrap_or(default)` where they turn options into settings
//! (`args.rs` for the texture service, `xplane.rs` and `run.rs` for folders).
//!
//! The parser is written here rather than taken from a crate: the format is
//! a dozen lines of code, and `config set` must edit the file in place,
//! keeping the user's comments and order, which INI crates do not offer.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use xearthlayer::dds::DdsFormat;
use xearthlayer::provider::codes::is_valid_code;
use xearthlayer::provider::{CodeTarget, ProviderKind, TemplateProvider, UrlTemplate};

use crate::args::{
    parse_count, parse_provider, parse_provider_kind, parse_seconds, parse_size, CliResult,
    ProviderChoice,
};

/// Sections whose keys are the user's: `[codes]` maps texture codes
/// (case-sensitive, as Ortho4XP spells them) to a built-in provider or a
/// URL template; `[provider_urls]` serves a built-in from another URL.
pub const OPEN_SECTIONS: [&str; 2] = ["codes", "provider_urls"];

/// The environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "XEARTHLAYER_CONFIG";

/// One key of the file.
#[derive(Debug)]
pub struct Key {
    pub section: &'static str,
    pub name: &'static str,
    /// What it sets, for the commented file `init` writes.
    pub about: &'static str,
    /// Masked by `config list`.
    pub secret: bool,
}

impl Key {
    /// `section.name`, as `config get` and `config set` take it.
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.section, self.name)
    }
}

const fn key(section: &'static str, name: &'static str, about: &'static str) -> Key {
    Key {
        section,
        name,
        about,
        secret: false,
    }
}

/// Every key the file may hold, in the order `init` writes them.
pub const KEYS: &[Key] = &[
    key(
        "provider",
        "type",
        "Imagery provider: auto (each texture from the provider its name's code maps to; see [codes]), or one for every texture: bing, go2, arcgis, usgs, eox, naip, firefly, mapbox or custom.",
    ),
    key(
        "provider",
        "fallback",
        "With auto: the provider of textures whose code nothing maps (default bing).",
    ),
    key(
        "provider",
        "url",
        "URL template of the custom provider, with {z} {x} {y}, or {quadkey}; {server} rotates 0-3.",
    ),
    Key {
        secret: true,
        ..key(
            "provider",
            "mapbox_token",
            "Access token of the mapbox provider. This file is kept readable by you only (mode 0600).",
        )
    },
    key(
        "texture",
        "format",
        "Texture compression: bc1 (DXT1, half the size) or bc3 (DXT5).",
    ),
    key("cache", "directory", "Disk cache folder (absolute, or starting with ~/)."),
    key("cache", "memory_size", "Memory cache size, e.g. 2GiB."),
    key(
        "cache",
        "disk_size",
        "Disk cache size per provider and format, e.g. 50GiB; the least recently used textures go first.",
    ),
    key("cache", "enabled", "Use the disk cache: true or false."),
    key(
        "generation",
        "stall_seconds",
        "Seconds the provider may leave every request unanswered before waiting reads get stand-ins.",
    ),
    key(
        "generation",
        "max_wait_seconds",
        "Longest a texture read waits in flight, however its imagery moves; then stand-ins.",
    ),
    key(
        "generation",
        "startup_max_wait_seconds",
        "The same during X-Plane's first scenery load (its loading screen is up).",
    ),
    key(
        "generation",
        "cpu_threads",
        "Textures decoded and compressed at once (CPU work); default: the number of cores.",
    ),
    key(
        "generation",
        "max_requests_in_flight",
        "Imagery downloads in flight at once, across all packages.",
    ),
    key(
        "xplane",
        "custom_scenery",
        "X-Plane's Custom Scenery folder; default: found from ~/.x-plane/x-plane_install_12.txt (or _11).",
    ),
    key(
        "packages",
        "directory",
        "Folder of ortho scenery packages that `xearthlayer run` mounts.",
    ),
    key(
        "prefetch",
        "telemetry",
        "Where the aircraft is, for prefetch: auto, off, inferred, udp://HOST:PORT or http://HOST:PORT.",
    ),
];

/// The old name of `generation.stall_seconds` (it was the read bound),
/// still read, with a notice.
const RENAMED_STALL_KEY: &str = "budget_seconds";

/// The key named `section.name`, or an error listing the keys.
pub fn find_key(dotted: &str) -> CliResult<&'static Key> {
    KEYS.iter()
        .find(|k| k.dotted().eq_ignore_ascii_case(dotted.trim()))
        .ok_or_else(|| {
            let all: Vec<String> = KEYS.iter().map(Key::dotted).collect();
            format!("unknown key '{dotted}'; the keys are: {}", all.join(", ")).into()
        })
}

/// The values the file sets, each checked. `None`: not in the file (or
/// empty), so the flag or the default decides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileSettings {
    pub provider: Option<ProviderChoice>,
    pub fallback: Option<ProviderKind>,
    /// `[codes]`: texture code -> provider.
    pub codes: BTreeMap<String, CodeTarget>,
    /// `[provider_urls]`: a built-in served from another URL.
    pub provider_urls: BTreeMap<ProviderKind, String>,
    pub url: Option<String>,
    pub mapbox_token: Option<String>,
    pub format: Option<DdsFormat>,
    pub cache_dir: Option<PathBuf>,
    pub memory_cache: Option<u64>,
    pub disk_cache: Option<u64>,
    pub disk_cache_enabled: Option<bool>,
    pub stall_window: Option<Duration>,
    pub max_wait: Option<Duration>,
    pub startup_max_wait: Option<Duration>,
    pub cpu_threads: Option<usize>,
    pub max_in_flight: Option<usize>,
    pub custom_scenery: Option<PathBuf>,
    pub packages_dir: Option<PathBuf>,
    pub telemetry: Option<xearthlayer::telemetry::TelemetrySpec>,
}

/// Why a `key = value` line was not taken.
#[derive(Debug, PartialEq)]
enum Refused {
    UnknownKey,
    BadValue(String),
}

impl FileSettings {
    /// Checks and stores one value. An empty value means "the default".
    fn set(&mut self, section: &str, name: &str, value: &str) -> Result<(), Refused> {
        fn parsed<T>(
            value: &str,
            parse: impl FnOnce(&str) -> Result<T, String>,
        ) -> Result<Option<T>, Refused> {
            if value.is_empty() {
                return Ok(None);
            }
            parse(value).map(Some).map_err(Refused::BadValue)
        }
        match (section, name) {
            ("provider", "type") => self.provider = parsed(value, parse_provider)?,
            ("provider", "fallback") => {
                self.fallback = parsed(value, |v| v.parse().map_err(|e| format!("{e}")))?
            }
            ("provider", "url") => {
                self.url = parsed(value, |v| {
                    TemplateProvider::custom(v).map_err(|e| e.to_string())?;
                    Ok(v.to_string())
                })?
            }
            ("provider", "mapbox_token") => {
                self.mapbox_token = parsed(value, |v| Ok(v.to_string()))?
            }
            ("texture", "format") => self.format = parsed(value, str::parse)?,
            ("cache", "directory") => self.cache_dir = parsed(value, parse_path)?,
            ("cache", "memory_size") => self.memory_cache = parsed(value, parse_size)?,
            ("cache", "disk_size") => self.disk_cache = parsed(value, parse_size)?,
            ("cache", "enabled") => self.disk_cache_enabled = parsed(value, parse_bool)?,
            ("generation", "stall_seconds") | ("generation", RENAMED_STALL_KEY) => {
                self.stall_window = parsed(value, parse_seconds)?
            }
            ("generation", "max_wait_seconds") => self.max_wait = parsed(value, parse_seconds)?,
            ("generation", "startup_max_wait_seconds") => {
                self.startup_max_wait = parsed(value, parse_seconds)?
            }
            ("generation", "cpu_threads") => self.cpu_threads = parsed(value, parse_count)?,
            ("generation", "max_requests_in_flight") => {
                self.max_in_flight = parsed(value, parse_count)?
            }
            ("xplane", "custom_scenery") => self.custom_scenery = parsed(value, parse_path)?,
            ("packages", "directory") => self.packages_dir = parsed(value, parse_path)?,
            ("prefetch", "telemetry") => {
                self.telemetry = parsed(value, |v| v.parse().map_err(|e| format!("{e}")))?
            }
            _ => return Err(Refused::UnknownKey),
        }
        Ok(())
    }
}

impl FileSettings {
    /// One line of an open section (`[codes]`, `[provider_urls]`); the name
    /// keeps its case.
    fn set_open(&mut self, section: &str, name: &str, value: &str) -> Result<(), String> {
        match section {
            "codes" => {
                if !is_valid_code(name) {
                    return Err(format!("'{name}' is not a texture code"));
                }
                let target = match value.parse::<ProviderKind>() {
                    Ok(ProviderKind::Custom) => {
                        return Err("map the code to a URL template instead of custom".into())
                    }
                    Ok(kind) => CodeTarget::BuiltIn(kind),
                    Err(_) => {
                        UrlTemplate::parse(value).map_err(|e| {
                            format!("'{value}' is neither a provider name nor a URL template: {e}")
                        })?;
                        CodeTarget::Template(value.to_string())
                    }
                };
                self.codes.insert(name.to_string(), target);
            }
            _ => {
                let kind = parse_provider_kind(name)?;
                UrlTemplate::parse(value).map_err(|e| e.to_string())?;
                self.provider_urls.insert(kind, value.to_string());
            }
        }
        Ok(())
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("'{s}' is not true or false")),
    }
}

/// An absolute path, or one starting with `~/` (the home folder). Relative
/// paths are refused: relative to what would be a guess.
fn parse_path(s: &str) -> Result<PathBuf, String> {
    let expanded = match s.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            let home = home_dir().ok_or_else(|| format!("cannot expand '{s}': HOME is not set"))?;
            home.join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(s),
    };
    if expanded.is_absolute() {
        Ok(expanded)
    } else {
        Err(format!(
            "'{s}' is not an absolute path (start it with / or ~/)"
        ))
    }
}

/// The user's home folder, from `HOME`.
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// `~/.xearthlayer`: the configuration and the default packages folder.
pub fn xearthlayer_dir() -> Option<PathBuf> {
    home_dir().map(|h| h.join(".xearthlayer"))
}

/// The default packages folder: `~/.xearthlayer/packages`.
pub fn default_packages_dir() -> Option<PathBuf> {
    xearthlayer_dir().map(|d| d.join("packages"))
}

/// One `key = value` line of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub section: String,
    pub name: String,
    pub value: String,
    /// 1-based.
    pub line: usize,
}

/// A configuration file as read: its values, checked, and its text.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// False when the default file does not exist: everything is default.
    pub exists: bool,
    pub settings: FileSettings,
    /// The known keys present, in file order.
    pub entries: Vec<Entry>,
    pub text: String,
    /// Unknown keys and sections, risky permissions: worth saying, not fatal.
    pub warnings: Vec<String>,
}

impl ConfigFile {
    /// Reads and checks the file. A missing file is an error only when
    /// `must_exist` (the user named it).
    pub fn load(path: &Path, must_exist: bool) -> CliResult<ConfigFile> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                return Ok(ConfigFile::parse(path, String::new(), false)?);
            }
            Err(e) => {
                return Err(
                    format!("cannot read the configuration file {}: {e}", path.display()).into(),
                )
            }
        };
        let mut file = ConfigFile::parse(path, text, true)?;
        if file.settings.mapbox_token.is_some() {
            if let Ok(md) = std::fs::metadata(path) {
                if md.permissions().mode() & 0o077 != 0 {
                    file.warnings.push(format!(
                        "{} holds an access token but others may read it: run `chmod 600 {}`",
                        path.display(),
                        path.display()
                    ));
                }
            }
        }
        Ok(file)
    }

    /// Parses `text` as the contents of `path` (named in errors).
    pub fn parse(path: &Path, text: String, exists: bool) -> Result<ConfigFile, String> {
        let at = |line: usize| format!("{} line {line}", path.display());
        let mut settings = FileSettings::default();
        let mut entries: Vec<Entry> = Vec::new();
        let mut warnings = Vec::new();
        let mut section: Option<String> = None;
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
                continue;
            }
            if let Some(inner) = line.strip_prefix('[') {
                let name = inner.strip_suffix(']').ok_or_else(|| {
                    format!(
                        "{}: '{line}' is not a section header: write [name]",
                        at(line_no)
                    )
                })?;
                let name = name.trim().to_ascii_lowercase();
                if !KEYS.iter().any(|k| k.section == name)
                    && !OPEN_SECTIONS.contains(&name.as_str())
                {
                    warnings.push(format!(
                        "{}: unknown section [{name}] (its keys are ignored)",
                        at(line_no)
                    ));
                }
                section = Some(name);
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                return Err(format!(
                    "{}: expected `key = value` or `[section]`, found '{line}'",
                    at(line_no)
                ));
            };
            let raw_name = name.trim();
            let name = raw_name.to_ascii_lowercase();
            let value = unquote(value.trim());
            let Some(section) = section.as_deref() else {
                warnings.push(format!(
                    "{}: key '{name}' is outside any [section] and is ignored",
                    at(line_no)
                ));
                continue;
            };
            if OPEN_SECTIONS.contains(&section) {
                if value.is_empty() {
                    continue;
                }
                settings
                    .set_open(section, raw_name, value)
                    .map_err(|why| format!("{}: {section}.{raw_name}: {why}", at(line_no)))?;
                continue;
            }
            if !KEYS.iter().any(|k| k.section == section) {
                continue;
            }
            if let Some(first) = seen.insert((section.to_string(), name.clone()), line_no) {
                return Err(format!(
                    "{}: {section}.{name} is set twice (first on line {first}); keep one",
                    at(line_no)
                ));
            }
            match settings.set(section, &name, value) {
                Ok(()) if section == "generation" && name == RENAMED_STALL_KEY => {
                    warnings.push(format!(
                        "{}: generation.{RENAMED_STALL_KEY} is now generation.stall_seconds; read as that (rename it)",
                        at(line_no)
                    ));
                }
                Ok(()) => entries.push(Entry {
                    section: section.to_string(),
                    name,
                    value: value.to_string(),
                    line: line_no,
                }),
                Err(Refused::UnknownKey) => warnings.push(format!(
                    "{}: unknown key '{name}' in [{section}] is ignored",
                    at(line_no)
                )),
                Err(Refused::BadValue(why)) => {
                    return Err(format!("{}: {section}.{name}: {why}", at(line_no)));
                }
            }
        }
        Ok(ConfigFile {
            path: path.to_path_buf(),
            exists,
            settings,
            entries,
            text,
            warnings,
        })
    }

    /// The line setting `key`, if the file has one.
    pub fn entry(&self, key: &Key) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.section == key.section && e.name == key.name)
    }

    /// The file's text with `key` set to `value` (checked first): the key's
    /// line replaced if present, else added to its section (after the
    /// commented-out example `init` wrote, if any), else a new section at
    /// the end. Every other line stays as it was.
    pub fn with_value(&self, key: &Key, value: &str) -> Result<String, String> {
        if value.contains(['\n', '\r']) {
            return Err("a value must fit on one line".to_string());
        }
        FileSettings::default()
            .set(key.section, key.name, value.trim())
            .map_err(|refused| match refused {
                Refused::BadValue(why) => format!("{}: {why}", key.dotted()),
                Refused::UnknownKey => format!("{} is not a key", key.dotted()),
            })?;
        let new_line = format!("{} = {}", key.name, value.trim());
        let mut lines: Vec<String> = self.text.lines().map(str::to_string).collect();
        if let Some(entry) = self.entry(key) {
            lines[entry.line - 1] = new_line;
        } else if let Some(at) = insertion_point(&lines, key) {
            lines.insert(at, new_line);
        } else {
            if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                lines.push(String::new());
            }
            lines.push(format!("[{}]", key.section));
            lines.push(new_line);
        }
        let mut text = lines.join("\n");
        text.push('\n');
        Ok(text)
    }
}

/// Where a new line for `key` goes: after its commented-out example in its
/// section, else right after the section header. `None`: no such section.
fn insertion_point(lines: &[String], key: &Key) -> Option<usize> {
    let header = lines.iter().position(|l| {
        l.trim()
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .is_some_and(|s| s.trim().eq_ignore_ascii_case(key.section))
    })?;
    let end = lines[header + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .map_or(lines.len(), |n| header + 1 + n);
    let example = lines[header + 1..end].iter().position(|l| {
        l.trim()
            .trim_start_matches([';', '#'])
            .split_once('=')
            .is_some_and(|(k, _)| k.trim() == key.name)
    });
    Some(example.map_or(header + 1, |n| header + 2 + n))
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Where the configuration file is and whether the user named it.
#[derive(Args, Debug, Clone, Default)]
pub struct ConfigArg {
    /// Configuration file [default: ~/.xearthlayer/config.ini].
    #[arg(long = "config", value_name = "FILE", env = CONFIG_ENV, global = true)]
    pub path: Option<PathBuf>,
}

impl ConfigArg {
    /// The file's path, and whether it was named (flag or environment).
    pub fn location(&self) -> CliResult<(PathBuf, bool)> {
        match &self.path {
            Some(path) => Ok((path.clone(), true)),
            None => xearthlayer_dir()
                .map(|d| (d.join("config.ini"), false))
                .ok_or_else(|| {
                    format!("HOME is not set: name the configuration file with --config FILE or {CONFIG_ENV}").into()
                }),
        }
    }

    /// Reads the file, printing its warnings. A file named explicitly must
    /// exist; the default one may be absent (all defaults).
    pub fn load(&self) -> CliResult<ConfigFile> {
        let (path, named) = match self.location() {
            Ok(found) => found,
            // No HOME and no file named: run on defaults.
            Err(_) if self.path.is_none() => {
                return Ok(ConfigFile::parse(
                    Path::new("(none)"),
                    String::new(),
                    false,
                )?)
            }
            Err(e) => return Err(e),
        };
        let file = ConfigFile::load(&path, named)?;
        for warning in &file.warnings {
            eprintln!("warning: {warning}");
        }
        Ok(file)
    }
}

/// The commented file `init` writes: every key, commented out, with its
/// default value as `default_of` gives it.
pub fn template(default_of: impl Fn(&Key) -> Option<String>) -> String {
    let mut out = String::new();
    out.push_str(
        "; XEarthLayer configuration.\n\
         ;\n\
         ; Each setting below is commented out and shows its default: remove the\n\
         ; leading ';' to change it. Comments go on lines of their own (; or #).\n\
         ; Command-line flags override this file. Sizes: KiB MiB GiB TiB (or KB MB\n\
         ; GB TB). Paths: absolute, or starting with ~/.\n\
         ; `xearthlayer config set KEY VALUE` edits this file, keeping comments.\n",
    );
    let mut section = "";
    for key in KEYS {
        if key.section != section {
            section = key.section;
            let _ = write!(out, "\n[{section}]\n");
        }
        let _ = writeln!(out, "; {}", key.about);
        let _ = writeln!(
            out,
            ";{} = {}",
            key.name,
            default_of(key).unwrap_or_default()
        );
    }
    out.push_str(
        "\n[codes]\n\
         ; With provider.type auto, each texture comes from the provider its name's\n\
         ; code maps to (BI Bing, GO2 Google, ARC ArcGIS, EOX, USGS, *_NAIP NAIP,\n\
         ; FIREFLY). Map any other code (as spelled in the names) to a built-in\n\
         ; provider or a URL template with {z} {x} {y} or {quadkey}:\n\
         ;DOP40 = https://sg.geodatenzentrum.de/wmts_dop40/tile/1.0.0/dop40/default/WEBMERCATOR/{z}/{y}/{x}.jpeg\n\
         ;Arc@ = arcgis\n\
         \n[provider_urls]\n\
         ; Serve a built-in provider from another URL (a mirror), keeping its limits:\n\
         ;arcgis = https://mirror.example/arcgis/{z}/{y}/{x}\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, String> {
        ConfigFile::parse(Path::new("/x/config.ini"), text.to_string(), true)
    }

    /// A value every key accepts.
    fn sample(key: &Key) -> &'static str {
        match key.dotted().as_str() {
            "provider.type" => "arcgis",
            "provider.fallback" => "usgs",
            "provider.url" => "http://h/{z}/{x}/{y}.jpg",
            "provider.mapbox_token" => "pk.secret",
            "texture.format" => "bc3",
            "cache.directory" | "xplane.custom_scenery" | "packages.directory" => "/data/x",
            "cache.memory_size" | "cache.disk_size" => "3GiB",
            "cache.enabled" => "no",
            "generation.stall_seconds" => "2.5",
            "prefetch.telemetry" => "udp://127.0.0.1:49000",
            _ => "7",
        }
    }

    #[test]
    fn every_listed_key_is_read_and_nothing_else() {
        for key in KEYS {
            let mut s = FileSettings::default();
            assert_eq!(
                s.set(key.section, key.name, sample(key)),
                Ok(()),
                "{}",
                key.dotted()
            );
            assert_ne!(s, FileSettings::default(), "{} sets nothing", key.dotted());
        }
        let mut s = FileSettings::default();
        assert_eq!(s.set("cache", "colour", "red"), Err(Refused::UnknownKey));
        let all = KEYS
            .iter()
            .map(|k| format!("[{}]\n{} = {}\n", k.section, k.name, sample(k)))
            .collect::<String>();
        let file = parse(&all).unwrap();
        assert_eq!(file.entries.len(), KEYS.len());
        assert_eq!(
            file.settings.stall_window,
            Some(Duration::from_millis(2500))
        );
        assert_eq!(file.settings.disk_cache_enabled, Some(false));
    }

    #[test]
    fn parses_sections_comments_quotes_and_tilde() {
        let file = parse(
            "; comment\n# another\n[Cache]\n  Memory_Size = 512MiB\ndirectory = \"~/cache\"\n\n[provider]\ntype=usgs\nurl =\n",
        )
        .unwrap();
        assert_eq!(file.settings.memory_cache, Some(512 << 20));
        assert_eq!(file.settings.cache_dir, home_dir().map(|h| h.join("cache")));
        assert_eq!(
            file.settings.provider,
            Some(ProviderChoice::Forced(ProviderKind::Usgs))
        );
        assert_eq!(file.settings.url, None, "an empty value means the default");
        assert_eq!(file.entries[1].line, 5);
        assert!(file.warnings.is_empty());
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        let err = parse("[cache]\n\nmemory_size = lots\n").unwrap_err();
        assert!(
            err.starts_with("/x/config.ini line 3: cache.memory_size:"),
            "{err}"
        );
        assert!(err.contains("not a size"), "{err}");
        let err = parse("[provider]\ntype = osm\n").unwrap_err();
        assert!(
            err.contains("line 2: provider.type: unknown provider 'osm'"),
            "{err}"
        );
        let err = parse("[cache]\ndirectory = cache\n").unwrap_err();
        assert!(err.contains("not an absolute path"), "{err}");
        let err = parse("[generation]\ncpu_threads = 0\n").unwrap_err();
        assert!(err.contains("generation.cpu_threads"), "{err}");
        let err = parse("[cache]\nmemory_size = 1GiB\nmemory_size = 2GiB\n").unwrap_err();
        assert!(err.contains("line 3") && err.contains("twice"), "{err}");
        assert!(parse("[cache\n").unwrap_err().contains("line 1"));
        assert!(parse("[cache]\njust words\n")
            .unwrap_err()
            .contains("key = value"));
    }

    #[test]
    fn unknown_keys_and_sections_are_warnings() {
        let file = parse("[cache]\ncolour = red\n[weather]\nrain = yes\ntop = 1\n").unwrap();
        assert_eq!(file.warnings.len(), 2, "{:?}", file.warnings);
        assert!(file.warnings[0].contains("line 2: unknown key 'colour' in [cache]"));
        assert!(file.warnings[1].contains("line 3: unknown section [weather]"));
    }

    #[test]
    fn the_template_is_all_comments_and_set_fills_it() {
        let text = template(|k| (k.name == "format").then(|| "bc1".to_string()));
        let file = parse(&text).unwrap();
        assert!(file.entries.is_empty() && file.warnings.is_empty());
        for key in KEYS {
            assert!(
                text.contains(&format!(";{} = ", key.name)),
                "{}",
                key.dotted()
            );
        }
        let key = find_key("cache.memory_size").unwrap();
        let edited = file.with_value(key, "4GiB").unwrap();
        let again = parse(&edited).unwrap();
        assert_eq!(again.settings.memory_cache, Some(4 << 30));
        // Added just below its commented-out example; every old line kept.
        let example = edited
            .lines()
            .position(|l| l.starts_with(";memory_size"))
            .unwrap();
        assert_eq!(edited.lines().nth(example + 1), Some("memory_size = 4GiB"));
        assert_eq!(edited.lines().count(), text.lines().count() + 1);
        // Set again: the line is replaced, not repeated.
        let twice = again.with_value(key, "1GiB").unwrap();
        assert_eq!(twice.lines().count(), edited.lines().count());
        assert!(again
            .with_value(key, "huge")
            .unwrap_err()
            .contains("not a size"));
    }

    #[test]
    fn the_telemetry_key_takes_inferred_and_rejects_the_unknown() {
        use xearthlayer::telemetry::TelemetrySpec;
        let file = parse("[prefetch]\ntelemetry = inferred\n").unwrap();
        assert_eq!(file.settings.telemetry, Some(TelemetrySpec::Inferred));
        let err = parse("[prefetch]\ntelemetry = guessed\n").unwrap_err();
        assert!(err.contains("inferred"), "{err}");
    }

    #[test]
    fn set_adds_a_missing_section() {
        let file = parse("[cache]\nenabled = true\n").unwrap();
        let text = file
            .with_value(
                find_key("xplane.custom_scenery").unwrap(),
                "/xp/Custom Scenery",
            )
            .unwrap();
        assert_eq!(
            text,
            "[cache]\nenabled = true\n\n[xplane]\ncustom_scenery = /xp/Custom Scenery\n"
        );
        assert!(find_key("cache.nope").is_err());
    }
}
