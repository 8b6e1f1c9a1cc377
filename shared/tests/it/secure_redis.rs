//! Redis with AUTH: the one connect path (`shared::redis_conn::connect`) works
//! against a password-protected server, the queue runs on it, and a wrong password fails
//! with an error that names the server but not the password.

use serde::{Deserialize, Serialize};
use shared::config::Settings;
use shared::queue::{EnqueueOptions, Queue, QueueConfig, WorkerId};
use shared::KeySpace;

use crate::own_redis::{free_port, OwnRedis};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    n: u32,
}

fn settings_with(url: &str) -> Settings {
    Settings::load_from(None, [("REDIS_URL".to_string(), url.to_string())]).unwrap()
}

#[tokio::test]
async fn a_password_protected_redis_runs_the_queue_and_a_wrong_password_is_named_without_it() {
    let dir = tempdir("auth");
    let port = free_port();
    let _server = OwnRedis::start(port, &["--requirepass", "s3cret-pw"], &dir);

    // Arrange: connect through the settings path, password in the URL.
    let settings = settings_with(&format!("redis://:s3cret-pw@127.0.0.1:{port}"));
    let conn = shared::redis_conn::connect(&settings.redis)
        .await
        .expect("AUTH with the right password");
    let keys = KeySpace::new(format!("test-auth-{}", uuid::Uuid::new_v4().simple()));
    let queue: Queue<Job> = Queue::new(conn, &keys, QueueConfig::new("secure"));
    let worker = WorkerId::generate();

    // Act: a queue round trip.
    queue
        .enqueue(&Job { n: 7 }, EnqueueOptions::default())
        .await
        .unwrap();
    let leased = queue.fetch(&worker, 10).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].job, Job { n: 7 });
    assert!(queue.ack(&leased[0].token, &leased[0].id).await.unwrap());
    assert!(queue.fetch(&worker, 10).await.unwrap().is_empty());

    // The queue's own connect helper takes the same path.
    shared::queue::connect(&format!("redis://:s3cret-pw@127.0.0.1:{port}"))
        .await
        .expect("queue::connect with AUTH");

    // Assert: wrong or missing passwords fail, naming the URL without the password.
    for url in [
        format!("redis://:wrong-pw@127.0.0.1:{port}"),
        format!("redis://127.0.0.1:{port}"),
    ] {
        let err = shared::redis_conn::connect(&settings_with(&url).redis)
            .await
            .expect_err("must not authenticate");
        let msg = err.to_string();
        assert!(msg.contains("Redis unreachable at redis://"), "{msg}");
        assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
        for leaked in [msg.clone(), format!("{err:?}")] {
            assert!(!leaked.contains("wrong-pw"), "{leaked}");
            assert!(!leaked.contains("s3cret-pw"), "{leaked}");
        }
    }
    let err = shared::queue::connect(&format!("redis://:wrong-pw@127.0.0.1:{port}"))
        .await
        .expect_err("must not authenticate");
    assert!(
        err.to_string()
            .contains(&format!("redis://:***@127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!format!("{err:?}").contains("wrong-pw"));
}

pub(crate) fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nr-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
