//! What a login for a provider latchkey cannot use answers: where the configuration file is,
//! the lines to add to it, and how to get a client id from the provider (the redirect URI to
//! register, and the device flow where a provider needs it). Messages are one line each (the
//! CLI escapes line breaks) and name a provider only when it is one of latchkey's own names
//! (a template or a configured provider), never the client's raw input.

use latchkey_oauth::register;
use latchkey_proto::{ErrorKind, RpcError};

use crate::login::LoginSettings;

/// The configuration file as messages name it.
pub fn config_file_name(settings: &LoginSettings) -> String {
    settings
        .config_file
        .as_ref()
        .map_or_else(|| "config.toml".to_owned(), |p| p.display().to_string())
}

/// The error for a login whose provider has no usable configuration.
pub fn not_configured(name: &str, settings: &LoginSettings) -> RpcError {
    let file = config_file_name(settings);
    if let Some((name, problem)) = settings.problems.iter().find(|(n, _)| n == name) {
        let mut rpc = RpcError::new(
            ErrorKind::InvalidRequest,
            format!("provider {name} cannot log in: {problem}"),
        );
        rpc.data.hint = Some(match register::registration(name) {
            Some(how) => {
                format!("fix it there, then run `latchkey reload`; to get a client id, {how}")
            }
            None => "fix it there, then run `latchkey reload`".to_owned(),
        });
        return rpc;
    }
    if let Some(how) = register::registration(name) {
        let mut rpc = RpcError::new(
            ErrorKind::InvalidRequest,
            format!(
                "{name} needs a client id: add the two lines `[providers.{name}]` and \
                 `client_id = \"<your client id>\"` to {file}, then run `latchkey reload`"
            ),
        );
        rpc.data.hint = Some(format!("to get a client id, {how}"));
        return rpc;
    }
    let mut rpc = RpcError::new(
        ErrorKind::InvalidRequest,
        format!(
            "no provider of that name is configured in {file}; the known providers are {}",
            settings.known_providers().join(", ")
        ),
    );
    rpc.data.hint = Some(format!(
        "add `[providers.NAME]` with `client_id` and either `issuer = \"https://...\"` (OpenID \
         Connect) or `authorization_url` and `token_url` to {file}, then run `latchkey reload`; \
         register latchkey at the provider as a native app with the redirect URI {} (any \
         port), and enable its device flow for `--device`",
        register::REDIRECT_URI
    ));
    rpc
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings(problems: Vec<(String, String)>) -> LoginSettings {
        LoginSettings {
            oauth: None,
            problems,
            lifetime: Duration::from_secs(600),
            config_file: Some("/home/u/.config/latchkey/config.toml".into()),
        }
    }

    #[test]
    fn a_template_without_client_id_says_where_and_how() {
        let rpc = not_configured("github", &settings(Vec::new()));
        assert_eq!(rpc.data.kind, ErrorKind::InvalidRequest);
        assert!(
            rpc.message
                .contains("to /home/u/.config/latchkey/config.toml"),
            "{}",
            rpc.message
        );
        assert!(
            rpc.message.contains("`[providers.github]`"),
            "{}",
            rpc.message
        );
        assert!(rpc.message.contains("client_id = "), "{}", rpc.message);
        let hint = rpc.data.hint.unwrap();
        assert!(hint.contains("http://127.0.0.1/callback"), "{hint}");
        assert!(hint.contains("--device"), "{hint}");
        assert!(!rpc.message.contains('\n') && !hint.contains('\n'));
    }

    #[test]
    fn a_refused_provider_says_why_and_an_unknown_one_is_not_repeated() {
        let refused = settings(vec![(
            "corp".into(),
            "/home/u/.config/latchkey/config.toml: provider corp: client_id is not set".into(),
        )]);
        let rpc = not_configured("corp", &refused);
        assert!(
            rpc.message.contains("client_id is not set"),
            "{}",
            rpc.message
        );
        assert!(rpc.message.contains("/home/u/.config/latchkey/config.toml"));
        assert!(rpc.data.hint.unwrap().contains("latchkey reload"));
        let rpc = not_configured("t\u{1b}[2Jypo", &settings(Vec::new()));
        assert!(!rpc.message.contains("ypo"), "{}", rpc.message);
        assert!(
            rpc.message.contains("github, gitlab, google"),
            "{}",
            rpc.message
        );
        assert!(rpc.data.hint.unwrap().contains("http://127.0.0.1/callback"));
    }
}
