//! Each endpoint over real HTTP with reqwest, as a client would see it.
//!
//! This file holds the helpers; the tests are grouped by what they exercise.

mod authorization;
mod device;
mod server;
mod tokens;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use serde_json::Value;

use super::{TokenServer, DEVICE_CODE_GRANT};
use crate::http;

/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const CLIENT: &str = "latchkey-test";

fn run<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .unwrap()
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {:?}", self.status, self.body))
    }

    /// The OAuth error code, with the status it came with.
    fn error(&self) -> (u16, String) {
        let error = self.json()["error"].as_str().unwrap_or_default().to_owned();
        (self.status, error)
    }
}

fn try_post(
    url: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
    timeout: Duration,
) -> Result<Answer, reqwest::Error> {
    run(async {
        let mut request = client(timeout).post(url).form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.send().await?;
        Ok(Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await?,
        })
    })
}

fn post(url: &str, form: &[(&str, &str)]) -> Answer {
    try_post(url, form, None, Duration::from_secs(10)).unwrap()
}

fn query(location: &str) -> HashMap<String, String> {
    let query = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn authorize_url(server: &TokenServer, pairs: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{}?{query}", server.authorize_url())
}

const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// A valid authorization request for `scope`; returns the code.
fn authorize(server: &TokenServer, scope: &str) -> String {
    let reply = http::get(&authorize_url(
        server,
        &[
            ("response_type", "code"),
            ("client_id", CLIENT),
            ("redirect_uri", REDIRECT),
            ("state", "s1"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("scope", scope),
        ],
    ));
    assert_eq!(reply.status, 302, "{}", reply.body);
    let query = query(reply.location.as_deref().unwrap());
    assert_eq!(query["state"], "s1");
    query["code"].clone()
}

fn exchange(server: &TokenServer, code: &str, verifier: &str) -> Answer {
    post(
        &server.token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT),
            ("code_verifier", verifier),
        ],
    )
}

fn refresh(server: &TokenServer, token: &str) -> Answer {
    post(
        &server.token_url(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", CLIENT),
        ],
    )
}

fn revoke(server: &TokenServer, token: &str) -> Answer {
    post(
        &server.revocation_url(),
        &[("token", token), ("client_id", CLIENT)],
    )
}

fn start_device(server: &TokenServer) -> Value {
    let answer = post(
        &server.device_authorization_url(),
        &[("client_id", CLIENT), ("scope", "read  write")],
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

fn poll(server: &TokenServer, device_code: &str) -> Answer {
    post(
        &server.token_url(),
        &[
            ("grant_type", DEVICE_CODE_GRANT),
            ("device_code", device_code),
            ("client_id", CLIENT),
        ],
    )
}
