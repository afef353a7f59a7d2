//! Integration with service managers: a listening socket passed by systemd (`LISTEN_FDS`) or
//! launchd (`launch_activate_socket`), and systemd's readiness notification (`READY=1` to
//! `$NOTIFY_SOCKET`).

use std::os::unix::net::UnixListener;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
#[cfg(not(target_os = "macos"))]
const LISTEN_FDS_START: i32 = 3;

/// Takes the listening socket the service manager passed us, if any. Call it once, before any
/// thread starts: it clears the `LISTEN_*` variables so children do not inherit them.
#[cfg(not(target_os = "macos"))]
pub fn inherited_listener() -> Option<UnixListener> {
    use std::os::fd::FromRawFd;

    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let count: i32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    if pid != std::process::id() || count < 1 {
        return None;
    }
    let fd = LISTEN_FDS_START;
    // SAFETY: the service manager passed `fd` to this process as a listening socket; it is
    // owned by nobody else in this process, and we take it exactly once.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        Some(UnixListener::from_raw_fd(fd))
    }
}

/// Takes the socket named `Listeners` in the launchd plist, if launchd started us.
#[cfg(target_os = "macos")]
pub fn inherited_listener() -> Option<UnixListener> {
    use std::ffi::CString;
    use std::os::fd::FromRawFd;

    extern "C" {
        fn launch_activate_socket(
            name: *const libc::c_char,
            fds: *mut *mut libc::c_int,
            count: *mut libc::size_t,
        ) -> libc::c_int;
    }
    let name = CString::new("Listeners").ok()?;
    let mut fds: *mut libc::c_int = std::ptr::null_mut();
    let mut count: libc::size_t = 0;
    // SAFETY: on success launchd fills `fds` with `count` descriptors in memory allocated with
    // malloc; we read them once, free that memory, keep the first and close any others (a
    // path socket has one), so no descriptor is owned twice.
    unsafe {
        if launch_activate_socket(name.as_ptr(), &mut fds, &mut count) != 0 || fds.is_null() {
            return None;
        }
        let all: Vec<libc::c_int> = std::slice::from_raw_parts(fds, count).to_vec();
        libc::free(fds.cast());
        let (&first, rest) = all.split_first()?;
        for &fd in rest {
            libc::close(fd);
        }
        libc::fcntl(first, libc::F_SETFD, libc::FD_CLOEXEC);
        Some(UnixListener::from_raw_fd(first))
    }
}

/// Tells systemd the daemon is ready, when it runs under `Type=notify`.
pub fn notify_ready() {
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};

        let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
            return;
        };
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str());
        let address = match bytes.first() {
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
            Some(b'/') => SocketAddr::from_pathname(&target),
            _ => return,
        };
        let sent =
            address.and_then(|address| UnixDatagram::unbound()?.send_to_addr(b"READY=1", &address));
        if let Err(err) = sent {
            tracing::warn!(error = %err, "could not notify the service manager");
        }
    }
}
