//! Giving large buffers back to the system once they are freed (glibc).
//!
//! glibc serves allocations above its mmap threshold with their own mappings, returned to the
//! system on free, but it raises that threshold each time such a block is freed: after the
//! first `list` of a large store, its megabytes of answer buffers come from the heap and stay
//! resident for the daemon's life. A fixed threshold keeps large, short-lived buffers out of
//! the heap, so the daemon's resident size follows what it holds, not its largest answer.

/// Allocations from this size on get mappings of their own (glibc's initial default).
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Fixes glibc's mmap threshold at `MMAP_THRESHOLD` (128 KiB); `false` if glibc refused.
pub fn return_large_buffers() -> bool {
    // SAFETY: mallopt only changes allocator parameters; called before other threads allocate.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_accepts_the_threshold() {
        assert!(super::return_large_buffers());
    }
}
