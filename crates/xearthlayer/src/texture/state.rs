//! What exists of one texture: the byte ranges built so far.
//!
//! Built bytes are immutable segments at fixed file offsets. A segment is
//! only ever added where nothing is yet, so a reader never sees bytes change
//! under it: whichever source built a range first (its own zoom, or derived
//! from a level above) keeps it. Reads are served from the segments; a range
//! that covers one segment is a zero-copy slice.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::dds::layout::{self, DdsFormat};

/// The parts of one level-0 strip kept until all 16 are built, to derive
/// levels 4..=12 from level 0 instead of fetching the low chunk.
#[derive(Debug, Clone)]
pub struct LowPart {
    /// The strip's encoded rows of levels 4, 5 and 6.
    pub rows: Vec<Bytes>,
    /// RGBA of its 4 px band at level 6.
    pub band: Vec<u8>,
    /// The strip had stand-in chunks: what is derived from it is too.
    pub degraded: bool,
}

/// The built bytes of one texture.
#[derive(Debug)]
pub struct TextureState {
    format: DdsFormat,
    // Segments by start offset, never overlapping. Held for map operations
    // and copies only.
    segments: RwLock<BTreeMap<u64, Bytes>>,
    low_parts: Mutex<Vec<Option<LowPart>>>,
    degraded: AtomicBool,
    created: Instant,
}

impl TextureState {
    pub fn new(format: DdsFormat) -> Self {
        TextureState {
            format,
            segments: RwLock::new(BTreeMap::new()),
            low_parts: Mutex::new(vec![None; 16]),
            degraded: AtomicBool::new(false),
            created: Instant::now(),
        }
    }

    pub fn format(&self) -> DdsFormat {
        self.format
    }

