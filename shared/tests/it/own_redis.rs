//! A private `redis-server` child process on a free port, for tests that need a server
//! configured differently from the shared one (a password, TLS). Killed on drop.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`, killed (and reaped) when dropped.
pub(crate) struct OwnRedis {
    child: Child,
}

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl OwnRedis {
    /// Starts `redis-server` with no persistence on `port` plus `extra` arguments, and waits
    /// until it accepts TCP connections.
    pub(crate) fn start(port: u16, extra: &[&str], dir: &Path) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--dir", dir.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        let mut this = Self { child };
        this.wait_listening(port);
        this
    }

    /// A plain server (no password, no TLS) in a fresh temporary directory, and a
    /// standalone connection to it.
    pub(crate) async fn plain(tag: &str) -> (Self, shared::redis_conn::RedisConn) {
        let dir = crate::secure_redis::tempdir(tag);
        let port = free_port();
        let server = Self::start(port, &[], &dir);
        let conn = shared::redis_conn::connect_url(&format!("redis://127.0.0.1:{port}"))
            .await
            .expect("the private redis-server answers");
        (server, conn)
    }

    fn wait_listening(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("redis-server exited early: {status}");
            }
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
