//! URL templates over `{z} {x} {y} {quadkey} {server}`, and the provider
//! made of one.
//!
//! A template also names its imagery on disk: the cache key is the host
//! and path (and query parameters that are not credentials), so two
//! servers never share cached imagery and a renewed token changes nothing.

use std::ops::RangeInclusive;

use reqwest::header::HeaderMap;

use super::{ChunkRequest, FillerRule, ProviderError, TileProvider, Verdict};
use crate::coord::{ChunkCoord, MAX_ZOOM};

/// Query parameters that carry credentials, never part of a cache key.
const SECRET_PARAMS: &[&str] = &[
    "access_token",
    "token",
    "key",
    "apikey",
    "api_key",
    "signature",
    "sig",
    "secret",
    "password",
    "auth",
    "client_id",
    "app_id",
    "app_code",
];

/// A checked URL template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate(String);

impl UrlTemplate {
    /// Checks `text`: http(s), and `{quadkey}` or all of `{z} {x} {y}`.
    pub fn parse(text: &str) -> Result<UrlTemplate, ProviderError> {
        let text = text.trim();
        let has = |p: &str| text.contains(p);
        let scheme = text.starts_with("http://") || text.starts_with("https://");
        if !scheme || !(has("{quadkey}") || (has("{z}") && has("{x}") && has("{y}"))) {
            return Err(ProviderError::BadTemplate(text.to_string()));
        }
        Ok(UrlTemplate(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL of `chunk`; `{server}` rotates over 0..4, spreading
    /// neighbouring chunks over the servers deterministically.
    pub fn expand(&self, chunk: ChunkCoord) -> String {
        let mut url = self
            .0
            .replace("{z}", &chunk.zoom.to_string())
            .replace("{x}", &chunk.x.to_string())
            .replace("{y}", &chunk.y.to_string());
        if url.contains("{quadkey}") {
            url = url.replace("{quadkey}", &chunk.quadkey());
        }
        if url.contains("{server}") {
            let server = (chunk.x as usize + chunk.y as usize) % 4;
            url = url.replace("{server}", &server.to_string());
        }
        url
    }

    /// What identifies the imagery: host, port and path, plus the query
    /// parameters that are not credentials (`lyrs=s` matters, a token not).
    pub fn identity(&self) -> String {
        let rest = self.0.split_once("://").map_or(self.0.as_str(), |(_, r)| r);
        let rest = rest.split('#').next().unwrap_or(rest);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let name = p.split('=').next().unwrap_or(p).to_ascii_lowercase();
                !SECRET_PARAMS.contains(&name.as_str())
            })
            .collect();
        if kept.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", kept.join("&"))
        }
    }

    /// A folder name for this template's imagery: `{name}-{host}-{hash}`,
    /// the hash over [`UrlTemplate::identity`] so that templates differing
    /// only in path or port stay apart.
    pub fn cache_key(&self, name: &str) -> String {
        let identity = self.identity();
        let host = identity.split('/').next().unwrap_or("");
        let host: String = host
            .chars()
            .filter(|c| !matches!(c, '{' | '}'))
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(48)
            .collect();
        format!("{name}-{host}-{:08x}", crc32fast::hash(identity.as_bytes()))
    }
}

/// A provider defined by a URL template: every built-in, every configured
/// code, `--url`.
#[derive(Debug, Clone)]
pub struct TemplateProvider {
    pub(super) name: String,
    pub(super) display_name: String,
    pub(super) template: UrlTemplate,
    pub(super) cache_key: String,
    pub(super) zoom_range: RangeInclusive<u8>,
    pub(super) max_in_flight: usize,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) filler: FillerRule,
}

/// Requests in flight to a server nothing else is known about: the client's
/// whole pool, as before providers had their own limits.
pub const CUSTOM_MAX_IN_FLIGHT: usize = 256;

impl TemplateProvider {
    /// A provider for any tile server, e.g.
    /// `http://127.0.0.1:8080/{z}/{x}/{y}.jpg`, named `name` (`custom`, or
    /// the code it serves).
    pub fn from_template(name: &str, template: &str) -> Result<Self, ProviderError> {
        let template = UrlTemplate::parse(template)?;
        Ok(TemplateProvider {
            name: name.to_string(),
            display_name: format!("{name} ({})", template.as_str()),
            cache_key: template.cache_key(name),
            template,
            zoom_range: 0..=MAX_ZOOM,
            max_in_flight: CUSTOM_MAX_IN_FLIGHT,
            headers: Vec::new(),
            filler: FillerRule::default(),
        })
    }

    /// The `custom` provider of `--url`.
    pub fn custom(template: &str) -> Result<Self, ProviderError> {
        Self::from_template("custom", template)
    }

    /// The same provider with another ceiling of requests in flight.
    pub fn with_max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight.max(1);
        self
    }

    pub fn template(&self) -> &UrlTemplate {
        &self.template
    }
}

impl TileProvider for TemplateProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn display_name(&self) -> &str {
        &self.display_name
    }

    fn cache_key(&self) -> &str {
        &self.cache_key
    }

    fn zoom_range(&self) -> RangeInclusive<u8> {
        self.zoom_range.clone()
    }

    fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    fn request(&self, chunk: ChunkCoord) -> ChunkRequest {
        ChunkRequest {
            url: self.template.expand(chunk),
            headers: self.headers.clone(),
        }
    }

    fn judge(&self, headers: &HeaderMap, body: &[u8]) -> Verdict {
        self.filler.judge(headers, body)
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
    fn templates_are_checked_and_filled() {
        assert!(TemplateProvider::custom("http://h/{z}/{x}.jpg").is_err());
        assert!(TemplateProvider::custom("ftp://h/{z}/{x}/{y}.jpg").is_err());
        let p = TemplateProvider::custom("http://h{server}/{z}/{x}/{y}.jpg").unwrap();
        assert_eq!(p.chunk_url(chunk()), "http://h0/3/3/5.jpg");
        let q = TemplateProvider::custom("http://h/q/{quadkey}").unwrap();
        assert_eq!(q.chunk_url(chunk()), "http://h/q/213");
    }

    #[test]
    fn cache_keys_follow_the_source_not_the_token() {
        let key = |t: &str| UrlTemplate::parse(t).unwrap().cache_key("custom");
        let a = key("http://127.0.0.1:8080/tiles/{z}/{x}/{y}.jpg");
        // Another port, another path, another layer: another folder.
        assert_ne!(a, key("http://127.0.0.1:8081/tiles/{z}/{x}/{y}.jpg"));
        assert_ne!(a, key("http://127.0.0.1:8080/other/{z}/{x}/{y}.jpg"));
        assert_ne!(
            key("https://h/v/{z}/{x}/{y}?lyrs=s"),
            key("https://h/v/{z}/{x}/{y}?lyrs=y")
        );
        // A renewed token: the same folder, and the token is not in it.
        let t1 = key("https://api.h.com/{z}/{x}/{y}.jpg?access_token=pk.one&style=sat");
        let t2 = key("https://api.h.com/{z}/{x}/{y}.jpg?access_token=pk.two&style=sat");
        assert_eq!(t1, t2);
        assert!(!t1.contains("pk."), "{t1}");
        // Safe as one folder name.
        for k in [&a, &t1] {
            assert!(
                k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
                "{k}"
            );
        }
        assert!(a.starts_with("custom-127.0.0.1_8080-"), "{a}");
    }
}
