//! The reload signal of platforms that have none (all but Unix, whose SIGHUP is in `unix`):
//! `latchkey reload` asks the daemon over its socket or pipe instead.

/// No reload signal on this platform: `latchkey reload` asks the daemon instead.
pub struct ReloadSignal;

impl ReloadSignal {
    /// Nothing to install.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self)
    }

    /// Never completes.
    pub async fn recv(&mut self) {
        std::future::pending::<()>().await;
    }
}
