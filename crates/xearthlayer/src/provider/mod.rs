//! Imagery providers: where the 256 px chunks of a texture come from.
//!
//! A [`TileProvider`] owns everything specific to one source: the request
//! of a chunk (URL and headers, key or token included), its limits (zoom
//! range, requests in flight), the identity of its imagery on disk
//! ([`TileProvider::cache_key`]) and what a "no imagery here" reply of its
//! looks like ([`TileProvider::judge`]). The shared download client
//! ([`crate::fetch`]) does the HTTP and asks the provider only these.
//!
//! - [`template`]: URL templates and the cache key derived from them.
//! - [`builtin`]: the built-in providers (Bing, Google, ArcGIS, ...).
//! - [`filler`]: replies that look like imagery but are not.
//! - [`codes`]: which provider a texture name's code stands for.
//! - [`set`]: [`Providers`], the set a service serves from.
//!
//! Adding a provider that is a URL template is one entry in [`builtin`];
//! one that is not (signed URLs, WMS) is one type implementing the trait.

pub mod builtin;
pub mod codes;
pub mod filler;
pub mod set;
pub mod template;

use std::fmt;
use std::ops::RangeInclusive;

use reqwest::header::HeaderMap;

use crate::coord::ChunkCoord;

pub use builtin::{ProviderKind, ProviderSettings};
pub use filler::{FillerRule, Verdict};
pub use set::{CodeTarget, ProviderSetup, Providers};
pub use template::{TemplateProvider, UrlTemplate};

/// One chunk's HTTP request, as the provider wants it sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRequest {
    pub url: String,
    /// Extra headers (Referer, keys); the client adds its User-Agent.
    pub headers: Vec<(&'static str, String)>,
}

/// A source of 256 px imagery chunks.
pub trait TileProvider: Send + Sync + fmt::Debug + 'static {
    /// Short name for logs and status (`bing`, `custom`, ...).
    fn name(&self) -> &str;
    /// Human-readable name.
    fn display_name(&self) -> &str {
        self.name()
    }
    /// Stable identity of its imagery, safe as a folder name: two sources
    /// never share one, and a renewed access token keeps it.
    fn cache_key(&self) -> &str;
    /// Chunk zooms it serves.
    fn zoom_range(&self) -> RangeInclusive<u8>;
    /// Its own ceiling of requests in flight (the client adapts below it).
    fn max_in_flight(&self) -> usize;
    /// The request of one chunk.
    fn request(&self, chunk: ChunkCoord) -> ChunkRequest;
    /// What a 200 reply is: imagery, a filler meaning "no imagery here", or
    /// a damaged body worth fetching again.
    fn judge(&self, headers: &HeaderMap, body: &[u8]) -> Verdict {
        FillerRule::default().judge(headers, body)
    }

    /// Highest zoom it serves.
    fn max_zoom(&self) -> u8 {
        *self.zoom_range().end()
    }
    /// The URL of one chunk (for `info` and logs).
    fn chunk_url(&self, chunk: ChunkCoord) -> String {
        self.request(chunk).url
    }
}

/// Why a provider could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("unknown provider '{0}' (expected one of: {names})", names = ProviderKind::names())]
    Unknown(String),
    #[error(
        "the custom provider needs a URL template (--url), e.g. http://host/{{z}}/{{x}}/{{y}}.jpg"
    )]
    MissingUrl,
    #[error("URL template '{0}' must start with http:// or https:// and contain {{quadkey}} or all of {{z}}, {{x}} and {{y}}")]
    BadTemplate(String),
    #[error("the mapbox provider needs an access token")]
    MissingToken,
    #[error("'{0}' is not a texture code (letters, digits, _ and @, no spaces)")]
    BadCode(String),
}
