//! [`Providers`]: the set of providers a service serves from, and which one
//! each texture gets.
//!
//! With `provider = auto` (the default) a texture comes from the provider
//! its name's code stands for: a code the configuration maps (to a built-in
//! or a URL template) first, then the built-in mapping ([`super::codes`]),
//! else the fallback provider, said once per code. A forced provider
//! (`--provider NAME`, `--url`) serves every texture.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::codes::{built_in_for_code, is_valid_code};
use super::{ProviderError, ProviderKind, ProviderSettings, TemplateProvider, TileProvider};
use crate::coord::TextureId;

/// What a configured code maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeTarget {
    BuiltIn(ProviderKind),
    /// A URL template: a provider of its own, named after the code.
    Template(String),
}

/// How to choose providers, as the configuration and flags say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSetup {
    /// One provider for every texture; `None`: by each name's code.
    pub forced: Option<ProviderKind>,
    /// The provider of codes nothing maps.
    pub fallback: ProviderKind,
    pub settings: ProviderSettings,
    /// Built-ins served from another URL (a mirror, a local stand-in).
    pub urls: BTreeMap<ProviderKind, String>,
    /// Codes the configuration maps.
    pub codes: BTreeMap<String, CodeTarget>,
}

impl Default for ProviderSetup {
    fn default() -> Self {
        ProviderSetup {
            forced: None,
            fallback: ProviderKind::Bing,
            settings: ProviderSettings::default(),
            urls: BTreeMap::new(),
            codes: BTreeMap::new(),
        }
    }
}

/// Why a texture gets its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Forced,
    Configured,
    BuiltIn,
    /// Nothing maps the code: the fallback provider.
    Unmapped,
}

/// The providers a service serves from. Each is built once, so the
/// download client's per-provider limits and health apply to all its
/// textures.
#[derive(Debug)]
pub struct Providers {
    forced: Option<Arc<dyn TileProvider>>,
    fallback: Arc<dyn TileProvider>,
    configured: HashMap<String, Arc<dyn TileProvider>>,
    built_ins: BTreeMap<ProviderKind, Arc<dyn TileProvider>>,
    /// Unmapped codes already said in the log.
    noted: Mutex<HashSet<String>>,
}

impl Providers {
    /// Every texture from `provider`.
    pub fn single(provider: Arc<dyn TileProvider>) -> Providers {
        Providers {
            fallback: Arc::clone(&provider),
            forced: Some(provider),
            configured: HashMap::new(),
            built_ins: BTreeMap::new(),
            noted: Mutex::default(),
        }
    }

