//! Split-block Bloom filters (Parquet SBBF layout) shared across threads, plus an aging variant.
//!
//! Why this shape:
//! - One 256-bit block per key, so a check or insert touches one cache line instead of k random
//!   ones (rbloom's classic layout). Eight bits are set, one in each 32-bit word of the block, at
//!   `(lo32 * SALT[i]) >> 27` with Parquet's SALT constants. The block index is
//!   `(hi32 * num_blocks) >> 32` (fastrange: any block count, no power-of-two rounding).
//! - Keys are 64-bit hashes from [`crate::hash`] (XXH3), but they are mixed once with the
//!   splitmix64 finalizer so plain sequential integers spread just as well.
//! - Words are atomics so one filter serves many threads through `&self`. A block is stored as
//!   4 x `AtomicU64` (each holding two of the eight 32-bit words, low word first): the bit
//!   layout and the file bytes are exactly those of 8 x u32 little-endian, but an insert needs
//!   at most 4 locked RMW instructions instead of 8, and none for a bit that a plain load shows
//!   is already set. Measured here: about 1.6x faster than 8 x `AtomicU32::fetch_or`.
//! - `Relaxed` is enough: the bits publish no other data, `fetch_or` never loses a concurrent
//!   bit (per-location atomicity), and coherence makes each thread see its own earlier writes,
//!   so "inserted, then asked" in one thread (or across a join/channel, which orders memory) is
//!   never a false negative. Two threads inserting the same key at the same instant may both be
//!   told "new"; that is harmless here (the database key is the real identity check).
//! - Batches mix the keys of a 32-key chunk first and touch their blocks with plain loads, so
//!   cache misses overlap instead of queueing behind locked instructions (about 2x on filters
//!   larger than the cache; 32 measured best of 16/32/64).
//! - Sizing uses the exact SBBF false-positive model (Poisson block load times the per-block
//!   probability), not the classic formula, and aims at 85% of the requested rate, so the
//!   measured rate at `capacity` stays under it (tests measure it).
//!
//! File format (all integers little-endian), identical for [`BloomFilter`] and [`AgingBloom`]
//! up to the kind-specific parameters:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `b"TGBLOOM\0"` |
//! | 2 | u16 format version = 1 |
//! | 1 | u8 kind: 1 plain, 2 aging |
//! | plain: 32 | capacity u64, fpr f64, num_blocks u64, inserted u64 |
//! | aging: 44 + 8 x generations | capacity u64 (per window), fpr f64 (whole filter; each generation gets fpr / generations), num_blocks u64 (per generation), generations u32, window_secs u64, newest generation start i64, then inserted u64 per generation (oldest first) |
//! | 32 x num_blocks (x generations) | block words, u32 little-endian, 8 per block (oldest generation first) |
//! | 8 | XXH3-64 (seed 0) of every byte before it, u64 |
//!
//! Anything else (wrong magic, version, kind, parameters, length or checksum) is a
//! [`CoreError::BloomFormat`] saying what was expected and what was found.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::error::{CoreError, Result};

#[path = "bloom/aging.rs"]
mod aging;
#[path = "bloom/format.rs"]
mod format;

pub use aging::AgingBloom;

/// Parquet's SBBF salt constants, one per 32-bit word of a block.
const SALT: [u32; 8] = [
    0x47b6137b, 0x44974d91, 0x8824ad5b, 0xa2b7289d, 0x705495c7, 0x2df1424b, 0x9efc4947, 0x5c6bfb31,
];
const BLOCK_BYTES: u64 = 32;
/// Largest filter: 16 GiB of blocks.
pub const MAX_BYTES: u64 = 16 << 30;
const MAX_BLOCKS: u64 = MAX_BYTES / BLOCK_BYTES;
/// Sizing aims below the requested rate to absorb hashing and measurement noise.
const HEADROOM: f64 = 0.85;
/// Keys per batch chunk whose blocks are touched before any is written.
const CHUNK: usize = 32;

/// One 256-bit block, kept inside one cache line.
#[derive(Default)]
#[repr(align(32))]
pub(crate) struct Block([AtomicU64; 4]);

/// Where a key lives: its block and the bits it needs in each 64-bit word of that block.
#[derive(Clone, Copy, Default)]
pub(crate) struct Probe {
    block: usize,
    mask: [u64; 4],
}

