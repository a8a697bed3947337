//! Chunk decoding: JPEG (what providers send) and PNG (what some send).
//!
//! The decoders are told the largest acceptable dimensions up front, so an
//! oversized or lying image is rejected before any large allocation.

use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

use super::{CHUNK_RGBA_LEN, RGBA};
use crate::coord::CHUNK_PIXELS;

/// Why a chunk body is not a usable 256 px image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("not a JPEG or PNG image")]
    UnknownFormat,
    #[error("image is {0}x{1}, expected 256x256")]
    WrongSize(usize, usize),
    #[error("corrupt image: {0}")]
    Corrupt(String),
}

fn options() -> DecoderOptions {
    let side = CHUNK_PIXELS as usize;
    DecoderOptions::default()
        .set_max_width(side)
        .set_max_height(side)
        .jpeg_set_out_colorspace(ColorSpace::RGBA)
        .png_set_add_alpha_channel(true)
        .png_set_strip_to_8bit(true)
}

fn check_size(dims: Option<(usize, usize)>) -> Result<(), ImageError> {
    let side = CHUNK_PIXELS as usize;
    match dims {
        Some((w, h)) if w == side && h == side => Ok(()),
        Some((w, h)) => Err(ImageError::WrongSize(w, h)),
        None => Err(ImageError::Corrupt("no dimensions".into())),
    }
}

/// Decodes one chunk into `out` (256x256 RGBA, fully overwritten).
pub fn decode_chunk(data: &[u8], out: &mut [u8]) -> Result<(), ImageError> {
    debug_assert_eq!(out.len(), CHUNK_RGBA_LEN);
    if data.starts_with(&[0xFF, 0xD8]) {
        let mut decoder = zune_jpeg::JpegDecoder::new_with_options(data, options());
        decoder
            .decode_headers()
            .map_err(|e| classify(format!("{e:?}")))?;
        check_size(decoder.dimensions())?;
        decoder
            .decode_into(out)
            .map_err(|e| ImageError::Corrupt(format!("{e:?}")))
    } else if data.starts_with(b"\x89PNG") {
        let mut decoder = zune_png::PngDecoder::new_with_options(data, options());
        decoder
            .decode_headers()
            .map_err(|e| classify(format!("{e:?}")))?;
        check_size(decoder.get_dimensions())?;
        let pixels = decoder
            .decode_raw()
            .map_err(|e| ImageError::Corrupt(format!("{e:?}")))?;
        match decoder.get_colorspace() {
            Some(ColorSpace::RGBA) if pixels.len() == CHUNK_RGBA_LEN => {
                out.copy_from_slice(&pixels);
            }
            Some(ColorSpace::LumaA) if pixels.len() == CHUNK_RGBA_LEN / 2 => {
                for (dst, src) in out.chunks_exact_mut(RGBA).zip(pixels.chunks_exact(2)) {
                    dst.copy_from_slice(&[src[0], src[0], src[0], src[1]]);
                }
            }
            other => {
                return Err(ImageError::Corrupt(format!(
                    "unexpected PNG layout {other:?} ({} bytes)",
                    pixels.len()
                )))
            }
        }
        Ok(())
    } else {
        Err(ImageError::UnknownFormat)
    }
}

/// Whether a body looks like a whole image: a truncated download fails
/// this and is fetched again instead of being decoded into garbage.
pub fn looks_complete(data: &[u8]) -> bool {
    if data.starts_with(&[0xFF, 0xD8]) {
        // Some servers pad after the end-of-image marker.
        let end = data.iter().rposition(|&b| b != 0).unwrap_or(0);
        end >= 1 && data[end - 1] == 0xFF && data[end] == 0xD9
    } else if data.starts_with(b"\x89PNG") {
        data.len() >= 12 && &data[data.len() - 8..data.len() - 4] == b"IEND"
    } else {
        false
    }
}

/// Dimension limits surface as decode errors; report them as what they are.
fn classify(message: String) -> ImageError {
    if message.contains("Width") || message.contains("Height") || message.contains("dimension") {
        ImageError::WrongSize(0, 0)
    } else {
        ImageError::Corrupt(message)
    }
}
