use super::*;
use proptest::prelude::*;
use std::path::PathBuf;

/// Deterministic pseudo-random keys (splitmix64 stream) for a given seed.
fn keys(seed: u64, n: usize) -> Vec<u64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix(s)
        })
        .collect()
}

fn measured_fpr(capacity: u64, fpr: f64, inserted: &[u64], probes: &[u64]) -> f64 {
    let f = BloomFilter::new(capacity, fpr).unwrap();
    let mut out = Vec::new();
    f.check_and_add(inserted, &mut out);
    f.contains_many(probes, &mut out);
    let rate = out.iter().filter(|&&b| b).count() as f64 / probes.len() as f64;
    println!(
        "capacity {capacity} fpr {fpr}: measured {rate:.6} ({:.2} bits/key)",
        f.num_bits() as f64 / capacity as f64
    );
    rate
}

#[test]
fn measured_fpr_at_capacity() {
    for &(cap, fpr) in &[(100_000u64, 0.001), (1_000_000, 0.001), (50_000, 0.01)] {
        let inserted = keys(cap, cap as usize);
        let probes = keys(u64::MAX - cap, 1_000_000);
        let rate = measured_fpr(cap, fpr, &inserted, &probes);
        assert!(rate <= fpr, "measured {rate} > {fpr}");
        // Not grossly oversized either.
        assert!(
            rate >= fpr / 10.0,
            "measured {rate} suspiciously low for {fpr}"
        );
    }
}

#[test]
fn sequential_integer_keys_spread_too() {
    let inserted: Vec<u64> = (0..100_000).collect();
    let probes: Vec<u64> = (1_000_000..2_000_000).collect();
    assert!(measured_fpr(100_000, 0.001, &inserted, &probes) <= 0.001);
}

#[test]
fn sizing_model_is_monotone_and_bounded() {
    let a = predicted_fpr(1000, 10);
    let b = predicted_fpr(1000, 100);
    let c = predicted_fpr(1000, 1000);
    assert!(a > b && b > c && c > 0.0, "{a} {b} {c}");
    assert_eq!(predicted_fpr(1 << 40, 1), 1.0);
    let blocks = blocks_for(1_000_000, 0.001).unwrap();
    assert!(predicted_fpr(1_000_000, blocks) <= 0.001 * HEADROOM);
    assert!(predicted_fpr(1_000_000, blocks - 1) > 0.001 * HEADROOM);
}

#[test]
fn new_rejects_bad_parameters() {
    for (cap, fpr) in [
        (0u64, 0.01),
        (10, 0.0),
        (10, 0.5),
        (10, -0.1),
        (10, f64::NAN),
    ] {
        let err = BloomFilter::new(cap, fpr).unwrap_err();
        assert!(matches!(err, CoreError::InvalidInput(_)), "{err}");
    }
    let err = BloomFilter::new(u64::MAX / 2, 1e-6).unwrap_err();
    assert!(err.to_string().contains("17179869184 bytes"), "{err}");
    // Tiny filters still work.
    let f = BloomFilter::new(1, 0.4).unwrap();
    assert!(f.insert(7) && !f.insert(7) && f.contains(7));
}

#[test]
fn batch_semantics() {
    let f = BloomFilter::new(1000, 0.001).unwrap();
    let mut out = vec![true; 99]; // stale content is replaced
    assert_eq!(f.check_and_add(&[5, 6, 5, 7, 6, 5], &mut out), 3);
    assert_eq!(out, [true, true, false, true, false, false]);
    assert_eq!(f.check_and_add(&[7, 8], &mut out), 1);
    assert_eq!(out, [false, true]);
    assert_eq!(f.check_and_add(&[], &mut out), 0);
    assert!(out.is_empty());
    assert_eq!(f.inserted(), 4);
    assert!(!f.insert(8) && f.insert(9));
    assert_eq!(f.inserted(), 5);
    f.contains_many(&[5, 6, 7, 8, 9], &mut out);
    assert_eq!(out, [true; 5]);
}

proptest! {
    #[test]
    fn no_false_negatives(ks in proptest::collection::vec(any::<u64>(), 0..3000), cap in 1u64..5000) {
        let f = BloomFilter::new(cap, 0.01).unwrap();
        let (batch, single) = ks.split_at(ks.len() / 2);
        let mut out = Vec::new();
        f.check_and_add(batch, &mut out);
        for &k in single {
            f.insert(k);
        }
        for &k in &ks {
            prop_assert!(f.contains(k));
        }
        f.contains_many(&ks, &mut out);
        prop_assert!(out.iter().all(|&b| b));
        f.check_and_add(&ks, &mut out);
        prop_assert!(out.iter().all(|&b| !b));
    }
}

