//! Start at login on Windows: the value `latchkey` under this user's
//! `HKCU\Software\Microsoft\Windows\CurrentVersion\Run` key, holding the daemon's quoted path.
//! Windows starts it when the user logs on; writing it needs no administrator rights, and
//! `uninstall` deletes the value again. (A logon-triggered scheduled task would work too, but
//! needs the Task Scheduler's COM interface or `schtasks.exe` for what one registry value does.)

use std::path::Path;
use std::ptr::{null, null_mut};

use anyhow::{bail, Result};
use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_SUCCESS, WIN32_ERROR};
use windows_sys::Win32::System::Registry::{
    RegCloseKey, RegCreateKeyExW, RegDeleteKeyValueW, RegGetValueW, RegSetValueExW, HKEY,
    HKEY_CURRENT_USER, KEY_SET_VALUE, REG_OPTION_NON_VOLATILE, REG_SZ, RRF_RT_REG_SZ,
};

use crate::install::Mode;

/// The Run key, under `HKEY_CURRENT_USER`.
pub const RUN_KEY: &str = r"Software\Microsoft\Windows\CurrentVersion\Run";

/// The value's name.
pub const VALUE: &str = "latchkey";

/// The key and value as people write them.
fn shown() -> String {
    format!(r"HKCU\{RUN_KEY}\{VALUE}")
}

/// The command line Windows runs at logon: the daemon's path, quoted (it may hold spaces).
pub fn command_line(daemon: &Path) -> String {
    format!("\"{}\"", daemon.display())
}

fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(Some(0)).collect()
}

fn check(call: &str, status: WIN32_ERROR) -> Result<()> {
    if status == ERROR_SUCCESS {
        return Ok(());
    }
    let err = std::io::Error::from_raw_os_error(status as i32);
    bail!("cannot change {} ({call}: {err})", shown())
}

/// Writes the Run value (or says what it would write).
pub fn install(daemon: &Path, mode: Mode) -> Result<()> {
    let command = command_line(daemon);
    match mode {
        Mode::Print => {
            crate::out::line(format!("{} = {command}", shown()))?;
            return Ok(());
        }
        Mode::DryRun => {
            crate::out::line(format!("would set {} = {command}", shown()))?;
            return Ok(());
        }
        Mode::Apply => {}
    }
    let mut key: HKEY = null_mut();
    // SAFETY: the strings are NUL-terminated, key is a valid out pointer, the rest may be null.
    let status = unsafe {
        RegCreateKeyExW(
            HKEY_CURRENT_USER,
            wide(RUN_KEY).as_ptr(),
            0,
            null(),
            REG_OPTION_NON_VOLATILE,
            KEY_SET_VALUE,
            null(),
            &mut key,
            null_mut(),
        )
    };
    check("RegCreateKeyExW", status)?;
    let data = wide(&command);
    // SAFETY: key is open for setting values; data holds `len` bytes, its NUL included.
    let status = unsafe {
        RegSetValueExW(
            key,
            wide(VALUE).as_ptr(),
            0,
            REG_SZ,
            data.as_ptr().cast(),
            (data.len() * 2) as u32,
        )
    };
    // SAFETY: key was opened above and is closed once.
    unsafe { RegCloseKey(key) };
    check("RegSetValueExW", status)?;
    crate::out::line(format!("set {} = {command}", shown()))?;
    crate::out::line("latchkeyd starts when you log on; run `latchkeyd` to start it now")?;
    Ok(())
}

/// Deletes the Run value (or says it would); a value that is not there is fine.
pub fn uninstall(mode: Mode) -> Result<()> {
    if mode != Mode::Apply {
        crate::out::line(format!("would delete {}", shown()))?;
        return Ok(());
    }
    // SAFETY: the strings are NUL-terminated.
    let status = unsafe {
        RegDeleteKeyValueW(
            HKEY_CURRENT_USER,
            wide(RUN_KEY).as_ptr(),
            wide(VALUE).as_ptr(),
        )
    };
    if status == ERROR_FILE_NOT_FOUND {
        crate::out::line(format!("{} was not set", shown()))?;
        return Ok(());
    }
    check("RegDeleteKeyValueW", status)?;
    crate::out::line(format!("deleted {}", shown()))?;
    Ok(())
}

/// The registered command line, if the Run value exists.
pub fn registered() -> Result<Option<String>> {
    let (key, value) = (wide(RUN_KEY), wide(VALUE));
    let mut len = 0u32;
    // SAFETY: a size query: no buffer, len is a valid out pointer.
    let status = unsafe {
        RegGetValueW(
            HKEY_CURRENT_USER,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_SZ,
            null_mut(),
            null_mut(),
            &mut len,
        )
    };
    if status == ERROR_FILE_NOT_FOUND {
        return Ok(None);
    }
    check("RegGetValueW", status)?;
    let mut buf = vec![0u16; (len as usize).div_ceil(2)];
    // SAFETY: buf holds len bytes; len is updated to the bytes written.
    let status = unsafe {
        RegGetValueW(
            HKEY_CURRENT_USER,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_SZ,
            null_mut(),
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    check("RegGetValueW", status)?;
    let text = &buf[..(len as usize / 2)];
    let text = text.split(|&u| u == 0).next().unwrap_or_default();
    Ok(Some(String::from_utf16_lossy(text)))
}

/// The program a registered command line starts (its quoted or first word).
pub fn program(command: &str) -> &str {
    match command.strip_prefix('"') {
        Some(rest) => rest.split('"').next().unwrap_or_default(),
        None => command.split(' ').next().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_quoted_and_found_again() {
        let daemon = Path::new(r"C:\Program Files\latchkey\latchkeyd.exe");
        let command = command_line(daemon);
        assert_eq!(command, r#""C:\Program Files\latchkey\latchkeyd.exe""#);
        assert_eq!(
            program(&command),
            r"C:\Program Files\latchkey\latchkeyd.exe"
        );
        assert_eq!(program(r"C:\x\latchkeyd.exe --flag"), r"C:\x\latchkeyd.exe");
    }
}