/// splitmix64 finalizer: a bijection that spreads sequential keys over all 64 bits.
#[inline(always)]
fn mix(key: u64) -> u64 {
    let mut z = key;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[inline(always)]
pub(crate) fn probe(key: u64, num_blocks: u64) -> Probe {
    probe_mixed(mix(key), num_blocks)
}

/// fastrange: num_blocks <= 2^29, so the product fits and the result is < num_blocks.
#[inline(always)]
fn block_of(h: u64, num_blocks: u64) -> usize {
    (((h >> 32) * num_blocks) >> 32) as usize
}

/// Probe of an already mixed key.
#[inline(always)]
pub(crate) fn probe_mixed(h: u64, num_blocks: u64) -> Probe {
    let block = block_of(h, num_blocks);
    let lo = h as u32;
    let mut mask = [0u64; 4];
    for (i, m) in mask.iter_mut().enumerate() {
        let a = 1u64 << (lo.wrapping_mul(SALT[2 * i]) >> 27);
        let b = 1u64 << (lo.wrapping_mul(SALT[2 * i + 1]) >> 27);
        *m = a | (b << 32);
    }
    Probe { block, mask }
}

/// Expected false-positive rate of an SBBF with `num_blocks` blocks holding `n` keys: the
/// block load is Poisson(n / blocks) and a key in a block with j others is a false positive
/// when its 8 bits (one per 32-bit word) are all set: (1 - (31/32)^j)^8.
pub(crate) fn predicted_fpr(n: u64, num_blocks: u64) -> f64 {
    let lambda = n as f64 / num_blocks as f64;
    if lambda > 256.0 {
        return 1.0; // more keys than bits per block: hopeless, and the sum would be long
    }
    let last = (lambda + 12.0 * lambda.sqrt() + 40.0) as u32;
    let mut log_pmf = -lambda; // ln P(load = 0)
    let mut total = 0.0;
    for j in 0..=last {
        if j > 0 {
            log_pmf += lambda.ln() - f64::from(j).ln();
        }
        let p_bit = 1.0 - (31.0f64 / 32.0).powi(j as i32);
        total += log_pmf.exp() * p_bit.powi(8);
    }
    total.min(1.0)
}

/// Smallest block count whose predicted rate at `capacity` is within the target.
fn blocks_for(capacity: u64, fpr: f64) -> Result<u64> {
    let target = fpr * HEADROOM;
    if predicted_fpr(capacity, MAX_BLOCKS) > target {
        return Err(CoreError::InvalidInput(format!(
            "a Bloom filter for {capacity} keys at fpr {fpr} needs more than {MAX_BYTES} bytes"
        )));
    }
    let (mut lo, mut hi) = (1u64, MAX_BLOCKS); // predicted(hi) <= target always holds
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if predicted_fpr(capacity, mid) <= target {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(hi)
}

pub(crate) fn check_params(capacity: u64, fpr: f64) -> Result<()> {
    if capacity == 0 {
        return Err(CoreError::InvalidInput(
            "Bloom capacity must be at least 1".into(),
        ));
    }
    if !(fpr > 0.0 && fpr < 0.5) {
        return Err(CoreError::InvalidInput(format!(
            "Bloom fpr must be in (0, 0.5), got {fpr}"
        )));
    }
    Ok(())
}

fn alloc_blocks(num_blocks: u64) -> Result<Box<[Block]>> {
    let too_big = || {
        CoreError::InvalidInput(format!(
            "cannot allocate a Bloom filter of {num_blocks} blocks ({} bytes)",
            num_blocks.saturating_mul(BLOCK_BYTES)
        ))
    };
    if num_blocks == 0 || num_blocks > MAX_BLOCKS {
        return Err(too_big());
    }
    let n = usize::try_from(num_blocks).map_err(|_| too_big())?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| too_big())?;
    v.resize_with(n, Block::default);
    Ok(v.into_boxed_slice())
}

/// Split-block Bloom filter with atomic words; every method takes `&self`.
pub struct BloomFilter {
    blocks: Box<[Block]>,
    capacity: u64,
    fpr: f64,
    inserted: AtomicU64,
}

impl fmt::Debug for BloomFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BloomFilter")
            .field("capacity", &self.capacity)
            .field("fpr", &self.fpr)
            .field("num_blocks", &self.num_blocks())
            .field("inserted", &self.inserted())
            .finish()
    }
}

impl BloomFilter {
    /// Sized so the measured FPR at `capacity` keys stays <= `fpr`. Errors on capacity 0,
    /// fpr not in (0, 0.5), or a size over 16 GiB.
    pub fn new(capacity: u64, fpr: f64) -> Result<Self> {
        check_params(capacity, fpr)?;
        let num_blocks = blocks_for(capacity, fpr)?;
        Self::with_blocks(capacity, fpr, num_blocks)
    }

    /// An empty filter with an explicit block count (decoding, aging generations).
    pub(crate) fn with_blocks(capacity: u64, fpr: f64, num_blocks: u64) -> Result<Self> {
        Ok(BloomFilter {
            blocks: alloc_blocks(num_blocks)?,
            capacity,
            fpr,
            inserted: AtomicU64::new(0),
        })
    }

    /// Adds one key; true when it was definitely new.
    pub fn insert(&self, key: u64) -> bool {
        let new = self.add_probe(&probe(key, self.num_blocks()));
        if new {
            self.inserted.fetch_add(1, Relaxed);
        }
        new
    }

