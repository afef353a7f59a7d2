//! Discovery, `GET /.well-known/openid-configuration` (also served as
//! `/.well-known/oauth-authorization-server`): the endpoints and what they support.

use hyper::StatusCode;
use serde_json::json;

use super::reply::{json_reply, Reply};
use super::state::State;
use super::DEVICE_CODE_GRANT;

impl State {
    pub(super) fn discovery(&self) -> Reply {
        let base = &self.base_url;
        let auth_methods = if self.settings.client_secret.is_some() {
            json!(["client_secret_basic", "client_secret_post"])
        } else {
            json!(["none"])
        };
        json_reply(
            StatusCode::OK,
            &json!({
                "issuer": base,
                "authorization_endpoint": format!("{base}/authorize"),
                "token_endpoint": format!("{base}/token"),
                "revocation_endpoint": format!("{base}/revoke"),
                "device_authorization_endpoint": format!("{base}/device_authorization"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_CODE_GRANT],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": auth_methods,
                "revocation_endpoint_auth_methods_supported": auth_methods,
                "authorization_response_iss_parameter_supported": self.settings.advertise_iss,
            }),
        )
    }
}
