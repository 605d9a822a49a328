//! Limits on the sizes a user asks for, checked before anything is allocated: a request for
//! more memory than the machine has free, or for thousands of threads, is an error naming
//! the argument, never an abort or a machine brought to its knees.

/// Bytes of memory available to new allocations (`MemAvailable` of /proc/meminfo); `None`
/// where that cannot be read.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// An error naming `what` when `bytes` exceed the memory available (or 2^50 where that is
/// unknown).
pub fn check_allocation(what: &str, bytes: u128) -> Result<(), String> {
    let available = available_memory().unwrap_or(1 << 50) as u128;
    if bytes > available {
        return Err(format!(
            "{what} would need about {} of memory; {} is available",
            human_bytes(bytes),
            human_bytes(available)
        ));
    }
    Ok(())
}

/// The most worker threads a fit may ask for: eight per core, at least 64.
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (8 * cores).max(64)
}

/// `threads` if it is within [`max_threads`], else an error naming `option`.
pub fn check_threads(option: &str, threads: usize) -> Result<usize, String> {
    let max = max_threads();
    if threads == 0 || threads > max {
        return Err(format!(
            "{option} must be between 1 and {max} (8 per core on this machine), got {threads}"
        ));
    }
    Ok(threads)
}

pub fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_requests_are_refused_by_name() {
        let e = check_allocation("irt_simulate(n_models, n_items)", 1 << 80).unwrap_err();
        assert!(
            e.starts_with("irt_simulate(n_models, n_items) would need"),
            "{e}"
        );
        assert!(check_allocation("small", 1024).is_ok());
        assert!(check_threads("option `threads`", 100_000).is_err());
        assert!(check_threads("option `threads`", 0).is_err());
        assert_eq!(check_threads("option `threads`", 2), Ok(2));
        assert_eq!(human_bytes(8 << 30), "8.0 GiB");
    }
}
