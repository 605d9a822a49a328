//! The allocator settings tensor work wants. Every candle op allocates its output; with glibc's
//! defaults a freed buffer of a few megabytes goes back to the kernel (unmapped or trimmed off
//! the heap) and the next op's buffer of the same size is faulted in and zeroed page by page
//! again. Measured on `crossdiff bench lm` (2 threads): page faults and their locks were a
//! fifth of training time. Keeping freed memory in the process (at the cost of a resident set
//! that stays at its peak) removes them.

use std::sync::Once;

/// Tunes glibc's malloc for tensor work, once per process: allocations up to 32 MiB (glibc's
/// largest mmap threshold) come from the heap, and freed heap memory is kept (up to 1 GiB
/// above the top) instead of being returned. Does nothing on other platforms.
pub fn keep_freed_memory() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        }
    });
}
