//! The checked file format of both filter kinds (layout in the parent module's doc).
//!
//! Encoding and decoding stream through 64 KiB pieces while hashing, so saving or loading a
//! multi-GiB filter never holds a second copy of it in memory. Decoding checks, in order: magic,
//! version, kind, parameters, exact total length, then the checksum over everything read.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use xxhash_rust::xxh3::Xxh3Default;

use super::aging::{self, AgingBloom};
use super::{check_params, Block, BloomFilter, BLOCK_BYTES, MAX_BLOCKS};
use crate::error::{CoreError, Result};

pub(crate) const MAGIC: &[u8; 8] = b"TGBLOOM\0";
pub(crate) const VERSION: u16 = 1;
pub(crate) const KIND_PLAIN: u8 = 1;
pub(crate) const KIND_AGING: u8 = 2;
/// magic + version + kind.
const PREFIX_LEN: u64 = 11;
/// Plain: capacity, fpr, num_blocks, inserted.
const PLAIN_PARAMS: u64 = 32;
/// Aging: capacity, fpr, num_blocks, generations, window_secs, newest_start.
const AGING_PARAMS: u64 = 44;
const PIECE: usize = 64 * 1024;

fn bad(msg: String) -> CoreError {
    CoreError::BloomFormat(msg)
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        KIND_PLAIN => "plain filter",
        KIND_AGING => "aging filter",
        _ => "unknown kind",
    }
}

/// Writes and hashes; `finish` appends the checksum.
struct Encoder<W: Write> {
    out: W,
    hasher: Xxh3Default,
}

impl<W: Write> Encoder<W> {
    fn new(out: W, kind: u8) -> io::Result<Self> {
        let mut e = Encoder {
            out,
            hasher: Xxh3Default::new(),
        };
        e.put(MAGIC)?;
        e.put(&VERSION.to_le_bytes())?;
        e.put(&[kind])?;
        Ok(e)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.out.write_all(bytes)
    }

    fn blocks(&mut self, blocks: &[Block]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(PIECE);
        for b in blocks {
            for w in &b.0 {
                buf.extend_from_slice(&w.load(Relaxed).to_le_bytes());
            }
            if buf.len() >= PIECE {
                self.put(&buf)?;
                buf.clear();
            }
        }
        self.put(&buf)
    }

    fn finish(mut self) -> io::Result<W> {
        let sum = self.hasher.digest();
        self.out.write_all(&sum.to_le_bytes())?;
        Ok(self.out)
    }
}

/// Reads and hashes from a source whose total length is known up front.
struct Decoder<'a, R: Read> {
    src: R,
    hasher: Xxh3Default,
    total: u64,
    path: Option<&'a Path>,
}

