//! The built-in providers: public tile endpoints, each with its own zoom
//! range, requests in flight, headers and filler rule. Each built-in's URL
//! may be replaced (a mirror, or a local server standing in for it in
//! tests); it keeps everything else, and its cache key follows the URL.

use std::str::FromStr;

use super::template::{TemplateProvider, UrlTemplate, CUSTOM_MAX_IN_FLIGHT};
use super::{FillerRule, ProviderError};
use crate::coord::MAX_ZOOM;

/// The built-in providers by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderKind {
    Bing,
    Go2,
    Arcgis,
    Usgs,
    Eox,
    Naip,
    Firefly,
    Mapbox,
    Custom,
}

/// Settings a provider may need besides its kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderSettings {
    /// URL template for `custom`.
    pub url: Option<String>,
    /// Access token for `mapbox`.
    pub mapbox_token: Option<String>,
}

/// What one built-in is.
struct Spec {
    display: &'static str,
    template: &'static str,
    max_zoom: u8,
    max_in_flight: usize,
    referer: Option<&'static str>,
    filler: FillerRule,
}

const PLAIN: FillerRule = FillerRule {
    marker: None,
    uniform: true,
};

impl ProviderKind {
    pub const ALL: [ProviderKind; 9] = [
        ProviderKind::Bing,
        ProviderKind::Go2,
        ProviderKind::Arcgis,
        ProviderKind::Usgs,
        ProviderKind::Eox,
        ProviderKind::Naip,
        ProviderKind::Firefly,
        ProviderKind::Mapbox,
        ProviderKind::Custom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Bing => "bing",
            ProviderKind::Go2 => "go2",
            ProviderKind::Arcgis => "arcgis",
            ProviderKind::Usgs => "usgs",
            ProviderKind::Eox => "eox",
            ProviderKind::Naip => "naip",
            ProviderKind::Firefly => "firefly",
            ProviderKind::Mapbox => "mapbox",
            ProviderKind::Custom => "custom",
        }
    }

    /// "bing, go2, ..." for messages.
    pub fn names() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
        names.join(", ")
    }

    /// The endpoint and limits; `None` for `custom` (the user's template).
    fn spec(self) -> Option<Spec> {
        let spec = |display, template, max_zoom, max_in_flight| Spec {
            display,
            template,
            max_zoom,
            max_in_flight,
            referer: None,
            filler: PLAIN,
        };
        Some(match self {
            ProviderKind::Bing => Spec {
                // Bing answers "no imagery" tiles with this header.
                filler: FillerRule {
                    marker: Some(("x-ve-tile-info", "no-tile")),
                    uniform: true,
                },
                ..spec(
                    "Bing Maps Aerial",
                    "https://ecn.t{server}.tiles.virtualearth.net/tiles/a{quadkey}.jpeg?g=14041",
                    19,
                    64,
                )
            },
            ProviderKind::Go2 => spec(
                "Google Satellite",
                "https://mt{server}.google.com/vt/lyrs=s&x={x}&y={y}&z={z}",
                20,
                32,
            ),
            ProviderKind::Arcgis => spec(
                "ArcGIS World Imagery",
                "https://services.arcgisonline.com/ArcGIS/rest/services/World_Imagery/MapServer/tile/{z}/{y}/{x}",
                19,
                64,
            ),
            ProviderKind::Usgs => spec(
                "USGS Imagery Only",
                "https://basemap.nationalmap.gov/arcgis/rest/services/USGSImageryOnly/MapServer/tile/{z}/{y}/{x}",
                16,
                16,
            ),
            ProviderKind::Eox => Spec {
                referer: Some("https://s2maps.eu/"),
                ..spec(
                    "EOX Sentinel-2 cloudless",
                    "https://tiles.maps.eox.at/wmts/1.0.0/s2cloudless-2024_3857/default/g/{z}/{y}/{x}.jpg",
                    14,
                    16,
                )
            },
            ProviderKind::Naip => spec(
                "NAIP (US)",
                "https://naip.maptiles.arcgis.com/arcgis/rest/services/NAIP/MapServer/tile/{z}/{y}/{x}",
                18,
                32,
            ),
            ProviderKind::Firefly => spec(
                "Esri World Imagery Firefly",
                "https://fly.maptiles.arcgis.com/arcgis/rest/services/World_Imagery_Firefly/MapServer/tile/{z}/{y}/{x}",
                19,
                32,
            ),
            ProviderKind::Mapbox => spec(
                "Mapbox Satellite",
                "https://api.mapbox.com/v4/mapbox.satellite/{z}/{x}/{y}.jpg90?access_token={token}",
                22,
                32,
            ),
            ProviderKind::Custom => return None,
        })
    }
}

impl FromStr for ProviderKind {
    type Err = ProviderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        ProviderKind::ALL
            .into_iter()
            .find(|k| k.name() == lower)
            .ok_or_else(|| ProviderError::Unknown(s.to_string()))
    }
}

impl TemplateProvider {
    /// A provider of any kind from its settings.
    pub fn new(kind: ProviderKind, settings: &ProviderSettings) -> Result<Self, ProviderError> {
        Self::built_in(kind, settings, None)
    }

