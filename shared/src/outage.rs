//! Telling operators that a store (Redis, PostgreSQL, ClickHouse) stopped answering, the same way in every
//! service: a WARN at the first failure, an ERROR once it has lasted `store_alert_secs`, an INFO when the store
//! answers again, and nothing in between however many requests fail meanwhile. A counter
//! `tidemark_<service>_store_failures_total{store}` counts the failures and a gauge
//! `tidemark_<service>_store_up{store}` says whether the last attempt worked, for alerts and dashboards.
//!
//! Callers report every attempt's result; a success while the store is up costs one atomic load, so the hot path
//! (one report per Redis write) pays nothing for it.

use std::fmt::Display;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a store may fail before it is logged as an ERROR, unless `store_alert_secs` says otherwise.
pub const DEFAULT_ALERT_SECS: u64 = 60;

/// One store as one process (or one worker engine) sees it.
pub struct StoreHealth {
    store: &'static str,
    failures_metric: String,
    up_metric: String,
    /// The consumer group of a worker engine: a worker's metrics and lines all carry it.
    group: Option<&'static str>,
    alert_after: Duration,
    down: AtomicBool,
    outage: Mutex<Option<Outage>>,
}

#[derive(Debug, Clone, Copy)]
struct Outage {
    since: Instant,
    failures: u64,
    alerted: bool,
}

/// One line per state change; `group` is a field only where there is one.
macro_rules! report {
    ($level:ident, $health:expr, $($field:tt)*) => {
        match $health.group {
            Some(group) => tracing::$level!(store = $health.store, group, $($field)*),
            None => tracing::$level!(store = $health.store, $($field)*),
        }
    };
}

impl StoreHealth {
    /// `service` names the metrics (`hub`, `worker`); `store` is the label and the name `/readyz` shows.
    pub fn new(service: &str, store: &'static str, alert_after: Duration) -> Self {
        let health = Self {
            store,
            failures_metric: format!("tidemark_{service}_store_failures_total"),
            up_metric: format!("tidemark_{service}_store_up"),
            group: None,
            alert_after,
            down: AtomicBool::new(false),
            outage: Mutex::new(None),
        };
        health.publish_up(true);
        health
    }

    /// Labels the metrics and log lines with a worker's consumer group.
    pub fn for_group(mut self, group: &'static str) -> Self {
        self.group = Some(group);
        self.publish_up(true);
        self
    }

    pub fn store(&self) -> &'static str {
        self.store
    }

    /// False from a failure until the next success.
    pub fn is_up(&self) -> bool {
        !self.down.load(Ordering::Acquire)
    }

    /// How long the store has been failing, if it is.
    pub fn down_for(&self) -> Option<Duration> {
        self.outage.lock().expect("outage lock").map(|o| o.since.elapsed())
    }

    /// Records a failed attempt: counted always, logged at the first failure of an outage and once more, as an
    /// ERROR, when the outage passes `alert_after`.
    pub fn failed(&self, error: &dyn Display) {
        self.count_failure();
        let mut outage = self.outage.lock().expect("outage lock");
        match outage.as_mut() {
            None => {
                *outage = Some(Outage { since: Instant::now(), failures: 1, alerted: false });
                self.down.store(true, Ordering::Release);
                self.publish_up(false);
                drop(outage);
                report!(warn, self, error = %error, "Store unreachable; retrying until it is back.");
            }
            Some(o) => {
                o.failures += 1;
                let state = *o;
                if !state.alerted && state.since.elapsed() >= self.alert_after {
                    o.alerted = true;
                    drop(outage);
                    self.alert(state, Some(error));
                }
            }
        }
    }

    /// Records a successful attempt; the first after an outage logs how long it lasted.
    pub fn succeeded(&self) {
        if self.is_up() {
            return;
        }
        // `down` and the gauge change under the lock only, so a failure racing this success cannot leave an outage
        // recorded with the store marked up (it would never be logged again).
        let mut guard = self.outage.lock().expect("outage lock");
        let Some(outage) = guard.take() else { return };
        self.down.store(false, Ordering::Release);
        self.publish_up(true);
        drop(guard);
        report!(
            info,
            self,
            down_for_s = outage.since.elapsed().as_secs_f64(),
            failures = outage.failures,
            "Store reachable again."
        );
    }

    /// Records one attempt either way.
    pub fn record<T, E: Display>(&self, result: &Result<T, E>) {
        match result {
            Ok(_) => self.succeeded(),
            Err(e) => self.failed(e),
        }
    }

    /// Logs the ERROR of an outage that passed `alert_after` with no attempt since (nothing needed the store):
    /// for a watcher that runs every few seconds.
    pub fn check_alert(&self) {
        let mut outage = self.outage.lock().expect("outage lock");
        if let Some(o) = outage.as_mut()
            && !o.alerted
            && o.since.elapsed() >= self.alert_after
        {
            o.alerted = true;
            let state = *o;
            drop(outage);
            self.alert(state, None);
        }
    }

    fn alert(&self, outage: Outage, error: Option<&dyn Display>) {
        let error = error.map(|e| e.to_string()).unwrap_or_default();
        report!(
            error,
            self,
            error,
            down_for_s = outage.since.elapsed().as_secs(),
            failures = outage.failures,
            "Store has been unreachable for a while; still retrying."
        );
    }

    fn count_failure(&self) {
        match self.group {
            Some(group) => metrics::counter!(self.failures_metric.clone(), "store" => self.store, "group" => group),
            None => metrics::counter!(self.failures_metric.clone(), "store" => self.store),
        }
        .increment(1);
    }

    fn publish_up(&self, up: bool) {
        let value = if up { 1.0 } else { 0.0 };
        match self.group {
            Some(group) => metrics::gauge!(self.up_metric.clone(), "store" => self.store, "group" => group),
            None => metrics::gauge!(self.up_metric.clone(), "store" => self.store),
        }
        .set(value);
    }
}