#[test]
fn merge_is_union() {
    let (a_keys, b_keys) = (keys(1, 3000), keys(2, 3000));
    let (a, b, both) = (
        BloomFilter::new(10_000, 0.001).unwrap(),
        BloomFilter::new(10_000, 0.001).unwrap(),
        BloomFilter::new(10_000, 0.001).unwrap(),
    );
    let mut out = Vec::new();
    a.check_and_add(&a_keys, &mut out);
    b.check_and_add(&b_keys, &mut out);
    both.check_and_add(&a_keys, &mut out);
    both.check_and_add(&b_keys, &mut out);
    a.merge(&b).unwrap();
    let words = |f: &BloomFilter| f.to_bytes()[43..].to_vec();
    let (wa, wboth) = (words(&a), words(&both));
    assert_eq!(wa[..wa.len() - 8], wboth[..wboth.len() - 8]);
    assert_eq!(a.inserted(), 6000);
    a.merge(&a).unwrap(); // self-merge is a no-op on bits
    assert_eq!(words(&a)[..wa.len() - 8], wa[..wa.len() - 8]);
    for other in [
        BloomFilter::new(10_001, 0.001),
        BloomFilter::new(10_000, 0.002),
    ] {
        let err = a.merge(&other.unwrap()).unwrap_err();
        assert!(matches!(err, CoreError::InvalidInput(_)), "{err}");
    }
}

#[test]
fn threads_share_one_filter() {
    let f = BloomFilter::new(400_000, 0.001).unwrap();
    let sets: Vec<Vec<u64>> = (0..4).map(|t| keys(100 + t, 100_000)).collect();
    std::thread::scope(|s| {
        for set in &sets {
            let f = &f;
            s.spawn(move || {
                let mut out = Vec::new();
                for (i, batch) in set.chunks(1000).enumerate() {
                    if i % 2 == 0 {
                        f.check_and_add(batch, &mut out);
                    } else {
                        batch.iter().for_each(|&k| {
                            f.insert(k);
                        });
                    }
                }
            });
        }
    });
    let mut out = Vec::new();
    for set in &sets {
        f.contains_many(set, &mut out);
        assert!(
            out.iter().all(|&b| b),
            "false negative after concurrent inserts"
        );
    }
    // Only false positives at insert time make a key "not new": a few hundred at most.
    let n = f.inserted();
    assert!((399_000..=400_000).contains(&n), "inserted {n}");
}

#[test]
fn bytes_round_trip_exactly() {
    let f = BloomFilter::new(5000, 0.01).unwrap();
    let mut out = Vec::new();
    f.check_and_add(&keys(9, 4000), &mut out);
    let bytes = f.to_bytes();
    assert_eq!(&bytes[..11], b"TGBLOOM\0\x01\x00\x01");
    assert_eq!(bytes.len() as u64, 11 + 32 + f.num_bits() / 8 + 8);
    let g = BloomFilter::from_bytes(&bytes).unwrap();
    assert_eq!(g.to_bytes(), bytes);
    assert_eq!(
        (g.capacity(), g.fpr(), g.inserted()),
        (5000, 0.01, f.inserted())
    );
    g.contains_many(&keys(9, 4000), &mut out);
    assert!(out.iter().all(|&b| b));
}

fn format_err(r: Result<BloomFilter>) -> String {
    match r {
        Err(CoreError::BloomFormat(m)) => m,
        other => panic!("expected BloomFormat, got {other:?}"),
    }
}

#[test]
fn every_corruption_and_truncation_is_rejected() {
    let f = BloomFilter::new(50, 0.01).unwrap();
    f.check_and_add(&keys(3, 50), &mut Vec::new());
    let good = f.to_bytes();
    for i in 0..good.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            format_err(BloomFilter::from_bytes(&bad));
        }
    }
    for len in 0..good.len() {
        let m = format_err(BloomFilter::from_bytes(&good[..len]));
        assert!(m.contains("expected") && m.contains("found"), "{m}");
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(format_err(BloomFilter::from_bytes(&longer)).contains("wrong length"));
}

