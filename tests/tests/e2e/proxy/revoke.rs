//! A grant revoked while an answer streams through the proxy: with `recheck_ms = 0` the proxy
//! checks the grant before every chunk, so the chunk after the revocation never reaches the
//! agent and its stream ends in an error, not in a complete answer.

use latchkey_tests::stderr;

use super::{client, runtime, world_with, FIRST_EVENT, LAST_EVENT, SECOND_EVENT};

/// Reads from `response` until it holds at least `want` bytes.
async fn read_at_least(response: &mut reqwest::Response, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < want {
        let chunk = response.chunk().await.unwrap().expect("more of the stream");
        got.extend_from_slice(&chunk);
    }
    got
}

#[test]
fn a_grant_revoked_mid_stream_cuts_the_stream() {
    let w = world_with("[proxy]\nrecheck_ms = 0\n\n");
    let (grant, id) = w.grant(&["--service", "openai", "--ops", "proxy"]);
    let http = client();
    runtime().block_on(async {
        // Checked before every chunk, a stream under a good grant passes whole.
        let mut response = http
            .get(w.proxy.url("/openai/v1/events"))
            .bearer_auth(&grant)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            read_at_least(&mut response, FIRST_EVENT.len()).await,
            FIRST_EVENT
        );
        w.upstream.shared.release.notify_one();
        let mut rest = Vec::new();
        while let Some(chunk) = response.chunk().await.unwrap() {
            rest.extend_from_slice(&chunk);
        }
        assert_eq!(rest, [SECOND_EVENT, LAST_EVENT].concat());

        // Revoked after the first event: the next one is not passed on.
        let mut response = http
            .get(w.proxy.url("/openai/v1/events"))
            .bearer_auth(&grant)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            read_at_least(&mut response, FIRST_EVENT.len()).await,
            FIRST_EVENT
        );
        let out = w.env.cli(&w.daemon.socket, &["grant", "revoke", &id], "");
        assert!(out.status.success(), "{}", stderr(&out));
        w.upstream.shared.release.notify_one();
        let mut after = Vec::new();
        let ended = loop {
            match response.chunk().await {
                Ok(Some(chunk)) => after.extend_from_slice(&chunk),
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            }
        };
        assert!(
            ended.is_err(),
            "the stream ended cleanly after the revocation; it got {:?}",
            String::from_utf8_lossy(&after)
        );
        assert!(after.is_empty(), "{:?}", String::from_utf8_lossy(&after));
    });
    w.proxy.wait_for_log("stream cut");
    w.assert_logs_clean(&grant);
}
