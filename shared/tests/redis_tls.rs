//! Redis over TLS (`rediss://`) with AUTH through `shared::redis_conn::connect`, in every
//! `REDIS_MODE`: one server, a Redis Cluster (TLS on the client port and the cluster bus) and
//! a Sentinel deployment (TLS to the sentinel and the master, a password on each), each
//! running the project's scripts.
//!
//! Its own test binary, one test, because it points `SSL_CERT_FILE` at a throwaway CA before
//! any thread starts (the redis crate's rustls trusts the system roots, which honour
//! `SSL_CERT_FILE`; that is also how a deployment trusts a private CA). Needs `openssl` and
//! a `redis-server` built with TLS (Debian's is); skipped, saying so, without them.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server started for the test, killed when dropped.
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

fn free_port() -> u16 {
    // Cluster nodes also listen on port + 10000.
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port < 55_000 {
            return port;
        }
    }
}

/// The TLS flags every server of the test takes: the test CA's server certificate, no
/// client certificates required.
fn tls_args(dir: &Path) -> Vec<String> {
    let d = |f: &str| dir.join(f).display().to_string();
    [
        "--tls-cert-file",
        &d("server.crt"),
        "--tls-key-file",
        &d("server.key"),
        "--tls-ca-cert-file",
        &d("ca.crt"),
        "--tls-auth-clients",
        "no",
    ]
    .map(String::from)
    .to_vec()
}

/// Starts `redis-server` with `args` and waits until `port` accepts connections; `None`
/// (skip) when the binary is missing or has no TLS.
fn start(args: &[String], port: u16) -> Option<Server> {
    let child = Command::new("redis-server")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        eprintln!("skipping: no redis-server");
        return None;
    };
    let mut server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.0.try_wait() {
            eprintln!("skipping: redis-server has no TLS support here ({status})");
            return None;
        }
        assert!(
            Instant::now() < deadline,
            "redis-server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(server)
}

