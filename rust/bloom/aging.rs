//! Aging Bloom filter: N generations over a time window, so old keys are forgotten.
//!
//! Keys go into the newest generation; a key is "seen" while any live generation has it. Each
//! generation spans `window / N` seconds: once `now` reaches the newest start + span, the oldest
//! generation is cleared and becomes the newest (several times after a long pause; after N the
//! whole filter is empty). Generation starts stay on the grid `created + k * span`, and time
//! comes from the caller (`now`, unix seconds), so rotation is deterministic and testable.
//!
//! A key is remembered for at least `window - span` and at most `window` seconds (by
//! `contains` exactly, which computes liveness from the starts and needs no rotation). Clock
//! steps backwards never rotate. A key seen again is added to the newest generation again, so
//! its memory restarts from that sighting.
//!
//! Sizing: every generation holds `capacity_per_window` keys at `fpr / N`, so the combined
//! false-positive rate stays <= `fpr` (union bound) even when a whole window's keys arrive in
//! one burst, such as a large export import.

use std::fmt;

use super::{check_params, probe, probe_mixed, BloomFilter, CHUNK};
use crate::error::{CoreError, Result};

/// More generations than this buys nothing but memory and probe time.
pub(crate) const MAX_GENERATIONS: u32 = 64;

pub struct AgingBloom {
    pub(super) capacity: u64,
    pub(super) fpr: f64,
    pub(super) window_secs: u64,
    /// Start of the newest generation (unix seconds).
    pub(super) newest_start: i64,
    /// Oldest first; the last one receives new keys.
    pub(super) gens: Vec<BloomFilter>,
}

impl fmt::Debug for AgingBloom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgingBloom")
            .field("capacity", &self.capacity)
            .field("fpr", &self.fpr)
            .field("generations", &self.gens.len())
            .field("window_secs", &self.window_secs)
            .field("newest_start", &self.newest_start)
            .finish()
    }
}

pub(crate) fn check_aging_params(
    capacity: u64,
    fpr: f64,
    generations: u32,
    window_secs: u64,
) -> Result<()> {
    check_params(capacity, fpr)?;
    if !(1..=MAX_GENERATIONS).contains(&generations) {
        return Err(CoreError::InvalidInput(format!(
            "generations must be in 1..={MAX_GENERATIONS}, got {generations}"
        )));
    }
    if window_secs < u64::from(generations) || window_secs > i64::MAX as u64 {
        return Err(CoreError::InvalidInput(format!(
            "window_secs must be at least one second per generation ({generations}) \
             and fit in i64, got {window_secs}"
        )));
    }
    Ok(())
}

impl AgingBloom {
    pub fn new(
        capacity_per_window: u64,
        fpr: f64,
        generations: u32,
        window_secs: u64,
        now: i64,
    ) -> Result<Self> {
        check_aging_params(capacity_per_window, fpr, generations, window_secs)?;
        let first = BloomFilter::new(capacity_per_window, fpr / f64::from(generations))?;
        let total = first.num_blocks().saturating_mul(u64::from(generations));
        if total > super::MAX_BLOCKS {
            return Err(CoreError::InvalidInput(format!(
                "an aging Bloom filter of {generations} x {} bytes exceeds {} bytes",
                first.num_blocks() * super::BLOCK_BYTES,
                super::MAX_BYTES
            )));
        }
        let mut gens = Vec::with_capacity(generations as usize);
        for _ in 1..generations {
            gens.push(BloomFilter::with_blocks(
                first.capacity(),
                first.fpr(),
                first.num_blocks(),
            )?);
        }
        gens.push(first);
        Ok(Self::from_parts(
            capacity_per_window,
            fpr,
            window_secs,
            now,
            gens,
        ))
    }

    pub(super) fn from_parts(
        capacity: u64,
        fpr: f64,
        window_secs: u64,
        newest_start: i64,
        gens: Vec<BloomFilter>,
    ) -> Self {
        AgingBloom {
            capacity,
            fpr,
            window_secs,
            newest_start,
            gens,
        }
    }

    /// Seconds covered by one generation.
    fn span(&self) -> i128 {
        i128::from(self.window_secs) / self.gens.len().max(1) as i128
    }

