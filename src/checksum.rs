//! File checksums that tell a file of a finished run or a checkpoint from one that was
//! truncated or overwritten since: size plus a 128-bit hash of every byte, read at disk speed
//! (eight bytes a step), so verifying a multi-gigabyte model costs seconds.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What a file held when it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheck {
    pub size: u64,
    /// 32 hex digits.
    pub checksum: String,
}

/// Two multiply-rotate lanes over little-endian words; the length goes in last, so a file and
/// its zero-padded extension differ.
fn mix(lanes: &mut [u64; 2], word: u64) {
    lanes[0] = (lanes[0] ^ word)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(31);
    lanes[1] = (lanes[1].wrapping_add(word) ^ lanes[0])
        .wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        .rotate_left(27);
}

/// The check of one file.
pub fn file_check(path: &Path) -> std::io::Result<FileCheck> {
    let mut file = std::fs::File::open(path)?;
    let mut lanes = START;
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        // Fill the buffer whole (short reads happen) so words never straddle two reads.
        let mut filled = 0;
        while filled < buf.len() {
            match file.read(&mut buf[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        size += filled as u64;
        mix_bytes(&mut lanes, &buf[..filled]);
        if filled < buf.len() {
            break;
        }
    }
    Ok(FileCheck {
        size,
        checksum: finish(lanes, size),
    })
}

const START: [u64; 2] = [0x243F_6A88_85A3_08D3, 0x1319_8A2E_0370_7344];

/// Mixes `bytes` in as little-endian words, the last one zero-padded (only the last chunk of
/// a file may have a partial word).
fn mix_bytes(lanes: &mut [u64; 2], bytes: &[u8]) {
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        mix(lanes, u64::from_le_bytes(w.try_into().expect("8 bytes")));
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let mut last = [0u8; 8];
        last[..tail.len()].copy_from_slice(tail);
        mix(lanes, u64::from_le_bytes(last));
    }
}

fn finish(mut lanes: [u64; 2], size: u64) -> String {
    mix(&mut lanes, size);
    format!("{:016x}{:016x}", lanes[0], lanes[1])
}

/// The same hash of bytes in memory (the content hash of a leaderboard row's text): equal to
/// [`file_check`]'s checksum of a file holding these bytes.
pub fn bytes_checksum(bytes: &[u8]) -> String {
    let mut lanes = START;
    mix_bytes(&mut lanes, bytes);
    finish(lanes, bytes.len() as u64)
}

/// Checks of every regular file directly in `dir` (hidden files skipped), by name.
pub fn folder_checks(dir: &Path) -> std::io::Result<BTreeMap<String, FileCheck>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.file_type()?.is_file() {
            continue;
        }
        out.insert(name, file_check(&entry.path())?);
    }
    Ok(out)
}

/// The first way `dir`'s files differ from `expected` (keys are paths relative to `dir`), or
/// `None` when every file is as it was written.
pub fn first_mismatch(dir: &Path, expected: &BTreeMap<String, FileCheck>) -> Option<String> {
    for (name, want) in expected {
        let path = dir.join(name);
        match file_check(&path) {
            Err(e) => return Some(format!("{}: {e}", path.display())),
            Ok(got) if got.size != want.size => {
                return Some(format!(
                    "{} has {} bytes; {} were written",
                    path.display(),
                    got.size,
                    want.size
                ))
            }
            Ok(got) if got.checksum != want.checksum => {
                return Some(format!(
                    "{} changed since it was written (checksum {} instead of {})",
                    path.display(),
                    got.checksum,
                    want.checksum
                ))
            }
            Ok(_) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_tell_changed_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.bin");
        let bytes: Vec<u8> = (0..3_000_005u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let checks = folder_checks(dir.path()).unwrap();
        assert_eq!(checks["w.bin"].size, bytes.len() as u64);
        assert_eq!(first_mismatch(dir.path(), &checks), None);
        // The in-memory hash is the file's, across several read buffers.
        assert_eq!(bytes_checksum(&bytes), checks["w.bin"].checksum);
        // One byte overwritten, same size.
        let mut changed = bytes.clone();
        changed[2_000_000] ^= 1;
        std::fs::write(&path, &changed).unwrap();
        assert!(first_mismatch(dir.path(), &checks)
            .unwrap()
            .contains("changed"));
        // Truncated.
        std::fs::write(&path, &bytes[..100]).unwrap();
        assert!(first_mismatch(dir.path(), &checks)
            .unwrap()
            .contains("100 bytes"));
        // Gone.
        std::fs::remove_file(&path).unwrap();
        assert!(first_mismatch(dir.path(), &checks).is_some());
        // A trailing zero byte changes the check.
        std::fs::write(&path, [1u8, 2, 3]).unwrap();
        let a = file_check(&path).unwrap();
        std::fs::write(&path, [1u8, 2, 3, 0]).unwrap();
        assert_ne!(a.checksum, file_check(&path).unwrap().checksum);
    }
}
