//! Imagery providers: where the 256 px chunk of a tile is downloaded from.
//!
//! Every built-in provider is a URL template over `{z} {x} {y} {quadkey}
//! {server}`, so one implementation serves them all; the [`TileProvider`]
//! trait leaves room for providers that are not templates (WMS, signed URLs).
//! The map type inside a texture name does not choose the provider: the
//! configured provider does.

use std::fmt;
use std::str::FromStr;

use crate::coord::{ChunkCoord, MAX_ZOOM};

/// A source of 256 px imagery chunks.
pub trait TileProvider: Send + Sync + fmt::Debug + 'static {
    /// Short stable name, used in cache keys (`bing`, `custom`, ...).
    fn name(&self) -> &str;
    /// Human-readable name.
    fn display_name(&self) -> &str;
    /// Highest zoom the provider serves.
    fn max_zoom(&self) -> u8;
    /// The URL of one chunk.
    fn chunk_url(&self, chunk: ChunkCoord) -> String;
    /// A Referer header the provider insists on.
    fn referer(&self) -> Option<&str> {
        None
    }
}

/// The built-in providers by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Bing,
    Go2,
    Arcgis,
    Usgs,
    Eox,
    Mapbox,
    Custom,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 7] = [
        ProviderKind::Bing,
        ProviderKind::Go2,
        ProviderKind::Arcgis,
        ProviderKind::Usgs,
        ProviderKind::Eox,
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
            ProviderKind::Mapbox => "mapbox",
            ProviderKind::Custom => "custom",
        }
    }
}

impl FromStr for ProviderKind {
    type Err = ProviderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        ProviderKind::ALL
            .into_iter()
            .find(|k| k.name() == lower)
            .ok_or_else(|| ProviderError::Unknown(s.to_string()))
    }
}

/// Why a provider could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error(
        "unknown provider '{0}' (expected one of: bing, go2, arcgis, usgs, eox, mapbox, custom)"
    )]
    Unknown(String),
    #[error(
        "the custom provider needs a URL template (--url), e.g. http://host/{{z}}/{{x}}/{{y}}.jpg"
    )]
    MissingUrl,
    #[error("URL template '{0}' must contain {{quadkey}} or all of {{z}}, {{x}} and {{y}}")]
    BadTemplate(String),
    #[error("the mapbox provider needs an access token")]
    MissingToken,
}

/// Settings a provider may need besides its kind.
#[derive(Debug, Clone, Default)]
pub struct ProviderSettings {
    /// URL template for `custom`.
    pub url: Option<String>,
    /// Access token for `mapbox`.
    pub mapbox_token: Option<String>,
}

/// A provider defined by a URL template.
#[derive(Debug, Clone)]
pub struct TemplateProvider {
    name: String,
    display_name: String,
    template: String,
    servers: Vec<String>,
    max_zoom: u8,
    referer: Option<String>,
}

impl TemplateProvider {
    /// A provider of any kind from its settings.
    pub fn new(kind: ProviderKind, settings: &ProviderSettings) -> Result<Self, ProviderError> {
        let numbered = |n: u8| (0..n).map(|i| i.to_string()).collect::<Vec<_>>();
        let built_in = |display: &str, template: &str, servers, max_zoom, referer: Option<&str>| {
            TemplateProvider {
                name: kind.name().to_string(),
                display_name: display.to_string(),
                template: template.to_string(),
                servers,
                max_zoom,
                referer: referer.map(str::to_string),
            }
        };
        Ok(match kind {
            ProviderKind::Bing => built_in(
                "Bing Maps Aerial",
                "https://ecn.t{server}.tiles.virtualearth.net/tiles/a{quadkey}.jpeg?g=14041",
                numbered(4),
                19,
                None,
            ),
            ProviderKind::Go2 => built_in(
                "Google Satellite",
                "https://mt{server}.google.com/vt/lyrs=s&x={x}&y={y}&z={z}",
                numbered(4),
                20,
                None,
            ),
            ProviderKind::Arcgis => built_in(
                "ArcGIS World Imagery",
                "https://services.arcgisonline.com/ArcGIS/rest/services/World_Imagery/MapServer/tile/{z}/{y}/{x}",
                Vec::new(),
                19,
                None,
            ),
            ProviderKind::Usgs => built_in(
                "USGS Imagery Only",
                "https://basemap.nationalmap.gov/arcgis/rest/services/USGSImageryOnly/MapServer/tile/{z}/{y}/{x}",
                Vec::new(),
                16,
                None,
            ),
            ProviderKind::Eox => built_in(
                "EOX Sentinel-2 cloudless",
                "https://tiles.maps.eox.at/wmts/1.0.0/s2cloudless-2024_3857/default/g/{z}/{y}/{x}.jpg",
                Vec::new(),
                14,
                Some("https://s2maps.eu/"),
            ),
            ProviderKind::Mapbox => {
                let token = settings
                    .mapbox_token
                    .as_deref()
                    .filter(|t| !t.is_empty())
                    .ok_or(ProviderError::MissingToken)?;
                let template = format!(
                    "https://api.mapbox.com/v4/mapbox.satellite/{{z}}/{{x}}/{{y}}.jpg90?access_token={token}"
                );
                built_in("Mapbox Satellite", &template, Vec::new(), 22, None)
            }
            ProviderKind::Custom => {
                let url = settings.url.as_deref().ok_or(ProviderError::MissingUrl)?;
                TemplateProvider::custom(url)?
            }
        })
    }

