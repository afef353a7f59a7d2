//! End-to-end tests: the built `latchkeyd` and `latchkey` binaries, real sockets, a private
//! D-Bus session bus and a real gnome-keyring. One test binary; each test builds its own world.

mod cli;
mod clock;
mod concurrency;
mod crash;
mod dbus;
mod install;
mod keychain;
mod leaks;
mod login;
mod logout;
mod oauth;
mod protocol;
mod providers;
mod refresh;
mod support;
