//! Redis going away under a running worker: the worker retries and carries on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use shared::queue::{EnqueueOptions, Queue, RedisBackend};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::apalis_worker::Runs;
use super::{eventually, redis_url, Ping, TestNs};

/// A TCP proxy to Redis that can cut every connection and refuse new ones for a while.
struct Proxy {
    url: String,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start() -> Self {
        let upstream = url::Url::parse(&redis_url()).unwrap();
        let target = format!(
            "{}:{}",
            upstream.host_str().unwrap(),
            upstream.port().unwrap_or(6379)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut url = upstream.clone();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(listener.local_addr().unwrap().port()))
            .unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused/reset
                }
                let target = target.clone();
                conns2.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Self {
            url: url.to_string(),
            up,
            conns,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

async fn steady(job: Ping, runs: Data<Runs>) -> Result<(), BoxDynError> {
    runs.record(job.n);
    tokio::time::sleep(Duration::from_millis(30)).await;
    Ok(())
}

#[tokio::test]
async fn redis_going_away_for_two_seconds_does_not_stop_the_worker() {
    let t = TestNs::new("outage").await;
    let mut config = t.config("q");
    config.lease = Duration::from_secs(10); // the outage must not expire leases here
    let q: Queue<Ping> = t.queue(config.clone());
    q.enqueue_many((0..40).map(|n| (Ping { n }, EnqueueOptions::default())))
        .await
        .unwrap();

    let proxy = Proxy::start().await;
    let via_proxy: Queue<Ping> = Queue::connect(&proxy.url, &t.keys, config).await.unwrap();
    let runs = Runs::default();
    let stop = CancellationToken::new();
    let worker = WorkerBuilder::new("outage")
        .backend(RedisBackend::new(via_proxy))
        .data(runs.clone())
        .layer(tower::limit::ConcurrencyLimitLayer::new(1))
        .build(steady);
    let token = stop.clone();
    let handle = tokio::spawn(worker.run_until(async move {
        token.cancelled().await;
        Ok::<(), std::io::Error>(())
    }));

    assert!(eventually(Duration::from_secs(5), || async { runs.get().len() >= 5 }).await);
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!handle.is_finished(), "the worker survived the outage");
    let during = runs.get().len();
    assert!(during < 40, "the outage happened mid-run ({during} done)");
    proxy.restore();

    let done = eventually(Duration::from_secs(20), || async {
        q.stats().await.unwrap().succeeded_total == 40
    })
    .await;
    assert!(!handle.is_finished());
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert!(done, "{:?}", q.stats().await.unwrap());
    assert_eq!(runs.get().len(), 40);
}
