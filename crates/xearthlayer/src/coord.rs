//! Texture names and web-mercator geometry.
//!
//! A texture name such as `25264_10368_BI16.dds` names the 16x16 block of
//! 256 px map chunks whose top-left chunk is (col 10368, row 25264) at chunk
//! zoom 16. Everything here is pure arithmetic: parsing, tile <-> lat/lon,
//! Bing quadkeys, the chunks of a texture and its geographic bounds.

use std::fmt;

/// Chunks along one side of a texture.
pub const CHUNKS_PER_SIDE: u32 = 16;
/// Pixels along one side of a map chunk.
pub const CHUNK_PIXELS: u32 = 256;
/// Highest chunk zoom a texture name may carry.
pub const MAX_ZOOM: u8 = 22;
/// Web-mercator latitude limit in degrees.
pub const MAX_LATITUDE: f64 = 85.051_128_78;

/// Why a texture name or coordinate was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoordError {
    #[error("'{0}' is not a texture name of the form ROW_COL_CODEZL.dds")]
    BadName(String),
    #[error("zoom {0} is beyond the highest supported zoom {MAX_ZOOM}")]
    ZoomTooHigh(u32),
    #[error("texture {row}_{col} at zoom {zoom} runs off the edge of the world ({tiles} tiles per side)")]
    OffWorld {
        row: u64,
        col: u64,
        zoom: u8,
        tiles: u64,
    },
}

/// One 256 px map tile in slippy-map numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkCoord {
    pub zoom: u8,
    pub x: u32,
    pub y: u32,
}

impl ChunkCoord {
    /// Bing quadkey: one base-4 digit per zoom level, most significant first.
    pub fn quadkey(&self) -> String {
        (1..=self.zoom)
            .rev()
            .map(|bit| {
                let mask = 1u32 << (bit - 1);
                let digit = u8::from(self.x & mask != 0) + 2 * u8::from(self.y & mask != 0);
                char::from(b'0' + digit)
            })
            .collect()
    }

    /// The chunk `levels` zooms up that contains this one.
    pub fn ancestor(&self, levels: u8) -> ChunkCoord {
        let levels = levels.min(self.zoom);
        ChunkCoord {
            zoom: self.zoom - levels,
            x: self.x >> levels,
            y: self.y >> levels,
        }
    }
}

impl fmt::Display for ChunkCoord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.zoom, self.x, self.y)
    }
}

/// A texture: the 16x16 chunks at `zoom` starting at (`col`, `row`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TextureId {
    pub row: u32,
    pub col: u32,
    pub zoom: u8,
    /// Provider code from the name (`BI`, `GO2`, `Arc@`, `CA_NAIP`, ...):
    /// with `provider = auto` it chooses where the imagery comes from
    /// (see [`crate::provider::Providers`]).
    pub map_type: String,
}

impl TextureId {
    /// Builds a texture id, checking that all its chunks lie inside the world.
    pub fn new(row: u64, col: u64, zoom: u32, map_type: &str) -> Result<Self, CoordError> {
        if zoom > u32::from(MAX_ZOOM) {
            return Err(CoordError::ZoomTooHigh(zoom));
        }
        let zoom = zoom as u8;
        let tiles = 1u64 << zoom;
        let span = u64::from(CHUNKS_PER_SIDE);
        if row.checked_add(span).is_none_or(|end| end > tiles)
            || col.checked_add(span).is_none_or(|end| end > tiles)
        {
            return Err(CoordError::OffWorld {
                row,
                col,
                zoom,
                tiles,
            });
        }
        Ok(TextureId {
            row: row as u32,
            col: col as u32,
            zoom,
            map_type: map_type.to_string(),
        })
    }

