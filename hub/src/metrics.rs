//! Prometheus metrics of the hub. The recorder is process-wide, so it is installed once and shared.

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

pub const ACCEPTED: &str = "tidemark_hub_events_accepted_total";
/// Label `cause`: bot, prefetch, excluded.
pub const DROPPED: &str = "tidemark_hub_events_dropped_total";
/// Label `status`: the HTTP status of a refused request.
pub const REJECTED: &str = "tidemark_hub_requests_rejected_total";
pub const ENQUEUE_ERRORS: &str = "tidemark_hub_enqueue_errors_total";
pub const REQUEST_SECONDS: &str = "tidemark_hub_request_duration_seconds";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let buckets = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
            .expect("valid buckets")
            .install_recorder()
            .expect("the hub installs the only metrics recorder of its process")
    })
}

/// Handles of the metrics every accepted request updates, registered once: naming a metric at each update costs a
/// hash and a lock in the recorder's registry.
pub struct Hot {
    pub accepted: Counter,
    pub request_seconds: Histogram,
}

impl Hot {
    /// Installs the recorder first if need be, so the handles are the recorder's and not no-ops.
    pub fn register() -> Self {
        handle();
        Self { accepted: metrics::counter!(ACCEPTED), request_seconds: metrics::histogram!(REQUEST_SECONDS) }
    }
}
