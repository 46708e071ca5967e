//! Process statistics read from `/proc/self` (Linux): resident memory, CPU time, threads.

use serde::{Deserialize, Serialize};

/// This process's resource use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// Resident memory.
    pub resident_bytes: u64,
    /// CPU time in user mode.
    pub cpu_user_seconds: f64,
    /// CPU time in kernel mode.
    pub cpu_system_seconds: f64,
    /// Threads.
    pub threads: u64,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

/// Clock ticks per second of `/proc` times (`USER_HZ`, 100 on every Linux we run on).
const TICKS: f64 = 100.0;

impl ProcessStats {
    /// Reads the current figures; `None` where `/proc` is not available.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name may contain spaces; fields resume after its closing parenthesis.
        let rest = stat.get(stat.rfind(')')? + 2..)?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state), so field n is f[n - 3].
        let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let rss_kb: u64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())?;
        let boot: f64 = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find(|l| l.starts_with("btime "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())?;
        Some(ProcessStats {
            resident_bytes: rss_kb * 1024,
            cpu_user_seconds: num(14)? / TICKS,
            cpu_system_seconds: num(15)? / TICKS,
            threads: num(20)? as u64,
            start_time_seconds: boot + num(22)? / TICKS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let p = ProcessStats::read().expect("tests run on Linux");
        assert!(p.resident_bytes > 1024 * 1024);
        assert!(p.threads >= 1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 86_400.0 * 365.0);
    }
}
