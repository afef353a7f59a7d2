//! Many clients at once against the keychain-backed daemon.

use latchkey_client::Client;
use latchkey_proto::BundleInput;
use latchkey_tests::TestEnv;

const CLIENTS: usize = 500;

#[test]
fn five_hundred_concurrent_clients_are_all_served() {
    let env = TestEnv::with_keyring();
    let daemon = env.start_daemon(&[]);
    let socket = daemon.socket.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut setup = Client::connect(&socket).await.unwrap();
        setup
            .set(
                "shared",
                None,
                BundleInput::ApiKey {
                    key: "shared-secret".into(),
                },
            )
            .await
            .unwrap();
        // Every client connects before any of them sends, so all 500 are open at once.
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CLIENTS));
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let socket = socket.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    let mut client = Client::connect(&socket).await.expect("connect");
                    barrier.wait().await;
                    let shared = client.get("shared", None, &[]).await.expect("get shared");
                    assert_eq!(shared.secret.expose(), "shared-secret");
                    let account = format!("client-{i}");
                    let key = format!("key-{i}");
                    client
                        .set(
                            "many",
                            Some(&account),
                            BundleInput::ApiKey {
                                key: key.as_str().into(),
                            },
                        )
                        .await
                        .expect("set own");
                    let own = client
                        .get("many", Some(&account), &[])
                        .await
                        .expect("get own");
                    assert_eq!(own.secret.expose(), key);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let entries = setup.list().await.unwrap();
        assert_eq!(entries.len(), CLIENTS + 1);
    });
    let (exit, _) = daemon.stop();
    assert!(exit.success());
}
