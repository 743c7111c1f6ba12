//! `batch.v1` stream entries, the only layout the hub writes today: the jobs of one call of its ingest script
//! (many requests under load) in one entry.
//!
//! Redis's cost per stream entry (the command, its propagation to the append-only file, the script call that
//! makes it) is several times its cost per byte, so the hub's ingest script appends one entry per call instead of
//! one per job. The entry has three fields:
//! - `k`: [`BATCH_V1`];
//! - `j`: the jobs, framed by the hub: per job `<kind> <payload length>\n<payload>` ([`frame_job`]); the hub
//!   writes `event.v2` and `identify.v1` jobs ([`crate::job`]);
//! - `s`: what the script assigned, one record per job in the same order: `<session id> <visitor id> <user id
//!   length> <user id>\n` (decimal ids; the user id is the one linked to the session, usually empty).
//!
//! The script's session, visitor and user are authoritative over the job's own, exactly as the `s`, `v` and `u`
//! fields of a single-job entry (see [`crate::job`]). Workers read both layouts. The script writes the `s` records
//! and the entry itself; tests that fill a stream without the hub use `tidemark_testkit::batch`.

/// The `k` of a batch entry.
pub const BATCH_V1: &str = "batch.v1";
/// The field holding the script's assignments.
pub const FIELD_ASSIGNED: &str = "s";
/// The field holding the framed jobs.
pub const FIELD_JOBS: &str = "j";

/// One queued job, borrowed from its stream entry: a job of a batch entry, or a single-job entry's fields.
/// `session`, `visitor` and `user` are what the hub's script assigned ("" when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobView<'a> {
    pub kind: &'a str,
    pub session: &'a str,
    pub visitor: &'a str,
    pub user: &'a str,
    pub payload: &'a [u8],
}

/// Appends one job to a batch's `j` field.
pub fn frame_job(frames: &mut Vec<u8>, kind: &str, payload: &[u8]) {
    frames.reserve(kind.len() + 12 + payload.len());
    frames.extend_from_slice(kind.as_bytes());
    frames.push(b' ');
    frames.extend_from_slice(payload.len().to_string().as_bytes());
    frames.push(b'\n');
    frames.extend_from_slice(payload);
}

/// How many jobs a batch holds, from its `s` field alone (cheap: no payload is looked at).
pub fn count_jobs(assigned: &[u8]) -> usize {
    // A user id may hold newlines, so this can overcount; it is only used to size reads.
    assigned.iter().filter(|&&b| b == b'\n').count()
}

/// Splits a batch into its jobs. Any inconsistency (a cut frame, more frames than records) refuses the whole
/// entry: its bytes cannot be trusted.
pub fn split<'a>(assigned: &'a [u8], frames: &'a [u8]) -> Result<Vec<JobView<'a>>, String> {
    let mut jobs = Vec::new();
    let (mut a, mut f) = (assigned, frames);
    while !f.is_empty() {
        let (kind, rest) = word(f, b' ').ok_or("a job frame has no kind")?;
        let (len, rest) = word(rest, b'\n').ok_or("a job frame has no length")?;
        let len: usize = len.parse().map_err(|_| format!("a job frame has a bad length `{len}`"))?;
        if rest.len() < len {
            return Err(format!("a job frame is cut: {} of {len} bytes", rest.len()));
        }
        let (payload, rest) = rest.split_at(len);
        f = rest;

        let (session, rest) = word(a, b' ').ok_or("the batch has fewer assignments than jobs")?;
        let (visitor, rest) = word(rest, b' ').ok_or("an assignment has no visitor")?;
        let (user_len, rest) = word(rest, b' ').ok_or("an assignment has no user length")?;
        let user_len: usize =
            user_len.parse().map_err(|_| format!("an assignment has a bad user length `{user_len}`"))?;
        if rest.len() < user_len + 1 || rest[user_len] != b'\n' {
            return Err("an assignment is cut".into());
        }
        let user = std::str::from_utf8(&rest[..user_len]).map_err(|_| "a user id is not UTF-8")?;
        a = &rest[user_len + 1..];
        jobs.push(JobView { kind, session, visitor, user, payload });
    }
    if !a.is_empty() {
        return Err("the batch has more assignments than jobs".into());
    }
    if jobs.is_empty() {
        return Err("the batch holds no job".into());
    }
    Ok(jobs)
}

/// The UTF-8 text before `sep`, and what follows it.
fn word(bytes: &[u8], sep: u8) -> Option<(&str, &[u8])> {
    let at = bytes.iter().position(|&b| b == sep)?;
    Some((std::str::from_utf8(&bytes[..at]).ok()?, &bytes[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One `s` record, as the hub's script writes it.
    fn assign_job(assigned: &mut Vec<u8>, session: u64, visitor: u64, user: &str) {
        assigned.extend_from_slice(format!("{session} {visitor} {} {user}\n", user.len()).as_bytes());
    }

    fn batch(jobs: &[(&str, &[u8], u64, u64, &str)]) -> (Vec<u8>, Vec<u8>) {
        let (mut assigned, mut frames) = (Vec::new(), Vec::new());
        for (kind, payload, session, visitor, user) in jobs {
            frame_job(&mut frames, kind, payload);
            assign_job(&mut assigned, *session, *visitor, user);
        }
        (assigned, frames)
    }

    #[test]
    fn jobs_round_trip_with_binary_payloads_and_odd_user_ids() {
        let binary: &[u8] = &[0x93, b'\n', 0, b' ', 0xff];
        let (assigned, frames) = batch(&[
            ("event.v2", binary, 7, 11, ""),
            ("identify.v1", b"{\"a\":1}", 8, 12, "u 1\nx"),
            ("event.v2", b"", 9, 13, ""),
        ]);
        let jobs = split(&assigned, &frames).unwrap();
        assert_eq!(jobs.len(), 3);
        assert_eq!(jobs[0], JobView { kind: "event.v2", session: "7", visitor: "11", user: "", payload: binary });
        assert_eq!((jobs[1].kind, jobs[1].user, jobs[1].payload), ("identify.v1", "u 1\nx", &b"{\"a\":1}"[..]));
        assert_eq!((jobs[2].session, jobs[2].payload), ("9", &b""[..]));
        assert!(count_jobs(&assigned) >= 3);
    }

    #[test]
    fn inconsistent_batches_are_refused_whole() {
        let (assigned, frames) = batch(&[("event.v2", b"abc", 1, 2, ""), ("event.v2", b"def", 3, 4, "")]);
        assert!(split(&assigned, &frames[..frames.len() - 1]).is_err(), "cut payload");
        assert!(split(&assigned[..assigned.len() - 4], &frames).is_err(), "missing assignment");
        let (one, _) = batch(&[("event.v2", b"abc", 1, 2, "")]);
        assert!(split(&one, &frames).is_err(), "fewer assignments than jobs");
        assert!(split(&assigned, &frames[..frames.len() / 2 + 2]).is_err(), "more assignments than jobs");
        assert!(split(b"", b"").is_err(), "empty");
        assert!(split(b"1 2 x \n", b"event.v2 3\nabc").is_err(), "bad user length");
    }
}