impl<R: Read> Decoder<'_, R> {
    fn io_err(&self, e: io::Error) -> CoreError {
        match self.path {
            Some(p) => CoreError::io(p, e),
            None => bad(format!("read failed: {e}")),
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.src.read_exact(&mut buf).map_err(|e| self.io_err(e))?;
        self.hasher.update(&buf);
        Ok(buf)
    }

    fn u64(&mut self) -> Result<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }

    /// Magic, version and kind, with a clear message for foreign or short data.
    fn prefix(&mut self, kind: u8) -> Result<()> {
        let avail = self.total.min(PREFIX_LEN) as usize;
        let mut head = [0u8; PREFIX_LEN as usize];
        self.src
            .read_exact(&mut head[..avail])
            .map_err(|e| self.io_err(e))?;
        self.hasher.update(&head[..avail]);
        let m = avail.min(MAGIC.len());
        if head[..m] != MAGIC[..m] || avail == 0 {
            return Err(bad(format!(
                "not a tgingest Bloom filter: expected magic \"{}\", found \"{}\"",
                MAGIC.escape_ascii(),
                head[..m].escape_ascii()
            )));
        }
        if avail < PREFIX_LEN as usize {
            return Err(bad(format!(
                "truncated: expected at least {PREFIX_LEN} header bytes, found {avail}"
            )));
        }
        let version = u16::from_le_bytes([head[8], head[9]]);
        if version != VERSION {
            return Err(bad(format!(
                "unsupported format version: expected {VERSION}, found {version}"
            )));
        }
        if head[10] != kind {
            return Err(bad(format!(
                "wrong filter kind: expected {kind} ({}), found {} ({})",
                kind_name(kind),
                head[10],
                kind_name(head[10])
            )));
        }
        Ok(())
    }

    fn need_at_least(&self, n: u64) -> Result<()> {
        if self.total < n {
            return Err(bad(format!(
                "truncated: expected at least {n} header bytes, found {}",
                self.total
            )));
        }
        Ok(())
    }

    fn expect_len(&self, expected: Option<u64>, what: &str) -> Result<()> {
        match expected {
            Some(e) if e == self.total => Ok(()),
            Some(e) => Err(bad(format!(
                "wrong length: expected {e} bytes for {what}, found {}",
                self.total
            ))),
            None => Err(bad(format!("impossible size for {what}"))),
        }
    }

    fn blocks_into(&mut self, blocks: &[Block]) -> Result<()> {
        let mut buf = vec![0u8; PIECE];
        for group in blocks.chunks(PIECE / BLOCK_BYTES as usize) {
            let bytes = &mut buf[..group.len() * BLOCK_BYTES as usize];
            self.src.read_exact(bytes).map_err(|e| self.io_err(e))?;
            self.hasher.update(bytes);
            for (b, raw) in group.iter().zip(bytes.chunks_exact(BLOCK_BYTES as usize)) {
                for (w, le) in b.0.iter().zip(raw.chunks_exact(8)) {
                    let mut word = [0u8; 8];
                    word.copy_from_slice(le);
                    w.store(u64::from_le_bytes(word), Relaxed);
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        let computed = self.hasher.digest();
        let mut raw = [0u8; 8];
        self.src.read_exact(&mut raw).map_err(|e| self.io_err(e))?;
        let stored = u64::from_le_bytes(raw);
        if stored != computed {
            return Err(bad(format!(
                "checksum mismatch (corrupt data): expected {stored:016x}, found {computed:016x}"
            )));
        }
        Ok(())
    }
}

fn param_err(e: CoreError) -> CoreError {
    match e {
        CoreError::InvalidInput(m) => bad(format!("bad parameters: {m}")),
        other => other,
    }
}

fn check_blocks(num_blocks: u64, generations: u64) -> Result<()> {
    let total = num_blocks.checked_mul(generations);
    if num_blocks == 0 || !matches!(total, Some(t) if t <= MAX_BLOCKS) {
        return Err(bad(format!(
            "bad parameters: expected 1 to {MAX_BLOCKS} blocks in all, found {num_blocks} x {generations}"
        )));
    }
    Ok(())
}

fn body_len(header: u64, num_blocks: u64, generations: u64) -> Option<u64> {
    num_blocks
        .checked_mul(generations)?
        .checked_mul(BLOCK_BYTES)?
        .checked_add(header)?
        .checked_add(8)
}

fn encode_plain<W: Write>(f: &BloomFilter, out: W) -> io::Result<W> {
    let mut e = Encoder::new(out, KIND_PLAIN)?;
    e.put(&f.capacity.to_le_bytes())?;
    e.put(&f.fpr.to_bits().to_le_bytes())?;
    e.put(&f.num_blocks().to_le_bytes())?;
    e.put(&f.inserted().to_le_bytes())?;
    e.blocks(f.blocks())?;
    e.finish()
}

fn decode_plain<R: Read>(mut d: Decoder<'_, R>) -> Result<BloomFilter> {
    d.prefix(KIND_PLAIN)?;
    d.need_at_least(PREFIX_LEN + PLAIN_PARAMS)?;
    let capacity = d.u64()?;
    let fpr = f64::from_bits(d.u64()?);
    let num_blocks = d.u64()?;
    let inserted = d.u64()?;
    check_params(capacity, fpr).map_err(param_err)?;
    check_blocks(num_blocks, 1)?;
    let expected = body_len(PREFIX_LEN + PLAIN_PARAMS, num_blocks, 1);
    d.expect_len(expected, &format!("{num_blocks} blocks"))?;
    let f = BloomFilter::with_blocks(capacity, fpr, num_blocks)?;
    f.set_inserted(inserted);
    d.blocks_into(f.blocks())?;
    d.finish()?;
    Ok(f)
}

fn encode_aging<W: Write>(a: &AgingBloom, out: W) -> io::Result<W> {
    let mut e = Encoder::new(out, KIND_AGING)?;
    e.put(&a.capacity.to_le_bytes())?;
    e.put(&a.fpr.to_bits().to_le_bytes())?;
    e.put(&a.num_blocks().to_le_bytes())?;
    e.put(&(a.gens.len() as u32).to_le_bytes())?;
    e.put(&a.window_secs.to_le_bytes())?;
    e.put(&a.newest_start.to_le_bytes())?;
    for g in &a.gens {
        e.put(&g.inserted().to_le_bytes())?;
    }
    for g in &a.gens {
        e.blocks(g.blocks())?;
    }
    e.finish()
}

fn decode_aging<R: Read>(mut d: Decoder<'_, R>) -> Result<AgingBloom> {
    d.prefix(KIND_AGING)?;
    d.need_at_least(PREFIX_LEN + AGING_PARAMS)?;
    let capacity = d.u64()?;
    let fpr = f64::from_bits(d.u64()?);
    let num_blocks = d.u64()?;
    let generations = u32::from_le_bytes(d.take::<4>()?);
    let window_secs = d.u64()?;
    let newest_start = i64::from_le_bytes(d.take::<8>()?);
    aging::check_aging_params(capacity, fpr, generations, window_secs).map_err(param_err)?;
    check_blocks(num_blocks, u64::from(generations))?;
    let header = PREFIX_LEN + AGING_PARAMS + 8 * u64::from(generations);
    let expected = body_len(header, num_blocks, u64::from(generations));
    d.expect_len(expected, &format!("{generations} x {num_blocks} blocks"))?;
    let gen_fpr = fpr / f64::from(generations);
    let mut gens = Vec::with_capacity(generations as usize);
    for _ in 0..generations {
        let g = BloomFilter::with_blocks(capacity, gen_fpr, num_blocks)?;
        g.set_inserted(d.u64()?);
        gens.push(g);
    }
    for g in &gens {
        d.blocks_into(g.blocks())?;
    }
    d.finish()?;
    Ok(AgingBloom::from_parts(
        capacity,
        fpr,
        window_secs,
        newest_start,
        gens,
    ))
}

fn slice_decoder(data: &[u8]) -> Decoder<'static, &[u8]> {
    Decoder {
        src: data,
        hasher: Xxh3Default::new(),
        total: data.len() as u64,
        path: None,
    }
}

fn decode_file<T>(
    path: &Path,
    decode: impl FnOnce(Decoder<'_, BufReader<File>>) -> Result<T>,
) -> Result<T> {
    let file = File::open(path).map_err(|e| CoreError::io(path, e))?;
    let total = file.metadata().map_err(|e| CoreError::io(path, e))?.len();
    let r = decode(Decoder {
        src: BufReader::with_capacity(1 << 20, file),
        hasher: Xxh3Default::new(),
        total,
        path: Some(path),
    });
    // Name the file in format errors too.
    r.map_err(|e| match e {
        CoreError::BloomFormat(m) => bad(format!("{}: {m}", path.display())),
        other => other,
    })
}

static SAVE_SEQ: AtomicU64 = AtomicU64::new(0);

/// Temp file in the same directory, fsync, rename over `path`, fsync the directory.
fn save_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&File>) -> io::Result<()>,
) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| CoreError::InvalidInput(format!("{}: not a file path", path.display())))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let seq = SAVE_SEQ.fetch_add(1, Relaxed);
    let tmp = dir.join(format!(
        ".{}.{}-{seq}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        // The filter is derived from the user's message keys: private, whatever the umask.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, &file);
        write(&mut w)?;
        w.flush()?;
        drop(w);
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(CoreError::io(tmp, e));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(CoreError::io(path, e));
    }
    #[cfg(unix)]
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CoreError::io(&dir, e))?;
    Ok(())
}

