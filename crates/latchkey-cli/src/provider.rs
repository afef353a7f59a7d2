//! `latchkey provider ...`: the providers the daemon knows, and a confidential client's
//! secret, read from stdin or a no-echo prompt and handed to the daemon's keychain.

use latchkey_proto::Secret;

use crate::cli::{Cli, ProviderCommand};
use crate::out::note;
use crate::{input, out, output, print_json, usage, Failure};

/// Runs `latchkey provider list|set-secret|clear-secret`.
pub fn run(cli: &Cli, command: &ProviderCommand) -> Result<(), Failure> {
    match command {
        ProviderCommand::List { json } => list(cli, *json),
        ProviderCommand::SetSecret { provider } => set_secret(cli, provider),
        ProviderCommand::ClearSecret { provider } => clear_secret(cli, provider),
    }
}

fn list(cli: &Cli, json: bool) -> Result<(), Failure> {
    let mut client = crate::connect(cli)?;
    let providers = client.providers()?;
    if json {
        print_json(&serde_json::json!({ "providers": providers }))?;
    } else {
        out::write(output::providers_table(&providers))?;
    }
    Ok(())
}

fn set_secret(cli: &Cli, provider: &str) -> Result<(), Failure> {
    let secret = input::read_secret("Client secret: ").map_err(usage)?;
    let mut client = crate::connect(cli)?;
    client.set_provider_secret(provider, Some(Secret::new(secret.as_str().to_owned())))?;
    note!(
        "stored the client secret for {}",
        output::sanitize(provider)
    );
    Ok(())
}

fn clear_secret(cli: &Cli, provider: &str) -> Result<(), Failure> {
    let mut client = crate::connect(cli)?;
    client.set_provider_secret(provider, None)?;
    note!(
        "removed the client secret for {}",
        output::sanitize(provider)
    );
    Ok(())
}
