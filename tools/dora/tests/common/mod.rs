//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ccbft_dora::chrono::{DateTime, Duration, TimeZone, Utc};
use ccbft_dora::health::{EventKind, HealthEvent};

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 3, 8, 0, 0).unwrap()
}

pub fn at(minutes: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minutes)
}

pub fn event(
    id: &str,
    minutes: i64,
    kind: EventKind,
    replica: Option<u32>,
    domain: Option<&str>,
) -> HealthEvent {
    let mut e = HealthEvent::new(id, at(minutes), kind);
    e.replica = replica;
    e.domain = domain.map(str::to_string);
    e
}
