//! Process metrics (`process_*`, the names Prometheus client libraries use), read from
//! `/proc/self` on each scrape. Elsewhere than Linux the families are absent.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Linux reports process times in USER_HZ, 100 on every architecture Kubernetes runs on
/// (amd64, arm64, ppc64le, s390x); reading sysconf(_SC_CLK_TCK) would need unsafe code.
const USER_HZ: f64 = 100.0;

/// What `/proc` tells about this process; a field is `None` when it cannot be read.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ProcessStats {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, in bytes.
    pub resident_bytes: Option<u64>,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit of open file descriptors.
    pub max_fds: Option<u64>,
    /// Start time, in seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Read the current figures of this process.
    pub fn read() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let mut stats = read("/proc/self/stat")
            .map(|stat| parse_stat(&stat, read("/proc/stat").as_deref().and_then(boot_time)))
            .unwrap_or_default();
        stats.resident_bytes = read("/proc/self/status").and_then(|s| status_kib(&s, "VmRSS:"));
        stats.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| dir.count() as u64);
        stats.max_fds = read("/proc/self/limits").and_then(|l| max_open_files(&l));
        stats
    }
}

/// CPU time, virtual size and start time from `/proc/self/stat`; `boot_time` is `btime` of
/// `/proc/stat`, in seconds since the epoch.
fn parse_stat(stat: &str, boot_time: Option<u64>) -> ProcessStats {
    // The command name (field 2) is in parentheses and may hold spaces and parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // fields[0] is field 3 (state): field N is fields[N - 3].
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = |n: usize| field(n).map(|t| t as f64 / USER_HZ);
    ProcessStats {
        cpu_seconds: ticks(14).zip(ticks(15)).map(|(user, system)| user + system),
        virtual_bytes: field(23),
        start_time_seconds: boot_time.zip(ticks(22)).map(|(boot, up)| boot as f64 + up),
        ..ProcessStats::default()
    }
}

fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// A `kB` line of `/proc/self/status`, in bytes.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix(key))?;
    let kib: u64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// Encodes [`ProcessStats`] on each scrape.
#[derive(Debug)]
pub(crate) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let stats = ProcessStats::read();
        if let Some(cpu) = stats.cpu_seconds {
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time of the controller process, in seconds.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(metric)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory of the controller process, in bytes.",
                stats.resident_bytes.map(|v| v as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory of the controller process, in bytes.",
                stats.virtual_bytes.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "Open file descriptors of the controller process.",
                stats.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "The limit of open file descriptors of the controller process.",
                stats.max_fds.map(|v| v as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the controller process, in seconds since the Unix epoch.",
                stats.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(value).encode(metric)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        // A command name with a space and a parenthesis; utime 250, stime 50, starttime 1000.
        let stat = "4242 (tr (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 \
                    1000 123456789 2000 18446744073709551615";
        let stats = parse_stat(stat, Some(1_700_000_000));
        assert_eq!(stats.cpu_seconds, Some(3.0));
        assert_eq!(stats.virtual_bytes, Some(123_456_789));
        assert_eq!(stats.start_time_seconds, Some(1_700_000_010.0));
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        assert_eq!(
            status_kib("Name:\ttr\nVmRSS:\t   16384 kB\n", "VmRSS:"),
            Some(16 * 1024 * 1024)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 1048576              files\n";
        assert_eq!(max_open_files(limits), Some(1024));
    }

    /// On Linux the figures of this very process are read.
    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_read() {
        let stats = ProcessStats::read();
        assert!(stats.cpu_seconds.is_some_and(|c| c >= 0.0), "{stats:?}");
        assert!(
            stats.resident_bytes.is_some_and(|r| r > 1024 * 1024),
            "{stats:?}"
        );
        assert!(stats.open_fds.is_some_and(|n| n >= 3), "{stats:?}");
        assert!(stats.max_fds.is_some_and(|n| n >= 64), "{stats:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        assert!(
            stats
                .start_time_seconds
                .is_some_and(|s| s <= now + 1.0 && s > now - 24.0 * 3600.0),
            "{stats:?} (now {now})"
        );
    }
}
