//! What the prefetcher needs to know of the packages: the textures of each
//! DSF tile, with their centres.
//!
//! [`Catalog`] is the narrow view; [`IndexCatalog`] implements it over the
//! mounts' [`TextureIndex`]es (each texture with the position its package
//! gives it), across every package `run` mounts.

use std::collections::HashMap;

use crate::coord::TextureId;
use crate::fs::TextureIndex;

/// A 1° DSF tile by its south-west corner (lat, lon).
pub type Tile = (i32, i32);

/// One texture of a package and where it lies.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogTexture {
    pub id: TextureId,
    /// (lat, lon) of its centre.
    pub center: (f64, f64),
}

/// Textures of the mounted packages by DSF tile.
pub trait Catalog: Send + Sync + 'static {
    /// Textures whose centre lies in `tile`.
    fn textures_in_tile(&self, tile: Tile) -> &[CatalogTexture];
    /// Tiles holding any texture.
    fn tiles(&self) -> Vec<Tile>;
}

/// The tile holding a point.
pub fn tile_of(lat: f64, lon: f64) -> Tile {
    (lat.floor() as i32, lon.floor() as i32)
}

/// A [`Catalog`] over the mounts' texture indexes.
#[derive(Debug, Default)]
pub struct IndexCatalog {
    by_tile: HashMap<Tile, Vec<CatalogTexture>>,
}

impl IndexCatalog {
    pub fn new<'a>(indexes: impl IntoIterator<Item = &'a TextureIndex>) -> Self {
        Self::from_textures(indexes.into_iter().flat_map(|index| {
            index.textures().map(|t| CatalogTexture {
                id: t.id.clone(),
                center: t.center,
            })
        }))
    }

    /// Textures placed at the centres their names give.
    pub fn from_ids(ids: impl IntoIterator<Item = TextureId>) -> Self {
        Self::from_textures(ids.into_iter().map(|id| CatalogTexture {
            center: id.bounds().center(),
            id,
        }))
    }

    fn from_textures(textures: impl IntoIterator<Item = CatalogTexture>) -> Self {
        let mut by_tile: HashMap<Tile, Vec<CatalogTexture>> = HashMap::new();
        for texture in textures {
            let center = texture.center;
            by_tile
                .entry(tile_of(center.0, center.1))
                .or_default()
                .push(texture);
        }
        for textures in by_tile.values_mut() {
            textures.sort_by(|a, b| a.id.cmp(&b.id));
            textures.dedup_by(|a, b| a.id == b.id);
        }
        IndexCatalog { by_tile }
    }

    pub fn len(&self) -> usize {
        self.by_tile.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_tile.is_empty()
    }
}

impl Catalog for IndexCatalog {
    fn textures_in_tile(&self, tile: Tile) -> &[CatalogTexture] {
        self.by_tile.get(&tile).map_or(&[], Vec::as_slice)
    }

    fn tiles(&self) -> Vec<Tile> {
        let mut tiles: Vec<Tile> = self.by_tile.keys().copied().collect();
        tiles.sort_unstable();
        tiles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_textures_by_the_tile_of_their_centre() {
        // 25264_10368_BI16 spans 123.047W..122.959W (centre 123.003W), its
        // east neighbour 122.959W..122.871W: either side of 123W, at 38.03N.
        let a = TextureId::parse("25264_10368_BI16.dds").unwrap();
        let b = TextureId::parse("25264_10384_BI16.dds").unwrap();
        let c = TextureId::parse("25280_10384_BI16.dds").unwrap();
        let catalog = IndexCatalog::from_ids([a.clone(), b.clone(), c.clone(), a.clone()]);
        assert_eq!(catalog.tiles(), vec![(37, -123), (38, -124), (38, -123)]);
        let ids = |tile| -> Vec<TextureId> {
            catalog
                .textures_in_tile(tile)
                .iter()
                .map(|t| t.id.clone())
                .collect()
        };
        assert_eq!(ids((38, -124)), vec![a]);
        assert_eq!(ids((38, -123)), vec![b]);
        assert_eq!(catalog.len(), 3);
        assert!(ids((39, -123)).is_empty());
    }

    #[test]
    fn places_each_texture_where_its_package_says() {
        // The name's centre is 123.003W (tile -124); the .ter's LOAD_CENTER
        // says 122.99W (tile -123), and that is where X-Plane loads it.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("terrain")).unwrap();
        std::fs::write(
            dir.path().join("terrain/a.ter"),
            "A\n800\nTERRAIN\n\nLOAD_CENTER 38.03 -122.99 2443 4096\n\
             BASE_TEX_NOWRAP ../textures/25264_10368_BI16.dds\n",
        )
        .unwrap();
        let index = TextureIndex::build(dir.path()).unwrap();
        let catalog = IndexCatalog::new([&index]);
        assert!(catalog.textures_in_tile((38, -124)).is_empty());
        let placed = catalog.textures_in_tile((38, -123));
        assert_eq!(placed.len(), 1);
        assert_eq!(placed[0].center, (38.03, -122.99));
    }
}
