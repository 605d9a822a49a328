//! The run store: a folder holding one sub-folder per fine-tune or evaluation, named by a hash
//! of everything that decides its result (kind, model files, data rows, options, crossdiff
//! version). A finished run is reused; an unfinished one resumes (its checkpoint lives in its
//! folder); a lock file keeps two processes from working on the same run at once, and the
//! record saying a run is done is written last, by rename.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{ExperimentError, Result};
use crate::checksum::{file_check, first_mismatch, folder_checks, FileCheck};

/// Environment variable naming the store folder.
pub const STORE_ENV: &str = "CROSSDIFF_RUNS";

/// A 128-bit content hash (two FNV-1a lanes), printed as 32 hex digits.
#[derive(Debug, Clone)]
pub struct ContentHash {
    lanes: [u64; 2],
}

impl Default for ContentHash {
    fn default() -> Self {
        Self::new()
    }
}

impl ContentHash {
    pub fn new() -> Self {
        Self {
            lanes: [0xcbf2_9ce4_8422_2325, 0x8422_2325_cbf2_9ce4],
        }
    }

    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            self.lanes[0] = (self.lanes[0] ^ b as u64).wrapping_mul(0x0100_0000_01b3);
            self.lanes[1] = (self.lanes[1] ^ b as u64)
                .wrapping_mul(0x0000_0100_0000_01b3)
                .rotate_left(5);
        }
        self
    }

    /// A field: its length first, so ("ab", "c") and ("a", "bc") differ.
    pub fn field(&mut self, text: &str) -> &mut Self {
        self.bytes(&(text.len() as u64).to_le_bytes());
        self.bytes(text.as_bytes())
    }

    pub fn hex(&self) -> String {
        format!("{:016x}{:016x}", self.lanes[0], self.lanes[1])
    }
}

/// Hashes a model folder: its config and tokenizer files whole, and each weight file's name,
/// size and content (files over 64 MiB by their first and last 16 MiB, which holds the
/// safetensors header and enough of the weights to tell fine-tunes apart without reading
/// gigabytes).
pub fn hash_model(dir: &Path, hash: &mut ContentHash) -> Result<()> {
    crate::lm::files::model_folder(dir)?;
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ExperimentError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    if !names.iter().any(|p| p.ends_with("config.json")) {
        return Err(ExperimentError::Input(format!(
            "{}: not a model folder (no config.json)",
            dir.display()
        )));
    }
    const WHOLE: u64 = 64 << 20;
    const PART: usize = 16 << 20;
    for path in names {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let size = path
            .metadata()
            .map_err(|e| ExperimentError::io(&path, e))?
            .len();
        hash.field(&name).bytes(&size.to_le_bytes());
        let mut file = std::fs::File::open(&path).map_err(|e| ExperimentError::io(&path, e))?;
        if size <= WHOLE {
            let mut buf = Vec::with_capacity(size as usize);
            file.read_to_end(&mut buf)
                .map_err(|e| ExperimentError::io(&path, e))?;
            hash.bytes(&buf);
        } else {
            use std::io::{Seek, SeekFrom};
            let mut buf = vec![0u8; PART];
            file.read_exact(&mut buf)
                .map_err(|e| ExperimentError::io(&path, e))?;
            hash.bytes(&buf);
            file.seek(SeekFrom::End(-(PART as i64)))
                .map_err(|e| ExperimentError::io(&path, e))?;
            file.read_exact(&mut buf)
                .map_err(|e| ExperimentError::io(&path, e))?;
            hash.bytes(&buf);
        }
    }
    Ok(())
}

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    FineTune,
    Evaluate,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// Stopped (cancelled, or its process died): resumable.
    Interrupted,
    Failed,
    Done,
}

impl RunKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::FineTune => "fine_tune",
            Self::Evaluate => "evaluate",
        }
    }
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
            Self::Done => "done",
        }
    }
}

