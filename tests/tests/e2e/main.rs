//! End-to-end tests: the built `latchkeyd` and `latchkey` binaries, real sockets, a private
//! D-Bus session bus and a real gnome-keyring. One test binary; each test builds its own world.

mod cli;
mod clock;
mod concurrency;
mod config_file;
mod crash;
mod dbus;
mod in_process;
mod install;
mod issuer;
mod keychain;
mod leaks;
mod login;
mod logout;
mod names;
mod oauth;
mod protocol;
mod provider_text;
mod providers;
mod refresh;
mod slots;
mod support;
mod trust;
