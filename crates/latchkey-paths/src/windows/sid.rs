//! User SIDs from process tokens: this process's, and those of a named pipe's two ends.

use std::os::windows::io::{AsRawHandle, BorrowedHandle, FromRawHandle, OwnedHandle};
use std::ptr::null_mut;

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::Security::Authorization::ConvertSidToStringSidW;
use windows_sys::Win32::Security::{GetTokenInformation, TokenUser, PSID, TOKEN_QUERY, TOKEN_USER};
use windows_sys::Win32::System::Pipes::{GetNamedPipeClientProcessId, GetNamedPipeServerProcessId};
use windows_sys::Win32::System::Threading::{
    GetCurrentProcess, OpenProcess, OpenProcessToken, PROCESS_QUERY_LIMITED_INFORMATION,
};

use super::last_error;
use super::local::LocalBox;
use crate::{parse_pipe_name, pipe_name_for_sid, TrustError, PIPE_ENV};

/// The string form (`S-1-5-21-...`) of the user SID this process runs as.
pub fn current_user_sid() -> Result<String, TrustError> {
    // SAFETY: no preconditions; the pseudo handle it returns needs no closing.
    let process = unsafe { GetCurrentProcess() };
    process_user_sid(process)
}

/// The pipe name the daemon and the clients use: `$LATCHKEY_PIPE` (see
/// [`parse_pipe_name`](crate::parse_pipe_name)), else `\\.\pipe\latchkey-<SID>` with this
/// user's SID (see [`pipe_name_for_sid`](crate::pipe_name_for_sid) for why a SID).
pub fn default_pipe_name() -> Result<String, TrustError> {
    match std::env::var_os(PIPE_ENV).filter(|v| !v.is_empty()) {
        Some(value) => match value.to_str() {
            Some(text) => parse_pipe_name(text),
            None => Err(TrustError::BadPipeName(
                value.to_string_lossy().into_owned(),
            )),
        },
        None => pipe_name_for_sid(&current_user_sid()?),
    }
}

/// The user SID of the process at the client end of a server's pipe instance (the daemon's
/// peer check).
///
/// The process is found by its id. A client that exits right after connecting could have its
/// id reused by another process before it is opened here; the pipe's DACL (see
/// [`PipeSecurity`](crate::PipeSecurity)) is what keeps other users out in the first place,
/// and this check is the second line.
pub fn pipe_client_sid(pipe: BorrowedHandle<'_>) -> Result<String, TrustError> {
    process_id_user_sid(pipe_client_pid(pipe)?)
}

/// The process id of the client end of a server's pipe instance (for the audit log).
pub fn pipe_client_pid(pipe: BorrowedHandle<'_>) -> Result<u32, TrustError> {
    let mut pid = 0u32;
    // SAFETY: the handle is valid while borrowed and pid is a valid out pointer.
    if unsafe { GetNamedPipeClientProcessId(pipe.as_raw_handle(), &mut pid) } == 0 {
        return Err(last_error("GetNamedPipeClientProcessId"));
    }
    Ok(pid)
}

/// The user SID of the process that serves a client's pipe (the client's check of the daemon,
/// done before anything is sent).
pub fn pipe_server_sid(pipe: BorrowedHandle<'_>) -> Result<String, TrustError> {
    let mut pid = 0u32;
    // SAFETY: the handle is valid while borrowed and pid is a valid out pointer.
    if unsafe { GetNamedPipeServerProcessId(pipe.as_raw_handle(), &mut pid) } == 0 {
        return Err(last_error("GetNamedPipeServerProcessId"));
    }
    process_id_user_sid(pid)
}

fn process_id_user_sid(pid: u32) -> Result<String, TrustError> {
    // SAFETY: plain call; a null result is checked below.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if process.is_null() {
        return Err(last_error("OpenProcess"));
    }
    // SAFETY: OpenProcess returned a new handle that nothing else owns.
    let process = unsafe { OwnedHandle::from_raw_handle(process) };
    process_user_sid(process.as_raw_handle())
}

fn process_user_sid(process: HANDLE) -> Result<String, TrustError> {
    let mut token: HANDLE = null_mut();
    // SAFETY: process is a valid process handle and token a valid out pointer.
    if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) } == 0 {
        return Err(last_error("OpenProcessToken"));
    }
    // SAFETY: OpenProcessToken returned a new handle that nothing else owns.
    let token = unsafe { OwnedHandle::from_raw_handle(token) };
    token_user_sid(token.as_raw_handle())
}

fn token_user_sid(token: HANDLE) -> Result<String, TrustError> {
    let mut len = 0u32;
    // SAFETY: a size query: no buffer, len is a valid out pointer. It fails with
    // ERROR_INSUFFICIENT_BUFFER and sets len, which is checked instead of the result.
    unsafe { GetTokenInformation(token, TokenUser, null_mut(), 0, &mut len) };
    if len == 0 {
        return Err(last_error("GetTokenInformation"));
    }
    // u64s, so the buffer is aligned for TOKEN_USER and the SID inside it.
    let mut buf = vec![0u64; (len as usize).div_ceil(8)];
    // SAFETY: buf holds at least len bytes.
    if unsafe { GetTokenInformation(token, TokenUser, buf.as_mut_ptr().cast(), len, &mut len) } == 0
    {
        return Err(last_error("GetTokenInformation"));
    }
    // SAFETY: on success the buffer starts with a TOKEN_USER whose SID points into buf.
    let user = unsafe { &*buf.as_ptr().cast::<TOKEN_USER>() };
    sid_string(user.User.Sid)
}

/// The string form of a SID.
pub(super) fn sid_string(sid: PSID) -> Result<String, TrustError> {
    let mut text: *mut u16 = null_mut();
    // SAFETY: sid is a valid SID and text a valid out pointer.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(last_error("ConvertSidToStringSidW"));
    }
    // SAFETY: on success text is a LocalAlloc'd string that we now own.
    let owned = unsafe { LocalBox::from_raw(text.cast()) };
    // SAFETY: text is NUL-terminated and lives as long as `owned`.
    let wide = unsafe { wide_until_nul(owned.as_ptr().cast()) };
    Ok(String::from_utf16_lossy(wide))
}

/// The UTF-16 units before the NUL.
///
/// # Safety
/// `text` points at a NUL-terminated UTF-16 string that outlives the result.
pub(super) unsafe fn wide_until_nul<'a>(text: *const u16) -> &'a [u16] {
    let mut len = 0;
    // SAFETY: every unit up to and including the NUL is readable (the caller's contract).
    while unsafe { *text.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` units before the NUL were just read.
    unsafe { std::slice::from_raw_parts(text, len) }
}
