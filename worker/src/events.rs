//! The events side of a worker pod: caps the events stream (every pod, harmless when
//! several do) and, with `WEBHOOK_URL` set, runs the webhook delivery loop (one pod at a time
//! sends, by lease; see [`shared::events::webhook`]).

use std::time::Duration;

use shared::config::Settings;
use shared::events::webhook::{Delivery, WebhookClient, WebhookConfig};
use shared::events::Events;
use shared::keys::KeySpace;
use shared::queue::WorkerId;
use shared::redis_conn::RedisConn;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the stream is trimmed to `EVENTS_STREAM_MAXLEN`.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(30);

/// Starts the trimmer and, when configured, the webhook delivery; both stop on `shutdown`.
pub fn spawn(
    settings: &Settings,
    conn: RedisConn,
    keys: &KeySpace,
    worker_id: &WorkerId,
    shutdown: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let webhook = WebhookConfig::from_settings(settings);
    let delivery = match webhook {
        Some(config) => {
            tracing::info!(
                url = %shared::config::redact_url(&config.url),
                "webhook delivery of outcome events on"
            );
            let client = WebhookClient::new(config)?;
            Some(Delivery::new(
                conn.clone(),
                keys,
                client,
                worker_id.as_str(),
            ))
        }
        None => None,
    };
    let trimmer = trim_loop(
        Events::new(conn.clone(), keys),
        settings.events_stream_maxlen,
        delivery.is_some(),
        shutdown.clone(),
    );
    Ok(tokio::spawn(async move {
        match delivery {
            Some(delivery) => {
                tokio::join!(trimmer, delivery.run(shutdown));
            }
            None => trimmer.await,
        }
    }))
}

/// Trims at start and every [`TRIM_INTERVAL`], keeping what the webhook has not delivered
/// when it delivers. Errors are logged and retried next tick.
async fn trim_loop(events: Events, max_len: u64, webhook: bool, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TRIM_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = events.trim(max_len, webhook).await {
            tracing::warn!(error.message = %e, "events trim failed; retrying");
        }
    }
}
