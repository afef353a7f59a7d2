//! `latchkey kube-credential`: an entry's token as a Kubernetes `ExecCredential`, the answer
//! kubectl's exec credential plugins give. kubectl caches the token until its
//! `expirationTimestamp` (RFC 3339, UTC) and runs the plugin again after that, so the daemon
//! refreshes it; an entry with no expiry (an API key) gets none, and kubectl then keeps it
//! until a request is refused.

use latchkey_proto::{GetParams, GetResult};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::cli::Cli;
use crate::{out, Failure};

/// The `ExecCredential` version written (kubectl ≥ 1.22 reads it).
const API_VERSION: &str = "client.authentication.k8s.io/v1";

/// The `ExecCredential` for `result`.
fn exec_credential(result: &GetResult) -> Value {
    let mut status = json!({ "token": result.secret.expose() });
    if let Some(at) = result.expires_at {
        status["expirationTimestamp"] = at.format("%Y-%m-%dT%H:%M:%SZ").to_string().into();
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "ExecCredential",
        "status": status,
    })
}

/// Runs `latchkey kube-credential SERVICE [-a ACCOUNT]`.
pub fn run(cli: &Cli, service: &str, account: Option<&str>) -> Result<(), Failure> {
    let mut client = crate::connect(cli)?;
    let result = client.get_with(GetParams {
        service: service.to_owned(),
        account: account.map(str::to_owned),
        scopes: Vec::new(),
        min_valid_secs: None,
        grant: None,
        proxy: false,
        rejected: None,
    })?;
    let mut text = Zeroizing::new(exec_credential(&result).to_string());
    text.push('\n');
    out::write(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_proto::{Kind, Secret};

    #[test]
    fn expiry_is_rfc3339_utc_and_left_out_when_there_is_none() {
        let mut result = GetResult {
            secret: Secret::from("tok\"en"),
            kind: Kind::Oauth2,
            token_type: Some("Bearer".into()),
            username: None,
            expires_at: Some("2030-01-02T03:04:05.678Z".parse().unwrap()),
            scopes: vec![],
        };
        let value = exec_credential(&result);
        assert_eq!(value["apiVersion"], API_VERSION);
        assert_eq!(value["kind"], "ExecCredential");
        assert_eq!(value["status"]["token"], "tok\"en");
        assert_eq!(
            value["status"]["expirationTimestamp"],
            "2030-01-02T03:04:05Z"
        );
        result.expires_at = None;
        let value = exec_credential(&result);
        assert!(
            value["status"].get("expirationTimestamp").is_none(),
            "{value}"
        );
    }
}
