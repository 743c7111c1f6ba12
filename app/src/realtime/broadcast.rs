//! One poller per watched project, shared by all of its subscribers: one feed query per project per tick and one
//! visitors count every few seconds, whatever the number of open streams. Each subscriber has a bounded queue; a
//! client that reads too slowly to keep up is told so and dropped (its EventSource reconnects), so nobody's
//! backlog grows without bound. The poller stops at the first tick that finds no subscriber left.

use super::feed::{self, Cursor, FeedEvent};
use super::{Settings, counts, sse, unix_now};
use crate::analytics_store::AnalyticsStore;
use actix_web::web::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

/// The realtime state of the app: who listens to which project.
pub struct Feeds {
    store: Arc<AnalyticsStore>,
    settings: Settings,
    subscribers: Mutex<HashMap<Uuid, Vec<mpsc::Sender<Bytes>>>>,
    pollers: Arc<AtomicUsize>,
}

impl Feeds {
    pub fn new(store: Arc<AnalyticsStore>, settings: Settings) -> Self {
        Feeds { store, settings, subscribers: Mutex::default(), pollers: Arc::default() }
    }

    pub fn settings(&self) -> Settings {
        self.settings
    }

    pub fn store(&self) -> &AnalyticsStore {
        &self.store
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Vec<mpsc::Sender<Bytes>>>> {
        // A poisoned map still holds valid senders: a panic elsewhere must not stop every feed.
        self.subscribers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new subscriber of `project` whose stream begins with `first`; starts the project's poller if none runs.
    pub fn subscribe(self: &Arc<Self>, project: Uuid, first: Bytes) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(self.settings.queue.max(4));
        // Cannot fail: the queue is new and holds at least four.
        let _ = tx.try_send(Bytes::from_static(sse::PREAMBLE));
        let _ = tx.try_send(first);
        let mut subscribers = self.lock();
        match subscribers.get_mut(&project) {
            Some(list) => list.push(tx),
            None => {
                subscribers.insert(project, vec![tx]);
                // Counted here, under the lock, so `pollers()` never misses one that is starting.
                let live = Live::new(&self.pollers);
                tokio::spawn(poll(self.clone(), project, live));
            }
        }
        rx
    }

    /// Open streams of `project` (a stream whose client left counts until the next tick).
    pub fn subscribers(&self, project: Uuid) -> usize {
        self.lock().get(&project).map_or(0, |list| list.iter().filter(|tx| !tx.is_closed()).count())
    }

    /// Pollers running, over all projects.
    pub fn pollers(&self) -> usize {
        self.pollers.load(Ordering::SeqCst)
    }

    /// Forgets the subscribers whose clients left; false (and the project forgotten) when none is left.
    fn keep_polling(&self, project: Uuid) -> bool {
        let mut subscribers = self.lock();
        let Some(list) = subscribers.get_mut(&project) else { return false };
        list.retain(|tx| !tx.is_closed());
        if list.is_empty() {
            subscribers.remove(&project);
            return false;
        }
        true
    }

    fn publish(&self, project: Uuid, frames: &[Bytes]) {
        if frames.is_empty() {
            return;
        }
        let mut subscribers = self.lock();
        let Some(list) = subscribers.get_mut(&project) else { return };
        list.retain(|tx| {
            if tx.is_closed() {
                return false;
            }
            // One place stays free for this notice: a client that fell that far behind is dropped, told why.
            if tx.capacity() < frames.len() + 1 {
                let notice = serde_json::json!({
                    "error": "this client reads the stream too slowly and was disconnected; reconnect to resume"
                });
                let _ = tx.try_send(sse::frame("dropped", &notice));
                tracing::info!(%project, "Dropped a realtime subscriber that fell behind.");
                return false;
            }
            for frame in frames {
                let _ = tx.try_send(frame.clone());
            }
            true
        });
    }
}

/// Counts a running poller for as long as its task exists, however it ends (returns, panics, runtime shutdown).
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub fn visitors_frame(visitors: u64) -> Bytes {
    sse::frame("visitors", &serde_json::json!({ "visitors": visitors, "window_seconds": super::WINDOW_SECS }))
}

pub fn unavailable_frame() -> Bytes {
    sse::frame(
        "unavailable",
        &serde_json::json!({ "error": "ClickHouse is unavailable; the stream stays open and resumes when it is back" }),
    )
}

async fn poll(feeds: Arc<Feeds>, project: Uuid, _live: Live) {
    let settings = feeds.settings;
    let mut cursor = Cursor::starting_at(unix_now());
    let mut ticks = tokio::time::interval(settings.poll_every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut visitors_due = Instant::now() + settings.visitors_every;
    let mut down = false;
    loop {
        ticks.tick().await;
        if !feeds.keep_polling(project) {
            return;
        }
        // After an outage the count is stale: refresh it with the first good poll.
        let count_visitors = down || Instant::now() >= visitors_due;
        let mut frames = Vec::new();
        match step(&feeds, project, &mut cursor, count_visitors).await {
            Ok(news) => {
                if down {
                    tracing::info!(%project, "Realtime feed resumed.");
                    frames.push(sse::frame("resumed", &serde_json::json!({})));
                    down = false;
                }
                frames.extend(news);
                if count_visitors {
                    visitors_due = Instant::now() + settings.visitors_every;
                }
            }
            Err(e) => {
                if !down {
                    tracing::warn!(%project, error = format!("{e:#}"), "Realtime feed paused: ClickHouse failed.");
                    frames.push(unavailable_frame());
                    down = true;
                }
            }
        }
        feeds.publish(project, &frames);
    }
}

/// One poll: the events not shown yet, then (when due) the visitors count.
async fn step(feeds: &Feeds, project: Uuid, cursor: &mut Cursor, count_visitors: bool) -> anyhow::Result<Vec<Bytes>> {
    let ch = feeds.store.get().await?;
    // The count first: the cursor moves only once nothing can fail any more, so a failed poll loses no event.
    let visitors = match count_visitors {
        true => Some(counts::current_visitors(ch, project, unix_now()).await?),
        false => None,
    };
    let rows = feed::fetch(ch, project, cursor.floor()).await?;
    let mut frames: Vec<Bytes> = cursor
        .accept(rows)
        .into_iter()
        .map(|row| {
            let kind = row.kind.clone();
            let event = serde_json::to_value(FeedEvent::from(row)).unwrap_or_default();
            sse::frame(&kind, &event)
        })
        .collect();
    frames.extend(visitors.map(visitors_frame));
    Ok(frames)
}
