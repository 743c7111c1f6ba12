//! CPU time and memory of a child process, from /proc, so a benchmark reports what the server itself used.

use std::time::Duration;

/// User + system CPU time the process has used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports CPU time in clock ticks of 1/100 s on every architecture it ships with a fixed USER_HZ for.
    Some(Duration::from_millis(ticks * 10))
}

/// Peak resident memory in MiB (VmHWM).
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU time all processes of the machine have used so far (every core: user, nice and system time, plus time the
/// hypervisor stole), from the first line of `/proc/stat`. Against the processes a turn measures, it shows what
/// else ran meanwhile: builds and tests of other work sharing the cores change every figure of a run. Interrupt
/// and softirq time is left out: loopback networking between wrk, the server and Redis runs there, charged to no
/// process, and it would read as another process's load.
pub fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> =
        stat.lines().next()?.split_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal: user, nice, system and steal.
    let busy: u64 = [0, 1, 2, 7].iter().filter_map(|&i| fields.get(i)).sum();
    Some(Duration::from_millis(busy * 10))
}
