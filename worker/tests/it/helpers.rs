//! Test support: locate (and build if needed) the workspace's binaries, run them with a
//! namespace of their own on the real Redis, and clean up processes and keys afterwards.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;

use redis::aio::ConnectionManager;
use shared::KeySpace;

static BUILD: Once = Once::new();

/// The path of a workspace binary. `cargo test --workspace` builds every binary; when only
/// this crate's tests run, the missing ones are built once here.
pub(crate) fn binary(name: &str) -> PathBuf {
    if name == "worker" {
        return PathBuf::from(env!("CARGO_BIN_EXE_worker"));
    }
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_worker"))
        .parent()
        .expect("binaries live in a directory")
        .to_path_buf();
    let path = dir.join(name);
    BUILD.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "producer",
                "-p",
                "flinks-sim",
                "--bins",
            ])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building producer and flinks-sim failed");
    });
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The Redis tests talk to.
pub(crate) fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// One test's environment: a namespace on the real Redis, and the variables every process
/// of the test gets.
pub(crate) struct Stack {
    pub(crate) namespace: String,
    pub(crate) conn: ConnectionManager,
    pub(crate) keys: KeySpace,
    pub(crate) env: Vec<(String, String)>,
    children: Vec<(Child, PathBuf)>,
}

impl Stack {
    pub(crate) async fn new(test: &str, flinks_base_url: &str) -> Self {
        let namespace = format!("test-{test}-{}", uuid::Uuid::new_v4().simple());
        let client = redis::Client::open(redis_url()).unwrap();
        let conn = ConnectionManager::new(client)
            .await
            .expect("Redis answers at REDIS_URL");
        let env = vec![
            ("REDIS_URL".to_string(), redis_url()),
            ("REFRESH_NAMESPACE".to_string(), namespace.clone()),
            ("FLINKS_BASE_URL".to_string(), flinks_base_url.to_string()),
            ("METRICS_ADDR".to_string(), "127.0.0.1:0".to_string()),
            ("LOG_FORMAT".to_string(), "json".to_string()),
            ("RUST_LOG".to_string(), "warn".to_string()),
        ];
        Self {
            keys: KeySpace::new(namespace.clone()),
            namespace,
            conn,
            env,
            children: Vec::new(),
        }
    }

    /// Sets (or overrides) one variable for the processes started afterwards.
    pub(crate) fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Runs `producer ARGS` to completion.
    pub(crate) fn producer(&self, args: &[&str]) -> Output {
        Command::new(binary("producer"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("producer runs")
    }

    /// Starts a `worker` process, its log in a file of its own (a pipe nobody reads
    /// would block it once full); it is killed when the stack drops.
    pub(crate) fn spawn_worker(&mut self, args: &[&str]) -> u32 {
        let log = std::env::temp_dir().join(format!(
            "{}-worker-{}.log",
            self.namespace,
            self.children.len()
        ));
        let child = Command::new(binary("worker"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("worker starts");
        let pid = child.id();
        self.children.push((child, log));
        pid
    }

    /// Stops every worker with SIGTERM and returns their exit statuses and logs.
    pub(crate) fn terminate_workers(&mut self) -> Vec<(std::process::ExitStatus, String)> {
        let mut out = Vec::new();
        for (child, _) in &self.children {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
        for (mut child, log) in self.children.drain(..) {
            let status = child.wait().expect("worker exits");
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = std::fs::remove_file(&log);
            out.push((status, text));
        }
        out
    }

    /// Deletes every key of this test's namespace.
    pub(crate) async fn cleanup(&self) {
        let mut conn = self.conn.clone();
        let ns = &self.namespace;
        for pattern in [format!("{ns}:*"), format!("{{{ns}:*")] {
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                    .expect("SCAN during cleanup");
                if !keys.is_empty() {
                    let _: () = redis::cmd("UNLINK")
                        .arg(&keys)
                        .query_async(&mut conn)
                        .await
                        .expect("UNLINK during cleanup");
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for (child, _) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
