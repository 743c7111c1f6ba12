//! Removing entries every consumer group has finished with. The stream is never trimmed by length: an entry
//! leaves only when no group still needs it (delivered to all and acknowledged), so trimming can never lose work.

use redis::aio::MultiplexedConnection;
use redis::{FromRedisValue, Value};
use tidemark_shared::keys::Keys;

/// Trims each shard stream below the oldest entry any group of `groups` still needs; returns entries removed.
pub async fn trim_processed(conn: &mut MultiplexedConnection, keys: &Keys, groups: &[&str]) -> redis::RedisResult<u64> {
    let mut removed = 0;
    for (_, stream) in keys.streams() {
        if let Some(min_id) = oldest_needed(conn, &stream, groups).await? {
            let n: u64 = redis::cmd("XTRIM").arg(&stream).arg("MINID").arg(&min_id).query_async(conn).await?;
            removed += n;
        }
    }
    Ok(removed)
}

/// The smallest id any group still needs: its oldest pending entry, or the entry after its last delivered one.
/// None when a group does not exist yet (it will start from the beginning, so nothing may go).
async fn oldest_needed(
    conn: &mut MultiplexedConnection,
    stream: &str,
    groups: &[&str],
) -> redis::RedisResult<Option<String>> {
    let infos: Vec<Value> = match redis::cmd("XINFO").arg("GROUPS").arg(stream).query_async(conn).await {
        Ok(v) => v,
        Err(e) if e.code().is_none() || e.to_string().contains("no such key") => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut last_delivered = std::collections::HashMap::new();
    for info in infos {
        let map: std::collections::HashMap<String, Value> = FromRedisValue::from_redis_value(info)?;
        let name: String =
            map.get("name").map(|v| String::from_redis_value(v.clone())).transpose()?.unwrap_or_default();
        let last: String =
            map.get("last-delivered-id").map(|v| String::from_redis_value(v.clone())).transpose()?.unwrap_or_default();
        last_delivered.insert(name, last);
    }
    let mut min: Option<(u64, u64)> = None;
    for group in groups {
        let Some(last) = last_delivered.get(*group) else { return Ok(None) };
        // XPENDING summary: [count, smallest id, greatest id, consumers]
        let summary: Vec<Value> = redis::cmd("XPENDING").arg(stream).arg(*group).query_async(conn).await?;
        let pending_min = match summary.get(1) {
            Some(Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        };
        let needed = match pending_min {
            Some(id) => parse_id(&id),
            None => parse_id(last).map(|(ms, seq)| (ms, seq + 1)),
        };
        let Some(needed) = needed else { return Ok(None) };
        min = Some(min.map_or(needed, |m| m.min(needed)));
    }
    Ok(min.map(|(ms, seq)| format!("{ms}-{seq}")))
}

fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::parse_id;

    #[test]
    fn parses_stream_ids() {
        assert_eq!(parse_id("1700000000000-3"), Some((1_700_000_000_000, 3)));
        assert_eq!(parse_id("0-0"), Some((0, 0)));
        assert_eq!(parse_id("junk"), None);
    }
}
