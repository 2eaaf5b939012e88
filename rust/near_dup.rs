//! Near-duplicate clusters over 64-bit SimHashes: banded lookup, Hamming check, union-find.
//!
//! Pigeonhole: split the 64 bits into `m` blocks; two hashes within Hamming distance `k` differ
//! in at most `k` blocks, so they agree exactly on some `m - k` of them. One table per choice
//! of `m - k` blocks keys every hash by those bits; only hashes sharing a key in some table are
//! compared, and a pair joins a cluster only when its distance really is <= `k`. Nothing within
//! the threshold is missed (recall of the lookup is exact); `m` is picked to balance the number
//! of tables against the size of their buckets for the input size. Equal hashes are merged
//! first, so a text repeated a million times costs one entry, not a quadratic bucket.
//! Exact except inside a bucket of more than [`BUCKET_WINDOW`] hashes (counted in `capped`).
//! Labels: each input gets the smallest input index of its cluster, so a caller that sorts its
//! rows oldest first gets the first member of each cluster as its label.

/// The largest threshold accepted: beyond it SimHash distances stop meaning "near".
pub const MAX_THRESHOLD: u32 = 16;

/// Within one bucket, each hash is compared with at most this many of the next ones (in hash
/// order). Buckets that large only come from a mass of near-identical texts (a template posted
/// thousands of times), which chains into one cluster anyway; without the cap such a bucket
/// costs its size squared (a 300k-message sample took 49 s instead of 2). Exact below it.
pub const BUCKET_WINDOW: usize = 512;

/// A bucket past [`BUCKET_WINDOW`] gets a window that keeps its work near 1M comparisons (at
/// least 32 neighbours each): a mass of 200k variants of one template costs 6M, not 100M.
fn bucket_window(len: usize) -> usize {
    (BUCKET_WORK / len.max(1)).clamp(32, BUCKET_WINDOW)
}

const BUCKET_WORK: usize = 1 << 20;

/// What one clustering did, for the report and the benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Distinct hash values after merging equal ones.
    pub distinct: usize,
    /// Banded tables used (combinations of `m - k` blocks out of `m`).
    pub tables: usize,
    /// Candidate pairs whose distance was computed.
    pub compared: u64,
    /// Pairs found within the threshold (with repeats across tables).
    pub matched: u64,
    /// Buckets larger than [`BUCKET_WINDOW`] + 1, where the lookup was not exhaustive.
    pub capped: u64,
}

struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let up = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = up; // path halving
            x = up;
        }
        x
    }

    /// The smaller root wins, so a root is always its cluster's smallest member.
    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi as usize] = lo;
        }
    }
}

/// Masks of `m` contiguous blocks covering the 64 bits (sizes differ by at most one).
fn block_masks(m: u32) -> Vec<u64> {
    let mut masks = Vec::with_capacity(m as usize);
    let mut start = 0u32;
    for i in 0..m {
        let width = 64 / m + u32::from(i < 64 % m);
        let mask = if width == 64 {
            u64::MAX
        } else {
            ((1u64 << width) - 1) << start
        };
        masks.push(mask);
        start += width;
    }
    masks
}

