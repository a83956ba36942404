//! The process's memory from /proc: the resident set now and its high-water mark (VmHWM).

/// A field of /proc/self/status in KiB (`VmRSS`, `VmHWM`), 0 when unreadable.
fn status_kib(field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub fn peak_kib() -> u64 {
    status_kib("VmHWM")
}

pub fn current_kib() -> u64 {
    status_kib("VmRSS")
}

/// Restarts the high-water mark at the current RSS (Linux ≥ 4.0: "5" to clear_refs), so each
/// scenario reports its own peak. False when the kernel refused.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Returns freed heap to the kernel, so a previous scenario's memory does not count as this one's.
pub fn trim() {
    // SAFETY: malloc_trim only releases free memory at the top of glibc's heaps.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
}
