//! Memory planning: every runtime value gets a 64-byte-aligned slot in one
//! activation arena (slots are reused once a value is dead), every constant
//! a 64-byte-aligned slot in the weights blob.

use nanoc_ir::{Graph, NodeId, Op};
use std::collections::HashMap;

/// Alignment of every arena and weights slot.
pub const ALIGN: u64 = 64;

/// Where a value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// The activation arena.
    Arena,
    /// The read-only weights blob.
    Weights,
}

/// A byte range in a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Region.
    pub region: Region,
    /// Byte offset.
    pub offset: u64,
    /// Byte size.
    pub size: u64,
}

fn align(x: u64) -> u64 {
    x.div_ceil(ALIGN) * ALIGN
}

/// First-fit allocator over the arena with a free list.
#[derive(Default)]
pub struct ArenaAlloc {
    free: Vec<(u64, u64)>,
    /// High-water mark: the arena size.
    pub size: u64,
}

impl ArenaAlloc {
    /// Allocates `size` bytes (at least one alignment unit).
    pub fn alloc(&mut self, size: u64) -> u64 {
        let need = align(size.max(1));
        if let Some(i) = self.free.iter().position(|&(_, len)| len >= need) {
            let (off, len) = self.free[i];
            if len == need {
                self.free.remove(i);
            } else {
                self.free[i] = (off + need, len - need);
            }
            return off;
        }
        let off = self.size;
        self.size += need;
        off
    }

    /// Returns a block to the free list, merging neighbours.
    pub fn release(&mut self, off: u64, size: u64) {
        let len = align(size.max(1));
        self.free.push((off, len));
        self.free.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.free.len());
        for &(o, l) in &self.free {
            match merged.last_mut() {
                Some((po, pl)) if *po + *pl == o => *pl += l,
                _ => merged.push((o, l)),
            }
        }
        self.free = merged;
    }
}

/// The weights blob: constants laid out at aligned offsets.
#[derive(Default)]
pub struct WeightsBlob {
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl WeightsBlob {
    /// Appends `data`, returning its offset.
    pub fn push(&mut self, data: &[u8]) -> u64 {
        let off = align(self.bytes.len() as u64);
        self.bytes.resize(off as usize, 0);
        self.bytes.extend_from_slice(data);
        off
    }
}

/// For each node, the index (in `order`) of the last step that reads it;
/// graph outputs live forever (`usize::MAX`).
pub fn last_uses(g: &Graph, order: &[NodeId]) -> HashMap<NodeId, usize> {
    let pos: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut last = HashMap::new();
    for &n in order {
        if matches!(g.node(n).op, Op::Const(_)) {
            continue;
        }
        let l = g.users(n).iter().filter_map(|u| pos.get(u)).copied().max().unwrap_or(pos[&n]);
        last.insert(n, l);
    }
    for (_, o) in g.outputs() {
        last.insert(*o, usize::MAX);
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_freed_blocks() {
        let mut a = ArenaAlloc::default();
        let x = a.alloc(100);
        let y = a.alloc(10);
        a.release(x, 100);
        let z = a.alloc(64);
        assert_eq!((x, y, z), (0, 128, 0));
        assert_eq!(a.size, 192);
    }
}