#[test]
fn foreign_and_wrong_version_messages() {
    let good = BloomFilter::new(50, 0.01).unwrap().to_bytes();
    let m = format_err(BloomFilter::from_bytes(
        b"PK\x03\x04 zip file, not ours at all",
    ));
    assert!(m.contains("expected magic") && m.contains("PK"), "{m}");
    // A future version with a valid checksum is refused by its version, not its checksum.
    let mut v2 = good[..good.len() - 8].to_vec();
    v2[8] = 2;
    let sum = xxhash_rust::xxh3::xxh3_64(&v2);
    v2.extend_from_slice(&sum.to_le_bytes());
    let m = format_err(BloomFilter::from_bytes(&v2));
    assert!(m.contains("version: expected 1, found 2"), "{m}");
    let aging = AgingBloom::new(50, 0.01, 2, 60, 0).unwrap().to_bytes();
    let m = format_err(BloomFilter::from_bytes(&aging));
    assert!(
        m.contains("expected 1 (plain filter), found 2 (aging filter)"),
        "{m}"
    );
    match AgingBloom::from_bytes(&good) {
        Err(CoreError::BloomFormat(m)) => assert!(m.contains("kind"), "{m}"),
        other => panic!("{other:?}"),
    }
    let mut flipped = good.clone();
    let last = flipped.len() - 20;
    flipped[last] ^= 4;
    assert!(format_err(BloomFilter::from_bytes(&flipped)).contains("checksum mismatch"));
}

#[test]
fn aging_bytes_round_trip_and_corruption() {
    let mut a = AgingBloom::new(300, 0.01, 3, 300, 1000).unwrap();
    let mut out = Vec::new();
    a.check_and_add(&keys(1, 100), 1000, &mut out);
    a.check_and_add(&keys(2, 100), 1150, &mut out);
    let bytes = a.to_bytes();
    assert_eq!(&bytes[..11], b"TGBLOOM\0\x01\x00\x02");
    assert_eq!(bytes.len() as u64, 11 + 44 + 8 * 3 + a.num_bits() / 8 + 8);
    let b = AgingBloom::from_bytes(&bytes).unwrap();
    assert_eq!(b.to_bytes(), bytes);
    assert_eq!(
        (b.generations(), b.window_secs(), b.newest_start()),
        (3, 300, 1100)
    );
    assert!(keys(1, 100).iter().all(|&k| b.contains(k, 1150)));
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        assert!(
            matches!(AgingBloom::from_bytes(&bad), Err(CoreError::BloomFormat(_))),
            "byte {i}"
        );
    }
    for len in (0..bytes.len()).step_by(7) {
        assert!(matches!(
            AgingBloom::from_bytes(&bytes[..len]),
            Err(CoreError::BloomFormat(_))
        ));
    }
}

fn scratch_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tg-bloom-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn save_and_load_files() {
    let dir = scratch_dir("save");
    let path = dir.join("dedupe.bloom");
    let f = BloomFilter::new(2000, 0.001).unwrap();
    f.check_and_add(&keys(5, 1500), &mut Vec::new());
    f.save(&path).unwrap();
    f.save(&path).unwrap(); // replaces atomically
    let g = BloomFilter::load(&path).unwrap();
    assert_eq!(g.to_bytes(), f.to_bytes());
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["dedupe.bloom"], "temp files left behind");

    let mut a = AgingBloom::new(100, 0.01, 4, 400, 0).unwrap();
    a.check_and_add(&[1, 2, 3], 150, &mut Vec::new());
    a.save(&dir.join("aging.bloom")).unwrap();
    let b = AgingBloom::load(&dir.join("aging.bloom")).unwrap();
    assert!(b.contains(2, 150) && b.to_bytes() == a.to_bytes());

    let missing = BloomFilter::load(&dir.join("missing.bloom")).unwrap_err();
    assert!(
        matches!(missing, CoreError::Io { .. }) && missing.to_string().contains("missing.bloom")
    );
    let mut bytes = f.to_bytes();
    bytes.truncate(bytes.len() - 1);
    std::fs::write(dir.join("short.bloom"), &bytes).unwrap();
    let m = format_err(BloomFilter::load(&dir.join("short.bloom")));
    assert!(
        m.contains("short.bloom") && m.contains("wrong length"),
        "{m}"
    );
    let err = f
        .save(&dir.join("no-such-dir").join("x.bloom"))
        .unwrap_err();
    assert!(matches!(err, CoreError::Io { .. }), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
