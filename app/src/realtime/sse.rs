//! Server-Sent Events on the wire: frames, and the response body that carries one subscriber's frames.
//!
//! The body is the subscriber: it holds the receiving end of the subscriber's bounded queue. When the client goes
//! away, actix-web drops the body, the queue closes, and the project's poller forgets the subscriber on its next
//! tick (and stops once it has none). No task runs per connection.

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// One SSE message: `event: <name>` and its JSON on a single `data:` line (JSON text never holds a raw newline).
pub fn frame(event: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {}\ndata: {data}\n\n", event_name(event)))
}

/// SSE event names come from the `type` column; anything but a plain word becomes `event`.
fn event_name(raw: &str) -> &str {
    let plain = !raw.is_empty() && raw.len() <= 32 && raw.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if plain { raw } else { "event" }
}

/// Sent first: how long a client waits before reconnecting after the stream ends (EventSource reconnects itself).
pub const PREAMBLE: &[u8] = b"retry: 3000\n\n";

/// A comment line: clients ignore it, proxies see traffic and keep the connection.
const HEARTBEAT: &[u8] = b": keep-alive\n\n";

pub struct SseBody {
    frames: mpsc::Receiver<Bytes>,
    heartbeat: tokio::time::Interval,
}

impl SseBody {
    pub fn new(frames: mpsc::Receiver<Bytes>, heartbeat_every: Duration) -> Self {
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat_every, heartbeat_every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        SseBody { frames, heartbeat }
    }
}

impl MessageBody for SseBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Infallible>>> {
        let this = self.get_mut();
        match this.frames.poll_recv(cx) {
            Poll::Ready(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
            // The poller dropped this subscriber (too slow, or the server is stopping): end the stream.
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if this.heartbeat.poll_tick(cx).is_ready() {
            return Poll::Ready(Some(Ok(Bytes::from_static(HEARTBEAT))));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_one_event_line_and_one_data_line() {
        let f = frame("pageview", &serde_json::json!({"path": "/a\nb"}));
        assert_eq!(&f[..], b"event: pageview\ndata: {\"path\":\"/a\\nb\"}\n\n");
        assert!(frame("bad\nname", &serde_json::json!(1)).starts_with(b"event: event\n"));
    }
}
