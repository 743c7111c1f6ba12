//! The workers against real Redis and ClickHouse: known answers for a scripted visit sequence, poison entries and
//! abandoned entries, worker crashes, a ClickHouse outage, two workers sharing a group, and graceful shutdown.

mod crashes;
mod dead_letters;
mod devices;
mod layouts;
mod outage;
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
