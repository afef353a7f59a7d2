//! End-to-end tests: the built `latchkeyd` and `latchkey` binaries, real sockets, a private
//! D-Bus session bus and a real gnome-keyring. One test binary; each test builds its own world.

mod cli;
mod concurrency;
mod dbus;
mod install;
mod keychain;
mod leaks;
mod oauth;
mod protocol;
