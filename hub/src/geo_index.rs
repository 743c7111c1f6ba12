//! The IPv4 half of a `.mmdb` file as sorted ranges, built once at start-up, so finding an address's record
//! touches a few cache lines instead of walking up to 32 nodes of a search tree spread over a 100 MB file.
//!
//! The tree walk is memory-bound (its nodes are scattered over the file, and the cache of a cloud VM is shared),
//! and it was the largest single cost of enriching an event: 4.3 % of the hub's time under its bench, against
//! 2.8 % for this index's search. Here a table of the 65,536 `/16` blocks points into
//! the ranges, and a binary search over one block's starts (a few dozen, contiguous) finds the range. The answer
//! is the record's offset, exactly what the reader's own lookup gives; decoding stays with the reader.
//!
//! Memory: 6 bytes a range (the `/16` table holds each start's upper half), so 22 MB for DB-IP city's 3.7 million
//! ranges. Building reads the whole IPv4 tree (44 MB of that file), one `/8` at a time through a reader the caller
//! opens afresh for each: with a memory-mapped file, the tree pages one `/8` touched leave the process's resident
//! memory when its reader is dropped, instead of all 44 MB staying resident after start-up.

use ipnetwork::{IpNetwork, Ipv4Network};
use maxminddb::{Reader, WithinOptions};
use std::borrow::Borrow;
use std::net::Ipv4Addr;

/// A range that no network of the file covers.
const NO_DATA: u32 = u32::MAX;
const BLOCKS: usize = 1 << 16;

pub struct V4Index {
    /// `blocks[b]` is the first range of `/16` block `b`, which starts exactly at `b << 16`; the last element is
    /// `starts.len()`.
    blocks: Vec<u32>,
    /// The lower 16 bits of the first address of each range, ascending within a block (whose number gives the upper
    /// 16); a range ends where the next one starts.
    starts: Vec<u16>,
    /// The record offset of each range, or [`NO_DATA`].
    offsets: Vec<u32>,
}

impl V4Index {
    /// Reads every IPv4 network of the file, asking `open` for a reader of it once per `/8` (the same reader each
    /// time will do; see the module's notes on memory). `None` when the file has no IPv4 networks, `open` fails, or
    /// an offset does not fit the index (over 4 GB of data): the reader's own lookup then answers.
    pub fn build<R, S>(mut open: impl FnMut() -> Option<R>) -> Option<Self>
    where
        R: Borrow<Reader<S>>,
        S: AsRef<[u8]>,
    {
        let mut ranges = Ranges::default();
        for first_octet in 0..=u8::MAX {
            let reader = open()?;
            if first_octet == 0 {
                ranges.reserve_for(reader.borrow().metadata().node_count as usize);
            }
            let part = Ipv4Network::new(Ipv4Addr::new(first_octet, 0, 0, 0), 8).expect("a valid network");
            let (part_start, part_end) = bounds(part);
            for found in reader.borrow().within(IpNetwork::V4(part), WithinOptions::default()).ok()? {
                let found = found.ok()?;
                // An IPv6 file without an IPv4 part answers IPv4 addresses from an IPv6 network: leave those to the
                // reader, which knows that rule.
                let Ok(IpNetwork::V4(net)) = found.network() else { return None };
                let offset = u32::try_from(found.offset()?).ok().filter(|&o| o != NO_DATA)?;
                // A network wider than a /8 is found again in each /8 it covers: each time, only this /8's share.
                let (start, end) = bounds(net);
                ranges.push(start.max(part_start), end.min(part_end), offset)?;
            }
        }
        ranges.finish()
    }

    /// The record offset of `ip`, or `None` when no network of the file holds it.
    pub fn offset(&self, ip: Ipv4Addr) -> Option<usize> {
        let ip = u32::from(ip);
        let block = (ip >> 16) as usize;
        let (lo, hi) = (self.blocks[block] as usize, self.blocks[block + 1] as usize);
        // Every block starts with a range at its own first address, so the search never leaves it.
        let low = ip as u16;
        let at = lo + self.starts[lo..hi].partition_point(|&start| start <= low) - 1;
        Some(self.offsets[at]).filter(|&o| o != NO_DATA).map(|o| o as usize)
    }

    /// Ranges held: what the index costs, 6 bytes each.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
}

/// The first address of `net` and the one after its last (64 bits: a network may end at 255.255.255.255).
fn bounds(net: Ipv4Network) -> (u64, u64) {
    let start = u64::from(u32::from(net.network()));
    (start, start + (1u64 << (32 - u32::from(net.prefix()))))
}

/// Ranges as they are collected: gaps filled with [`NO_DATA`], neighbours with the same record merged, and a range
/// split at every `/16` boundary it crosses, in one pass, so building holds one copy of the arrays.
#[derive(Default)]
struct Ranges {
    starts: Vec<u16>,
    offsets: Vec<u32>,
    /// The index of each opened block's first range.
    blocks: Vec<u32>,
    /// The first address after the last range pushed.
    next: u64,
}