    /// The providers `setup` describes; fails on a provider it needs that
    /// cannot be made (a bad template, a missing token or URL).
    pub fn build(setup: &ProviderSetup) -> Result<Providers, ProviderError> {
        let make = |kind: ProviderKind| -> Result<Arc<dyn TileProvider>, ProviderError> {
            let url = setup.urls.get(&kind).map(String::as_str);
            Ok(Arc::new(TemplateProvider::built_in(
                kind,
                &setup.settings,
                url,
            )?))
        };
        if let Some(kind) = setup.forced {
            return Ok(Providers::single(make(kind)?));
        }
        // Built-ins that need nothing from the user are always there; the
        // others only when something asks for them.
        let mut built_ins = BTreeMap::new();
        for kind in ProviderKind::ALL {
            match make(kind) {
                Ok(provider) => {
                    built_ins.insert(kind, provider);
                }
                Err(ProviderError::MissingToken | ProviderError::MissingUrl)
                    if kind != setup.fallback =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
        let mut configured = HashMap::new();
        for (code, target) in &setup.codes {
            if !is_valid_code(code) {
                return Err(ProviderError::BadCode(code.clone()));
            }
            let provider: Arc<dyn TileProvider> = match target {
                CodeTarget::BuiltIn(kind) => match built_ins.get(kind) {
                    Some(p) => Arc::clone(p),
                    None => make(*kind)?,
                },
                CodeTarget::Template(template) => {
                    Arc::new(TemplateProvider::from_template(code, template)?)
                }
            };
            configured.insert(code.clone(), provider);
        }
        let fallback = match built_ins.get(&setup.fallback) {
            Some(p) => Arc::clone(p),
            None => make(setup.fallback)?,
        };
        Ok(Providers {
            forced: None,
            fallback,
            configured,
            built_ins,
            noted: Mutex::default(),
        })
    }

    /// The provider of a texture.
    pub fn for_texture(&self, id: &TextureId) -> Arc<dyn TileProvider> {
        let (provider, choice) = self.resolve(&id.map_type);
        if choice == Choice::Unmapped {
            let first = self
                .noted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.map_type.clone());
            if first {
                tracing::info!(
                    code = %id.map_type,
                    provider = provider.name(),
                    "no provider maps this texture code: its textures come from the fallback provider (map it in [codes])"
                );
            }
        }
        provider
    }

    /// The provider of textures with `code`, and why.
    pub fn resolve(&self, code: &str) -> (Arc<dyn TileProvider>, Choice) {
        if let Some(p) = &self.forced {
            return (Arc::clone(p), Choice::Forced);
        }
        if let Some(p) = self.configured.get(code) {
            return (Arc::clone(p), Choice::Configured);
        }
        if let Some(p) = built_in_for_code(code).and_then(|kind| self.built_ins.get(&kind)) {
            return (Arc::clone(p), Choice::BuiltIn);
        }
        (Arc::clone(&self.fallback), Choice::Unmapped)
    }

    /// Which provider a texture maps to and why, in a sentence.
    pub fn explain(&self, id: &TextureId) -> String {
        let code = &id.map_type;
        let (p, choice) = self.resolve(code);
        let name = p.display_name();
        match choice {
            Choice::Forced => format!("{name}: one provider serves every texture (forced)"),
            Choice::Configured => {
                format!("{name}: the configuration maps code '{code}' to it ([codes])")
            }
            Choice::BuiltIn => format!("{name}: code '{code}' is its Ortho4XP code"),
            Choice::Unmapped if code.is_empty() => {
                format!("{name}: the name has no code, so the fallback provider serves it")
            }
            Choice::Unmapped => format!(
                "{name}: no provider maps code '{code}', so the fallback provider serves it \
                 (map it in the [codes] section of the configuration)"
            ),
        }
    }

    /// Every provider of the set, once each by cache key.
    pub fn all(&self) -> Vec<Arc<dyn TileProvider>> {
        let mut seen = HashSet::new();
        self.forced
            .iter()
            .chain(std::iter::once(&self.fallback))
            .chain(self.configured.values())
            .chain(self.built_ins.values())
            .filter(|p| seen.insert(p.cache_key().to_string()))
            .cloned()
            .collect()
    }

    /// The providers the configuration names: the forced one, or the
    /// fallback and those its `[codes]` map to; once each by cache key.
    pub fn configured(&self) -> Vec<Arc<dyn TileProvider>> {
        let mut seen = HashSet::new();
        let mut configured: Vec<&Arc<dyn TileProvider>> = self.configured.values().collect();
        configured.sort_by(|a, b| a.cache_key().cmp(b.cache_key()));
        std::iter::once(self.primary())
            .chain(
                self.forced
                    .is_none()
                    .then_some(configured)
                    .into_iter()
                    .flatten(),
            )
            .filter(|p| seen.insert(p.cache_key().to_string()))
            .cloned()
            .collect()
    }

    /// The forced provider, or the fallback: the one to name when a
    /// single provider is asked for (status line, `doctor`).
    pub fn primary(&self) -> &Arc<dyn TileProvider> {
        self.forced.as_ref().unwrap_or(&self.fallback)
    }

    /// The set in a few words, for status lines: the forced provider, or
    /// "by texture code" and the fallback.
    pub fn describe(&self) -> String {
        match &self.forced {
            Some(p) => p.display_name().to_string(),
            None => format!(
                "providers by texture code (fallback {})",
                self.fallback.display_name()
            ),
        }
    }

    /// Whether one provider serves everything.
    pub fn is_forced(&self) -> bool {
        self.forced.is_some()
    }
}

impl From<Arc<dyn TileProvider>> for Providers {
    fn from(provider: Arc<dyn TileProvider>) -> Self {
        Providers::single(provider)
    }
}

impl From<Arc<TemplateProvider>> for Providers {
    fn from(provider: Arc<TemplateProvider>) -> Self {
        Providers::single(provider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> TextureId {
        TextureId::parse(name).unwrap()
    }

    #[test]
    fn codes_choose_providers_and_a_forced_one_wins() {
        let mut setup = ProviderSetup::default();
        setup.codes.insert(
            "DOP40".into(),
            CodeTarget::Template("https://dop.example/{z}/{x}/{y}.jpg".into()),
        );
        setup
            .codes
            .insert("Arc@".into(), CodeTarget::BuiltIn(ProviderKind::Arcgis));
        let providers = Providers::build(&setup).unwrap();
        let name = |n: &str| providers.for_texture(&id(n)).name().to_string();
        assert_eq!(name("25264_10368_BI16.dds"), "bing");
        assert_eq!(name("25264_10368_GO216.dds"), "go2");
        assert_eq!(name("25264_10368_CA_NAIP16.dds"), "naip");
        assert_eq!(name("25264_10368_DOP4016.dds"), "DOP40");
        assert_eq!(name("25264_10368_Arc@16.dds"), "arcgis");
        assert_eq!(name("25264_10368_FR2010_16.dds"), "bing");
        assert_eq!(
            providers.resolve("FR2010_").1,
            Choice::Unmapped,
            "{}",
            providers.explain(&id("25264_10368_FR2010_16.dds"))
        );
        assert!(providers
            .explain(&id("25264_10368_DOP4016.dds"))
            .contains("[codes]"));
        // The same built-in is one provider whichever way it is reached.
        assert!(Arc::ptr_eq(
            &providers.for_texture(&id("25264_10368_Arc@16.dds")),
            &providers.for_texture(&id("25264_10368_ARC16.dds"))
        ));
        let keys: Vec<_> = providers
            .all()
            .iter()
            .map(|p| p.cache_key().to_string())
            .collect();
        assert!(
            keys.iter().any(|k| k.starts_with("DOP40-dop.example-")),
            "{keys:?}"
        );

        setup.forced = Some(ProviderKind::Usgs);
        let forced = Providers::build(&setup).unwrap();
        assert_eq!(
            forced.for_texture(&id("25264_10368_BI16.dds")).name(),
            "usgs"
        );
        assert_eq!(forced.all().len(), 1);
        assert!(forced
            .explain(&id("25264_10368_BI16.dds"))
            .contains("forced"));
    }

    #[test]
    fn bad_setups_are_refused() {
        let mut setup = ProviderSetup::default();
        setup
            .codes
            .insert("X".into(), CodeTarget::Template("http://h/{z}.jpg".into()));
        assert!(matches!(
            Providers::build(&setup),
            Err(ProviderError::BadTemplate(_))
        ));
        let setup = ProviderSetup {
            fallback: ProviderKind::Mapbox,
            ..Default::default()
        };
        assert_eq!(
            Providers::build(&setup).unwrap_err(),
            ProviderError::MissingToken
        );
        let setup = ProviderSetup {
            forced: Some(ProviderKind::Custom),
            ..Default::default()
        };
        assert_eq!(
            Providers::build(&setup).unwrap_err(),
            ProviderError::MissingUrl
        );
    }
}
