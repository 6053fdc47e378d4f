//! Client-side rate limit for API writes (`--kube-api-qps`, `--kube-api-burst`): a token bucket
//! with reservations, so waiters are served in arrival order and never spin.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use crate::leadership::lease::Fence;

pub struct WriteLimiter {
    bucket: Option<Mutex<TokenBucket>>,
    fence: Arc<Fence>,
}

/// The write was not sent: this manager is not (or no longer surely) the leader, or it is
/// shutting down (`leader.rs`).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("not sent: this manager may no longer write (not the leader, or shutting down)")]
pub struct Fenced;

impl WriteLimiter {
    /// `qps <= 0` (or not finite) disables the limit.
    pub fn new(qps: f64, burst: u32, fence: Arc<Fence>) -> Self {
        let bucket = (qps.is_finite() && qps > 0.0)
            .then(|| Mutex::new(TokenBucket::new(qps, burst.max(1), Instant::now())));
        Self { bucket, fence }
    }

    pub fn unlimited() -> Self {
        Self {
            bucket: None,
            fence: Fence::open(),
        }
    }

    /// Takes one token if one is there now and the fence allows a write; never waits. Always
    /// `true` when unlimited and open.
    pub fn try_acquire(&self) -> bool {
        if !self.fence.allows() {
            return false;
        }
        let Some(bucket) = &self.bucket else {
            return true;
        };
        bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_take(Instant::now())
    }

    /// How many writes may go out now without waiting (`usize::MAX` when unlimited). A caller
    /// with many writes to make sends this many now and the rest later, instead of holding its
    /// reconcile while it waits for the budget.
    pub fn available(&self) -> usize {
        let Some(bucket) = &self.bucket else {
            return usize::MAX;
        };
        bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .whole_tokens(Instant::now())
    }

    /// Waits until one write may go out; the fence is asked last, right before the request.
    pub async fn acquire(&self) -> Result<(), Fenced> {
        if let Some(bucket) = &self.bucket {
            let wait = bucket
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .reserve(Instant::now());
            if !wait.is_zero() {
                tracing::debug!(wait_ms = wait.as_millis() as u64, "write rate limited");
                tokio::time::sleep(wait).await;
            }
        }
        if self.fence.allows() {
            Ok(())
        } else {
            Err(Fenced)
        }
    }
}

#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    capacity: f64,
    /// May go negative: that many tokens are reserved by waiters.
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: f64, burst: u32, now: Instant) -> Self {
        let capacity = f64::from(burst);
        Self {
            rate,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
    }

    /// Takes one token if a whole one is available now (nothing is reserved otherwise).
    fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The whole tokens there are now (none while waiters hold reservations).
    fn whole_tokens(&mut self, now: Instant) -> usize {
        self.refill(now);
        // Truncation is the point: a token is whole or not there; the bucket holds at most
        // `burst` (a u32) tokens.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let whole = self.tokens.max(0.0).floor() as usize;
        whole
    }

    /// Takes one token and returns how long the caller must wait for it.
    fn reserve(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 2, t0);
        assert_eq!(b.reserve(t0), Duration::ZERO);
        assert_eq!(b.reserve(t0), Duration::ZERO);
        let third = b.reserve(t0).as_millis();
        let fourth = b.reserve(t0).as_millis();
        assert!((99..=101).contains(&third), "{third}");
        assert!((199..=201).contains(&fourth), "{fourth}");
        // After a long pause the bucket is full again, but never above the burst.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.reserve(later), Duration::ZERO);
        assert_eq!(b.reserve(later), Duration::ZERO);
        assert!(b.reserve(later) > Duration::ZERO);
    }

    #[test]
    fn try_take_never_reserves() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 2, t0);
        assert!(b.try_take(t0));
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0), "the burst is spent");
        assert!(!b.try_take(t0 + Duration::from_millis(50)), "half a token");
        assert!(b.try_take(t0 + Duration::from_millis(100)));
        // A refused try takes nothing: a waiter after it is not pushed back.
        assert_eq!(b.reserve(t0 + Duration::from_millis(200)), Duration::ZERO);
        assert!(WriteLimiter::unlimited().try_acquire());
    }

    #[test]
    fn available_counts_whole_tokens_and_reservations() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 3, t0);
        assert_eq!(b.whole_tokens(t0), 3);
        assert!(b.try_take(t0));
        assert_eq!(b.whole_tokens(t0), 2);
        b.reserve(t0);
        b.reserve(t0);
        b.reserve(t0);
        assert_eq!(
            b.whole_tokens(t0),
            0,
            "a waiter's reservation is not available"
        );
        assert_eq!(b.whole_tokens(t0 + Duration::from_millis(150)), 0);
        assert_eq!(b.whole_tokens(t0 + Duration::from_millis(250)), 1);
        assert_eq!(WriteLimiter::unlimited().available(), usize::MAX);
    }

    #[tokio::test]
    async fn disabled_limiter_never_waits() {
        let limiter = WriteLimiter::new(0.0, 0, Fence::open());
        let start = Instant::now();
        for _ in 0..1000 {
            limiter.acquire().await.unwrap();
        }
        assert!(start.elapsed() < Duration::from_millis(500));
        WriteLimiter::unlimited().acquire().await.unwrap();
    }

    #[tokio::test]
    async fn enabled_limiter_really_waits() {
        let limiter = WriteLimiter::new(20.0, 1, Fence::open());
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire().await.unwrap();
        }
        // 1 free, then 2 at 50 ms each.
        assert!(
            start.elapsed() >= Duration::from_millis(95),
            "{:?}",
            start.elapsed()
        );
    }
}
