//! Requests by route, method and status, how long they took, and refused actions by reason.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{Method, StatusCode},
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::{Registry, Unit},
};

use super::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route's template (`/sse/home`, `/static/{*path}`), never the path itself: paths
    /// are unbounded; `unmatched` for what no route takes.
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    reason: &'static str,
}

/// Seconds, from a millisecond to ten: a page or an action takes milliseconds; a stream's
/// head arrives as fast.
const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug)]
pub(super) struct Http {
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    refusals: Family<RefusalLabels, Counter>,
}

impl Http {
    pub(super) fn register(prometheus: &mut Registry) -> Http {
        let http = Http {
            requests: Family::default(),
            durations: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
            refusals: Family::default(),
        };
        prometheus.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            http.requests.clone(),
        );
        prometheus.register_with_unit(
            "http_request_duration",
            "Time until the response's head, by route (for a stream: until it opened)",
            Unit::Seconds,
            http.durations.clone(),
        );
        prometheus.register(
            "live_refusals",
            "Actions refused, by reason: cross_site (CSRF), too_large (body), unreadable \
             (form), invalid (input), timeout (action), rate_limited (client over \
             ACTION_RATE_PER_SEC), other",
            http.refusals.clone(),
        );
        for reason in REASONS {
            let _ = http.refusals.get_or_create(&RefusalLabels { reason });
        }
        http
    }

    pub(super) fn refused(&self, status: StatusCode) {
        self.refusals
            .get_or_create(&RefusalLabels {
                reason: reason(status),
            })
            .inc();
    }
}

/// Every reason, so that each series exists from the start (a rate over a series that
/// appears with its first refusal misses that refusal).
const REASONS: [&str; 7] = [
    "cross_site",
    "too_large",
    "unreadable",
    "invalid",
    "timeout",
    "rate_limited",
    "other",
];

/// The reason a refusal with `status` is counted under.
fn reason(status: StatusCode) -> &'static str {
    match status {
        StatusCode::FORBIDDEN => "cross_site",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => "unreadable",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        _ => "other",
    }
}

/// Middleware: counts and times every request (added by [`crate::layers`] when
/// `METRICS_ADDR` is set).
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = method_name(request.method());
    let response = next.run(request).await;
    let http = &metrics.http;
    http.durations
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    http.requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// The method as a label: the standard ones, and `other` (a client may send any token).
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