    /// Parses `{row}_{col}_{CODE}{ZL}.dds` by Ortho4XP's own rule: the zoom
    /// is the last two digits before `.dds`, the provider code everything
    /// between the second separator and them (`BI`, `GO2`, `Arc@`,
    /// `FR2010_`, `DOP40`, `CA_NAIP`, or empty). `-` is accepted as a
    /// separator too, as AutoOrtho does. A code may hold any character a
    /// file name in Ortho4XP's providers folder may, except whitespace,
    /// control characters and path separators (a `.ter` line could not name
    /// such a file).
    pub fn parse(name: &str) -> Result<Self, CoordError> {
        let bad = || CoordError::BadName(name.to_string());
        let stem = name.strip_suffix(".dds").ok_or_else(bad)?;
        let mut parts = stem.splitn(3, ['_', '-']);
        let (row, col, rest) = match (parts.next(), parts.next(), parts.next()) {
            (Some(r), Some(c), Some(rest)) => (r, c, rest),
            _ => return Err(bad()),
        };
        let number = |s: &str| -> Result<u64, CoordError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            // Too many digits to be any tile index: out of the world, not malformed.
            s.parse::<u64>().or(Ok(u64::MAX))
        };
        let (row, col) = (number(row)?, number(col)?);
        let zoom_at = rest.len().checked_sub(2).ok_or_else(bad)?;
        let (code, zoom) = (rest.get(..zoom_at), rest.get(zoom_at..));
        let (Some(code), Some(zoom)) = (code, zoom) else {
            return Err(bad());
        };
        if !zoom.bytes().all(|b| b.is_ascii_digit())
            || code
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '\\')
        {
            return Err(bad());
        }
        let zoom: u32 = zoom.parse().map_err(|_| bad())?;
        TextureId::new(row, col, zoom, code)
    }

    /// The file name this texture is served under.
    pub fn file_name(&self) -> String {
        format!(
            "{}_{}_{}{:02}.dds",
            self.row, self.col, self.map_type, self.zoom
        )
    }

    /// The 256 chunks of mip level 0, row by row from the top-left.
    pub fn chunks(&self) -> impl Iterator<Item = ChunkCoord> + '_ {
        self.chunks_at_level(0)
    }

    /// The chunks whose imagery makes mip level `level` exactly:
    /// (16 >> level)² chunks at zoom `zoom - level`, row by row.
    /// `level` must be at most 4 and at most the texture's zoom.
    pub fn chunks_at_level(&self, level: u8) -> impl Iterator<Item = ChunkCoord> + '_ {
        let side = CHUNKS_PER_SIDE >> level;
        let (zoom, x0, y0) = (self.zoom - level, self.col >> level, self.row >> level);
        (0..side).flat_map(move |dy| {
            (0..side).map(move |dx| ChunkCoord {
                zoom,
                x: x0 + dx,
                y: y0 + dy,
            })
        })
    }

    /// Geographic bounds of the texture.
    pub fn bounds(&self) -> Bounds {
        let (north, west) = tile_to_lat_lon(self.zoom, f64::from(self.col), f64::from(self.row));
        let (south, east) = tile_to_lat_lon(
            self.zoom,
            f64::from(self.col + CHUNKS_PER_SIDE),
            f64::from(self.row + CHUNKS_PER_SIDE),
        );
        Bounds {
            north,
            south,
            west,
            east,
        }
    }
}

impl fmt::Display for TextureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file_name())
    }
}

/// Latitude/longitude box in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub north: f64,
    pub south: f64,
    pub west: f64,
    pub east: f64,
}

impl Bounds {
    /// The centre in mercator terms (midpoint of the tile span), as (lat, lon).
    pub fn center(&self) -> (f64, f64) {
        (
            (self.north + self.south) / 2.0,
            (self.west + self.east) / 2.0,
        )
    }
}

/// A longitude in degrees brought into -180..180: the same meridian, so a
/// difference of longitudes wrapped this way is the short way round.
pub fn wrap_lon(lon: f64) -> f64 {
    (lon + 180.0).rem_euclid(360.0) - 180.0
}

/// Fractional tile coordinates (x, y) of a point at `zoom`.
/// Latitude is clamped to the mercator limit.
pub fn lat_lon_to_tile(zoom: u8, lat: f64, lon: f64) -> (f64, f64) {
    let n = (1u64 << zoom) as f64;
    let lat = lat.clamp(-MAX_LATITUDE, MAX_LATITUDE).to_radians();
    let x = (lon + 180.0) / 360.0 * n;
    let y = (1.0 - lat.tan().asinh() / std::f64::consts::PI) / 2.0 * n;
    (x, y)
}

/// The chunk containing a point at `zoom`.
pub fn chunk_at(zoom: u8, lat: f64, lon: f64) -> ChunkCoord {
    let max = (1u64 << zoom) - 1;
    let (x, y) = lat_lon_to_tile(zoom, lat, lon);
    ChunkCoord {
        zoom,
        x: (x.floor().max(0.0) as u64).min(max) as u32,
        y: (y.floor().max(0.0) as u64).min(max) as u32,
    }
}

