//! Stable hashes: content digests, SimHash, Bloom keys and SHA-256.
//!
//! Everything here is persisted (in PostgreSQL, Bloom files, media paths) or compared across
//! processes, so every function is a fixed, seedless algorithm pinned by the golden vectors in
//! `tests/fixtures/hash.json`, which were computed independently with Python's `xxhash` and
//! `hashlib` packages. Nothing uses Python's per-process salted `hash()` or Rust's `RandomState`.
//!
//! - Content digest: XXH3-128 (seed 0) of the UTF-8 bytes, written big-endian (the canonical
//!   byte order that `xxhash.xxh3_128().digest()` also uses). 128 bits keep accidental collisions
//!   out of reach at any warehouse size; cryptographic strength is not needed for dedupe.
//! - SimHash: 64 bits, each token's XXH3-64 votes +1/-1 per bit position (weight 1 per
//!   occurrence); a bit is set when its vote total is strictly positive. No tokens gives 0.
//! - Bloom keys are 64-bit: [`version_key`] hashes the fixed 24-byte little-endian encoding of
//!   (chat_id, message_id, edit_date), [`digest_key`] folds a content digest.
//! - SHA-256 names media files; [`sha256_file`] streams so a large file never sits in memory.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use crate::error::{CoreError, Result};

/// Read size of [`sha256_file`].
const FILE_CHUNK: usize = 1 << 20;

/// Stable 128-bit content digest of a content key: XXH3-128 (seed 0) of the UTF-8 bytes,
/// big-endian. Pinned by golden vectors: same value across processes, machines and versions.
pub fn content_digest(key: &str) -> [u8; 16] {
    xxh3_128(key.as_bytes()).to_be_bytes()
}

/// 64-bit SimHash over tokens (each token's XXH3-64, weight 1); empty input gives 0.
pub fn simhash<'a, I: IntoIterator<Item = &'a str>>(tokens: I) -> u64 {
    // Bit-sliced votes: each byte of a token's hash adds SPREAD[byte] (its 8 bits spread into
    // 8 one-byte counters) to one packed u64, so a token costs 8 adds instead of 64. Packed
    // counters are flushed to wide ones before a byte could overflow (255 tokens).
    let mut wide = [0u32; 64];
    let mut packed = [0u64; 8];
    let (mut n, mut pending) = (0u32, 0u32);
    for token in tokens {
        let h = xxh3_64(token.as_bytes());
        for (i, lane) in packed.iter_mut().enumerate() {
            *lane += SPREAD[((h >> (8 * i)) & 0xff) as usize];
        }
        n += 1;
        pending += 1;
        if pending == 255 {
            flush(&mut packed, &mut wide);
            pending = 0;
        }
    }
    flush(&mut packed, &mut wide);
    // A bit is set when its +1/-1 vote total is positive: 2 * ones > tokens.
    wide.iter().enumerate().fold(0u64, |acc, (bit, &ones)| {
        acc | (u64::from(2 * u64::from(ones) > u64::from(n)) << bit)
    })
}

/// SPREAD[b] has byte j set to 1 exactly when bit j of b is set.
static SPREAD: [u64; 256] = spread_table();

const fn spread_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut j = 0;
        while j < 8 {
            if (b >> j) & 1 == 1 {
                table[b] |= 1u64 << (8 * j);
            }
            j += 1;
        }
        b += 1;
    }
    table
}

fn flush(packed: &mut [u64; 8], wide: &mut [u32; 64]) {
    for (i, lane) in packed.iter_mut().enumerate() {
        for j in 0..8 {
            wide[8 * i + j] += ((*lane >> (8 * j)) & 0xff) as u32;
        }
        *lane = 0;
    }
}

/// Number of differing bits between two SimHashes.
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// Bloom key of one message version (chat_id, message_id, edit_date or 0): XXH3-64 of the
/// 24 bytes little-endian. Never Python's salted `hash()`.
pub fn version_key(chat_id: i64, message_id: i64, edit_date: i64) -> u64 {
    let mut buf = [0u8; 24];
    buf[..8].copy_from_slice(&chat_id.to_le_bytes());
    buf[8..16].copy_from_slice(&message_id.to_le_bytes());
    buf[16..].copy_from_slice(&edit_date.to_le_bytes());
    xxh3_64(&buf)
}

/// Fold a 16-byte digest into a 64-bit Bloom key (first 8 bytes big-endian XOR last 8).
pub fn digest_key(d: &[u8; 16]) -> u64 {
    let mut hi = [0u8; 8];
    let mut lo = [0u8; 8];
    hi.copy_from_slice(&d[..8]);
    lo.copy_from_slice(&d[8..]);
    u64::from_be_bytes(hi) ^ u64::from_be_bytes(lo)
}

