//! The workers against real Redis and ClickHouse: known answers for a scripted visit sequence, poison entries and
//! abandoned entries, worker crashes, a ClickHouse outage, Redis and ClickHouse killed and restarted, two workers
//! sharing a group, and graceful shutdown.

mod crashes;
mod dead_letters;
mod devices;
mod layouts;
mod outage;
mod outages_clickhouse;
mod outages_redis;
mod outages_support;
mod reads;
mod reconnect;
mod refusals;
mod restarts;
mod scaling;
mod session_clock;
mod shutdown;
mod support;
mod users;
mod visits;
