//! Whether a named pipe exists already, asked without connecting to it.

use windows_sys::Win32::Foundation::{GetLastError, ERROR_FILE_NOT_FOUND, ERROR_SEM_TIMEOUT};
use windows_sys::Win32::System::Pipes::WaitNamedPipeW;

use crate::TrustError;

/// Whether some process serves a pipe named `name` (`\\.\pipe\...`) right now.
///
/// A daemon asks this before it creates its pipe and refuses to start when the answer is yes
/// (another daemon, or a squatter). It complements `first_pipe_instance`, which closes the race
/// between this question and the creation on Windows, but which Wine 8 ignores. It does not
/// connect: `WaitNamedPipeW` with a 1 ms time-out answers at once when no instance exists, and
/// times out when every instance is busy.
pub fn pipe_exists(name: &str) -> Result<bool, TrustError> {
    let wide: Vec<u16> = name.encode_utf16().chain(Some(0)).collect();
    // SAFETY: wide is NUL-terminated.
    if unsafe { WaitNamedPipeW(wide.as_ptr(), 1) } != 0 {
        return Ok(true);
    }
    // SAFETY: no preconditions.
    match unsafe { GetLastError() } {
        ERROR_FILE_NOT_FOUND => Ok(false),
        ERROR_SEM_TIMEOUT => Ok(true),
        code => Err(TrustError::System {
            call: "WaitNamedPipeW",
            source: std::io::Error::from_raw_os_error(code as i32),
        }),
    }
}