    /// A provider for any tile server, e.g. `http://127.0.0.1:8080/{z}/{x}/{y}.jpg`.
    pub fn custom(template: &str) -> Result<Self, ProviderError> {
        let has = |p: &str| template.contains(p);
        if !(has("{quadkey}") || (has("{z}") && has("{x}") && has("{y}"))) {
            return Err(ProviderError::BadTemplate(template.to_string()));
        }
        Ok(TemplateProvider {
            name: "custom".to_string(),
            display_name: format!("Custom ({template})"),
            template: template.to_string(),
            servers: numbered_servers(template),
            max_zoom: MAX_ZOOM,
            referer: None,
        })
    }
}

/// `{server}` in a custom template rotates over 0..4, as the public servers do.
fn numbered_servers(template: &str) -> Vec<String> {
    if template.contains("{server}") {
        (0..4).map(|i| i.to_string()).collect()
    } else {
        Vec::new()
    }
}

impl TileProvider for TemplateProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn display_name(&self) -> &str {
        &self.display_name
    }

    fn max_zoom(&self) -> u8 {
        self.max_zoom
    }

    fn chunk_url(&self, chunk: ChunkCoord) -> String {
        let mut url = self
            .template
            .replace("{z}", &chunk.zoom.to_string())
            .replace("{x}", &chunk.x.to_string())
            .replace("{y}", &chunk.y.to_string());
        if url.contains("{quadkey}") {
            url = url.replace("{quadkey}", &chunk.quadkey());
        }
        if !self.servers.is_empty() {
            // Spread neighbouring chunks over the servers, deterministically.
            let index = (chunk.x as usize + chunk.y as usize) % self.servers.len();
            url = url.replace("{server}", &self.servers[index]);
        }
        url
    }

    fn referer(&self) -> Option<&str> {
        self.referer.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn templates_fill_coordinates() {
        let s = ProviderSettings::default();
        let go = TemplateProvider::new(ProviderKind::Go2, &s).unwrap();
        assert!(go.chunk_url(chunk()).ends_with("x=3&y=5&z=3"));
        let arc = TemplateProvider::new(ProviderKind::Arcgis, &s).unwrap();
        assert!(arc.chunk_url(chunk()).ends_with("/tile/3/5/3"));
        let usgs = TemplateProvider::new(ProviderKind::Usgs, &s).unwrap();
        assert_eq!(usgs.max_zoom(), 16);
        let eox = TemplateProvider::new(ProviderKind::Eox, &s).unwrap();
        assert!(eox.referer().is_some());
        assert_eq!(eox.max_zoom(), 14);
    }

    #[test]
    fn mapbox_needs_a_token() {
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
    }

    #[test]
    fn custom_templates_are_checked() {
        let s = ProviderSettings::default();
        assert_eq!(
            TemplateProvider::new(ProviderKind::Custom, &s).unwrap_err(),
            ProviderError::MissingUrl
        );
        assert!(TemplateProvider::custom("http://h/{z}/{x}.jpg").is_err());
        let p = TemplateProvider::custom("http://h{server}/{z}/{x}/{y}.jpg").unwrap();
        assert_eq!(p.chunk_url(chunk()), "http://h0/3/3/5.jpg");
        let q = TemplateProvider::custom("http://h/q/{quadkey}").unwrap();
        assert_eq!(q.chunk_url(chunk()), "http://h/q/213");
        assert_eq!("BING".parse::<ProviderKind>(), Ok(ProviderKind::Bing));
        assert!("osm".parse::<ProviderKind>().is_err());
    }
}