    /// Rotates generations that `now` has left behind.
    fn advance(&mut self, now: i64) {
        let span = self.span().max(1);
        let behind = i128::from(now) - i128::from(self.newest_start);
        if behind < span {
            return;
        }
        let steps = behind / span;
        let n = self.gens.len();
        for _ in 0..steps.min(n as i128) {
            self.gens[0].clear();
            self.gens.rotate_left(1);
        }
        // newest_start + steps * span <= now, so it fits in i64.
        self.newest_start =
            i64::try_from(i128::from(self.newest_start) + steps * span).unwrap_or(now);
    }

    /// Generation index (oldest first) that is still live at `now` without rotating.
    fn live(&self, index: usize, now: i64) -> bool {
        let n = self.gens.len() as i128;
        let age = n - 1 - index as i128;
        i128::from(now) < i128::from(self.newest_start) + (n - age) * self.span()
    }

    /// Batch check-and-add at time `now`: `out[i]` = key i was in no live generation (it is
    /// added to the newest either way). Returns the count of new keys.
    pub fn check_and_add(&mut self, keys: &[u64], now: i64, out: &mut Vec<bool>) -> usize {
        self.advance(now);
        out.clear();
        out.reserve(keys.len());
        let Some((newest, older)) = self.gens.split_last() else {
            return 0;
        };
        let n = newest.num_blocks();
        let mut hashes = [0u64; CHUNK];
        let mut count = 0u64;
        for chunk in keys.chunks(CHUNK) {
            for &h in newest.prefetch(chunk, &mut hashes) {
                let p = probe_mixed(h, n);
                // After `advance` every generation is live.
                let new = newest.add_probe(&p) && !older.iter().any(|g| g.has_probe(&p));
                count += u64::from(new);
                out.push(new);
            }
        }
        newest.set_inserted(newest.inserted() + count);
        count as usize
    }

