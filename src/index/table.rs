//! One substring table: a directly addressed bucket directory over an arena of entries.
//!
//! Key layout. `dir[prefix]` gives the bucket `(off, len, cap)`: its entries live at
//! `slots[off..off + len]` (u32 positions in the index's hash array) with, in parallel,
//! `residues[off..]` (the substring's low residue bits, one byte, for wide hashes) or `inline[off..]`
//! (the whole 64-bit hash, for narrow ones). Buckets are contiguous runs of the arena, so a probe
//! reads one directory entry and one or two cache lines of entries.
//!
//! Updates in place. A bucket with spare capacity takes a new entry where it is. A full one moves
//! to the end of the arena with twice the room (or grows in place when it already is the last
//! run); the run it leaves is waste. When waste passes half the live entries the table is
//! compacted bucket by bucket: amortised O(1) per insert, and no other table is touched.

use super::layout::TableSpec;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Bucket {
    pub off: u32,
    pub len: u32,
    pub cap: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub spec: TableSpec,
    pub dir: Vec<Bucket>,
    pub slots: Vec<u32>,
    /// Wide hashes: the low `residue_bits` of the substring of each entry.
    pub residues: Vec<u8>,
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

    /// Builds the table for `subs[slot]` (each slot's substring) with a counting sort.
    /// `full[slot]` is the whole hash when `inline_full`.
    pub fn build(spec: TableSpec, subs: &[u32], full: Option<&[u64]>) -> Self {
        let inline_full = full.is_some();
        let mut table = Table {
            spec,
            dir: vec![Bucket::default(); 1usize << spec.prefix_bits],
            slots: Vec::new(),
            residues: Vec::new(),
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
        table.slots = vec![0; subs.len()];
        if inline_full {
            table.inline = vec![0; subs.len()];
        } else {
            table.residues = vec![0; subs.len()];
        }
        for (slot, &s) in subs.iter().enumerate() {
            let (bucket, residue) = table.split(s);
            let b = &mut table.dir[bucket];
            let at = (b.off + b.len) as usize;
            b.len += 1;
            table.slots[at] = slot as u32;
            match full {
                Some(full) => table.inline[at] = full[slot],
                None => table.residues[at] = residue,
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
            let arena_len = self.slots.len();
            if (b.off + b.cap) as usize == arena_len {
                // Last run of the arena: grow in place.
                self.grow_arena(arena_len + (new_cap - b.cap) as usize);
            } else {
                let new_off = arena_len;
                self.grow_arena(arena_len + new_cap as usize);
                let (from, len) = (b.off as usize, b.len as usize);
                self.slots.copy_within(from..from + len, new_off);
                if self.inline_full {
                    self.inline.copy_within(from..from + len, new_off);
                } else {
                    self.residues.copy_within(from..from + len, new_off);
                }
                self.waste += b.cap as usize;
                b.off = new_off as u32;
            }
            b.cap = new_cap;
        }
        let at = (b.off + b.len) as usize;
        self.slots[at] = slot;
        if self.inline_full {
            self.inline[at] = full;
        } else {
            self.residues[at] = residue;
        }
        b.len += 1;
        self.dir[bn] = b;
        self.live += 1;
        if self.waste > self.live / 2 + 64 {
            self.compact();
        }
    }

    fn grow_arena(&mut self, new_len: usize) {
        self.slots.resize(new_len, 0);
        if self.inline_full {
            self.inline.resize(new_len, 0);
        } else {
            self.residues.resize(new_len, 0);
        }
    }

    /// Removes `slot` from the bucket of `sub`; false if it is not there.
    pub fn remove(&mut self, sub: u32, slot: u32) -> bool {
        let (bn, _) = self.split(sub);
        let b = &mut self.dir[bn];
        let run = b.off as usize..(b.off + b.len) as usize;
        let Some(i) = self.slots[run.clone()].iter().position(|&s| s == slot) else { return false };
        let (at, last) = (run.start + i, run.end - 1);
        self.slots[at] = self.slots[last];
        if self.inline_full {
            self.inline[at] = self.inline[last];
        } else {
            self.residues[at] = self.residues[last];
        }
        b.len -= 1;
        self.live -= 1;
        true
    }

    /// Renames `old` to `new` in the bucket of `sub` (the index moved an entry's slot).
    pub fn rename(&mut self, sub: u32, old: u32, new: u32) -> bool {
        let (bn, _) = self.split(sub);
        let b = self.dir[bn];
        let run = &mut self.slots[b.off as usize..(b.off + b.len) as usize];
        match run.iter_mut().find(|s| **s == old) {
            Some(s) => {
                *s = new;
                true
            }
            None => false,
        }
    }

    /// Rewrites the arena bucket by bucket with no gaps.
    fn compact(&mut self) {
        let mut slots = Vec::with_capacity(self.live + self.live / 8);
        let mut residues = Vec::new();
        let mut inline = Vec::new();
        if self.inline_full {
            inline.reserve(slots.capacity());
        } else {
            residues.reserve(slots.capacity());
        }
        for b in self.dir.iter_mut() {
            let run = b.off as usize..(b.off + b.len) as usize;
            let off = slots.len();
            slots.extend_from_slice(&self.slots[run.clone()]);
            if self.inline_full {
                inline.extend_from_slice(&self.inline[run]);
            } else {
                residues.extend_from_slice(&self.residues[run]);
            }
            *b = Bucket { off: off as u32, len: b.len, cap: b.len };
        }
        self.slots = slots;
        self.residues = residues;
        self.inline = inline;
        self.waste = 0;
    }

    /// Bytes allocated by this table (capacities, not lengths).
    pub fn heap_bytes(&self) -> usize {
        self.dir.capacity() * size_of::<Bucket>()
            + self.slots.capacity() * size_of::<u32>()
            + self.residues.capacity()
            + self.inline.capacity() * size_of::<u64>()
    }
}