    pub fn contains(&self, key: u64) -> bool {
        self.has_probe(&probe(key, self.num_blocks()))
    }

    /// Batch check-and-add: `out[i]` = key i was definitely new (it is added either way).
    /// A key repeated inside one batch is new at most once. Returns the count of new keys.
    pub fn check_and_add(&self, keys: &[u64], out: &mut Vec<bool>) -> usize {
        out.clear();
        out.reserve(keys.len());
        let n = self.num_blocks();
        let mut hashes = [0u64; CHUNK];
        let mut count = 0usize;
        for chunk in keys.chunks(CHUNK) {
            out.extend(self.prefetch(chunk, &mut hashes).iter().map(|&h| {
                let new = self.add_probe(&probe_mixed(h, n));
                count += usize::from(new);
                new
            }));
        }
        self.inserted.fetch_add(count as u64, Relaxed);
        count
    }

    /// `out[i]` = key i may have been added.
    pub fn contains_many(&self, keys: &[u64], out: &mut Vec<bool>) {
        out.clear();
        out.reserve(keys.len());
        let n = self.num_blocks();
        let mut hashes = [0u64; CHUNK];
        for chunk in keys.chunks(CHUNK) {
            for &h in self.prefetch(chunk, &mut hashes) {
                out.push(self.has_probe(&probe_mixed(h, n)));
            }
        }
    }

    /// Adds every key of `other` (same capacity, fpr and size, or `InvalidInput`).
    pub fn merge(&self, other: &BloomFilter) -> Result<()> {
        if !self.same_shape(other) {
            return Err(CoreError::InvalidInput(format!(
                "cannot merge Bloom filters of different parameters: \
                 capacity {} fpr {} blocks {} vs capacity {} fpr {} blocks {}",
                self.capacity,
                self.fpr,
                self.num_blocks(),
                other.capacity,
                other.fpr,
                other.num_blocks()
            )));
        }
        for (mine, theirs) in self.blocks.iter().zip(other.blocks.iter()) {
            for (w, o) in mine.0.iter().zip(&theirs.0) {
                let bits = o.load(Relaxed);
                if bits & !w.load(Relaxed) != 0 {
                    w.fetch_or(bits, Relaxed);
                }
            }
        }
        self.inserted.fetch_add(other.inserted(), Relaxed);
        Ok(())
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn fpr(&self) -> f64 {
        self.fpr
    }

    pub fn num_bits(&self) -> u64 {
        self.num_blocks() * BLOCK_BYTES * 8
    }

    /// Approximate count of keys added as new (exact without concurrent duplicate inserts).
    pub fn inserted(&self) -> u64 {
        self.inserted.load(Relaxed)
    }

    pub(crate) fn num_blocks(&self) -> u64 {
        self.blocks.len() as u64
    }

    pub(crate) fn same_shape(&self, other: &BloomFilter) -> bool {
        self.capacity == other.capacity
            && self.fpr.to_bits() == other.fpr.to_bits()
            && self.blocks.len() == other.blocks.len()
    }

    pub(crate) fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    pub(crate) fn set_inserted(&self, n: u64) {
        self.inserted.store(n, Relaxed);
    }

    /// Empties the filter (aging rotation); exclusive access, so no atomics needed.
    pub(crate) fn clear(&mut self) {
        for b in self.blocks.iter_mut() {
            for w in b.0.iter_mut() {
                *w.get_mut() = 0;
            }
        }
        *self.inserted.get_mut() = 0;
    }

    /// Mixes the keys of a chunk and touches their blocks so the cache misses overlap.
    #[inline(always)]
    pub(crate) fn prefetch<'h>(&self, keys: &[u64], hashes: &'h mut [u64; CHUNK]) -> &'h [u64] {
        let n = self.num_blocks();
        let mut touch = 0u64;
        for (h, &k) in hashes.iter_mut().zip(keys) {
            *h = mix(k);
            touch ^= self.blocks[block_of(*h, n)].0[0].load(Relaxed);
        }
        std::hint::black_box(touch);
        &hashes[..keys.len().min(CHUNK)]
    }

    /// Sets the probe's bits; true when any was missing. Locked RMW only where needed.
    #[inline(always)]
    pub(crate) fn add_probe(&self, p: &Probe) -> bool {
        // p.block < num_blocks by construction of `probe`.
        let block = &self.blocks[p.block].0;
        let mut new = false;
        for (w, &m) in block.iter().zip(&p.mask) {
            if w.load(Relaxed) & m != m {
                w.fetch_or(m, Relaxed);
                new = true;
            }
        }
        new
    }

    #[inline(always)]
    pub(crate) fn has_probe(&self, p: &Probe) -> bool {
        let block = &self.blocks[p.block].0;
        block
            .iter()
            .zip(&p.mask)
            .all(|(w, &m)| w.load(Relaxed) & m == m)
    }
}

#[cfg(test)]
#[path = "bloom/tests.rs"]
mod tests;
