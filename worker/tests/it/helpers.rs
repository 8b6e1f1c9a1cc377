//! Test support: locate (and build if needed) the workspace's binaries, run them with a
//! namespace of their own on the real Redis, and clean up processes and keys afterwards.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;

use shared::redis_conn::RedisConn;
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
    pub(crate) conn: RedisConn,
    pub(crate) keys: KeySpace,
    pub(crate) env: Vec<(String, String)>,
    children: Vec<(Child, PathBuf)>,
    /// Long-running `producer` processes (`producer schedule`), apart from the workers.
    daemons: Vec<(Child, PathBuf)>,
}

impl Stack {
    pub(crate) async fn new(test: &str, flinks_base_url: &str) -> Self {
        Self::on_redis(test, flinks_base_url, &redis_url()).await
    }

    /// A stack on the Redis at `redis_url` (e.g. a test's own [`RedisServer`]).
    pub(crate) async fn on_redis(test: &str, flinks_base_url: &str, redis_url: &str) -> Self {
        let namespace = format!("test-{test}-{}", uuid::Uuid::new_v4().simple());
        let conn = shared::redis_conn::connect_in_env_mode(redis_url)
            .await
            .expect("Redis answers at REDIS_URL");
        let env = vec![
            ("REDIS_URL".to_string(), redis_url.to_string()),
            ("REFRESH_NAMESPACE".to_string(), namespace.clone()),
            ("FLINKS_BASE_URL".to_string(), flinks_base_url.to_string()),
            ("METRICS_ADDR".to_string(), "127.0.0.1:0".to_string()),
            ("LOG_FORMAT".to_string(), "json".to_string()),
            ("RUST_LOG".to_string(), "warn".to_string()),
            // A day from each run: a test that happens to run just before ROUTINE_AT must
            // not see its jobs pass the default deadline (the next firing) mid-test.
            ("ROUTINE_DEADLINE".to_string(), "24h".to_string()),
        ];
        Self {
            keys: shared::config::key_space_in_env(&namespace),
            namespace,
            conn,
            env,
            children: Vec::new(),
            daemons: Vec::new(),
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

    /// Sends `signal` (`"KILL"`, `"TERM"`) to the worker with process id `pid`.
    pub(crate) fn signal_worker(&self, pid: u32, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// Waits up to `timeout` for the worker `pid` to exit; returns its status and log.
    /// Panics if it is still running then.
    pub(crate) async fn wait_worker(
        &mut self,
        pid: u32,
        timeout: std::time::Duration,
    ) -> (std::process::ExitStatus, String) {
        let index = self
            .children
            .iter()
            .position(|(child, _)| child.id() == pid)
            .expect("a worker of this stack");
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.children[index].0.try_wait().expect("try_wait") {
                let (_, log) = self.children.remove(index);
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let _ = std::fs::remove_file(&log);
                return (status, text);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "worker {pid} still running after {timeout:?}: {}",
                self.worker_log(pid)
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// True while the worker `pid` runs.
    pub(crate) fn worker_running(&mut self, pid: u32) -> bool {
        self.children
            .iter_mut()
            .find(|(child, _)| child.id() == pid)
            .is_some_and(|(child, _)| child.try_wait().expect("try_wait").is_none())
    }

    /// The log of the worker `pid` so far.
    pub(crate) fn worker_log(&self, pid: u32) -> String {
        self.children
            .iter()
            .find(|(child, _)| child.id() == pid)
            .map(|(_, log)| std::fs::read_to_string(log).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Starts a long-running `producer ARGS` (e.g. `schedule`), its log in a file of its
    /// own; it is killed when the stack drops, or stopped by [`Stack::terminate_producers`].
    pub(crate) fn spawn_producer(&mut self, args: &[&str]) -> u32 {
        let log = std::env::temp_dir().join(format!(
            "{}-producer-{}.log",
            self.namespace,
            self.daemons.len()
        ));
        let child = Command::new(binary("producer"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("producer starts");
        let pid = child.id();
        self.daemons.push((child, log));
        pid
    }

    /// Stops every process of [`Stack::spawn_producer`] with SIGTERM and returns their
    /// exit statuses and logs.
    pub(crate) fn terminate_producers(&mut self) -> Vec<(std::process::ExitStatus, String)> {
        for (child, _) in &self.daemons {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
        self.daemons
            .drain(..)
            .map(|(mut child, log)| {
                let status = child.wait().expect("producer exits");
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let _ = std::fs::remove_file(&log);
                (status, text)
            })
            .collect()
    }

    /// Imports `logins`, all active.
    pub(crate) fn import_logins(&self, logins: &[shared::LoginId]) {
        let csv = std::env::temp_dir().join(format!("{}-logins.csv", self.namespace));
        let mut text = String::from("LoginId,Active\n");
        for login in logins {
            text.push_str(&format!("{},true\n", login.as_str()));
        }
        std::fs::write(&csv, text).unwrap();
        let import = self.producer(&["logins", "import", csv.to_str().unwrap()]);
        let _ = std::fs::remove_file(&csv);
        assert!(
            import.status.success(),
            "import: {}",
            String::from_utf8_lossy(&import.stderr)
        );
    }

    /// Imports `logins` (all active) and enqueues the routine for `date`.
    pub(crate) fn import_and_run(&self, logins: &[shared::LoginId], date: &str) {
        self.import_logins(logins);
        let run = self.producer(&["routine", "run", "--date", date]);
        assert!(
            run.status.success(),
            "routine run: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }

    /// The ledger of this stack.
    pub(crate) fn ledger(&self) -> shared::ledger::Ledger {
        shared::ledger::Ledger::new(self.conn.clone(), &self.keys)
    }

    /// Waits until `want` logins have a final outcome for `date`; panics after `timeout`.
    pub(crate) async fn wait_done(&self, date: &str, want: u64, timeout: std::time::Duration) {
        let date = parse_date(date);
        let ledger = self.ledger();
        let started = std::time::Instant::now();
        loop {
            // A Redis restart in the test makes a read fail for a moment: retry.
            if let Ok(counts) = ledger.counts(date).await {
                if counts.done() >= want {
                    return;
                }
                assert!(
                    started.elapsed() < timeout,
                    "only {} of {want} logins done after {timeout:?}",
                    counts.done()
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// A handle on one of the routine's queues (`authorize`, `detail`) for inspection.
    pub(crate) fn queue<T>(&self, name: &str) -> shared::queue::Queue<T> {
        shared::queue::Queue::new(
            self.conn.clone(),
            &self.keys,
            shared::queue::QueueConfig::new(name),
        )
    }

    /// Counts and lifetime counters of a queue.
    pub(crate) async fn queue_stats(&self, name: &str) -> shared::queue::QueueStats {
        self.queue::<()>(name).stats().await.expect("queue stats")
    }

    /// Entries in the results streams.
    pub(crate) async fn results_len(&self) -> u64 {
        let mut conn = self.conn.clone();
        let mut len = 0;
        for bucket in self.keys.all_ledger_buckets() {
            len += redis::cmd("XLEN")
                .arg(self.keys.results_stream(bucket))
                .query_async::<u64>(&mut conn)
                .await
                .expect("XLEN");
        }
        len
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
        for (child, log) in &mut self.daemons {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(log);
        }
        for (child, _) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `YYYY-MM-DD`.
pub(crate) fn parse_date(date: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("a date")
}

/// `n` fresh random LoginIds.
pub(crate) fn new_logins(n: usize) -> Vec<shared::LoginId> {
    (0..n)
        .map(|_| shared::LoginId::parse(&uuid::Uuid::new_v4().to_string()).unwrap())
        .collect()
}

/// A TCP port nobody listens on right now (bound and released; good enough for tests).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind port 0")
        .port()
}

/// `GET http://addr/path` → status code, or `None` when nothing answers.
pub(crate) async fn http_status(addr: &str, path: &str) -> Option<u16> {
    reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .timeout(std::time::Duration::from_secs(3))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// A `redis-server` of the test's own (AOF, fsync every second) on a free port, in a
/// temporary directory: it can be killed and restarted without touching the shared Redis.
pub(crate) struct RedisServer {
    pub(crate) port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one and waits until it answers PING.
    pub(crate) async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("nr-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
        };
        server.restart().await;
        server
    }

    /// `redis://127.0.0.1:PORT`
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server with SIGKILL (no shutdown save: only the AOF survives).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and directory; waits for PING.
    pub(crate) async fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--dir",
                self.dir.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (is it installed?)");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        for _ in 0..200 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                let pong: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
                if pong.is_ok() {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {} did not answer", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