/// SHA-256 of a byte string.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// SHA-256 of a file, streamed in 1 MiB reads; errors are `CoreError::Io` naming the path.
pub fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let mut file = File::open(path).map_err(|e| CoreError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; FILE_CHUNK];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(CoreError::io(path, e)),
        }
    }
    Ok(hasher.finalize().into())
}

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    /// The plain +1/-1 vote loop the bit-sliced version must equal.
    fn simhash_reference(tokens: &[String]) -> u64 {
        let mut votes = [0i64; 64];
        for t in tokens {
            let h = xxh3_64(t.as_bytes());
            for (bit, v) in votes.iter_mut().enumerate() {
                *v += if (h >> bit) & 1 == 1 { 1 } else { -1 };
            }
        }
        (0..64).fold(0, |acc, bit| acc | (u64::from(votes[bit] > 0) << bit))
    }

    #[test]
    fn bit_sliced_simhash_equals_the_vote_loop_past_counter_flushes() {
        for n in [0usize, 1, 2, 254, 255, 256, 511, 1000] {
            let tokens: Vec<String> = (0..n).map(|i| format!("tok{}", i % 97)).collect();
            assert_eq!(
                simhash(tokens.iter().map(String::as_str)),
                simhash_reference(&tokens),
                "{n} tokens"
            );
        }
    }

    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Fixture {
        content: Vec<ContentCase>,
        version_key: Vec<VersionCase>,
        digest_key: Vec<DigestKeyCase>,
        sha256: Vec<ShaCase>,
    }
    #[derive(Deserialize)]
    struct ContentCase {
        input: String,
        content_digest: String,
        simhash_tokens: Vec<String>,
        simhash: String,
    }
    #[derive(Deserialize)]
    struct VersionCase {
        chat_id: i64,
        message_id: i64,
        edit_date: i64,
        version_key: String,
    }
    #[derive(Deserialize)]
    struct DigestKeyCase {
        content_digest: String,
        digest_key: String,
    }
    #[derive(Deserialize)]
    struct ShaCase {
        input_hex: String,
        sha256: String,
    }

    fn fixture() -> Fixture {
        serde_json::from_str(include_str!("../tests/fixtures/hash.json")).unwrap()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn golden_content_digest_and_simhash() {
        let f = fixture();
        assert!(f.content.len() >= 8);
        for c in &f.content {
            assert_eq!(
                hex(&content_digest(&c.input)),
                c.content_digest,
                "{:?}",
                c.input
            );
            let sh = simhash(c.simhash_tokens.iter().map(String::as_str));
            assert_eq!(format!("{sh:016x}"), c.simhash, "{:?}", c.simhash_tokens);
        }
    }

    #[test]
    fn golden_version_and_digest_keys() {
        let f = fixture();
        assert!(!f.version_key.is_empty() && !f.digest_key.is_empty());
        for v in &f.version_key {
            let k = version_key(v.chat_id, v.message_id, v.edit_date);
            assert_eq!(
                k.to_string(),
                v.version_key,
                "{}/{}",
                v.chat_id,
                v.message_id
            );
        }
        for d in &f.digest_key {
            let bytes: [u8; 16] = unhex(&d.content_digest).try_into().unwrap();
            assert_eq!(digest_key(&bytes).to_string(), d.digest_key);
        }
    }

    #[test]
    fn golden_sha256_bytes_and_file() {
        let dir = std::env::temp_dir().join(format!("tg-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, c) in fixture().sha256.iter().enumerate() {
            let data = unhex(&c.input_hex);
            assert_eq!(hex(&sha256(&data)), c.sha256);
            let p = dir.join(format!("f{i}"));
            std::fs::write(&p, &data).unwrap();
            assert_eq!(hex(&sha256_file(&p).unwrap()), c.sha256);
        }
        // Larger than one read chunk, not a multiple of it.
        let big: Vec<u8> = (0..(FILE_CHUNK * 2 + 12345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let p = dir.join("big");
        std::fs::write(&p, &big).unwrap();
        assert_eq!(sha256_file(&p).unwrap(), sha256(&big));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sha256_file_error_names_path() {
        let p = Path::new("/nonexistent-dir-tg/missing.bin");
        match sha256_file(p) {
            Err(e @ CoreError::Io { .. }) => assert!(e.to_string().contains("missing.bin")),
            other => panic!("expected Io error, got {other:?}"),
        }
    }

    #[test]
    fn simhash_edge_cases() {
        assert_eq!(simhash(std::iter::empty()), 0);
        // One token: the SimHash is the token's own hash.
        assert_eq!(simhash(["hello"]), xxh3_64(b"hello"));
        // Two tokens tie wherever their hashes differ, so only their common set bits stay set.
        let (a, b) = (xxh3_64(b"a"), xxh3_64(b"b"));
        assert_eq!(simhash(["a", "b"]), a & b);
        // Order does not matter; multiplicity does.
        assert_eq!(simhash(["x", "y", "z"]), simhash(["z", "x", "y"]));
        assert_eq!(simhash(["x", "x", "y"]), xxh3_64(b"x"));
    }

    #[test]
    fn hamming_and_hex_basics() {
        assert_eq!(hamming(0, 0), 0);
        assert_eq!(hamming(0, u64::MAX), 64);
        assert_eq!(hamming(0b1010, 0b0110), 2);
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    proptest! {
        #[test]
        fn near_duplicates_are_closer_than_strangers(words in proptest::collection::vec("[a-z]{3,8}", 40..80)) {
            let base: Vec<&str> = words.iter().map(String::as_str).collect();
            let mut edited = base.clone();
            edited[0] = "qqqqqqqqq";
            let stranger: Vec<String> = words.iter().map(|w| format!("{w}#")).collect();
            let d_edit = hamming(simhash(base.iter().copied()), simhash(edited.iter().copied()));
            let d_far = hamming(simhash(base.iter().copied()), simhash(stranger.iter().map(String::as_str)));
            prop_assert!(d_edit < d_far || d_edit <= 8, "edit {} stranger {}", d_edit, d_far);
        }

        #[test]
        fn version_key_distinguishes_fields(c in any::<i64>(), m in any::<i64>(), e in any::<i64>()) {
            let k = version_key(c, m, e);
            prop_assert_eq!(k, version_key(c, m, e));
            prop_assert_ne!(k, version_key(c, m, e.wrapping_add(1)));
            prop_assert_ne!(k, version_key(c.wrapping_add(1), m, e));
        }
    }
}