/// Latitude and longitude of fractional tile coordinates at `zoom`.
pub fn tile_to_lat_lon(zoom: u8, x: f64, y: f64) -> (f64, f64) {
    let n = (1u64 << zoom) as f64;
    let lon = x / n * 360.0 - 180.0;
    let lat = (std::f64::consts::PI * (1.0 - 2.0 * y / n))
        .sinh()
        .atan()
        .to_degrees();
    (lat, lon)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_ortho4xp_names() {
        let t = TextureId::parse("25264_10368_BI16.dds").unwrap();
        assert_eq!(
            (t.row, t.col, t.zoom, t.map_type.as_str()),
            (25264, 10368, 16, "BI")
        );
        let t = TextureId::parse("25264_10368_16.dds").unwrap();
        assert_eq!((t.map_type.as_str(), t.zoom), ("", 16));
        let t = TextureId::parse("25264-10368-ARC16.dds").unwrap();
        assert_eq!(t.map_type, "ARC");
    }

    /// Codes Ortho4XP ships (names of its providers folder), written the way
    /// it writes them and read back by its rule: zoom = last two digits,
    /// code = everything between the second `_` and them.
    #[test]
    fn reads_back_every_kind_of_ortho4xp_code() {
        let codes = [
            "BI",
            "GO2",
            "EUR",
            "SEA",
            "ARC",
            "Arc@",
            "FR2010_",
            "DOP40",
            "CH_ZH",
            "SLO_2009_2011",
            "CA_NAIP",
            "TX_NAIP",
            "USGS",
            "EOX",
            "FIREFLY",
            "ZL",
            "NIB",
            "OSM@",
            "ES_PNOA",
            "IT_2012",
            "BE_WAL_2018",
            "",
        ];
        for code in codes {
            for zoom in [12u8, 16, 17, 19] {
                let (row, col) = (16 * 100, 16 * 200);
                let name = format!("{row}_{col}_{code}{zoom}.dds");
                let t = TextureId::parse(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!((t.map_type.as_str(), t.zoom), (code, zoom), "{name}");
                assert_eq!((t.row, t.col), (row, col), "{name}");
                assert_eq!(t.file_name(), name);
            }
        }
        // The names the issue found missing.
        let t = TextureId::parse("22896_31680_DOP4016.dds").unwrap();
        assert_eq!((t.map_type.as_str(), t.zoom), ("DOP40", 16));
        let t = TextureId::parse("45808_63392_Arc@17.dds").unwrap();
        assert_eq!((t.map_type.as_str(), t.zoom), ("Arc@", 17));
        let t = TextureId::parse("45840_63392_FR2010_17.dds").unwrap();
        assert_eq!((t.map_type.as_str(), t.zoom), ("FR2010_", 17));
    }

    #[test]
    fn rejects_what_is_not_a_texture() {
        for name in [
            "25264_10368_BI16.png",
            "25264_10368_BI6.dds",
            "25264_10368_BIxx.dds",
            "25264_10368_6.dds",
            "a_10368_BI16.dds",
            "25264_BI16.dds",
            "_10368_BI16.dds",
            "25264_10368_B I16.dds",
            "25264_10368_B\tI16.dds",
            "25264_10368_a/b16.dds",
            "25264_10368_BI16.dds.bak",
            "water.dds",
            "water_normal_map.dds",
            "",
        ] {
            assert!(
                matches!(TextureId::parse(name), Err(CoordError::BadName(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn rejects_out_of_range() {
        assert_eq!(
            TextureId::parse("0_0_BI23.dds"),
            Err(CoordError::ZoomTooHigh(23))
        );
        assert!(matches!(
            TextureId::parse("65536_0_BI16.dds"),
            Err(CoordError::OffWorld { .. })
        ));
        // 65536 - 16 is the last texture row at zoom 16; one more runs off the edge.
        assert!(TextureId::parse("65520_65520_BI16.dds").is_ok());
        assert!(TextureId::parse("65521_0_BI16.dds").is_err());
        assert!(TextureId::parse("99999999999999999999999_0_BI16.dds").is_err());
        assert!(TextureId::parse("0_0_BI03.dds").is_err());
    }

    #[test]
    fn quadkey_example() {
        let c = ChunkCoord {
            zoom: 3,
            x: 3,
            y: 5,
        };
        assert_eq!(c.quadkey(), "213");
        assert_eq!(
            ChunkCoord {
                zoom: 0,
                x: 0,
                y: 0
            }
            .quadkey(),
            ""
        );
    }

    #[test]
    fn chunks_cover_the_texture() {
        let t = TextureId::parse("25264_10368_BI16.dds").unwrap();
        let chunks: Vec<_> = t.chunks().collect();
        assert_eq!(chunks.len(), 256);
        assert_eq!(
            chunks[0],
            ChunkCoord {
                zoom: 16,
                x: 10368,
                y: 25264
            }
        );
        assert_eq!(
            chunks[17],
            ChunkCoord {
                zoom: 16,
                x: 10369,
                y: 25265
            }
        );
        let low: Vec<_> = t.chunks_at_level(4).collect();
        assert_eq!(
            low,
            vec![ChunkCoord {
                zoom: 12,
                x: 648,
                y: 1579
            }]
        );
        assert_eq!(t.chunks_at_level(2).count(), 16);
    }

    #[test]
    fn bounds_of_a_known_texture() {
        let t = TextureId::parse("25264_10368_BI16.dds").unwrap();
        let b = t.bounds();
        assert!(b.north > b.south && b.east > b.west);
        let (lat, lon) = b.center();
        // Row 25264 of 65536 is y = 0.3855 of the map: 38.03° N; column
        // 10368 + 8 (the centre) is -123.00° E.
        assert!((lat - 38.03).abs() < 0.01, "{lat}");
        assert!((lon + 123.003).abs() < 0.01, "{lon}");
    }

    proptest! {
        #[test]
        fn name_round_trips(zoom in 12u8..=22, r in 0u64..u64::MAX, c in 0u64..u64::MAX, mt in "[A-Za-z0-9_@]{0,14}") {
            let blocks = (1u64 << zoom) / 16;
            let (row, col) = ((r % blocks) * 16, (c % blocks) * 16);
            let name = format!("{row}_{col}_{mt}{zoom:02}.dds");
            let t = TextureId::parse(&name).unwrap();
            prop_assert_eq!(t.file_name(), name);
            prop_assert_eq!(u64::from(t.row), row);
            prop_assert_eq!(u64::from(t.col), col);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = TextureId::parse(&s);
        }

        /// Fuzz: names as the kernel hands them over (any bytes), and
        /// near-valid ones with huge numbers and odd zooms.
        #[test]
        fn fuzz_texture_names(
            bytes in proptest::collection::vec(any::<u8>(), 0..48),
            near in "[0-9]{0,22}[-_][0-9]{0,22}[-_][A-Za-z@_]{0,6}[0-9]{0,4}\\.(dds|DDS)",
        ) {
            let _ = TextureId::parse(&String::from_utf8_lossy(&bytes));
            if let Ok(id) = TextureId::parse(&near) {
                // Whatever parses names a texture that fits its zoom.
                let blocks = (1u64 << id.zoom) / 16;
                prop_assert!(u64::from(id.row) / 16 < blocks && u64::from(id.col) / 16 < blocks);
            }
        }

        #[test]
        fn lat_lon_round_trips(zoom in 0u8..=22, lat in -85.0f64..85.0, lon in -180.0f64..179.999) {
            let (x, y) = lat_lon_to_tile(zoom, lat, lon);
            let (lat2, lon2) = tile_to_lat_lon(zoom, x, y);
            prop_assert!((lat - lat2).abs() < 1e-6);
            prop_assert!((lon - lon2).abs() < 1e-6);
            let c = chunk_at(zoom, lat, lon);
            prop_assert!(u64::from(c.x) < (1u64 << zoom) && u64::from(c.y) < (1u64 << zoom));
        }

        #[test]
        fn quadkey_encodes_each_level(zoom in 1u8..=22, x in 0u32.., y in 0u32..) {
            let n = 1u32.checked_shl(u32::from(zoom)).unwrap_or(0).wrapping_sub(1);
            let c = ChunkCoord { zoom, x: x & n, y: y & n };
            let key = c.quadkey();
            prop_assert_eq!(key.len(), usize::from(zoom));
            // The key of the parent is the key minus its last digit.
            prop_assert_eq!(c.ancestor(1).quadkey(), key[..key.len() - 1].to_string());
        }
    }
}
