//! Where every byte of a 4096² DDS texture lives.
//!
//! The one place that knows the file layout: a 128-byte header, then 13 mip
//! levels (4096 px down to 1 px), each a row-major grid of 4x4 BCn blocks.
//! Every other module asks here for sizes and offsets.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// Size of the "DDS " magic plus the DDS_HEADER.
pub const HEADER_LEN: u64 = 128;
/// Pixels along one side of mip level 0.
pub const TEXTURE_PIXELS: u32 = 4096;
/// Mip levels from 4096 px down to 1 px.
pub const MIP_LEVELS: u8 = 13;

/// Block compression format of the generated textures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DdsFormat {
    /// DXT1: 8 bytes per 4x4 block, no alpha.
    #[default]
    Bc1,
    /// DXT5: 16 bytes per 4x4 block, with alpha.
    Bc3,
}

impl DdsFormat {
    pub fn block_bytes(self) -> u64 {
        match self {
            DdsFormat::Bc1 => 8,
            DdsFormat::Bc3 => 16,
        }
    }

    pub fn four_cc(self) -> &'static [u8; 4] {
        match self {
            DdsFormat::Bc1 => b"DXT1",
            DdsFormat::Bc3 => b"DXT5",
        }
    }

    /// Short name used in cache keys and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DdsFormat::Bc1 => "bc1",
            DdsFormat::Bc3 => "bc3",
        }
    }
}

impl fmt::Display for DdsFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DdsFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "bc1" | "dxt1" => Ok(DdsFormat::Bc1),
            "bc3" | "dxt5" => Ok(DdsFormat::Bc3),
            other => Err(format!(
                "unknown texture format '{other}' (expected bc1 or bc3)"
            )),
        }
    }
}

/// Pixels along one side of mip `level`.
pub fn level_pixels(level: u8) -> u32 {
    TEXTURE_PIXELS >> level
}

/// 4x4 blocks along one side of mip `level` (levels under 4 px take one block).
pub fn level_blocks_per_side(level: u8) -> u64 {
    u64::from(level_pixels(level).div_ceil(4))
}

/// Bytes of mip `level`.
pub fn level_len(format: DdsFormat, level: u8) -> u64 {
    let side = level_blocks_per_side(level);
    side * side * format.block_bytes()
}

/// File offset of the first byte of mip `level`.
pub fn level_offset(format: DdsFormat, level: u8) -> u64 {
    HEADER_LEN + (0..level).map(|l| level_len(format, l)).sum::<u64>()
}

/// Byte range of mip `level` in the file.
pub fn level_range(format: DdsFormat, level: u8) -> Range<u64> {
    let start = level_offset(format, level);
    start..start + level_len(format, level)
}

/// Size of the whole file: known before anything is generated.
pub fn file_size(format: DdsFormat) -> u64 {
    level_offset(format, MIP_LEVELS)
}

/// Bytes of one row of blocks (4 pixel rows) in mip `level`.
pub fn block_row_len(format: DdsFormat, level: u8) -> u64 {
    level_blocks_per_side(level) * format.block_bytes()
}

/// The mip levels a file byte range touches (the header is level-less).
pub fn levels_touched(format: DdsFormat, range: Range<u64>) -> Range<u8> {
    if range.start >= range.end {
        return 0..0;
    }
    let level_of = |offset: u64| {
        (0..MIP_LEVELS)
            .find(|&l| level_range(format, l).contains(&offset))
            .unwrap_or(MIP_LEVELS)
    };
    let first = if range.start < HEADER_LEN {
        0
    } else {
        level_of(range.start)
    };
    let last = level_of((range.end - 1).max(HEADER_LEN));
    if range.end <= HEADER_LEN {
        return 0..0;
    }
    first..(last + 1).min(MIP_LEVELS)
}

/// The 128-byte header: magic, DDS_HEADER with CAPS|HEIGHT|WIDTH|PIXELFORMAT|
/// MIPMAPCOUNT|LINEARSIZE, FourCC pixel format, caps TEXTURE|MIPMAP|COMPLEX.
pub fn header(format: DdsFormat) -> [u8; HEADER_LEN as usize] {
    const CAPS: u32 = 0x1;
    const HEIGHT: u32 = 0x2;
    const WIDTH: u32 = 0x4;
    const PIXELFORMAT: u32 = 0x1000;
    const MIPMAPCOUNT: u32 = 0x2_0000;
    const LINEARSIZE: u32 = 0x8_0000;
    const PF_FOURCC: u32 = 0x4;
    const CAPS_COMPLEX: u32 = 0x8;
    const CAPS_TEXTURE: u32 = 0x1000;
    const CAPS_MIPMAP: u32 = 0x40_0000;

    let mut h = [0u8; HEADER_LEN as usize];
    let mut put = |at: usize, v: u32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    put(4, 124); // dwSize
    put(
        8,
        CAPS | HEIGHT | WIDTH | PIXELFORMAT | MIPMAPCOUNT | LINEARSIZE,
    );
    put(12, TEXTURE_PIXELS); // height
    put(16, TEXTURE_PIXELS); // width
    put(20, level_len(format, 0) as u32); // linear size of the top level
    put(28, u32::from(MIP_LEVELS));
    put(76, 32); // ddspf.dwSize
    put(80, PF_FOURCC);
    put(108, CAPS | CAPS_COMPLEX | CAPS_TEXTURE | CAPS_MIPMAP);
    h[0..4].copy_from_slice(b"DDS ");
    h[84..88].copy_from_slice(format.four_cc());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_domain_table() {
        assert_eq!(file_size(DdsFormat::Bc1), 11_184_952);
        assert_eq!(file_size(DdsFormat::Bc3), 22_369_776);
        assert_eq!(level_offset(DdsFormat::Bc1, 1), 8_388_736);
        assert_eq!(level_offset(DdsFormat::Bc1, 4), 11_141_248);
        assert_eq!(level_offset(DdsFormat::Bc1, 5), 11_174_016);
        assert_eq!(level_len(DdsFormat::Bc1, 0), 8_388_608);
        let tail: u64 = (5..13).map(|l| level_len(DdsFormat::Bc1, l)).sum();
        assert_eq!(tail, 10_936);
    }

    #[test]
    fn header_fields() {
        let h = header(DdsFormat::Bc3);
        assert_eq!(&h[0..4], b"DDS ");
        assert_eq!(u32::from_le_bytes(h[28..32].try_into().unwrap()), 13);
        assert_eq!(&h[84..88], b"DXT5");
        assert_eq!(
            u32::from_le_bytes(h[20..24].try_into().unwrap()),
            16_777_216
        );
    }

    #[test]
    fn levels_touched_by_ranges() {
        let f = DdsFormat::Bc1;
        assert_eq!(levels_touched(f, 0..128), 0..0);
        assert_eq!(levels_touched(f, 0..65536), 0..1);
        let mip4 = level_offset(f, 4);
        assert_eq!(levels_touched(f, mip4..file_size(f)), 4..13);
        assert_eq!(levels_touched(f, mip4 - 128..mip4 + 1), 3..5);
        assert_eq!(levels_touched(f, 0..file_size(f)), 0..13);
    }

    #[test]
    fn parses_format_names() {
        assert_eq!("BC1".parse::<DdsFormat>(), Ok(DdsFormat::Bc1));
        assert_eq!("dxt5".parse::<DdsFormat>(), Ok(DdsFormat::Bc3));
        assert!("bc7".parse::<DdsFormat>().is_err());
    }
}
