//! How to get a client id: where each built-in provider registers OAuth apps and what to enter
//! there, for the message a login without a configured client id answers with. The redirect
//! URI is the loopback form browser logins use (RFC 8252): the provider must accept it on any
//! port, since each login listens on a random one.

/// The redirect URI to register at a provider for browser logins.
pub const REDIRECT_URI: &str = "http://127.0.0.1/callback";

/// For a built-in template: where to register latchkey and what to enter, one sentence for
/// people. `None` for any other name.
pub fn registration(name: &str) -> Option<&'static str> {
    Some(match name {
        "github" => {
            "register an OAuth app at https://github.com/settings/applications/new with the \
             Authorization callback URL http://127.0.0.1/callback and tick \"Enable Device \
             Flow\", then log in with `latchkey login github --device`; GitHub's browser login \
             also needs the app's client secret: `latchkey provider set-secret github`"
        }
        "google" => {
            "create an OAuth client ID of type \"Desktop app\" at \
             https://console.cloud.google.com/apis/credentials, which accepts \
             http://127.0.0.1 on any port; Google gives desktop clients a secret too: \
             `latchkey provider set-secret google`"
        }
        "microsoft" => {
            "register an application under App registrations at https://entra.microsoft.com, add \
             the platform \"Mobile and desktop applications\" with the redirect URI \
             http://127.0.0.1/callback, and allow public client flows for `latchkey login \
             microsoft --device`"
        }
        "gitlab" => {
            "add an application at https://gitlab.com/-/user_settings/applications, not \
             confidential, with the redirect URI http://127.0.0.1/callback"
        }
        "discord" => {
            "create an application at https://discord.com/developers/applications and add the \
             redirect http://127.0.0.1/callback under OAuth2; Discord gives it a client \
             secret: `latchkey provider set-secret discord`"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_says_how_to_register() {
        for name in crate::BUILTIN {
            let text = registration(name).unwrap_or_else(|| panic!("{name} has no registration"));
            assert!(text.contains("https://"), "{name}: {text}");
            assert!(
                text.contains(REDIRECT_URI) || text.contains("http://127.0.0.1 on any port"),
                "{name}: {text}"
            );
        }
        assert!(registration("corp").is_none());
        assert!(registration("github").unwrap().contains("--device"));
    }
}
