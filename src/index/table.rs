//! One substring table: a directly addressed bucket directory over an arena of entries.
//!
//! Key layout. `dir[prefix]` gives the bucket `(off, len, cap)`: its entries live at
//! `entries[off..off + len]`. For wide hashes an entry is one u32, `slot << residue_bits | residue`
//! (the entry's position in the index's hash array, and the low bits of its substring), so a
//! probe reads one directory entry and one run of u32s; the layout keeps `residue_bits` small
//! enough that every slot fits ([`Table::slot_capacity`]). For narrow hashes an entry is the plain
//! slot and `inline[off..]` holds each entry's whole 64-bit hash, which the scan checks directly.
//!
//! Updates in place. A bucket with spare capacity takes a new entry where it is. A full one moves
//! to the end of the arena with twice the room (or grows in place when it already is the last
//! run); the run it leaves is waste. When waste passes half the live entries the table is
//! compacted bucket by bucket: amortised O(1) per insert, and no other table is touched.

use super::layout::TableSpec;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Bucket {
    /// Position in the arena of the bucket's first entry.
    pub off: u32,
    /// Entries in use.
    pub len: u32,
    /// Entries reserved at `off` (the run's length in the arena).
    pub cap: u32,
}

/// One substring table: the bucket directory and its arena (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct Table {
    /// Which substring, and how many of its bits address the directory.
    pub spec: TableSpec,
    /// One bucket per prefix value: `2^prefix_bits` of them.
    pub dir: Vec<Bucket>,
    /// Wide hashes: `slot << residue_bits | residue`; narrow hashes: the slot.
    pub entries: Vec<u32>,
    /// Narrow hashes: each entry's whole hash.
    pub inline: Vec<u64>,
    inline_full: bool,
    waste: usize,
    live: usize,
}

impl Table {
    /// Bucket number and residue of a substring value.
    #[inline]
    pub fn split(&self, sub: u32) -> (usize, u8) {
        // u64 arithmetic: a 32-bit substring of an inlined hash may have 32 residue bits.
        let (sub, rb) = (u64::from(sub), self.spec.residue_bits());
        ((sub >> rb) as usize, (sub & ((1u64 << rb) - 1)) as u8)
    }

    /// Bits the residue takes in an entry (none when the whole hash is inlined).
    #[inline]
    pub fn packed_bits(&self) -> u32 {
        if self.inline_full {
            0
        } else {
            self.spec.residue_bits()
        }
    }

    /// Slots this table can hold: `2^(32 - packed bits)`.
    pub fn slot_capacity(&self) -> usize {
        1usize << (32 - self.packed_bits())
    }

    /// The entry stored for `slot` with substring residue `residue`.
    #[inline]
    fn entry(&self, slot: u32, residue: u8) -> u32 {
        if self.inline_full {
            slot
        } else {
            (slot << self.spec.residue_bits()) | u32::from(residue)
        }
    }

    /// The slot of a stored entry.
    #[inline]
    pub fn slot_of(&self, entry: u32) -> u32 {
        entry >> self.packed_bits()
    }

    /// Builds the table for `subs[slot]` (each slot's substring) with a counting sort.
    /// `full[slot]` is the whole hash when `inline_full`.
    pub fn build(spec: TableSpec, subs: &[u32], full: Option<&[u64]>) -> Self {
        let inline_full = full.is_some();
        let mut table = Table {
            spec,
            dir: vec![Bucket::default(); 1usize << spec.prefix_bits],
            entries: Vec::new(),
            inline: Vec::new(),
            inline_full,
            waste: 0,
            live: subs.len(),
        };
        for &s in subs {
            let (bucket, _) = table.split(s);
            table.dir[bucket].len += 1;
        }
        let mut off = 0u32;
        for b in table.dir.iter_mut() {
            b.off = off;
            b.cap = b.len;
            off += b.len;
            b.len = 0;
        }
        table.entries = vec![0; subs.len()];
        if inline_full {
            table.inline = vec![0; subs.len()];
        }
        for (slot, &s) in subs.iter().enumerate() {
            let (bucket, residue) = table.split(s);
            let b = &mut table.dir[bucket];
            let at = (b.off + b.len) as usize;
            b.len += 1;
            table.entries[at] = table.entry(slot as u32, residue);
            if let Some(full) = full {
                table.inline[at] = full[slot];
            }
        }
        table
    }