/// A readiness answer naming each store: `{"redis": true, "postgres": false}`, and whether all are up.
pub fn readiness(stores: &[(&str, bool)]) -> (bool, String) {
    let body: serde_json::Map<String, serde_json::Value> =
        stores.iter().map(|(name, up)| ((*name).to_owned(), serde_json::Value::Bool(*up))).collect();
    (stores.iter().all(|(_, up)| *up), serde_json::Value::Object(body).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use tracing::Subscriber;
    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    /// Counts log lines by level.
    #[derive(Clone, Default)]
    struct Lines {
        warn: Arc<AtomicUsize>,
        error: Arc<AtomicUsize>,
        info: Arc<AtomicUsize>,
        stores: Arc<Mutex<Vec<String>>>,
    }

    struct StoreField(Option<String>);

    impl Visit for StoreField {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "store" {
                self.0 = Some(value.to_owned());
            }
        }
        fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
    }

    impl<S: Subscriber> tracing_subscriber::Layer<S> for Lines {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let counter = match *event.metadata().level() {
                tracing::Level::WARN => &self.warn,
                tracing::Level::ERROR => &self.error,
                tracing::Level::INFO => &self.info,
                _ => return,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let mut store = StoreField(None);
            event.record(&mut store);
            self.stores.lock().unwrap().extend(store.0);
        }
    }

    fn count(n: &AtomicUsize) -> usize {
        n.load(Ordering::Relaxed)
    }

    #[test]
    fn an_outage_logs_one_warning_one_error_and_one_recovery() {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(lines.clone());
        tracing::subscriber::with_default(subscriber, || {
            let redis = StoreHealth::new("test", "redis", Duration::from_millis(50));
            redis.succeeded();
            assert!(redis.is_up());
            for _ in 0..1000 {
                redis.failed(&"connection refused");
            }
            assert!(!redis.is_up());
            assert!(redis.down_for().is_some());
            assert_eq!((count(&lines.warn), count(&lines.error)), (1, 0), "a thousand failures, one line");
            std::thread::sleep(Duration::from_millis(60));
            for _ in 0..1000 {
                redis.failed(&"connection refused");
                redis.check_alert();
            }
            assert_eq!((count(&lines.warn), count(&lines.error)), (1, 1), "past the alert time, one ERROR");
            for _ in 0..10 {
                redis.succeeded();
            }
            assert!(redis.is_up());
            assert_eq!(redis.down_for(), None);
            assert_eq!(count(&lines.info), 1, "one line when it is back");
            // A second outage is reported afresh.
            redis.failed(&"broken pipe");
            assert_eq!(count(&lines.warn), 2);
            assert!(lines.stores.lock().unwrap().iter().all(|s| s == "redis"));
        });
    }

    #[test]
    fn an_outage_with_no_attempts_is_still_alerted_by_the_watcher() {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::registry().with(lines.clone());
        tracing::subscriber::with_default(subscriber, || {
            let pg = StoreHealth::new("test", "postgres", Duration::from_millis(20)).for_group("events");
            pg.failed(&"timed out");
            pg.check_alert();
            assert_eq!(count(&lines.error), 0, "not yet");
            std::thread::sleep(Duration::from_millis(30));
            pg.check_alert();
            pg.check_alert();
            assert_eq!(count(&lines.error), 1);
        });
    }

    #[test]
    fn readiness_names_every_store() {
        let (ready, body) = readiness(&[("redis", true), ("postgres", false)]);
        assert!(!ready);
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed, serde_json::json!({"redis": true, "postgres": false}));
        assert!(readiness(&[("redis", true)]).0);
    }
}