impl std::fmt::Display for RunKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the store records of a run (`run.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub kind: RunKind,
    pub model: String,
    pub options: serde_json::Value,
    /// A `running` record whose lock no live process holds is listed as `interrupted`.
    pub status: RunStatus,
    /// Seconds since 1970 when the run was first started.
    pub created: u64,
    pub updated: u64,
    /// Seconds of work, all sessions.
    pub seconds: f64,
    pub rows: usize,
    /// Kind-specific figures (steps, final_loss, accuracy, ...).
    pub summary: serde_json::Value,
    pub crossdiff_version: String,
    /// What a done run's output files held when written (paths relative to the run's
    /// folder), checked before the run is reused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, FileCheck>,
}

impl RunRecord {
    /// A done run whose files are all as they were written; otherwise why not (`None` when
    /// reusable). Records from before checksums are trusted if their files exist.
    pub fn unusable(&self, dir: &Path) -> Option<String> {
        if self.status != RunStatus::Done {
            return Some(format!("its status is {}", self.status));
        }
        first_mismatch(dir, &self.files)
    }

    /// Whether the run can be reused: done, its `required` output present, and every recorded
    /// file as it was written. A done run that fails its checks says so on stderr (`function`
    /// names the caller); it is then done again.
    pub fn reusable(&self, dir: &Path, required: &Path, function: &str) -> bool {
        if self.status != RunStatus::Done || !required.exists() {
            return false;
        }
        match self.unusable(dir) {
            None => true,
            Some(why) => {
                eprintln!(
                    "{function}: run {} is not reused and is run again: {why}",
                    self.id
                );
                false
            }
        }
    }

    /// Records the checks of `dir`'s files under `prefix/` (a folder) or as `prefix` (a file).
    pub fn add_files(&mut self, run_dir: &Path, relative: &str) -> Result<()> {
        let path = run_dir.join(relative);
        if path.is_dir() {
            for (name, check) in folder_checks(&path).map_err(|e| ExperimentError::io(&path, e))? {
                self.files.insert(format!("{relative}/{name}"), check);
            }
        } else {
            let check = file_check(&path).map_err(|e| ExperimentError::io(&path, e))?;
            self.files.insert(relative.to_string(), check);
        }
        Ok(())
    }
}

/// A run folder whose `run.json` cannot be read: listed apart, removable by `runs clean`.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokenRun {
    pub id: String,
    pub message: String,
}

/// Every run of a store, and the folders whose record is broken.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub runs: Vec<RunRecord>,
    pub broken: Vec<BrokenRun>,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The store folder.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStore {
    pub root: PathBuf,
}

/// Holds a run's lock; removing the lock file when dropped.
pub struct RunLock {
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() || !Path::new("/proc/self").exists()
}

impl RunStore {
    /// `explicit`, else `$CROSSDIFF_RUNS`, else the user's cache folder.
    pub fn locate(explicit: Option<&str>) -> Self {
        let root = explicit
            .map(PathBuf::from)
            .or_else(|| std::env::var_os(STORE_ENV).map(PathBuf::from))
            .unwrap_or_else(|| {
                let cache = std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .unwrap_or_else(std::env::temp_dir);
                cache.join("crossdiff").join("runs")
            });
        Self { root }
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// The record of run `id` if it exists.
    pub fn record(&self, id: &str) -> Result<Option<RunRecord>> {
        let path = self.run_dir(id).join("run.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| ExperimentError::io(&path, format!("corrupt run record: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ExperimentError::io(&path, e)),
        }
    }

    /// Writes a run's record atomically.
    pub fn write_record(&self, record: &RunRecord) -> Result<()> {
        let dir = self.run_dir(&record.id);
        std::fs::create_dir_all(&dir).map_err(|e| ExperimentError::io(&dir, e))?;
        let tmp = dir.join(format!(".run.json.{}", std::process::id()));
        let text =
            serde_json::to_string_pretty(record).map_err(|e| ExperimentError::io(&tmp, e))?;
        std::fs::write(&tmp, text).map_err(|e| ExperimentError::io(&tmp, e))?;
        std::fs::rename(&tmp, dir.join("run.json")).map_err(|e| ExperimentError::io(&dir, e))
    }

    /// Takes run `id`'s lock, or says which live process holds it. A lock left by a process
    /// that is gone is taken over.
    pub fn lock(&self, id: &str) -> Result<RunLock> {
        std::fs::create_dir_all(&self.root).map_err(|e| ExperimentError::io(&self.root, e))?;
        let path = self.root.join(format!("{id}.lock"));
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder: Option<u32> = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    match holder {
                        Some(pid) if pid != std::process::id() && process_alive(pid) => {
                            return Err(ExperimentError::Busy(format!(
                                "run {id} is being worked on by process {pid} ({}); wait for it \
                                 or stop it",
                                path.display()
                            )))
                        }
                        Some(pid) if pid == std::process::id() => {
                            return Err(ExperimentError::Busy(format!(
                                "run {id} is already running in this process"
                            )))
                        }
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(ExperimentError::io(&path, e)),
            }
        }
        Err(ExperimentError::Busy(format!(
            "cannot take the lock {}",
            path.display()
        )))
    }

    /// Whether a live process (this one included) holds run `id`'s lock.
    fn lock_held(&self, id: &str) -> bool {
        std::fs::read_to_string(self.root.join(format!("{id}.lock")))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .is_some_and(process_alive)
    }

    /// Every run's record, newest first, and the folders whose record cannot be read. A run
    /// recorded as running whose lock no live process holds (killed, out of disk) is listed
    /// as `interrupted`.
    pub fn list(&self) -> Result<Listing> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Listing::default()),
            Err(e) => return Err(ExperimentError::io(&self.root, e)),
        };
        let mut listing = Listing::default();
        for entry in entries.flatten() {
            if !entry.path().is_dir() {
                continue;
            }
            let id = entry.file_name().to_string_lossy().into_owned();
            if id.starts_with('.') {
                continue;
            }
            match self.record(&id) {
                Ok(Some(mut r)) => {
                    if r.status == RunStatus::Running && !self.lock_held(&id) {
                        r.status = RunStatus::Interrupted;
                    }
                    listing.runs.push(r)
                }
                // A folder without a record: a run that died before its first write.
                Ok(None) => listing.broken.push(BrokenRun {
                    message: format!("{}: no run.json", entry.path().display()),
                    id,
                }),
                Err(e) => listing.broken.push(BrokenRun {
                    id,
                    message: e.to_string(),
                }),
            }
        }
        listing
            .runs
            .sort_by(|a, b| b.updated.cmp(&a.updated).then(a.id.cmp(&b.id)));
        listing.broken.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(listing)
    }

    /// Removes runs last updated before `cutoff` (seconds since 1970), or every run with
    /// `None`, and folders with a broken record (by their modification time); skips runs
    /// whose lock is held. Returns the removed ids.
    pub fn remove_older_than(&self, cutoff: Option<u64>) -> Result<Vec<String>> {
        let listing = self.list()?;
        let modified = |id: &str| {
            std::fs::metadata(self.run_dir(id))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs())
        };
        let candidates = listing
            .runs
            .iter()
            .map(|r| (r.id.clone(), r.updated))
            .chain(
                listing
                    .broken
                    .iter()
                    .map(|b| (b.id.clone(), modified(&b.id))),
            );
        let mut removed = Vec::new();
        for (id, updated) in candidates {
            if cutoff.is_some_and(|c| updated >= c) {
                continue;
            }
            let Ok(_lock) = self.lock(&id) else {
                continue;
            };
            let dir = self.run_dir(&id);
            std::fs::remove_dir_all(&dir).map_err(|e| ExperimentError::io(&dir, e))?;
            removed.push(id);
        }
        Ok(removed)
    }

    /// Marks a run that stopped on an error as failed, saying why; the error is the caller's
    /// to return (a failure to write the record is secondary and dropped).
    pub fn record_failure(&self, record: &mut RunRecord, error: &ExperimentError) {
        record.status = match error {
            ExperimentError::Cancelled(_) => RunStatus::Interrupted,
            _ => RunStatus::Failed,
        };
        record.updated = now();
        if let serde_json::Value::Object(map) = &mut record.summary {
            map.insert("error".into(), serde_json::Value::String(error.to_string()));
        } else {
            record.summary = serde_json::json!({"error": error.to_string()});
        }
        let _ = self.write_record(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_separate_fields_and_files() {
        let a = ContentHash::new().field("ab").field("c").hex();
        let b = ContentHash::new().field("a").field("bc").hex();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("config.json"), "{}").unwrap();
        std::fs::write(tmp.path().join("model.safetensors"), "weights").unwrap();
        let mut h1 = ContentHash::new();
        hash_model(tmp.path(), &mut h1).unwrap();
        std::fs::write(tmp.path().join("model.safetensors"), "weightz").unwrap();
        let mut h2 = ContentHash::new();
        hash_model(tmp.path(), &mut h2).unwrap();
        assert_ne!(h1.hex(), h2.hex());
        assert!(hash_model(&tmp.path().join("nope"), &mut h2).is_err());
    }

    #[test]
    fn records_locks_and_removal() {
        let tmp = tempfile::tempdir().unwrap();
        let store = RunStore::locate(Some(tmp.path().to_str().unwrap()));
        assert!(store.record("x").unwrap().is_none());
        let record = RunRecord {
            id: "x".into(),
            kind: RunKind::Evaluate,
            model: "m".into(),
            options: serde_json::json!({}),
            status: RunStatus::Done,
            created: 10,
            updated: 10,
            seconds: 1.0,
            rows: 3,
            summary: serde_json::json!({"accuracy": 0.5}),
            crossdiff_version: "0".into(),
            files: BTreeMap::new(),
        };
        store.write_record(&record).unwrap();
        assert_eq!(store.record("x").unwrap().unwrap(), record);
        let lock = store.lock("x").unwrap();
        assert!(store.lock("x").is_err(), "a held lock is refused");
        assert!(
            store.remove_older_than(None).unwrap().is_empty(),
            "locked runs stay"
        );
        drop(lock);
        // A lock left by a dead process is taken over.
        std::fs::write(tmp.path().join("x.lock"), "999999999").unwrap();
        drop(store.lock("x").unwrap());
        assert!(store.remove_older_than(Some(5)).unwrap().is_empty());
        assert_eq!(
            store.remove_older_than(Some(11)).unwrap(),
            vec!["x".to_string()]
        );
        assert!(store.list().unwrap().runs.is_empty());
    }

    #[test]
    fn dead_runs_and_broken_records_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let store = RunStore::locate(Some(tmp.path().to_str().unwrap()));
        let mut record = RunRecord {
            id: "r".into(),
            kind: RunKind::FineTune,
            model: "m".into(),
            options: serde_json::json!({}),
            status: RunStatus::Running,
            created: 1,
            updated: 1,
            seconds: 0.0,
            rows: 1,
            summary: serde_json::json!({}),
            crossdiff_version: "0".into(),
            files: BTreeMap::new(),
        };
        store.write_record(&record).unwrap();
        // Killed: the record says running, no process holds the lock.
        std::fs::write(tmp.path().join("r.lock"), "999999999").unwrap();
        assert_eq!(store.list().unwrap().runs[0].status, RunStatus::Interrupted);
        // Held by a live process (this one): still running.
        std::fs::write(tmp.path().join("r.lock"), std::process::id().to_string()).unwrap();
        assert_eq!(store.list().unwrap().runs[0].status, RunStatus::Running);
        std::fs::remove_file(tmp.path().join("r.lock")).unwrap();
        // A truncated record does not hide the others.
        std::fs::create_dir_all(tmp.path().join("bad")).unwrap();
        std::fs::write(tmp.path().join("bad/run.json"), "{\"id\": \"ba").unwrap();
        let listing = store.list().unwrap();
        assert_eq!(listing.runs.len(), 1);
        assert_eq!(listing.broken.len(), 1);
        assert!(
            listing.broken[0].message.contains("corrupt run record"),
            "{:?}",
            listing.broken
        );
        // A failure is recorded with its cause.
        store.record_failure(&mut record, &ExperimentError::Input("loss is NaN".into()));
        assert_eq!(
            store.record("r").unwrap().unwrap().status,
            RunStatus::Failed
        );
        // Files checked on reuse.
        record.status = RunStatus::Done;
        std::fs::write(tmp.path().join("r/items.parquet"), "rows").unwrap();
        record
            .add_files(&store.run_dir("r"), "items.parquet")
            .unwrap();
        assert_eq!(record.unusable(&store.run_dir("r")), None);
        std::fs::write(tmp.path().join("r/items.parquet"), "row").unwrap();
        assert!(record.unusable(&store.run_dir("r")).is_some());
        // clean --all removes the broken folder too.
        let mut removed = store.remove_older_than(None).unwrap();
        removed.sort();
        assert_eq!(removed, vec!["bad".to_string(), "r".to_string()]);
    }
}