/// A TLS-only server with a password, in `dir/<port>`, plus `extra` flags.
fn tls_server(dir: &Path, port: u16, extra: &[&str]) -> Option<Server> {
    let own = dir.join(port.to_string());
    std::fs::create_dir_all(&own).unwrap();
    let mut args: Vec<String> = ["--port", "0", "--tls-port", &port.to_string()]
        .map(String::from)
        .to_vec();
    args.extend(tls_args(dir));
    args.extend(
        [
            "--bind",
            "127.0.0.1",
            "--requirepass",
            "tls-s3cret",
            "--masterauth",
            "tls-s3cret",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &own.display().to_string(),
        ]
        .map(String::from),
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    start(&args, port)
}

/// `redis-cli` over TLS trusting the test CA `ca`, with the servers' password.
fn cli(ca: &str) -> Command {
    let mut cli = Command::new("redis-cli");
    cli.args([
        "--tls",
        "--cacert",
        ca,
        "-a",
        "tls-s3cret",
        "--no-auth-warning",
    ]);
    cli
}

/// Settings from `vars`, as a process of the deployment would load them.
fn settings(vars: &[(&str, &str)]) -> shared::config::Settings {
    shared::config::Settings::load_from(
        None,
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap()
}

/// Runs two of the project's scripts over `conn`: an outcome written through the ledger
/// script for logins in several ledger buckets, and a queue round trip.
async fn run_scripts(conn: shared::redis_conn::RedisConn, label: &str) {
    use shared::ledger::{Ledger, LedgerOutcome, Overwrite};
    use shared::queue::{EnqueueOptions, Queue, QueueConfig, WorkerId};

    let keys = shared::KeySpace::new(format!(
        "test-tls-{label}-{}",
        uuid::Uuid::new_v4().simple()
    ))
    .with_ledger_buckets(std::num::NonZeroU16::new(8).unwrap());
    let ledger = Ledger::new(conn.clone(), &keys);
    let date = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let outcome = LedgerOutcome::Failed {
        flinks_code: None,
        http_status: Some(503),
        message: "bank down".into(),
        attempts: 1,
        at: chrono::Utc::now(),
        reason: None,
    };
    for n in 0..8 {
        let login =
            shared::domain::LoginId::parse(&format!("00000000-0000-4000-8000-{n:012}")).unwrap();
        assert!(ledger
            .record(date, &login, &outcome, Overwrite::AllButRefreshed)
            .await
            .unwrap_or_else(|e| panic!("{label}: ledger script: {e}")));
    }
    assert_eq!(ledger.counts(date).await.unwrap().failed, 8, "{label}");

    let queue: Queue<u32> = Queue::new(conn.clone(), &keys, QueueConfig::new("tls"));
    queue.enqueue(&7, EnqueueOptions::default()).await.unwrap();
    let worker = WorkerId::generate();
    let leased = queue.fetch(&worker, 10).await.unwrap();
    assert_eq!(leased.len(), 1, "{label}");
    assert!(queue.ack(&leased[0].token, &leased[0].id).await.unwrap());
    keys.delete_all(&conn).await.unwrap();
}

#[test]
fn tls_and_auth_work_on_one_server_a_cluster_and_sentinel() {
    let dir = std::env::temp_dir().join(format!("nr-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    if !make_certs(&dir) {
        eprintln!("skipping: openssl could not make test certificates");
        return;
    }
    // One server.
    let port = free_port();
    let Some(_server) = tls_server(&dir, port, &[]) else {
        return;
    };
    // A cluster of three masters, TLS on the bus too.
    let nodes: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut cluster = Vec::new();
    for &node in &nodes {
        let conf = dir.join(format!("nodes-{node}.conf")).display().to_string();
        let flags = [
            "--cluster-enabled",
            "yes",
            "--tls-cluster",
            "yes",
            "--cluster-config-file",
            &conf,
        ];
        let Some(server) = tls_server(&dir, node, &flags) else {
            return;
        };
        cluster.push(server);
    }
    let ca = dir.join("ca.crt").display().to_string();
    let mut create = cli(&ca);
    create
        .args(["--cluster", "create"])
        .args(nodes.iter().map(|p| format!("127.0.0.1:{p}")))
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null());
    assert!(create.status().unwrap().success(), "cluster create");
    let cluster_up = Instant::now() + Duration::from_secs(20);
    while !cli(&ca)
        .args(["-p", &nodes[0].to_string(), "cluster", "info"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
        .unwrap_or(false)
    {
        assert!(Instant::now() < cluster_up, "cluster state not ok");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Sentinel: a master and one sentinel, TLS to both, a password on each.
    let master = free_port();
    let Some(_master) = tls_server(&dir, master, &[]) else {
        return;
    };
    let sentinel = free_port();
    let conf = dir.join("sentinel.conf");
    let mut lines: Vec<String> = vec![
        "port 0".into(),
        format!("tls-port {sentinel}"),
        "bind 127.0.0.1".into(),
        "tls-replication yes".into(),
        "requirepass sentinel-s3cret".into(),
        format!("sentinel monitor m1 127.0.0.1 {master} 1"),
        "sentinel auth-pass m1 tls-s3cret".into(),
        format!("dir {}", dir.display()),
    ];
    for pair in tls_args(&dir).chunks(2) {
        lines.push(format!("{} {}", pair[0].trim_start_matches("--"), pair[1]));
    }
    std::fs::write(&conf, lines.join("\n") + "\n").unwrap();
    let Some(_sentinel) = start(&[conf.display().to_string(), "--sentinel".into()], sentinel)
    else {
        return;
    };
    // Before any other thread exists: trust the throwaway CA.
    std::env::set_var("SSL_CERT_FILE", &ca);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // One server.
        let url = format!("rediss://:tls-s3cret@127.0.0.1:{port}");
        let conn = shared::redis_conn::connect(&settings(&[("REDIS_URL", &url)]).redis)
            .await
            .expect("rediss:// with AUTH");
        run_scripts(conn, "standalone").await;
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

        // The cluster, from its seed nodes.
        let seeds: Vec<String> = nodes
            .iter()
            .map(|p| format!("rediss://:tls-s3cret@127.0.0.1:{p}"))
            .collect();
        let seeds = seeds.join(",");
        let cluster_settings = settings(&[("REDIS_MODE", "cluster"), ("REDIS_URL", &seeds)]);
        let conn = shared::redis_conn::connect(&cluster_settings.redis)
            .await
            .expect("a TLS cluster with AUTH");
        run_scripts(conn, "cluster").await;
        let wrong = seeds.replace("tls-s3cret", "wrong-pw");
        let err = shared::redis_conn::connect(
            &settings(&[("REDIS_MODE", "cluster"), ("REDIS_URL", &wrong)]).redis,
        )
        .await
        .expect_err("a wrong password");
        assert!(!format!("{err} {err:?}").contains("wrong-pw"), "{err:?}");

        // Sentinel: the master it names, over TLS, with both passwords.
        let sentinel_url = format!("rediss://:tls-s3cret@127.0.0.1:{sentinel}");
        let sentinel_vars = [
            ("REDIS_MODE", "sentinel"),
            ("REDIS_URL", sentinel_url.as_str()),
            ("REDIS_SENTINEL_MASTER", "m1"),
            ("REDIS_SENTINEL_PASSWORD", "sentinel-s3cret"),
        ];
        let conn = shared::redis_conn::connect(&settings(&sentinel_vars).redis)
            .await
            .expect("TLS sentinel and master with AUTH");
        run_scripts(conn, "sentinel").await;
        let no_sentinel_password = &sentinel_vars[..3];
        let err = shared::redis_conn::connect(&settings(no_sentinel_password).redis)
            .await
            .expect_err("the sentinel wants its password");
        assert!(!format!("{err} {err:?}").contains("tls-s3cret"), "{err:?}");
    });
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
