//! Replies that look like imagery but are not: a provider with no coverage
//! at a zoom may answer 200 with a "no imagery" picture (Bing marks it with
//! a response header) or a tile of one colour. Baked into a texture it looks
//! like a hole in the ground, so such a reply counts as no data: the chunk
//! gets a lower-zoom stand-in and nothing with a filler is cached as final.

use reqwest::header::HeaderMap;

use crate::image::{decode_chunk, looks_complete, CHUNK_RGBA_LEN, RGBA};

/// Bodies up to this size are checked for being one colour. A uniform
/// 256 px JPEG is well under 2 KiB, real imagery about 13 KiB, so only the
/// rare tiny bodies pay for a decode (tens of microseconds).
const UNIFORM_PROBE_BYTES: usize = 4 << 10;
/// Largest channel difference still counted as "one colour" (JPEG noise).
const UNIFORM_TOLERANCE: u8 = 2;

/// What a 200 reply holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Imagery,
    /// "No imagery here", with why we think so.
    Filler(&'static str),
    /// Not a whole image (cut short): worth fetching again.
    Damaged,
}

/// How one provider's fillers look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillerRule {
    /// A header (lower-case name, value) that marks a filler.
    pub marker: Option<(&'static str, &'static str)>,
    /// A tile of one colour is a filler.
    pub uniform: bool,
}

impl Default for FillerRule {
    fn default() -> Self {
        FillerRule {
            marker: None,
            uniform: true,
        }
    }
}

impl FillerRule {
    pub fn judge(&self, headers: &HeaderMap, body: &[u8]) -> Verdict {
        if let Some((name, value)) = self.marker {
            let marked = headers
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| v.eq_ignore_ascii_case(value)));
            if marked {
                return Verdict::Filler("marked by the provider's header");
            }
        }
        if !looks_complete(body) {
            return Verdict::Damaged;
        }
        if self.uniform && body.len() <= UNIFORM_PROBE_BYTES && is_uniform(body) {
            return Verdict::Filler("a tile of one colour");
        }
        Verdict::Imagery
    }
}

/// Whether `body` decodes to a chunk whose pixels are all one colour.
fn is_uniform(body: &[u8]) -> bool {
    let mut pixels = vec![0u8; CHUNK_RGBA_LEN];
    if decode_chunk(body, &mut pixels).is_err() {
        return false;
    }
    let first: [u8; RGBA] = [pixels[0], pixels[1], pixels[2], pixels[3]];
    pixels.chunks_exact(RGBA).all(|p| {
        p.iter()
            .zip(first)
            .all(|(&a, b)| a.abs_diff(b) <= UNIFORM_TOLERANCE)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn fillers_are_told_from_imagery() {
        let rule = FillerRule {
            marker: Some(("x-ve-tile-info", "no-tile")),
            uniform: true,
        };
        let none = HeaderMap::new();
        let imagery = xel_sim::imagery::chunk_jpeg(16, 10368, 25264);
        assert_eq!(rule.judge(&none, &imagery), Verdict::Imagery);
        let uniform = xel_sim::imagery::uniform_jpeg([40, 60, 90]);
        assert!(uniform.len() <= UNIFORM_PROBE_BYTES);
        assert!(matches!(rule.judge(&none, &uniform), Verdict::Filler(_)));
        let mut marked = HeaderMap::new();
        marked.insert("x-ve-tile-info", HeaderValue::from_static("no-tile"));
        assert!(matches!(rule.judge(&marked, &imagery), Verdict::Filler(_)));
        assert_eq!(
            rule.judge(&none, &imagery[..imagery.len() / 2]),
            Verdict::Damaged
        );
        let plain = FillerRule {
            marker: None,
            uniform: false,
        };
        assert_eq!(plain.judge(&marked, &uniform), Verdict::Imagery);
    }
}