/// Every combination of `r` items out of `0..m`, as index lists.
fn combinations(m: u32, r: u32) -> Vec<Vec<u32>> {
    fn go(start: u32, m: u32, r: u32, cur: &mut Vec<u32>, out: &mut Vec<Vec<u32>>) {
        if cur.len() as u32 == r {
            out.push(cur.clone());
            return;
        }
        for i in start..m {
            cur.push(i);
            go(i + 1, m, r, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    go(0, m, r, &mut Vec::new(), &mut out);
    out
}

fn binomial(n: u32, r: u32) -> f64 {
    (0..r).fold(1.0, |acc, i| acc * f64::from(n - i) / f64::from(i + 1))
}

/// The number of blocks for `n` distinct hashes and threshold `k`: the cheapest estimate of
/// tables * (sorting one table + expected pairs per table), assuming evenly spread hashes. A
/// sort costs about 3 units per element per level, a pair compare about 1 (measured: at 1M
/// hashes and k = 8, 45 tables of 13-bit keys take ~5 s where 495 tables of 21-bit keys, which
/// compare 30x fewer pairs, took 60 s).
pub fn choose_blocks(n: usize, k: u32) -> u32 {
    let n = n.max(2) as f64;
    (k + 1..=(k + 8).min(64))
        .map(|m| {
            let tables = binomial(m, m - k);
            let key_bits = 64.0 * f64::from(m - k) / f64::from(m);
            let pairs = n * n / 2.0 / key_bits.exp2();
            (m, tables * (3.0 * n * n.log2() + pairs))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(k + 1, |(m, _)| m)
}

/// Cluster labels for `hashes` with Hamming distance <= `threshold` (transitively): label[i]
/// is the smallest index in i's cluster. `threshold` is clamped to [`MAX_THRESHOLD`].
pub fn cluster_labels(hashes: &[u64], threshold: u32) -> (Vec<u32>, Stats) {
    let k = threshold.min(MAX_THRESHOLD);
    let n = hashes.len();
    let mut stats = Stats::default();
    if n == 0 {
        return (Vec::new(), stats);
    }
    // Distinct values, each with the smallest index holding it.
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_unstable_by_key(|&i| (hashes[i as usize], i));
    let mut values: Vec<u64> = Vec::new();
    let mut first: Vec<u32> = Vec::new(); // distinct slot -> smallest input index
    let mut slot = vec![0u32; n]; // input index -> distinct slot
    for &i in &order {
        let h = hashes[i as usize];
        if values.last() != Some(&h) {
            values.push(h);
            first.push(i);
        }
        slot[i as usize] = (values.len() - 1) as u32;
    }
    stats.distinct = values.len();
    let mut uf = UnionFind::new(values.len());
    if k > 0 && values.len() > 1 {
        let m = choose_blocks(values.len(), k);
        let masks = block_masks(m);
        let mut keyed: Vec<(u64, u32)> = Vec::with_capacity(values.len());
        for combo in combinations(m, m - k) {
            stats.tables += 1;
            let mask = combo.iter().fold(0u64, |acc, &b| acc | masks[b as usize]);
            keyed.clear();
            keyed.extend(
                values
                    .iter()
                    .enumerate()
                    .map(|(s, &v)| (v & mask, s as u32)),
            );
            keyed.sort_unstable();
            for run in keyed.chunk_by(|a, b| a.0 == b.0) {
                let window = bucket_window(run.len());
                if run.len() > window + 1 {
                    stats.capped += 1;
                }
                for (x, &(_, a)) in run.iter().enumerate() {
                    for &(_, b) in run[x + 1..].iter().take(window) {
                        stats.compared += 1;
                        if (values[a as usize] ^ values[b as usize]).count_ones() <= k {
                            stats.matched += 1;
                            uf.union(a, b);
                        }
                    }
                }
            }
        }
    }
    // A cluster's label: the smallest input index among all its members.
    let mut best = vec![u32::MAX; values.len()];
    for (s, &i) in first.iter().enumerate() {
        let root = uf.find(s as u32) as usize;
        best[root] = best[root].min(i);
    }
    let labels = (0..n).map(|i| best[uf.find(slot[i]) as usize]).collect();
    (labels, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(hashes: &[u64], k: u32) -> Vec<u32> {
        let mut uf = UnionFind::new(hashes.len());
        for i in 0..hashes.len() {
            for j in i + 1..hashes.len() {
                if (hashes[i] ^ hashes[j]).count_ones() <= k {
                    uf.union(i as u32, j as u32);
                }
            }
        }
        (0..hashes.len() as u32).map(|i| uf.find(i)).collect()
    }

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed
    }

    #[test]
    fn banded_lookup_equals_all_pairs() {
        let mut seed = 7u64;
        for k in [0, 1, 3, 5, 8] {
            let mut hashes = Vec::new();
            for _ in 0..300 {
                let base = lcg(&mut seed);
                hashes.push(base);
                // Planted neighbours at distances 1..=k+2 (some beyond the threshold).
                for d in 1..=(k + 2) {
                    let mut h = base;
                    for _ in 0..d {
                        h ^= 1 << (lcg(&mut seed) % 64);
                    }
                    hashes.push(h);
                }
                if lcg(&mut seed) % 5 == 0 {
                    hashes.push(base); // exact repeats
                }
            }
            let (labels, stats) = cluster_labels(&hashes, k);
            assert_eq!(labels, brute(&hashes, k), "k={k}");
            assert!(stats.distinct <= hashes.len());
        }
    }

    #[test]
    fn labels_are_the_smallest_index() {
        let (labels, _) = cluster_labels(&[0b1111, 0xdead_beef_0000_0000, 0b0111, 0b1111], 1);
        assert_eq!(labels, vec![0, 1, 0, 0]);
        assert_eq!(cluster_labels(&[], 3).0, Vec::<u32>::new());
    }

    #[test]
    fn blocks_cover_all_bits() {
        for m in 1..=64 {
            let masks = block_masks(m);
            assert_eq!(masks.iter().fold(0, |a, b| a | b), u64::MAX);
            assert_eq!(masks.iter().map(|x| x.count_ones()).sum::<u32>(), 64);
        }
        assert!(choose_blocks(1_000_000, 3) > 3);
    }
}
