//! The Linux desktop parts of the harness: a private D-Bus session bus and gnome-keyring on it.
//! Linux only: other platforms have neither, and their tests run without them.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use futures_util::StreamExt;

use crate::{private_dir, require, START_TIMEOUT};

/// A private session bus.
pub struct SessionBus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl SessionBus {
    /// Starts a bus; `service_dir` enables bus activation of the services described there.
    pub fn start(service_dir: Option<&Path>) -> Self {
        require("dbus-daemon", "dbus-daemon");
        let dir = tempfile::tempdir().unwrap();
        let services = service_dir
            .map(|d| format!("<servicedir>{}</servicedir>", d.display()))
            .unwrap_or_default();
        let config = format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}/bus</listen>
  <auth>EXTERNAL</auth>
  {services}
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
            dir.path().display()
        );
        let config_path = dir.path().join("bus.conf");
        std::fs::write(&config_path, config).unwrap();
        // Services the bus activates inherit its environment: give them the bus's address.
        let own_address = format!("unix:path={}/bus", dir.path().display());
        let mut child = Command::new("dbus-daemon")
            .env("DBUS_SESSION_BUS_ADDRESS", &own_address)
            .arg(format!("--config-file={}", config_path.display()))
            .args(["--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the bus address");
        let address = line.trim().to_owned();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon printed {address:?}"
        );
        Self {
            child,
            address,
            _dir: dir,
        }
    }

    /// The folder holding the bus socket.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Runs `busctl` against this bus.
    pub fn busctl(&self, args: &[&str]) -> Output {
        require("busctl", "systemd");
        Command::new("busctl")
            .arg(format!("--address={}", self.address))
            .args(args)
            .output()
            .expect("run busctl")
    }

    /// Runs `gdbus` against this bus.
    pub fn gdbus(&self, args: &[&str]) -> Output {
        require("gdbus", "libglib2.0-bin");
        Command::new("gdbus")
            .arg(args[0])
            .args(["--address", &self.address])
            .args(&args[1..])
            .output()
            .expect("run gdbus")
    }

    /// Calls `dev.latchkey.Latchkey1.METHOD` with `gdbus call` and GVariant-text arguments.
    pub fn call_latchkey(&self, method: &str, args: &[&str]) -> Output {
        let method = format!("dev.latchkey.Latchkey1.{method}");
        let mut all = vec![
            "call",
            "--dest",
            "dev.latchkey.Latchkey1",
            "--object-path",
            "/dev/latchkey/Latchkey1",
            "--method",
            &method,
        ];
        all.extend_from_slice(args);
        self.gdbus(&all)
    }

    /// The bus address, for `DBUS_SESSION_BUS_ADDRESS`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Runs `f` with a zbus connection to this bus on a private runtime.
    pub fn with_connection<T>(&self, f: impl AsyncFnOnce(&zbus::Connection) -> T) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let connection = zbus::connection::Builder::address(self.address.as_str())
                .unwrap()
                .build()
                .await
                .expect("connect to the private bus");
            f(&connection).await
        })
    }

    /// Waits until `name` has an owner on the bus, by its NameOwnerChanged signal.
    pub fn wait_for_name(&self, name: &str) {
        self.with_connection(async |connection| {
            let dbus = zbus::fdo::DBusProxy::new(connection).await.unwrap();
            let mut changes = dbus.receive_name_owner_changed().await.unwrap();
            let bus_name = zbus::names::BusName::try_from(name).unwrap();
            if dbus.name_has_owner(bus_name).await.unwrap() {
                return;
            }
            tokio::time::timeout(START_TIMEOUT, async {
                while let Some(change) = changes.next().await {
                    let args = change.args().unwrap();
                    if args.name().as_str() == name && args.new_owner().is_some() {
                        return;
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{name} did not appear on the bus"));
        })
    }

    /// Waits until `name` has no owner on the bus, by its NameOwnerChanged signal.
    pub fn wait_for_name_gone(&self, name: &str) {
        self.with_connection(async |connection| {
            let dbus = zbus::fdo::DBusProxy::new(connection).await.unwrap();
            let mut changes = dbus.receive_name_owner_changed().await.unwrap();
            let bus_name = zbus::names::BusName::try_from(name).unwrap();
            if !dbus.name_has_owner(bus_name).await.unwrap() {
                return;
            }
            tokio::time::timeout(START_TIMEOUT, async {
                while let Some(change) = changes.next().await {
                    let args = change.args().unwrap();
                    if args.name().as_str() == name && args.new_owner().is_none() {
                        return;
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{name} never left the bus"));
        })
    }
}

/// A peer that owns a name on the bus and serves nothing under it (every call gets an error
/// back): a service that is there but broken. The name is released when this is dropped.
pub struct Squatter {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SessionBus {
    /// Takes `name` on the bus from a connection of its own (the name must be free).
    pub fn squat(&self, name: &str) -> Squatter {
        let address = self.address.clone();
        let name = name.to_owned();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let connection = zbus::connection::Builder::address(address.as_str())
                    .unwrap()
                    .name(name)
                    .unwrap()
                    .build()
                    .await
                    .expect("take the name on the private bus");
                // Calls are answered (with errors) once the object server runs.
                let _ = connection.object_server();
                ready_tx.send(()).unwrap();
                let _ = stop_rx.await;
                drop(connection);
            })
        });
        ready_rx
            .recv_timeout(START_TIMEOUT)
            .expect("the squatter took the name");
        Squatter {
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Squatter {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SessionBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// gnome-keyring-daemon serving the Secret Service on a private bus.
pub struct Keyring {
    child: Child,
}

/// The test password of the login collection.
const PASSWORD: &[u8] = b"latchkey-test-password";

/// The object path of the collection gnome-keyring creates for `--unlock`.
pub const LOGIN_COLLECTION: &str = "/org/freedesktop/secrets/collection/login";

impl Keyring {
    /// Starts the keyring with its own XDG folders under `root`, unlocked with a test password
    /// (`--unlock` creates the `login` collection the first time).
    pub fn start(bus: &SessionBus, root: &Path) -> Self {
        Self::start_with(bus, root, true)
    }

    /// Starts the keyring on the folders of an earlier one under `root`, without `--unlock`:
    /// its `login` collection comes back locked, as after a restart outside a desktop login.
    pub fn start_locked(bus: &SessionBus, root: &Path) -> Self {
        Self::start_with(bus, root, false)
    }

    fn start_with(bus: &SessionBus, root: &Path, unlock: bool) -> Self {
        require("gnome-keyring-daemon", "gnome-keyring");
        let runtime = private_dir(&root.join("keyring-run"));
        let data = private_dir(&root.join("keyring-data"));
        let home = private_dir(&root.join("keyring-home"));
        let mut command = Command::new("gnome-keyring-daemon");
        command.arg("--foreground");
        if unlock {
            command.arg("--unlock");
        }
        let mut child = command
            .arg("--components=secrets")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_DATA_HOME", &data)
            .stdin(if unlock {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gnome-keyring-daemon");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(PASSWORD).unwrap();
        }
        bus.wait_for_name("org.freedesktop.secrets");
        Self { child }
    }

    /// Kills the keyring (SIGKILL, by its pid), reaps it, and waits until its name has left
    /// the bus; its folders stay for the next start.
    pub fn stop(mut self, bus: &SessionBus) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        bus.wait_for_name_gone("org.freedesktop.secrets");
    }

    /// Whether the login collection is locked, read from the keyring itself.
    pub fn login_locked(bus: &SessionBus) -> bool {
        bus.with_connection(async |connection| {
            let reply = connection
                .call_method(
                    Some("org.freedesktop.secrets"),
                    LOGIN_COLLECTION,
                    Some("org.freedesktop.DBus.Properties"),
                    "Get",
                    &("org.freedesktop.Secret.Collection", "Locked"),
                )
                .await
                .expect("read the login collection's Locked property");
            let value: zbus::zvariant::OwnedValue = reply.body().deserialize().unwrap();
            bool::try_from(value).expect("Locked is a boolean")
        })
    }

    /// Locks the login collection through the Secret Service API.
    pub fn lock(bus: &SessionBus) {
        Self::call_lock(bus, "Lock");
    }

    fn call_lock(bus: &SessionBus, method: &str) {
        bus.with_connection(async |connection| {
            let path = zbus::zvariant::ObjectPath::try_from(LOGIN_COLLECTION).unwrap();
            let reply = connection
                .call_method(
                    Some("org.freedesktop.secrets"),
                    "/org/freedesktop/secrets",
                    Some("org.freedesktop.Secret.Service"),
                    method,
                    &(vec![path],),
                )
                .await
                .expect("lock call");
            let (done, _prompt): (
                Vec<zbus::zvariant::OwnedObjectPath>,
                zbus::zvariant::OwnedObjectPath,
            ) = reply.body().deserialize().unwrap();
            assert_eq!(
                done.len(),
                1,
                "{method} did not apply to the login collection"
            );
        })
    }

    /// The pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