impl BloomFilter {
    /// Header + block words + checksum (format in the module doc).
    pub fn to_bytes(&self) -> Vec<u8> {
        let len = (PREFIX_LEN + PLAIN_PARAMS + self.num_blocks() * BLOCK_BYTES + 8) as usize;
        // Writing into a Vec cannot fail.
        encode_plain(self, Vec::with_capacity(len)).unwrap_or_default()
    }

    /// `CoreError::BloomFormat` on bad magic, version, kind, parameters, length or checksum.
    pub fn from_bytes(data: &[u8]) -> Result<Self> {
        decode_plain(slice_decoder(data))
    }

    /// Atomic replace: temp file in the same directory + fsync + rename (+ fsync directory).
    /// Keys inserted by other threads during the save may be missing from the file.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_atomic(path, |w| encode_plain(self, w).map(drop))
    }

    /// `CoreError::Io` or `CoreError::BloomFormat` (naming the file).
    pub fn load(path: &Path) -> Result<Self> {
        decode_file(path, decode_plain)
    }
}

impl AgingBloom {
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_aging(self, Vec::new()).unwrap_or_default()
    }

    pub fn from_bytes(data: &[u8]) -> Result<Self> {
        decode_aging(slice_decoder(data))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        save_atomic(path, |w| encode_aging(self, w).map(drop))
    }

    pub fn load(path: &Path) -> Result<Self> {
        decode_file(path, decode_aging)
    }
}
