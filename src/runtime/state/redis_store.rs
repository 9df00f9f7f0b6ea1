//! The limits in Redis, shared by every instance (`state.backend: redis`).
//!
//! Each key of each limit is one sorted set, `<key_prefix><space>:<sha256(key)>`,
//! whose members are the admitted events scored by their wall-clock time in
//! milliseconds. One Lua script ([`ADMIT`]) prunes every set to its window,
//! refuses if any is full, and otherwise adds the event to each and sets its expiry
//! to the window: Redis runs a script atomically, so instances admitting at the same
//! moment cannot both take the last slot, and a key nobody uses disappears on its
//! own. A sorted set holds at most `max` members (refused events are not added), so
//! memory per key is bounded; the number of keys is bounded by the windows.
//!
//! Caller numbers and account ids are hashed before they become key names, so
//! `SCAN` or `MONITOR` on the Redis server does not list them in clear (a hash of a
//! phone number is pseudonymous, not secret: protect the Redis server anyway).
//!
//! One multiplexed connection is shared by every call; when it breaks, the next
//! check connects again. Every operation, connecting included, is bounded by
//! `state.timeout`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::{Limit, StateConfig, StateError, Verdict};

/// KEYS: one sorted set per limit. ARGV[1]: now (ms); ARGV[2]: the event's unique
/// member; then per key its max and window (ms). Returns 0 when admitted, else
/// the (1-based) index of the first limit that is full.
const ADMIT: &str = r"
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local max = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= max then
    return i
  end
end
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[2 + 2 * i])
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('PEXPIRE', key, window)
end
return 0
";

pub struct RedisStore {
    client: redis::Client,
    connection: Mutex<Option<MultiplexedConnection>>,
    prefix: String,
    timeout: Duration,
    script: redis::Script,
    /// Makes each event's member unique: this process's nonce and a sequence.
    nonce: u64,
    seq: AtomicU64,
}

impl RedisStore {
    pub fn new(cfg: &StateConfig) -> Result<Self, StateError> {
        Ok(RedisStore {
            client: redis::Client::open(cfg.url.as_str())?,
            connection: Mutex::new(None),
            prefix: cfg.key_prefix.clone(),
            timeout: cfg.timeout,
            script: redis::Script::new(ADMIT),
            nonce: rand::random(),
            seq: AtomicU64::new(0),
        })
    }

    /// The Redis key of `limit`.
    fn key(&self, limit: &Limit<'_>) -> String {
        let digest = Sha256::digest(limit.key.as_bytes());
        let mut hex = String::with_capacity(32);
        for b in &digest[..16] {
            hex.push_str(&format!("{b:02x}"));
        }
        format!("{}{}:{hex}", self.prefix, limit.space.as_str())
    }

    pub async fn admit(
        &self,
        wall: SystemTime,
        limits: &[Limit<'_>],
    ) -> Result<Verdict, StateError> {
        let now_ms = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let member = format!(
            "{now_ms}-{:x}-{}",
            self.nonce,
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(now_ms).arg(member);
        for l in limits {
            invocation
                .key(self.key(l))
                .arg(l.max)
                .arg(l.window.as_millis().max(1) as u64);
        }
        let answer: i64 = self
            .bounded(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        match usize::try_from(answer) {
            Ok(0) => Ok(Verdict::Admitted),
            Ok(i) if i <= limits.len() => Ok(Verdict::Refused(i - 1)),
            _ => Err(StateError::Protocol(format!(
                "admit script returned {answer}"
            ))),
        }
    }

    pub async fn ping(&self) -> Result<(), StateError> {
        let pong: String = self
            .bounded(|mut conn| async move { redis::cmd("PING").query_async(&mut conn).await })
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StateError::Protocol(format!("PING answered {pong:?}")))
        }
    }

    /// Delete every key under the prefix (the demo's reset).
    pub async fn clear(&self) -> Result<(), StateError> {
        let pattern = format!("{}*", self.prefix);
        self.bounded(|mut conn| async move {
            let mut keys: Vec<String> = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await?;
                keys.extend(batch);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            if !keys.is_empty() {
                redis::cmd("DEL")
                    .arg(&keys)
                    .query_async::<()>(&mut conn)
                    .await?;
            }
            Ok(())
        })
        .await
    }

    /// Run `op` on the shared connection (connecting first if there is none),
    /// all within `state.timeout`; a failure drops the connection so the next
    /// operation connects again.
    async fn bounded<T, F, Fut>(&self, op: F) -> Result<T, StateError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let run = async {
            let conn = {
                let mut slot = self.connection.lock().await;
                match slot.as_ref() {
                    Some(c) => c.clone(),
                    None => {
                        let c = self.client.get_multiplexed_async_connection().await?;
                        *slot = Some(c.clone());
                        c
                    }
                }
            };
            op(conn).await
        };
        let result = match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => StateError::Redis(e),
            Err(_) => StateError::Timeout(self.timeout),
        };
        *self.connection.lock().await = None;
        Err(result)
    }
}
