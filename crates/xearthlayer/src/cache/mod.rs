//! Texture caches: a byte-bounded memory tier and a byte-bounded disk tier.
//!
//! Both hold finished DDS files keyed by [`TextureKey`]. Only textures built
//! entirely from real imagery are stored on disk: a texture with filled
//! chunks is served, then generated again later, so a failure never sticks.

pub mod disk;
pub mod held;
pub mod memory;

pub use disk::DiskCache;
pub use memory::MemoryCache;

use crate::coord::TextureId;

/// What identifies a texture's pixels under one provider and format: the map
/// type in its name does not (the configured provider decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TextureKey {
    pub zoom: u8,
    pub row: u32,
    pub col: u32,
}

impl From<&TextureId> for TextureKey {
    fn from(id: &TextureId) -> Self {
        TextureKey {
            zoom: id.zoom,
            row: id.row,
            col: id.col,
        }
    }
}
