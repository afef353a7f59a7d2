//! latchkey's latency benchmark (not a test): the socket `get` of a cached entry against a raw
//! Unix-socket echo of the same message sizes, one client and sixteen at once, in one run on the
//! same machine; the D-Bus `Get` against a minimal zbus service through the same bus daemon;
//! then `latchkey get` as a whole process against `secret-tool lookup`. Next to the socket
//! times, the instructions one request costs the daemon and the echo (callgrind, see
//! `instructions`), which do not swing with the machine's load as times do.
//!
//! Run: `cargo build --release --bins && cargo bench -p latchkey-tests --bench latency`.
//! `LATCHKEY_BENCH_REQUESTS` sets the request count per measurement (default 20000);
//! `LATCHKEY_BENCH_ROUNDS` how many times the socket `get` and the echo are measured, in
//! turn, for each client count (default 5; the ratios reported are the medians of the
//! rounds', with their range);
//! `LATCHKEY_BENCH_ONLY=socket` runs only that comparison (and its callgrind counts);
//! `LATCHKEY_BENCH_ONLY=storm` runs only the refresh storms (1 h and 5 s token lifetimes);
//! `LATCHKEY_BENCH_ONLY=instructions` only the callgrind counts (no timings);
//! `LATCHKEY_BENCH_ONLY=grant` only what checking a grant adds to a cached `get`;
//! `LATCHKEY_BENCH_CALLGRIND_REQUESTS` the extra requests counted under callgrind (default
//! 2000; 0 skips the counts);
//! `LATCHKEY_BENCH_CPU=N` pins the bench and everything it starts to CPU `N` (steady ratios;
//! see `pin_to_cpu`);
//! `LATCHKEY_BENCH_RUST_LOG` the daemon's log filter (default `info`, which writes an audit line
//! per request; `warn,latchkey_daemon::daemon=info` turns the audit off).

#[cfg(target_os = "linux")]
#[path = "latency/instructions.rs"]
mod instructions;
#[cfg(target_os = "linux")]
#[path = "latency/linux.rs"]
mod linux;

fn main() {
    #[cfg(target_os = "linux")]
    linux::main();
    #[cfg(not(target_os = "linux"))]
    if !std::env::args().any(|a| a == "--list") {
        println!("latency needs a session bus and gnome-keyring: Linux only");
    }
}
