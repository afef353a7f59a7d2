//! The revocation endpoint, `POST /revoke` (RFC 7009): a refresh token takes its whole family
//! with it, an access token goes alone, and unknown tokens are fine.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};

use super::reply::{invalid_request, no_store, oauth_error, Reply};
use super::request::Params;
use super::state::State;

impl State {
    pub(super) fn revoke(&mut self, headers: &HeaderMap, params: &Params) -> Reply {
        if let Some(token) = params.get("token") {
            self.revocation_log.push(token.to_owned());
        }
        let client = match self.authenticate(headers, params) {
            Ok(id) => id,
            Err(refusal) => return refusal.reply(),
        };
        let Some(token) = params.get("token") else {
            return invalid_request("token is missing");
        };
        // token_type_hint only speeds up a real server's lookup; both kinds are searched.
        let family = self
            .refresh_tokens
            .get(token)
            .map(|t| t.family)
            .or_else(|| self.access_tokens.get(token).map(|t| t.family));
        if let Some(family) = family {
            let owner = self.families[&family].client.as_deref();
            if owner.is_some_and(|owner| owner != client) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "unauthorized_client",
                    "the token was issued to another client",
                );
            }
            if self.refresh_tokens.contains_key(token) {
                self.revoke_family(family);
            } else if let Some(access) = self.access_tokens.get_mut(token) {
                access.revoked = true;
            }
        }
        // Unknown tokens get 200 as well (RFC 7009 §2.2).
        let mut reply = Response::new(Full::new(Bytes::new()));
        no_store(reply.headers_mut());
        reply
    }
}
