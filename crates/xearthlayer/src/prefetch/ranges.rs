//! Which parts of a texture to prefetch: what X-Plane will read of it.
//!
//! X-Plane always reads the header first (64 KiB at offset 0, which reaches
//! into the top rows of mip 0), then only the levels the texture's distance
//! needs: distant terrain at mip 4 and below, nearer terrain from a higher
//! level down. So the plan is the header read plus the levels from
//! [`first_level`] to the end, never the whole file unless it is close.

use std::ops::Range;

use crate::dds::layout::{self, DdsFormat};

/// The length of X-Plane's first read of a texture.
pub const HEADER_READ: u64 = 64 * 1024;

/// The highest-resolution level X-Plane is expected to read of a texture
/// `distance_m` from where the aircraft will be.
pub fn first_level(distance_m: f64) -> u8 {
    match distance_m {
        d if d <= 8_000.0 => 0,
        d if d <= 16_000.0 => 1,
        d if d <= 30_000.0 => 2,
        d if d <= 60_000.0 => 3,
        _ => 4,
    }
}

/// The byte ranges to prefetch of a texture at `distance_m`.
pub fn ranges(format: DdsFormat, distance_m: f64) -> Vec<Range<u64>> {
    let size = layout::file_size(format);
    let from = layout::level_offset(format, first_level(distance_m));
    if from <= HEADER_READ {
        std::iter::once(0..size).collect()
    } else {
        vec![0..HEADER_READ, from..size]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distant_textures_get_the_header_and_the_low_levels() {
        let got = ranges(DdsFormat::Bc1, 150_000.0);
        assert_eq!(got, vec![0..65_536, 11_141_248..11_184_952]);
    }

    #[test]
    fn nearer_textures_get_more_levels_and_the_closest_all() {
        assert_eq!(ranges(DdsFormat::Bc1, 20_000.0)[1].start, 10_485_888);
        assert_eq!(
            ranges(DdsFormat::Bc1, 2_000.0),
            Vec::from_iter(std::iter::once(0..11_184_952))
        );
        assert!(first_level(1e9) == 4 && first_level(0.0) == 0);
    }
}
