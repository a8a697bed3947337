//! Which byte ranges of a texture a disk-cache file is known to hold.
//!
//! A cache file holds only the parts of a texture built so far, so "the file
//! exists" does not mean "a read of this range needs no download". The disk
//! index keeps, per file, the ranges of the records this process wrote or
//! loaded, merged; a file found only by the start-up scan (names and sizes,
//! no reads) is [`Held::Unknown`], and is never taken as holding a range.

use std::ops::Range;

/// What this process knows of a cache file's records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Held {
    /// Found by the directory scan, or written to by another process first:
    /// its records were never read here.
    #[default]
    Unknown,
    /// The file offsets its records cover, sorted, disjoint and not touching.
    Ranges(Vec<Range<u64>>),
}

impl Held {
    /// The ranges of these records (file offset, length).
    pub fn of(records: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut held = Held::Ranges(Vec::new());
        held.add(records);
        held
    }

    /// Records were appended. Unknown stays unknown: what else the file
    /// holds was never read.
    pub fn add(&mut self, records: impl IntoIterator<Item = (u64, u64)>) {
        let Held::Ranges(ranges) = self else { return };
        for (offset, len) in records {
            // A record that would end past u64::MAX holds nothing we can name.
            let Some(end) = offset.checked_add(len) else {
                continue;
            };
            if offset < end {
                insert(ranges, offset..end);
            }
        }
    }

    /// Whether every byte of `range` is known to be held.
    pub fn covers(&self, range: Range<u64>) -> bool {
        let Held::Ranges(ranges) = self else {
            return false;
        };
        if range.start >= range.end {
            return true;
        }
        // Ranges never touch, so one of them holds all of `range` or none does.
        let after = ranges.partition_point(|r| r.start <= range.start);
        after
            .checked_sub(1)
            .and_then(|i| ranges.get(i))
            .is_some_and(|r| range.end <= r.end)
    }
}

/// Merges `new` into sorted, disjoint, non-touching `ranges`.
fn insert(ranges: &mut Vec<Range<u64>>, new: Range<u64>) {
    // The ranges that overlap or touch `new` are a contiguous run.
    let first = ranges.partition_point(|r| r.end < new.start);
    let last = ranges.partition_point(|r| r.start <= new.end);
    let merged = ranges[first..last]
        .iter()
        .fold(new, |m, r| m.start.min(r.start)..m.end.max(r.end));
    ranges.splice(first..last, [merged]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_records_and_answers_only_for_what_is_covered() {
        let mut held = Held::of([(200, 100), (128, 50)]);
        assert!(held.covers(128..178));
        assert!(held.covers(210..300));
        assert!(!held.covers(128..300), "a gap at 178..200");
        held.add([(178, 22)]);
        assert_eq!(held, Held::Ranges(std::iter::once(128..300).collect()));
        assert!(held.covers(128..300));
        assert!(!held.covers(127..300));
        assert!(!held.covers(128..301));
        held.add([(1000, 10), (500, 10), (505, 100)]);
        assert_eq!(held, Held::Ranges(vec![128..300, 500..605, 1000..1010]));
        assert!(held.covers(1000..1010) && !held.covers(600..1000));
        assert!(held.covers(5..5), "an empty range is held");
    }

    #[test]
    fn unknown_holds_nothing_and_stays_unknown() {
        let mut held = Held::Unknown;
        held.add([(128, 100)]);
        assert_eq!(held, Held::Unknown);
        assert!(!held.covers(128..129));
    }

    #[test]
    fn offsets_that_would_wrap_are_ignored() {
        let held = Held::of([(u64::MAX - 5, 10), (128, 0)]);
        assert_eq!(held, Held::Ranges(Vec::new()));
        assert!(!held.covers(u64::MAX - 5..u64::MAX));
    }
}
