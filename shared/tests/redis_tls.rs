//! Redis over TLS (`rediss://`) with AUTH through `shared::redis_conn::connect`.
//!
//! Its own test binary because it points `SSL_CERT_FILE` at a throwaway CA before any
//! thread starts (the redis crate's rustls trusts the system roots, which honour
//! `SSL_CERT_FILE`; that is also how a deployment trusts a private CA). Needs `openssl` and
//! a `redis-server` built with TLS (Debian's is); skipped, saying so, without them.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sh(dir: &Path, args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A CA and a server certificate for 127.0.0.1, signed by it.
fn make_certs(dir: &Path) -> bool {
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    sh(
        dir,
        &[
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=nightly-refresh test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    ) && sh(
        dir,
        &[
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    ) && sh(
        dir,
        &[
            "openssl",
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    )
}

#[test]
fn rediss_with_a_password_connects_and_runs_commands() {
    let dir = std::env::temp_dir().join(format!("nr-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    if !make_certs(&dir) {
        eprintln!("skipping: openssl could not make test certificates");
        return;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = |f: &str| dir.join(f).display().to_string();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            &d("server.crt"),
            "--tls-key-file",
            &d("server.key"),
        ])
        .args([
            "--tls-ca-cert-file",
            &d("ca.crt"),
            "--tls-auth-clients",
            "no",
        ])
        .args([
            "--requirepass",
            "tls-s3cret",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--dir", &d("")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        eprintln!("skipping: no redis-server");
        return;
    };
    let mut server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.0.try_wait() {
            eprintln!("skipping: redis-server has no TLS support here ({status})");
            return;
        }
        assert!(Instant::now() < deadline, "redis-server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Before any other thread exists: trust the throwaway CA.
    std::env::set_var("SSL_CERT_FILE", d("ca.crt"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("rediss://:tls-s3cret@127.0.0.1:{port}");
        let settings =
            shared::config::Settings::load_from(None, [("REDIS_URL".to_string(), url.clone())])
                .unwrap();
        let mut conn = shared::redis_conn::connect(&settings.redis)
            .await
            .expect("rediss:// with AUTH");
        let _: () = redis::cmd("SET")
            .arg("tls-probe")
            .arg("ok")
            .query_async(&mut conn)
            .await
            .unwrap();
        let got: String = redis::cmd("GET")
            .arg("tls-probe")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(got, "ok");

        // Plain redis:// to a TLS port fails, naming the URL without the password.
        let plain = url.replace("rediss://", "redis://");
        let err = shared::queue::connect(&plain)
            .await
            .expect_err("TLS port, plain client");
        assert!(
            err.to_string()
                .contains(&format!("redis://:***@127.0.0.1:{port}")),
            "{err}"
        );
        assert!(!format!("{err:?}").contains("tls-s3cret"));
    });
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
