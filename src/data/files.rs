//! File plumbing shared by the readers and writers: finding inputs, opening Parquet with
//! named columns, and writing outputs atomically (a temporary file renamed into place, so a
//! failed or interrupted write never leaves a half-written file behind).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::error::{DataError, Result};

/// `root` itself when it is a file; otherwise every file below it (recursively) whose name
/// ends in one of `.ext`, sorted. No match is an "empty source" error.
pub fn files_with_extension(root: &Path, ext: &[&str]) -> Result<Vec<PathBuf>> {
    let meta = fs::metadata(root).map_err(|e| DataError::io(root, e))?;
    if meta.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))? {
            let path = entry.map_err(|e| DataError::io(&dir, e))?.path();
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .is_some_and(|e| ext.iter().any(|x| e == *x))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    if found.is_empty() {
        let patterns: Vec<String> = ext.iter().map(|x| format!("*.{x}")).collect();
        return Err(DataError::Empty {
            place: format!("{} (no {} files)", root.display(), patterns.join(" or ")),
        });
    }
    Ok(found)
}

thread_local! {
    /// Set while this thread runs a [`guarded`] call: its panics are caught, not printed.
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs a call into the Parquet reader, turning a panic into an error naming the file. The
/// reader asserts on some corrupt encodings (bit widths, run lengths) instead of returning an
/// error; such a file is bad input, not a crash. The panic's message is not printed.
fn guarded<T>(place: &str, call: impl FnOnce() -> Result<T>) -> Result<T> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(|g| g.get()) {
                previous(info)
            }
        }));
    });
    let was = GUARDED.with(|g| g.replace(true));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call));
    GUARDED.with(|g| g.set(was));
    outcome.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the reader failed".into());
        Err(DataError::ParquetCorrupt {
            place: place.to_string(),
            why,
        })
    })
}

fn parquet_builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let place = path.display().to_string();
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    guarded(&place, || {
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| DataError::Parquet {
            place: place.clone(),
            source,
        })
    })
}

/// Opens a Parquet file reading only the named columns, in the order asked for.
/// A missing column is an error that names the file and lists the columns present.
pub fn open_parquet(path: &Path, columns: &[&str]) -> Result<ProjectedBatches> {
    let place = path.display().to_string();
    let builder = parquet_builder(path)?;
    let schema = builder.schema().clone();
    let mut indices = Vec::with_capacity(columns.len());
    for name in columns {
        match schema.index_of(name) {
            Ok(i) => indices.push(i),
            Err(_) => {
                let present: Vec<&str> =
                    schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(DataError::invalid(
                    &place,
                    format!(
                        "missing column `{name}` (columns present: {})",
                        present.join(", ")
                    ),
                ));
            }
        }
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices.iter().copied());
    let reader = guarded(&place, || {
        builder
            .with_projection(mask)
            .with_batch_size(64 * 1024)
            .build()
            .map_err(|source| DataError::Parquet {
                place: place.clone(),
                source,
            })
    })?;
    // The reader yields projected columns in file order; remember how to reorder them.
    let mut sorted = indices.clone();
    sorted.sort_unstable();
    let order = indices
        .iter()
        .map(|i| sorted.iter().position(|s| s == i).expect("index present"))
        .collect();
    Ok(ProjectedBatches {
        reader,
        order,
        place,
        failed: false,
    })
}

/// Column names of a Parquet file, without reading its data.
pub fn parquet_columns(path: &Path) -> Result<Vec<String>> {
    let builder = parquet_builder(path)?;
    Ok(builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect())
}

/// Batches of a projected Parquet read, columns in the order they were asked for.
pub struct ProjectedBatches {
    reader: ParquetRecordBatchReader,
    order: Vec<usize>,
    place: String,
    failed: bool,
}

impl Iterator for ProjectedBatches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let (reader, place) = (&mut self.reader, &self.place);
        let next = guarded(place, || {
            Ok(reader.next().map(|r| {
                r.map_err(|source| DataError::ParquetDecode {
                    place: place.clone(),
                    source,
                })
            }))
        });
        let batch = match next {
            Ok(Some(Ok(b))) => b,
            Ok(None) => return None,
            Ok(Some(Err(e))) | Err(e) => {
                // A reader that failed (or panicked) mid-file is not asked again.
                self.failed = true;
                return Some(Err(e));
            }
        };
        Some(
            batch
                .project(&self.order)
                .map_err(|source| DataError::ParquetDecode {
                    place: self.place.clone(),
                    source,
                }),
        )
    }
}

/// Calls `each(line_number, text)` for every line of a JSON-lines file (1-based numbers; a
/// UTF-8 byte-order mark on the first line and a `\r` before `\n` are dropped). A line that
/// is not UTF-8 is an error naming the file, the line and the byte.
pub fn for_each_line(path: &Path, mut each: impl FnMut(u64, &str) -> Result<()>) -> Result<()> {
    use std::io::BufRead;
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = std::io::BufReader::new(file);
    let mut bytes = Vec::new();
    let mut line_no = 0u64;
    loop {
        bytes.clear();
        let n = reader
            .read_until(b'\n', &mut bytes)
            .map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        let mut line: &[u8] = &bytes;
        if line_no == 1 {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        line = line.strip_suffix(b"\n").unwrap_or(line);
        line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = std::str::from_utf8(line).map_err(|e| {
            DataError::invalid(
                format!("{}, line {line_no}", path.display()),
                format!("not valid UTF-8 (byte {} of the line)", e.valid_up_to() + 1),
            )
        })?;
        each(line_no, text)?;
    }
}

/// Writes a file through a temporary sibling and renames it into place; on any error the
/// temporary is removed and an existing file at `path` is left untouched.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    let name = path
        .file_name()
        .ok_or_else(|| DataError::invalid(path.display().to_string(), "not a file path"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        let mut out = BufWriter::new(file);
        write(&mut out)?;
        out.flush().map_err(|e| DataError::io(&tmp, e))?;
        out.get_ref()
            .sync_all()
            .map_err(|e| DataError::io(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes record batches as one zstd-compressed Parquet file, atomically.
pub fn write_parquet(path: &Path, batches: &[RecordBatch]) -> Result<()> {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| DataError::Empty {
            place: format!("{} (nothing to write)", path.display()),
        })?;
    let place = path.display().to_string();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .build();
    write_atomically(path, |out| {
        let perr = |source: parquet::errors::ParquetError| DataError::ParquetWrite {
            place: place.clone(),
            source,
        };
        let mut writer =
            ArrowWriter::try_new(out, Arc::clone(&schema), Some(props)).map_err(perr)?;
        for batch in batches {
            writer.write(batch).map_err(perr)?;
        }
        writer.close().map_err(perr)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_drop_a_bom_and_name_bad_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        fs::write(&path, b"\xEF\xBB\xBF{\"a\": 1}\r\n{}\n\xFF\xFE\n").unwrap();
        let mut seen = Vec::new();
        let e = for_each_line(&path, |n, text| {
            seen.push((n, text.to_string()));
            Ok(())
        })
        .unwrap_err()
        .to_string();
        assert_eq!(seen, vec![(1, "{\"a\": 1}".into()), (2, "{}".into())]);
        assert!(e.contains("x.jsonl, line 3") && e.contains("UTF-8"), "{e}");
    }

    #[test]
    fn failed_write_leaves_existing_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        fs::write(&path, "old").unwrap();
        let err = write_atomically(&path, |w| {
            w.write_all(b"half").unwrap();
            Err(DataError::invalid("test", "boom"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temporary removed"
        );
    }
}
