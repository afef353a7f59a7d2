//! End-to-end tests: the built `latchkeyd` and `latchkey` binaries, real sockets, a private
//! D-Bus session bus and a real gnome-keyring. One test binary; each test builds its own world.
//!
//! The modules that need the Linux desktop (a session bus, gnome-keyring, a second local user
//! made with `useradd`) exist on Linux only; on other platforms the rest still compiles.

#[cfg(target_os = "linux")]
mod audit;
mod cli;
mod clock;
mod completions;
#[cfg(target_os = "linux")]
mod concurrency;
mod config_file;
#[cfg(target_os = "linux")]
mod confirm;
#[cfg(target_os = "linux")]
mod crash;
#[cfg(target_os = "linux")]
mod dbus;
mod docker_credential;
#[cfg(target_os = "linux")]
mod file_store;
#[cfg(target_os = "linux")]
mod first_minutes;
#[cfg(target_os = "linux")]
mod first_minutes_daemon;
mod git_credential;
#[cfg(target_os = "linux")]
mod grants;
mod in_process;
mod install;
mod issuer;
#[cfg(target_os = "linux")]
mod keychain;
#[cfg(target_os = "linux")]
mod keyring_lock;
#[cfg(target_os = "linux")]
mod kube_credential;
#[cfg(target_os = "linux")]
mod leaks;
#[cfg(target_os = "linux")]
mod login;
#[cfg(target_os = "linux")]
mod logout;
#[cfg(target_os = "linux")]
mod migrate;
mod names;
#[cfg(target_os = "linux")]
mod oauth;
mod protocol;
mod provider_text;
#[cfg(target_os = "linux")]
mod providers;
#[cfg(target_os = "linux")]
mod proxy;
#[cfg(target_os = "linux")]
mod refresh;
mod reload;
#[cfg(target_os = "linux")]
mod run_command;
mod slots;
mod support;
#[cfg(target_os = "linux")]
mod trust;
