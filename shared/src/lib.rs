//! Pieces every Tidemark service shares: the jobs on the wire, configuration loading, Redis key names and the
//! ClickHouse, PostgreSQL and Redis connection helpers.

pub mod batch;
pub mod ch_migrations;
pub mod clickhouse;
pub mod config;
pub mod job;
pub mod keys;
pub mod outage;
pub mod postgres;
pub mod pubsub;
pub mod queries;
pub mod redis;
pub mod secret;
pub mod telemetry;