    /// Whether a live generation at `now` may hold `key`.
    pub fn contains(&self, key: u64, now: i64) -> bool {
        let Some(first) = self.gens.first() else {
            return false;
        };
        let p = probe(key, first.num_blocks());
        self.gens
            .iter()
            .enumerate()
            .any(|(i, g)| self.live(i, now) && g.has_probe(&p))
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn fpr(&self) -> f64 {
        self.fpr
    }

    pub fn generations(&self) -> u32 {
        self.gens.len() as u32
    }

    pub fn window_secs(&self) -> u64 {
        self.window_secs
    }

    /// Start (unix seconds) of the generation receiving new keys.
    pub fn newest_start(&self) -> i64 {
        self.newest_start
    }

    /// Bits over all generations.
    pub fn num_bits(&self) -> u64 {
        self.gens.iter().map(BloomFilter::num_bits).sum()
    }

    /// Approximate count of keys added as new across generations not yet rotated out.
    pub fn inserted(&self) -> u64 {
        self.gens.iter().map(BloomFilter::inserted).sum()
    }

    pub(super) fn num_blocks(&self) -> u64 {
        self.gens.first().map_or(0, BloomFilter::num_blocks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const T0: i64 = 1_700_000_000;

    fn week() -> AgingBloom {
        AgingBloom::new(10_000, 0.001, 4, 7 * DAY as u64, T0).unwrap()
    }

    fn add(a: &mut AgingBloom, keys: &[u64], now: i64) -> Vec<bool> {
        let mut out = Vec::new();
        a.check_and_add(keys, now, &mut out);
        out
    }

    #[test]
    fn seen_within_window_forgotten_after() {
        let mut a = week();
        let span = 7 * DAY / 4;
        assert_eq!(add(&mut a, &[1, 2, 3], T0), vec![true; 3]);
        // Still seen until the window has passed, through three rotations.
        for t in [T0 + 1, T0 + span, T0 + 2 * span + 5, T0 + 7 * DAY - 1] {
            assert!(a.contains(1, t), "forgotten early at +{}", t - T0);
            assert_eq!(add(&mut a, &[], t), Vec::<bool>::new());
            assert!(a.contains(2, t));
        }
        // Rotation at T0 + 7 days drops the generation that held 1, 2, 3.
        assert!(!a.contains(1, T0 + 7 * DAY));
        assert_eq!(add(&mut a, &[3, 4], T0 + 7 * DAY), vec![true, true]);
        assert_eq!(add(&mut a, &[3, 4], T0 + 7 * DAY + 1), vec![false, false]);
    }

    #[test]
    fn contains_needs_no_rotation_and_resighting_refreshes() {
        let mut a = week();
        let span = 7 * DAY / 4;
        add(&mut a, &[10], T0);
        add(&mut a, &[11], T0 + span); // rotates once; 11 is in the second generation
        assert!(a.contains(10, T0 + 7 * DAY - 1) && !a.contains(10, T0 + 7 * DAY));
        assert!(a.contains(11, T0 + span + 7 * DAY - 1));
        assert!(!a.contains(11, T0 + span + 7 * DAY));
        // 10 seen again late in its life: remembered for another window from then.
        assert_eq!(add(&mut a, &[10], T0 + 6 * DAY), vec![false]);
        assert!(a.contains(10, T0 + 6 * DAY + 6 * DAY));
    }

    #[test]
    fn rotation_is_deterministic_and_survives_long_pauses() {
        let run = || {
            let mut a = week();
            let mut outs = Vec::new();
            for step in 0..40i64 {
                let now = T0 + step * 9 * 3600 + (step % 3) * 17;
                let keys: Vec<u64> = (0..50).map(|i| ((step * 31 + i) % 400) as u64).collect();
                outs.push(add(&mut a, &keys, now));
            }
            (outs, a.to_bytes())
        };
        assert_eq!(run(), run());
        // A pause of many windows empties everything and keeps starts on the grid.
        let mut a = week();
        add(&mut a, &[1, 2], T0);
        let later = T0 + 100 * 7 * DAY + 5;
        assert_eq!(add(&mut a, &[1, 2], later), vec![true, true]);
        assert_eq!((a.newest_start() - T0) % (7 * DAY / 4), 0);
        assert!(a.newest_start() <= later && later - a.newest_start() < 7 * DAY / 4);
        assert_eq!(a.inserted(), 2);
        // Clock going backwards: no rotation, nothing lost.
        assert_eq!(add(&mut a, &[3], later - 30 * DAY), vec![true]);
        assert!(a.contains(1, later) && a.contains(3, later));
    }

    #[test]
    fn measured_fpr_with_a_burst_of_a_full_window() {
        let mut a = AgingBloom::new(20_000, 0.01, 4, 7 * DAY as u64, T0).unwrap();
        let keys: Vec<u64> = (0..20_000u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        add(&mut a, &keys, T0);
        let probes = 200_000u64;
        let fp = (0..probes)
            .filter(|i| a.contains((i + 1) << 40 | 0xabc, T0 + 10))
            .count();
        let rate = fp as f64 / probes as f64;
        println!("aging measured fpr {rate} (target 0.01)");
        assert!(rate <= 0.01, "{rate}");
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(AgingBloom::new(0, 0.01, 4, 100, 0).is_err());
        assert!(AgingBloom::new(10, 0.6, 4, 100, 0).is_err());
        assert!(AgingBloom::new(10, 0.01, 0, 100, 0).is_err());
        assert!(AgingBloom::new(10, 0.01, 65, 1000, 0).is_err());
        assert!(AgingBloom::new(10, 0.01, 4, 3, 0).is_err());
        assert!(AgingBloom::new(1 << 40, 1e-9, 64, 1 << 20, 0).is_err());
        assert!(AgingBloom::new(10, 0.01, 1, 1, i64::MAX).is_ok());
    }

    #[test]
    fn extreme_clocks_do_not_panic() {
        let mut a = AgingBloom::new(100, 0.01, 4, 4, i64::MIN).unwrap();
        add(&mut a, &[1], i64::MIN);
        add(&mut a, &[2], i64::MAX);
        assert!(a.contains(2, i64::MAX) && !a.contains(1, i64::MAX));
        add(&mut a, &[3], i64::MIN);
        assert!(a.contains(3, i64::MIN));
    }
}