    /// Some chunk of this texture was filled in rather than downloaded.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    pub fn mark_degraded(&self) {
        self.degraded.store(true, Ordering::Relaxed);
    }

    pub fn age(&self) -> std::time::Duration {
        self.created.elapsed()
    }

    fn read_segments(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u64, Bytes>> {
        self.segments.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes held (the memory cache's weight).
    pub fn bytes_held(&self) -> u64 {
        self.read_segments().values().map(|b| b.len() as u64).sum()
    }

    /// Whether every byte of `range` past the header is built.
    pub fn is_built(&self, range: Range<u64>) -> bool {
        let mut at = range.start.max(layout::HEADER_LEN);
        if at >= range.end {
            return true;
        }
        let segments = self.read_segments();
        // The segment holding `at` starts at or before it.
        for (&start, bytes) in segments.range(..range.end).rev() {
            let end = start + bytes.len() as u64;
            if start <= at && at < end {
                at = end;
                break;
            }
            if end <= at {
                return false;
            }
        }
        while at < range.end {
            match segments.get(&at) {
                Some(bytes) => at += bytes.len() as u64,
                None => return false,
            }
        }
        true
    }

    /// Adds the parts of a segment whose bytes do not exist yet (existing
    /// bytes are never replaced). Returns the parts added.
    pub fn insert(&self, start: u64, bytes: Bytes) -> Vec<(u64, Bytes)> {
        let end = start + bytes.len() as u64;
        let mut segments = self.segments.write().unwrap_or_else(|e| e.into_inner());
        // The free gaps of [start, end) between existing segments.
        let mut gaps = Vec::new();
        let mut at = start;
        let first = segments
            .range(..=start)
            .next_back()
            .map_or(start, |(&s, _)| s);
        for (&s, b) in segments.range(first..end) {
            let e = s + b.len() as u64;
            if e <= at {
                continue;
            }
            if s > at {
                gaps.push(at..s);
            }
            at = at.max(e);
        }
        if at < end {
            gaps.push(at..end);
        }
        let added: Vec<(u64, Bytes)> = gaps
            .into_iter()
            .map(|g| {
                (
                    g.start,
                    bytes.slice((g.start - start) as usize..(g.end - start) as usize),
                )
            })
            .collect();
        for (s, b) in &added {
            segments.insert(*s, b.clone());
        }
        added
    }

    /// All segments, by offset (for the disk cache).
    pub fn segments(&self) -> Vec<(u64, Bytes)> {
        self.read_segments()
            .iter()
            .map(|(&s, b)| (s, b.clone()))
            .collect()
    }

    /// Exactly the bytes of `range` (clamped to the file). Bytes not built
    /// come from `placeholder` (a whole neutral file), so a read is always
    /// full length and valid.
    pub fn read(&self, range: Range<u64>, placeholder: &Bytes) -> Bytes {
        let size = layout::file_size(self.format);
        let (start, end) = (range.start.min(size), range.end.min(size));
        if start >= end {
            return Bytes::new();
        }
        // Take references to the overlapping segments under the lock, copy
        // after releasing it: a whole-file read copies 11 MB.
        let overlapping: Vec<(u64, Bytes)> = {
            let segments = self.read_segments();
            if let Some((&s, bytes)) = segments.range(..=start).next_back() {
                if s <= start && end <= s + bytes.len() as u64 {
                    return bytes.slice((start - s) as usize..(end - s) as usize);
                }
            }
            let first = segments
                .range(..=start)
                .next_back()
                .map_or(start, |(&s, _)| s);
            segments
                .range(first..end)
                .map(|(&s, b)| (s, b.clone()))
                .collect()
        };
        let mut out = BytesMut::from(&placeholder[start as usize..end as usize]);
        for (s, bytes) in &overlapping {
            let s = *s;
            let e = s + bytes.len() as u64;
            let (from, to) = (s.max(start), e.min(end));
            if from < to {
                out[(from - start) as usize..(to - start) as usize]
                    .copy_from_slice(&bytes[(from - s) as usize..(to - s) as usize]);
            }
        }
        out.freeze()
    }

    /// The bytes of `range` if all of it is built (no placeholder needed).
    pub fn built_bytes(&self, range: Range<u64>) -> Option<Bytes> {
        if range.start < layout::HEADER_LEN || !self.is_built(range.clone()) {
            return None;
        }
        let segments = self.read_segments();
        let mut out = BytesMut::with_capacity((range.end - range.start) as usize);
        let first = segments
            .range(..=range.start)
            .next_back()
            .map_or(range.start, |(&s, _)| s);
        for (&s, bytes) in segments.range(first..range.end) {
            let e = s + bytes.len() as u64;
            let (from, to) = (s.max(range.start), e.min(range.end));
            if from < to {
                out.extend_from_slice(&bytes[(from - s) as usize..(to - s) as usize]);
            }
        }
        Some(out.freeze())
    }

    /// Keeps a level-0 strip's low parts; once all 16 are in, returns them
    /// (taking them) so levels 4..=12 can be derived.
    pub fn add_low_part(&self, strip: usize, part: LowPart) -> Option<Vec<LowPart>> {
        let mut parts = self.low_parts.lock().unwrap_or_else(|e| e.into_inner());
        parts[strip] = Some(part);
        if parts.iter().all(Option::is_some) {
            return Some(parts.iter_mut().filter_map(Option::take).collect());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> TextureState {
        TextureState::new(DdsFormat::Bc1)
    }

    #[test]
    fn segments_never_overlap_or_change() {
        let s = state();
        let placeholder = Bytes::from(vec![0u8; layout::file_size(DdsFormat::Bc1) as usize]);
        assert_eq!(s.insert(1000, Bytes::from(vec![1u8; 100])).len(), 1);
        assert!(s.is_built(1000..1100));
        assert!(!s.is_built(999..1100));
        assert!(!s.is_built(1000..1101));
        // Only the free parts of an overlapping segment are added.
        let added = s.insert(950, Bytes::from(vec![2u8; 200]));
        assert_eq!(
            added
                .iter()
                .map(|(at, b)| (*at, b.len()))
                .collect::<Vec<_>>(),
            vec![(950, 50), (1100, 50)]
        );
        assert!(
            s.insert(1000, Bytes::from(vec![3u8; 100])).is_empty(),
            "nothing free"
        );
        assert_eq!(s.bytes_held(), 200);
        assert!(s.is_built(950..1150));
        assert!(s.is_built(0..128), "the header is always there");
        let read = s.read(950..1150, &placeholder);
        assert_eq!(&read[..50], &[2u8; 50]);
        assert_eq!(&read[50..150], &[1u8; 100], "the first bytes built stay");
        assert_eq!(&read[150..], &[2u8; 50]);
    }

    #[test]
    fn reads_are_full_length_and_mix_segments_with_placeholder() {
        let s = state();
        let size = layout::file_size(DdsFormat::Bc1) as usize;
        let placeholder = Bytes::from(vec![9u8; size]);
        s.insert(1000, Bytes::from(vec![1u8; 100]));
        s.insert(1100, Bytes::from(vec![2u8; 100]));
        let one = s.read(1010..1020, &placeholder);
        assert_eq!(&one[..], &[1u8; 10]);
        let mixed = s.read(990..1110, &placeholder);
        assert_eq!(mixed.len(), 120);
        assert_eq!(&mixed[..10], &[9u8; 10]);
        assert_eq!(&mixed[10..110], &[1u8; 100]);
        assert_eq!(&mixed[110..], &[2u8; 10]);
        assert_eq!(
            s.read(size as u64 - 5..size as u64 + 100, &placeholder)
                .len(),
            5
        );
        assert!(s
            .read(size as u64..size as u64 + 1, &placeholder)
            .is_empty());
    }

    #[test]
    fn low_parts_complete_once() {
        let s = state();
        let part = LowPart {
            rows: vec![],
            band: vec![],
            degraded: false,
        };
        for strip in 0..15 {
            assert!(s.add_low_part(strip, part.clone()).is_none());
        }
        assert_eq!(s.add_low_part(15, part).map(|p| p.len()), Some(16));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    const SIZE: u64 = 11_184_952;

    /// Segments (start, length, fill byte) inside the file after the header.
    fn segment() -> impl Strategy<Value = (u64, u64, u8)> {
        (layout::HEADER_LEN..SIZE - 1, 1u64..200_000, 1u8..=255)
            .prop_map(|(start, len, fill)| (start, len.min(SIZE - start), fill))
    }

    proptest! {
        /// Segments added in any order, reads of any range: a read is
        /// always full length, a served byte never changes, and a byte is
        /// the first segment's that covered it.
        #[test]
        fn served_bytes_never_change(
            segments in proptest::collection::vec(segment(), 1..12),
            reads in proptest::collection::vec((0..SIZE + 10, 0u64..300_000), 1..12),
        ) {
            let state = TextureState::new(DdsFormat::Bc1);
            let placeholder = Bytes::from(vec![0u8; SIZE as usize]);
            let mut model = vec![0u8; SIZE as usize];
            let mut served: Vec<(u64, Bytes)> = Vec::new();
            let mut reads = reads.into_iter();
            for (start, len, fill) in segments {
                state.insert(start, Bytes::from(vec![fill; len as usize]));
                for b in &mut model[start as usize..(start + len) as usize] {
                    if *b == 0 {
                        *b = fill;
                    }
                }
                if let Some((at, len)) = reads.next() {
                    let range = at..at.saturating_add(len);
                    let bytes = state.read(range.clone(), &placeholder);
                    let (s, e) = (range.start.min(SIZE), range.end.min(SIZE));
                    prop_assert_eq!(bytes.len() as u64, e - s);
                    prop_assert!(bytes[..] == model[s as usize..e as usize]);
                    prop_assert_eq!(
                        state.is_built(s..e),
                        model[(s.max(layout::HEADER_LEN) as usize).min(e as usize)..e as usize]
                            .iter()
                            .all(|&b| b != 0)
                    );
                    served.push((s, bytes));
                }
            }
            for (s, bytes) in served {
                let again = state.read(s..s + bytes.len() as u64, &placeholder);
                for (i, (&was, &now)) in bytes.iter().zip(again.iter()).enumerate() {
                    prop_assert!(was == 0 || was == now, "byte {} changed", s + i as u64);
                }
            }
        }
    }
}
