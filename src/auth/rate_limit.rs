//! Per-client-IP limit on signup and login attempts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;

use crate::error::ApiError;

const WINDOW: Duration = Duration::from_secs(60);
/// Above this many tracked clients, expired windows are swept on the next attempt, so a
/// spray of source addresses cannot grow the table without bound.
const SWEEP_THRESHOLD: usize = 10_000;

/// A fixed one-minute window per client IP.
pub struct RateLimiter {
    per_minute: u32,
    trust_proxy_headers: bool,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32, trust_proxy_headers: bool) -> Self {
        Self {
            per_minute,
            trust_proxy_headers,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt from the request's client; errs with the wait once over the limit.
    pub fn check(&self, req: &HttpRequest) -> Result<(), ApiError> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let Some(ip) = self.client_ip(req) else {
            return Ok(());
        };
        self.count(ip, Instant::now())
    }

    fn count(&self, ip: IpAddr, now: Instant) -> Result<(), ApiError> {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() > SWEEP_THRESHOLD {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let (start, count) = windows.entry(ip).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            (*start, *count) = (now, 0);
        }
        if *count >= self.per_minute {
            let wait = WINDOW.saturating_sub(now.duration_since(*start));
            return Err(ApiError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        *count += 1;
        Ok(())
    }

    /// The socket's address, unless the operator said a trusted proxy sets the headers.
    fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        if self.trust_proxy_headers {
            let info = req.connection_info();
            if let Some(ip) = info.realip_remote_addr().and_then(parse_ip) {
                return Some(ip);
            }
        }
        req.peer_addr().map(|addr| addr.ip())
    }
}

/// `realip_remote_addr` may be `ip`, `ip:port` or `[v6]:port`.
fn parse_ip(raw: &str) -> Option<IpAddr> {
    raw.parse()
        .ok()
        .or_else(|| raw.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_allows_the_limit_then_refuses_until_it_passes() {
        let limiter = RateLimiter::new(3, false);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.count(ip, t0).unwrap();
        }
        match limiter.count(ip, t0 + Duration::from_secs(20)) {
            Err(ApiError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 40),
            other => panic!("expected a limit, got {other:?}"),
        }
        limiter.count(other, t0).unwrap();
        limiter.count(ip, t0 + WINDOW).unwrap();
    }

    #[test]
    fn addresses_with_ports_parse() {
        assert_eq!(parse_ip("10.0.0.1:443"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(parse_ip("[::1]:80"), Some("::1".parse().unwrap()));
        assert_eq!(
            parse_ip("2001:db8::1"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(parse_ip("unknown"), None);
    }
}
