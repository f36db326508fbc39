//! Creating what the cluster keeps in JetStream: the key-value buckets (nick claims,
//! accounts) and the history stream.
//!
//! Each is created with three replicas first, which a NATS cluster of three or more
//! servers with JetStream accepts: it then survives one server's loss (a majority of the
//! replicas stays). A single server (or a cluster that cannot place three) refuses, and
//! it is created with one replica: it lives on one server and is unavailable while that
//! server is. An existing bucket or stream is used as it is.
//!
//! Buckets are created as their streams directly (what `create_key_value` makes, without
//! its account query, whose answer from servers before 2.10 the client cannot read).

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

/// Replicas tried first; then one.
const REPLICAS: usize = 3;

/// Creates the stream of `cfg` with [`REPLICAS`] replicas, or with one when the servers
/// refuse; returns the replicas it has.
async fn create(
    js: &jetstream::Context,
    mut cfg: stream::Config,
) -> Result<usize, async_nats::Error> {
    cfg.num_replicas = REPLICAS;
    match js.get_or_create_stream(cfg.clone()).await {
        Ok(mut s) => Ok(s.info().await.map_or(REPLICAS, |i| i.config.num_replicas)),
        Err(e) => {
            tracing::debug!(error = %e, stream = cfg.name, "three replicas refused; one");
            cfg.num_replicas = 1;
            js.get_or_create_stream(cfg).await?;
            Ok(1)
        }
    }
}

/// Opens key-value bucket `bucket` (keeping one value per key), creating it if needed.
///
/// # Errors
/// JetStream is not enabled or does not answer.
pub async fn bucket(js: &jetstream::Context, bucket: &str) -> Result<kv::Store, async_nats::Error> {
    if let Ok(s) = js.get_key_value(bucket).await {
        return Ok(s);
    }
    let replicas = create(
        js,
        stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            allow_rollup: true,
            deny_delete: true,
            deny_purge: false,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        },
    )
    .await?;
    tracing::info!(bucket, replicas, "chat cluster: key-value bucket created");
    Ok(js.get_key_value(bucket).await?)
}

/// Opens the history stream `name` on `subjects`, creating it with these limits
/// (`max_days` 0: no age limit; `max_messages` 0: none kept, so one).
///
/// # Errors
/// JetStream is not enabled or does not answer.
pub async fn history_stream(
    js: &jetstream::Context,
    name: &str,
    subject: &str,
    max_days: u32,
    max_messages: usize,
) -> Result<stream::Stream, async_nats::Error> {
    if let Ok(s) = js.get_stream(name).await {
        return Ok(s);
    }
    let replicas = create(
        js,
        stream::Config {
            name: name.to_owned(),
            subjects: vec![subject.to_owned()],
            max_age: Duration::from_secs(u64::from(max_days) * 86_400),
            max_messages: i64::try_from(max_messages.max(1)).unwrap_or(i64::MAX),
            discard: stream::DiscardPolicy::Old,
            storage: stream::StorageType::File,
            ..Default::default()
        },
    )
    .await?;
    tracing::info!(
        stream = name,
        replicas,
        "chat cluster: history stream created"
    );
    Ok(js.get_stream(name).await?)
}