    /// A built-in with its URL replaced by `url` when given. A built-in at
    /// its own URL keeps its plain name as cache key (the folder caches
    /// made before keys followed the URL); a replaced URL gets its own.
    pub fn built_in(
        kind: ProviderKind,
        settings: &ProviderSettings,
        url: Option<&str>,
    ) -> Result<Self, ProviderError> {
        let Some(spec) = kind.spec() else {
            let url = url
                .or(settings.url.as_deref())
                .ok_or(ProviderError::MissingUrl)?;
            return TemplateProvider::custom(url);
        };
        let mut template = url.unwrap_or(spec.template).to_string();
        if template.contains("{token}") {
            let token = settings
                .mapbox_token
                .as_deref()
                .filter(|t| !t.is_empty())
                .ok_or(ProviderError::MissingToken)?;
            template = template.replace("{token}", token);
        }
        let template = UrlTemplate::parse(&template)?;
        let cache_key = match url {
            Some(_) => template.cache_key(kind.name()),
            None => kind.name().to_string(),
        };
        let display_name = match url {
            Some(url) => format!("{} (at {url})", spec.display),
            None => spec.display.to_string(),
        };
        Ok(TemplateProvider {
            name: kind.name().to_string(),
            display_name,
            template,
            cache_key,
            zoom_range: 0..=spec.max_zoom.min(MAX_ZOOM),
            max_in_flight: spec.max_in_flight.min(CUSTOM_MAX_IN_FLIGHT),
            headers: spec
                .referer
                .map(|r| ("referer", r.to_string()))
                .into_iter()
                .collect(),
            filler: spec.filler,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coord::ChunkCoord;
    use crate::provider::TileProvider;

    fn chunk() -> ChunkCoord {
        ChunkCoord {
            zoom: 3,
            x: 3,
            y: 5,
        }
    }

    #[test]
    fn bing_uses_quadkeys_and_rotates_servers() {
        let p = TemplateProvider::new(ProviderKind::Bing, &ProviderSettings::default()).unwrap();
        let url = p.chunk_url(chunk());
        assert!(url.contains("/tiles/a213.jpeg"), "{url}");
        assert!(url.starts_with("https://ecn.t0."), "{url}");
        let next = p.chunk_url(ChunkCoord {
            zoom: 3,
            x: 4,
            y: 5,
        });
        assert!(next.starts_with("https://ecn.t1."), "{next}");
        assert_eq!(p.cache_key(), "bing");
    }

    #[test]
    fn each_built_in_has_its_endpoint_and_limits() {
        let s = ProviderSettings::default();
        let go = TemplateProvider::new(ProviderKind::Go2, &s).unwrap();
        assert!(go.chunk_url(chunk()).ends_with("x=3&y=5&z=3"));
        let arc = TemplateProvider::new(ProviderKind::Arcgis, &s).unwrap();
        assert!(arc.chunk_url(chunk()).ends_with("/tile/3/5/3"));
        let usgs = TemplateProvider::new(ProviderKind::Usgs, &s).unwrap();
        assert_eq!(usgs.zoom_range(), 0..=16);
        let eox = TemplateProvider::new(ProviderKind::Eox, &s).unwrap();
        assert_eq!(eox.request(chunk()).headers[0].0, "referer");
        assert_eq!(eox.max_zoom(), 14);
        let naip = TemplateProvider::new(ProviderKind::Naip, &s).unwrap();
        assert!(naip.chunk_url(chunk()).contains("NAIP"));
        let keys: std::collections::HashSet<String> = ProviderKind::ALL
            .into_iter()
            .filter(|k| !matches!(k, ProviderKind::Custom | ProviderKind::Mapbox))
            .map(|k| {
                TemplateProvider::new(k, &s)
                    .unwrap()
                    .cache_key()
                    .to_string()
            })
            .collect();
        assert_eq!(keys.len(), ProviderKind::ALL.len() - 2);
        assert_eq!("BING".parse::<ProviderKind>(), Ok(ProviderKind::Bing));
        assert!("osm".parse::<ProviderKind>().is_err());
    }

    #[test]
    fn mapbox_needs_a_token_kept_out_of_its_cache_key() {
        let s = ProviderSettings::default();
        assert_eq!(
            TemplateProvider::new(ProviderKind::Mapbox, &s).unwrap_err(),
            ProviderError::MissingToken
        );
        let s = ProviderSettings {
            mapbox_token: Some("pk.abc".into()),
            ..Default::default()
        };
        let p = TemplateProvider::new(ProviderKind::Mapbox, &s).unwrap();
        assert!(p.chunk_url(chunk()).contains("access_token=pk.abc"));
        assert!(!p.cache_key().contains("pk.abc"));
    }

    #[test]
    fn a_replaced_url_keeps_the_limits_and_gets_its_own_cache_key() {
        let s = ProviderSettings::default();
        assert_eq!(
            TemplateProvider::new(ProviderKind::Custom, &s).unwrap_err(),
            ProviderError::MissingUrl
        );
        let local = "http://127.0.0.1:9/tiles/{z}/{x}/{y}.jpg";
        let p = TemplateProvider::built_in(ProviderKind::Usgs, &s, Some(local)).unwrap();
        assert_eq!(p.chunk_url(chunk()), "http://127.0.0.1:9/tiles/3/3/5.jpg");
        assert_eq!(
            (p.name(), p.max_zoom(), p.max_in_flight()),
            ("usgs", 16, 16)
        );
        assert_ne!(p.cache_key(), "usgs");
        assert!(p.cache_key().starts_with("usgs-127.0.0.1_9-"));
    }
}
