//! The local file system as DataFusion's object store, with one addition: before `COPY`
//! writes a file, staging files that an earlier, killed write of the same target left behind
//! (`x.parquet#1`, `#2`, ...: object_store stages uploads beside their target and renames
//! them into place) are removed, so a killed export never leaves litter that lives forever.
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

    fn remove_stale_staging(&self, location: &Path) {
        let Ok(target) = self.inner.path_to_filesystem(location) else {
            return;
        };
        remove_stale_staging(&target, SystemTime::now());
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
        self.remove_stale_staging(location);
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
        self.remove_stale_staging(location);
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