impl Ranges {
    /// Room for every range a tree of `nodes` nodes can hold, so the arrays never grow by copying: a binary tree has
    /// one leaf more than it has nodes, each leaf (a network, or a run of addresses without data) gives at most one
    /// range, and each `/16` block opens with one. The room beyond what is filled is address space the process
    /// never touches, so it is never resident; growing instead left about 27 MB of freed copies resident in the
    /// allocator after start-up, and shrinking to fit would copy once more.
    fn reserve_for(&mut self, nodes: usize) {
        let entries = nodes.saturating_add(BLOCKS + 2);
        self.starts.reserve_exact(entries);
        self.offsets.reserve_exact(entries);
        self.blocks.reserve_exact(BLOCKS + 1);
    }

    /// Adds the addresses from `start` up to, not including, `end`. `None` when ranges come out of order or empty
    /// (never from a well-formed file).
    fn push(&mut self, start: u64, end: u64, offset: u32) -> Option<()> {
        if start < self.next || end <= start || end > 1 << 32 {
            return None;
        }
        if start > self.next {
            self.append(self.next as u32, NO_DATA);
        }
        self.append(start as u32, offset);
        self.next = end;
        Some(())
    }

    fn append(&mut self, start: u32, offset: u32) {
        self.open_blocks_through((start >> 16) as usize);
        // The last entry is in `start`'s block (the call above just opened it, or a range of it came before), so
        // comparing the lower halves compares addresses.
        if self.starts.last() == Some(&(start as u16)) {
            // The range begins its block: it replaces the entry that carried the previous range into the block.
            *self.offsets.last_mut().expect("a block's first entry") = offset;
        } else if self.offsets.last() != Some(&offset) {
            self.starts.push(start as u16);
            self.offsets.push(offset);
        }
    }

    /// Opens every block up to `block`, each with an entry at its first address carrying the range that holds it.
    fn open_blocks_through(&mut self, block: usize) {
        while self.blocks.len() <= block {
            let holder = self.offsets.last().copied().unwrap_or(NO_DATA);
            self.blocks.push(self.starts.len() as u32);
            self.starts.push(0);
            self.offsets.push(holder);
        }
    }

    fn finish(mut self) -> Option<V4Index> {
        if self.starts.is_empty() {
            return None;
        }
        if self.next <= u64::from(u32::MAX) {
            self.append(self.next as u32, NO_DATA);
        }
        self.open_blocks_through(BLOCKS - 1);
        self.blocks.push(self.starts.len() as u32);
        Some(V4Index { blocks: self.blocks, starts: self.starts, offsets: self.offsets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(networks: &[(&str, u8, u32)]) -> V4Index {
        let mut ranges = Ranges::default();
        for &(net, prefix, offset) in networks {
            let net = Ipv4Network::new(net.parse().unwrap(), prefix).unwrap();
            let (start, end) = bounds(net);
            ranges.push(start, end, offset).unwrap();
        }
        ranges.finish().unwrap()
    }

    fn at(index: &V4Index, ip: &str) -> Option<usize> {
        index.offset(ip.parse().unwrap())
    }

    #[test]
    fn finds_the_range_of_an_address_and_nothing_in_gaps() {
        let idx = index(&[("1.0.0.0", 24, 10), ("1.0.1.0", 24, 10), ("1.2.0.0", 15, 20), ("8.8.8.0", 24, 30)]);
        assert_eq!(at(&idx, "0.255.255.255"), None);
        assert_eq!(at(&idx, "1.0.0.0"), Some(10));
        assert_eq!(at(&idx, "1.0.1.255"), Some(10));
        assert_eq!(at(&idx, "1.0.2.0"), None);
        // A /15 spans two /16 blocks.
        assert_eq!(at(&idx, "1.2.0.1"), Some(20));
        assert_eq!(at(&idx, "1.3.255.255"), Some(20));
        assert_eq!(at(&idx, "1.4.0.0"), None);
        assert_eq!(at(&idx, "8.8.8.8"), Some(30));
        assert_eq!(at(&idx, "8.8.9.0"), None);
        assert_eq!(at(&idx, "255.255.255.255"), None);
    }

    #[test]
    fn a_network_up_to_the_last_address_and_from_the_first() {
        let idx = index(&[("0.0.0.0", 8, 1), ("255.0.0.0", 8, 2)]);
        assert_eq!(at(&idx, "0.0.0.0"), Some(1));
        assert_eq!(at(&idx, "0.255.255.255"), Some(1));
        assert_eq!(at(&idx, "1.0.0.0"), None);
        assert_eq!(at(&idx, "255.255.255.255"), Some(2));
        let whole = index(&[("0.0.0.0", 0, 5)]);
        assert_eq!(at(&whole, "128.1.2.3"), Some(5));
    }

    #[test]
    fn out_of_order_networks_are_refused() {
        let mut ranges = Ranges::default();
        ranges.push(9 << 24, 10 << 24, 1).unwrap();
        assert!(ranges.push(8 << 24, 9 << 24, 2).is_none());
        assert!(ranges.push(11 << 24, 11 << 24, 2).is_none(), "an empty range");
    }
}
