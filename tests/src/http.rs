//! The tests' browser: one GET at a time, with redirects shown rather than followed, so a test
//! can look at each hop of a login (the authorization server's redirect, the loopback callback).
//!
//! Each call runs reqwest on its own thread with a current-thread runtime, so it blocks the
//! caller and works from sync tests and from inside an async runtime alike.

use std::time::Duration;

/// How long one GET may take, connect included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What one GET answered.
#[derive(Clone, Debug)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// The `Location` header, as sent (possibly relative).
    pub location: Option<String>,
    /// The body as text (invalid UTF-8 replaced).
    pub body: String,
}

/// One GET of `url`, redirects not followed; panics if no response arrives.
pub fn get(url: &str) -> HttpReply {
    try_get(url).unwrap_or_else(|err| panic!("GET {url}: {err:?}"))
}

/// One GET of `url`, redirects not followed; `Err` if no response arrives (refused, reset,
/// timed out).
pub fn try_get(url: &str) -> Result<HttpReply, reqwest::Error> {
    let url = url.to_owned();
    let worker = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the test browser");
        runtime.block_on(async {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(TIMEOUT)
                .timeout(TIMEOUT)
                .build()?;
            let response = client.get(url).send().await?;
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
            let body = String::from_utf8_lossy(&response.bytes().await?).into_owned();
            Ok(HttpReply {
                status,
                location,
                body,
            })
        })
    });
    match worker.join() {
        Ok(reply) => reply,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// GETs `url`, then each redirect's `Location` (resolved against the URL that sent it), for at
/// most `max_hops` redirects; returns every reply in order, the last one being the first that is
/// not a redirect, or the last allowed hop.
pub fn follow(url: &str, max_hops: usize) -> Vec<HttpReply> {
    let mut current =
        reqwest::Url::parse(url).unwrap_or_else(|err| panic!("not a URL: {url}: {err}"));
    let mut replies = Vec::new();
    loop {
        let reply = get(current.as_str());
        let next = match &reply.location {
            Some(location) if (300..400).contains(&reply.status) => {
                Some(current.join(location).unwrap_or_else(|err| {
                    panic!("{current} redirected to a bad Location {location:?}: {err}")
                }))
            }
            _ => None,
        };
        replies.push(reply);
        match next {
            // `replies.len() - 1` redirects were followed so far.
            Some(next) if replies.len() <= max_hops => current = next,
            _ => return replies,
        }
    }
}
