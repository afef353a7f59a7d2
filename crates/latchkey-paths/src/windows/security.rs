//! The security descriptor of latchkey's named pipe: owned by the user, and a protected DACL
//! that lets that user (and nobody else) open or create instances of it.

use std::fmt;
use std::ptr::null_mut;

use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;

use super::last_error;
use super::local::LocalBox;
use super::sid::current_user_sid;
use crate::{pipe_name_for_sid, TrustError};

/// `SECURITY_ATTRIBUTES` for `CreateNamedPipeW` (tokio's
/// `ServerOptions::create_with_security_attributes_raw`) that open the pipe to one user only.
///
/// The descriptor is `O:<SID>D:P(A;;GA;;;<SID>)`: the user owns the pipe, and its DACL is
/// protected (no inherited entries) and has a single entry granting that user full access.
/// Everyone else, SYSTEM and administrators included, is denied; the default DACL of a pipe
/// would let Everyone read it. SYSTEM gets no entry on purpose: the daemon serves only its own
/// user's processes, and a SYSTEM process would fail the peer check anyway. Since creating
/// another instance of a pipe needs access to it too, only this user can add instances.
///
/// The descriptor is freed (`LocalFree`) when this value is dropped.
pub struct PipeSecurity {
    /// The descriptor; `attributes` points at it.
    descriptor: LocalBox,
    /// Boxed so its address stays put when `self` moves.
    attributes: Box<SECURITY_ATTRIBUTES>,
    sddl: String,
}

// SAFETY: the descriptor and attributes are read-only after construction and owned by self.
unsafe impl Send for PipeSecurity {}
// SAFETY: as above; nothing writes through the shared pointers.
unsafe impl Sync for PipeSecurity {}

impl PipeSecurity {
    /// A descriptor for the user this process runs as.
    pub fn for_current_user() -> Result<Self, TrustError> {
        Self::for_user(&current_user_sid()?)
    }

    /// A descriptor for the user with this SID (`S-1-...`).
    pub fn for_user(sid: &str) -> Result<Self, TrustError> {
        // The same check the pipe name gets: a SID, nothing that could add SDDL of its own.
        pipe_name_for_sid(sid)?;
        let sddl = format!("O:{sid}D:P(A;;GA;;;{sid})");
        let wide: Vec<u16> = sddl.encode_utf16().chain(Some(0)).collect();
        let mut raw = null_mut();
        // SAFETY: wide is NUL-terminated, raw a valid out pointer, the size is not asked for.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                wide.as_ptr(),
                SDDL_REVISION_1,
                &mut raw,
                null_mut(),
            )
        };
        if ok == 0 {
            return Err(last_error(
                "ConvertStringSecurityDescriptorToSecurityDescriptorW",
            ));
        }
        // SAFETY: on success raw is a LocalAlloc'd descriptor that we now own.
        let descriptor = unsafe { LocalBox::from_raw(raw) };
        let attributes = Box::new(SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: descriptor.as_ptr(),
            bInheritHandle: 0,
        });
        Ok(Self {
            descriptor,
            attributes,
            sddl,
        })
    }

    /// The descriptor in SDDL, as built.
    pub fn sddl(&self) -> &str {
        &self.sddl
    }

    /// A pointer to the `SECURITY_ATTRIBUTES`, for `CreateNamedPipeW` (which only reads it).
    /// Valid until `self` is dropped, wherever `self` moves.
    pub fn as_raw_attributes(&self) -> *mut core::ffi::c_void {
        debug_assert_eq!(
            self.attributes.lpSecurityDescriptor,
            self.descriptor.as_ptr()
        );
        std::ptr::from_ref::<SECURITY_ATTRIBUTES>(&self.attributes)
            .cast_mut()
            .cast()
    }
}

impl fmt::Debug for PipeSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeSecurity")
            .field("sddl", &self.sddl)
            .finish()
    }
}