    /// Adds `slot` whose substring is `sub` (and whole hash `full` for narrow hashes).
    pub fn insert(&mut self, sub: u32, slot: u32, full: u64) {
        let (bn, residue) = self.split(sub);
        let mut b = self.dir[bn];
        if b.len == b.cap {
            let new_cap = (b.cap * 2).max(4);
            let arena_len = self.entries.len();
            if (b.off + b.cap) as usize == arena_len {
                // Last run of the arena: grow in place.
                self.grow_arena(arena_len + (new_cap - b.cap) as usize);
            } else {
                let new_off = arena_len;
                self.grow_arena(arena_len + new_cap as usize);
                let (from, len) = (b.off as usize, b.len as usize);
                self.entries.copy_within(from..from + len, new_off);
                if self.inline_full {
                    self.inline.copy_within(from..from + len, new_off);
                }
                self.waste += b.cap as usize;
                b.off = new_off as u32;
            }
            b.cap = new_cap;
        }
        let at = (b.off + b.len) as usize;
        self.entries[at] = self.entry(slot, residue);
        if self.inline_full {
            self.inline[at] = full;
        }
        b.len += 1;
        self.dir[bn] = b;
        self.live += 1;
        if self.waste > self.live / 2 + 64 {
            self.compact();
        }
    }

    fn grow_arena(&mut self, new_len: usize) {
        let more = new_len.saturating_sub(self.entries.len());
        super::reserve_gently(&mut self.entries, more);
        self.entries.resize(new_len, 0);
        if self.inline_full {
            let more = new_len.saturating_sub(self.inline.len());
            super::reserve_gently(&mut self.inline, more);
            self.inline.resize(new_len, 0);
        }
    }

    /// Removes `slot` from the bucket of `sub`; false if it is not there.
    pub fn remove(&mut self, sub: u32, slot: u32) -> bool {
        let (bn, _) = self.split(sub);
        let b = self.dir[bn];
        let run = b.off as usize..(b.off + b.len) as usize;
        let shift = self.packed_bits();
        let Some(i) = self.entries[run.clone()]
            .iter()
            .position(|&e| e >> shift == slot)
        else {
            return false;
        };
        let (at, last) = (run.start + i, run.end - 1);
        self.entries[at] = self.entries[last];
        if self.inline_full {
            self.inline[at] = self.inline[last];
        }
        self.dir[bn].len -= 1;
        self.live -= 1;
        true
    }

    /// Renames `old` to `new` in the bucket of `sub` (the index moved an entry's slot).
    pub fn rename(&mut self, sub: u32, old: u32, new: u32) -> bool {
        let (bn, _) = self.split(sub);
        let b = self.dir[bn];
        let shift = self.packed_bits();
        let low = (1u64 << shift) - 1;
        let run = &mut self.entries[b.off as usize..(b.off + b.len) as usize];
        match run.iter_mut().find(|e| **e >> shift == old) {
            Some(e) => {
                *e = (new << shift) | (u64::from(*e) & low) as u32;
                true
            }
            None => false,
        }
    }

    /// Rewrites the arena bucket by bucket with no gaps.
    fn compact(&mut self) {
        let mut entries = Vec::with_capacity(self.live + self.live / 8);
        let mut inline = Vec::new();
        if self.inline_full {
            inline.reserve(entries.capacity());
        }
        for b in self.dir.iter_mut() {
            let run = b.off as usize..(b.off + b.len) as usize;
            let off = entries.len();
            entries.extend_from_slice(&self.entries[run.clone()]);
            if self.inline_full {
                inline.extend_from_slice(&self.inline[run]);
            }
            *b = Bucket {
                off: off as u32,
                len: b.len,
                cap: b.len,
            };
        }
        self.entries = entries;
        self.inline = inline;
        self.waste = 0;
    }

    /// Bytes allocated by this table (capacities, not lengths).
    pub fn heap_bytes(&self) -> usize {
        self.dir.capacity() * size_of::<Bucket>()
            + self.entries.capacity() * size_of::<u32>()
            + self.inline.capacity() * size_of::<u64>()
    }
}
