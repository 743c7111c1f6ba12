//! Devices across days. The cookieless visitor id changes every UTC day, so a device keyed by it was new every
//! day; a device now follows the most stable identity its events have (user id, the site's anonymous id), and only
//! the cookieless ones ("daily") live one day. "New devices" counts only identities that outlive a day.

use crate::support::*;
use tidemark_shared::clickhouse::ClickHouse;
use tidemark_shared::job::{EventJob, VisitorKind};
use tidemark_shared::queries::by_name;
use tidemark_worker::devices_sink::DevicesSink;
use uuid::Uuid;

const DAY: i64 = 86_400_000;
/// 2025-06-15T10:00:00Z.
const DAY_1: i64 = 1_749_981_600_000;

async fn new_devices(ch: &ClickHouse, project: Uuid, from: i64, to: i64) -> u64 {
    ch.client
        .query(by_name("devices.new").sql)
        .bind(project.to_string())
        .bind(from as u64)
        .bind(to as u64)
        .fetch_one()
        .await
        .expect("devices.new")
}

async fn seen(ch: &ClickHouse, project: Uuid, from: i64, to: i64) -> Vec<(String, u64)> {
    ch.client
        .query(by_name("devices.seen").sql)
        .bind(project.to_string())
        .bind(from as u64)
        .bind(to as u64)
        .fetch_all()
        .await
        .expect("devices.seen")
}

#[tokio::test]
async fn a_device_with_a_stable_identity_is_one_device_across_days_and_new_only_once() {
    let env = tidemark_testkit::test_env().await;
    let project = Uuid::new_v4();
    let at = |day: i64, path: &str, visitor: u64| event(project, visitor, DAY_1 + day * DAY, PAGEVIEW, path);
    let user = |e: EventJob| EventJob { user_id: "u-1".into(), ..e };
    let anonymous = |e: EventJob| EventJob { visitor_kind: VisitorKind::Anonymous, ..e };
    let jobs = vec![
        // A signed-in user: a new cookieless visitor id each day, one device.
        (user(at(0, "/", 100)), 1),
        (user(at(1, "/", 101)), 2),
        // The site's anonymous id: the same visitor id both days, one device.
        (anonymous(at(0, "/", 200)), 3),
        (anonymous(at(1, "/", 200)), 4),
        // Cookieless only: the same browser is a new visitor id, and a new device, each day.
        (at(0, "/", 300), 5),
        (at(1, "/", 301), 6),
    ];
    enqueue_batches(&mut env.redis().await, &env.keys, &jobs, 16).await;
    drain(&mut engine(&env, DevicesSink::new(env.ch.clone()), "d", settings(100)).await).await;

    let day = |n: i64| (DAY_1 - 10 * 3_600_000 + n * DAY, DAY_1 - 10 * 3_600_000 + (n + 1) * DAY);
    let (d0, d1) = (day(0), day(1));
    assert_eq!(new_devices(&env.ch, project, d0.0, d0.1).await, 2, "the user's and the anonymous id's");
    assert_eq!(new_devices(&env.ch, project, d1.0, d1.1).await, 0, "both came back: nothing new on day 2");
    let by_identity = |v: &[(&str, u64)]| v.iter().map(|(i, n)| ((*i).to_owned(), *n)).collect::<Vec<_>>();
    let want = by_identity(&[("anonymous", 1), ("daily", 1), ("user", 1)]);
    assert_eq!(seen(&env.ch, project, d0.0, d0.1).await, want);
    assert_eq!(seen(&env.ch, project, d1.0, d1.1).await, want);
    // Over both days: still one user device and one anonymous device, but two daily ones.
    assert_eq!(seen(&env.ch, project, d0.0, d1.1).await, by_identity(&[("anonymous", 1), ("daily", 2), ("user", 1)]));
}
