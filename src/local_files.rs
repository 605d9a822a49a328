//! The local file system as DataFusion's object store, with one addition: before `COPY`
//! writes a file, staging files that an earlier, killed write of the same target left behind
//! (`x.parquet#1`, `#2`, ...: object_store stages uploads beside their target and renames
//! them into place) are removed, so a killed export never leaves litter that lives forever.
//! And a target in a folder that takes no new files (`/proc`, say) is an error at once:
//! object_store's staging loop would otherwise retry it forever.
//! Only staging files untouched for [`STALE_AFTER`] count as left behind: a younger one may
//! belong to a write still under way in another process.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::object_store::local::LocalFileSystem;
use datafusion::object_store::path::Path;
use datafusion::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};
use datafusion::prelude::SessionContext;
use futures::stream::BoxStream;

/// How long a staging file must have been left alone to be taken for a dead write's.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// [`LocalFileSystem`] that cleans up after killed writes.
#[derive(Debug)]
pub struct LocalFiles {
    inner: LocalFileSystem,
}

impl LocalFiles {
    pub fn new() -> Self {
        Self {
            inner: LocalFileSystem::new(),
        }
    }

    /// Registers it as the session's `file://` store.
    pub fn register(ctx: &SessionContext) {
        ctx.register_object_store(
            ObjectStoreUrl::local_filesystem().as_ref(),
            Arc::new(Self::new()),
        );
    }

    /// What every write does first: clean up after killed writes, and check that the target's
    /// folder takes new files.
    fn prepare_write(&self, location: &Path) -> Result<()> {
        let Ok(target) = self.inner.path_to_filesystem(location) else {
            return Ok(());
        };
        remove_stale_staging(&target, SystemTime::now());
        check_creatable(&target).map_err(|source| {
            let e = datafusion::object_store::Error::Generic {
                store: "LocalFiles",
                source: Box::new(source),
            };
            record_failure(location.as_ref(), &e);
            e
        })
    }
}

/// object_store stages a write as `target#N`, creating the folder when opening the file
/// reports "not found"; a folder that exists yet reports "not found" for every new file
/// (a pseudo file system such as /proc) sends it round that loop forever. Probing one
/// staging-style name first turns that into an error naming the folder.
fn check_creatable(target: &std::path::Path) -> std::io::Result<()> {
    let Some(folder) = target.parent().filter(|p| p.is_dir()) else {
        // Missing folders are created by the write itself, which reports its own errors.
        return Ok(());
    };
    let probe = {
        let mut name = target.as_os_str().to_owned();
        name.push(format!("#probe-{}", std::process::id()));
        std::path::PathBuf::from(name)
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(file) => {
            drop(file);
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(std::io::Error::new(
            e.kind(),
            format!("the folder {} takes no new files ({e})", folder.display()),
        )),
        // Anything else (permissions, a full disk) the write reports as it happens.
        Err(_) => Ok(()),
    }
}

impl Default for LocalFiles {
    fn default() -> Self {
        Self::new()
    }
}

/// Removes `target#N` files not modified since `now - STALE_AFTER`; returns how many.
pub fn remove_stale_staging(target: &std::path::Path, now: SystemTime) -> usize {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return 0;
    };
    let prefix = format!("{}#", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(suffix) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age >= STALE_AFTER));
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The last write that failed in this process: (file, cause). DataFusion's CSV and JSON
/// sinks replace a failed write's cause with an internal error that names neither; the shell
/// puts the cause back (see [`explain_write_failure`]).
static LAST_FAILURE: std::sync::Mutex<Option<(String, String)>> = std::sync::Mutex::new(None);

fn record_failure(location: &str, e: &datafusion::object_store::Error) {
    if let Ok(mut last) = LAST_FAILURE.lock() {
        *last = Some((format!("/{location}"), e.to_string()));
    }
}

/// For DataFusion's "Error encountered while finalizing writes" (which drops the cause), the
/// message of the write that failed: which file and why (a full disk, say).
pub fn explain_write_failure(message: &str) -> Option<String> {
    if !message.contains("Error encountered while finalizing writes") {
        return None;
    }
    let last = LAST_FAILURE.lock().ok()?.take()?;
    Some(format!("cannot write {}: {}", last.0, last.1))
}

/// An upload that records why it failed.
#[derive(Debug)]
struct RecordingUpload {
    inner: Box<dyn MultipartUpload>,
    location: String,
}

#[async_trait]
impl MultipartUpload for RecordingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let part = self.inner.put_part(data);
        let location = self.location.clone();
        Box::pin(async move {
            let result = part.await;
            if let Err(e) = &result {
                record_failure(&location, e);
            }
            result
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let result = self.inner.complete().await;
        if let Err(e) = &result {
            record_failure(&self.location, e);
        }
        result
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

impl fmt::Display for LocalFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalFiles({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for LocalFiles {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        // A small COPY is one put, staged the same way.
        self.prepare_write(location)?;
        let result = self.inner.put_opts(location, payload, opts).await;
        if let Err(e) = &result {
            record_failure(location.as_ref(), e);
        }
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.prepare_write(location)?;
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(RecordingUpload {
            inner: upload,
            location: location.to_string(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_that_takes_no_files_is_an_error_not_a_loop() {
        let e = check_creatable(std::path::Path::new("/proc/x.csv")).unwrap_err();
        assert!(
            e.to_string()
                .contains("the folder /proc takes no new files"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        check_creatable(&dir.path().join("x.csv")).unwrap();
        // The probe leaves nothing behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn only_old_staging_files_of_the_target_go() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("x.parquet");
        for name in [
            "x.parquet#1",
            "x.parquet#12",
            "x.parquet#tmp",
            "y.parquet#1",
            "x.parquet",
        ] {
            std::fs::write(dir.path().join(name), "partial").unwrap();
        }
        // Just written: a live write may own them.
        assert_eq!(remove_stale_staging(&target, SystemTime::now()), 0);
        let later = SystemTime::now() + STALE_AFTER + Duration::from_secs(1);
        assert_eq!(remove_stale_staging(&target, later), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec!["x.parquet", "x.parquet#tmp", "y.parquet#1"]);
    }
}
