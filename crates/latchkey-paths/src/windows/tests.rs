//! Real named pipes (run under Wine by `tests/run.sh windows`): the descriptor as the system
//! stores it, both peer checks, and a squatter noticed by `first_pipe_instance`.

use std::os::windows::io::{AsHandle, AsRawHandle};
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::windows::named_pipe::{ClientOptions, NamedPipeServer, ServerOptions};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, GetSecurityInfo, SDDL_REVISION_1,
    SE_KERNEL_OBJECT,
};
use windows_sys::Win32::Security::{DACL_SECURITY_INFORMATION, OWNER_SECURITY_INFORMATION};

use super::local::LocalBox;
use super::*;
use crate::{parse_pipe_name, pipe_name_for_sid};

/// A pipe name no other test (or earlier run) uses.
fn unique_pipe() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    parse_pipe_name(&format!("latchkey-test-{}-{n}", std::process::id())).unwrap()
}

fn serve(name: &str, security: &PipeSecurity) -> std::io::Result<NamedPipeServer> {
    let mut options = ServerOptions::new();
    options
        .first_pipe_instance(true)
        .reject_remote_clients(true);
    // SAFETY: the attributes are valid while `security` lives, which outlasts the call.
    unsafe { options.create_with_security_attributes_raw(name, security.as_raw_attributes()) }
}

/// The owner and DACL of a kernel object, in SDDL, as the system reports them.
fn stored_sddl(handle: std::os::windows::io::BorrowedHandle<'_>) -> String {
    let mut descriptor = std::ptr::null_mut();
    let what = OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION;
    // SAFETY: a valid handle; the out pointers we do not need are null.
    let rc = unsafe {
        GetSecurityInfo(
            handle.as_raw_handle(),
            SE_KERNEL_OBJECT,
            what,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut descriptor,
        )
    };
    assert_eq!(rc, 0, "GetSecurityInfo");
    // SAFETY: GetSecurityInfo allocated the descriptor with LocalAlloc.
    let descriptor = unsafe { LocalBox::from_raw(descriptor) };
    let mut text = std::ptr::null_mut();
    // SAFETY: a valid descriptor and out pointer; the length is not asked for.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            descriptor.as_ptr(),
            SDDL_REVISION_1,
            what,
            &mut text,
            std::ptr::null_mut(),
        )
    };
    assert_ne!(
        ok, 0,
        "ConvertSecurityDescriptorToStringSecurityDescriptorW"
    );
    // SAFETY: a LocalAlloc'd, NUL-terminated string we now own.
    let text = unsafe { LocalBox::from_raw(text.cast()) };
    // SAFETY: NUL-terminated, and `text` outlives the slice.
    String::from_utf16_lossy(unsafe { sid::wide_until_nul(text.as_ptr().cast()) })
}

#[test]
fn this_process_has_a_user_sid_and_a_pipe_named_after_it() {
    let sid = current_user_sid().unwrap();
    assert!(sid.starts_with("S-1-5-"), "{sid}");
    let name = pipe_name_for_sid(&sid).unwrap();
    assert_eq!(name, format!(r"\\.\pipe\latchkey-{sid}"));
    if std::env::var_os(crate::PIPE_ENV).is_none() {
        assert_eq!(default_pipe_name().unwrap(), name);
    }
}

#[test]
fn the_descriptor_names_only_this_user() {
    let sid = current_user_sid().unwrap();
    let security = PipeSecurity::for_current_user().unwrap();
    assert_eq!(security.sddl(), format!("O:{sid}D:P(A;;GA;;;{sid})"));
    assert!(format!("{security:?}").contains(&sid));
    let injected = "S-1-5-18)(A;;GA;;;WD";
    assert!(matches!(
        PipeSecurity::for_user(injected),
        Err(TrustError::BadSid(s)) if s == injected
    ));
}

#[tokio::test]
async fn both_ends_of_a_private_pipe_see_this_user() {
    let sid = current_user_sid().unwrap();
    let name = unique_pipe();
    let security = PipeSecurity::for_current_user().unwrap();
    let server = serve(&name, &security).unwrap();

    let stored = stored_sddl(server.as_handle());
    assert!(stored.starts_with(&format!("O:{sid}D:P")), "{stored}");
    // GA is stored mapped to the pipe's rights (FA); the SID is the only one granted.
    assert_eq!(stored.matches("(A;").count(), 1, "{stored}");
    assert!(stored.ends_with(&format!(";;;{sid})")), "{stored}");

    let client = ClientOptions::new().open(&name).unwrap();
    server.connect().await.unwrap();
    assert_eq!(pipe_client_sid(server.as_handle()).unwrap(), sid);
    assert_eq!(
        pipe_client_pid(server.as_handle()).unwrap(),
        std::process::id()
    );
    assert_eq!(pipe_server_sid(client.as_handle()).unwrap(), sid);

    // And it carries lines both ways.
    let (mut client, mut server) = (BufReader::new(client), BufReader::new(server));
    client.get_mut().write_all(b"ping\n").await.unwrap();
    let mut line = String::new();
    server.read_line(&mut line).await.unwrap();
    assert_eq!(line, "ping\n");
    server.get_mut().write_all(b"pong\n").await.unwrap();
    line.clear();
    client.read_line(&mut line).await.unwrap();
    assert_eq!(line, "pong\n");
}

#[tokio::test]
async fn a_served_pipe_is_noticed_before_a_second_server_is_made() {
    let name = unique_pipe();
    assert!(!pipe_exists(&name).unwrap());
    let security = PipeSecurity::for_current_user().unwrap();
    let first = serve(&name, &security).unwrap();
    assert!(pipe_exists(&name).unwrap());
    // Busy (its one instance taken by a client) still counts.
    let _client = ClientOptions::new().open(&name).unwrap();
    first.connect().await.unwrap();
    assert!(pipe_exists(&name).unwrap());

    // Windows refuses a second `first_pipe_instance` server; Wine 8 creates it anyway, which
    // is why a daemon asks `pipe_exists` first. Pinned both ways so a change shows up.
    let second = serve(&name, &security);
    if running_under_wine() {
        assert!(second.is_ok(), "Wine now honours first_pipe_instance");
    } else {
        let err = second.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    }
    drop(first);
}

/// Wine's ntdll exports `wine_get_version`; Windows' does not.
fn running_under_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
    let ntdll: Vec<u16> = "ntdll.dll".encode_utf16().chain(Some(0)).collect();
    // SAFETY: a NUL-terminated name; ntdll is loaded in every process.
    let module = unsafe { GetModuleHandleW(ntdll.as_ptr()) };
    assert!(!module.is_null());
    // SAFETY: a valid module and a NUL-terminated name.
    unsafe { GetProcAddress(module, c"wine_get_version".as_ptr().cast()) }.is_some()
}

#[test]
fn a_handle_that_is_not_a_pipe_has_no_peer() {
    let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
    let err = pipe_client_sid(file.as_handle()).unwrap_err();
    assert!(
        matches!(
            err,
            TrustError::System {
                call: "GetNamedPipeClientProcessId",
                ..
            }
        ),
        "{err}"
    );
    let err = pipe_server_sid(file.as_handle()).unwrap_err();
    assert!(
        matches!(
            err,
            TrustError::System {
                call: "GetNamedPipeServerProcessId",
                ..
            }
        ),
        "{err}"
    );
}
