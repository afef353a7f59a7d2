//! Memory the system allocated with `LocalAlloc` for us (SID strings, security descriptors),
//! freed with `LocalFree` exactly once.

use windows_sys::Win32::Foundation::LocalFree;

/// Owns a `LocalAlloc` block and frees it on drop.
pub(super) struct LocalBox(*mut core::ffi::c_void);

impl LocalBox {
    /// Takes ownership of `ptr`.
    ///
    /// # Safety
    /// `ptr` is null or a block from `LocalAlloc` that nothing else frees.
    pub(super) unsafe fn from_raw(ptr: *mut core::ffi::c_void) -> Self {
        Self(ptr)
    }

    /// The block's address (valid while `self` lives).
    pub(super) fn as_ptr(&self) -> *mut core::ffi::c_void {
        self.0
    }
}

impl Drop for LocalBox {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the block came from LocalAlloc (from_raw's contract) and is freed once.
            unsafe { LocalFree(self.0) };
        }
    }
}

// SAFETY: the block is plain memory owned by this value alone; the system keeps no reference.
unsafe impl Send for LocalBox {}
// SAFETY: LocalBox hands out only its address; it never writes the block itself.
unsafe impl Sync for LocalBox {}
