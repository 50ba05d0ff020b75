//! The process's own metrics, under the names every Prometheus client uses
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`, …), read
//! from `/proc` at each scrape. Linux only.
//!
//! Read here, in a few lines, rather than with the `procfs` crate: it and the `rustix` it
//! brings cost a cold build about 7 s of compiling on 2 cores, for four fields of one file.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
};

/// This process, as `/proc/self` describes it.
#[derive(Debug)]
pub(super) struct Process;

/// The fields of `/proc/self/stat` the metrics use (see proc_pid_stat(5)).
#[derive(Debug, PartialEq)]
struct Stat {
    /// User and system CPU time, in clock ticks.
    utime: u64,
    stime: u64,
    num_threads: u64,
    /// When the process started, in clock ticks after boot.
    starttime: u64,
    /// Virtual memory, in bytes.
    vsize: u64,
    /// Resident memory, in pages.
    rss: u64,
}

impl Stat {
    /// Parses the one line of `/proc/<pid>/stat`. The command name (field 2) is in parentheses
    /// and may hold spaces and parentheses itself: the fields after it start after the last `)`.
    fn parse(line: &str) -> Option<Stat> {
        let after_name = &line[line.rfind(')')? + 1..];
        // Field 3 (state) is the first here, so field N is at index N - 3.
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            num_threads: field(20)?,
            starttime: field(22)?,
            vsize: field(23)?,
            rss: field(24)?,
        })
    }
}

/// The boot time in seconds since the epoch: the `btime` line of `/proc/stat`.
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|secs| secs.trim().parse().ok())
}

/// `sysconf(name)`, if the system answers.
fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf reads a configuration value; it has no preconditions.
    let value = unsafe { libc::sysconf(name) };
    u64::try_from(value).ok().filter(|value| *value > 0)
}

fn encode_gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stat = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|line| Stat::parse(&line));
        if let (Some(stat), Some(ticks)) = (stat, sysconf(libc::_SC_CLK_TCK)) {
            let ticks = ticks as f64;
            let cpu = ConstCounter::new((stat.utime + stat.stime) as f64 / ticks);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                cpu.metric_type(),
            )?)?;
            if let Some(page) = sysconf(libc::_SC_PAGESIZE) {
                encode_gauge(
                    &mut encoder,
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes.",
                    (stat.rss * page) as f64,
                )?;
            }
            encode_gauge(
                &mut encoder,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                stat.vsize as f64,
            )?;
            encode_gauge(
                &mut encoder,
                "process_threads",
                "Number of OS threads in the process.",
                stat.num_threads as f64,
            )?;
            if let Some(boot) = std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|text| boot_time(&text))
            {
                encode_gauge(
                    &mut encoder,
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.",
                    boot as f64 + stat.starttime as f64 / ticks,
                )?;
            }
        }
        if let Ok(open) = std::fs::read_dir("/proc/self/fd") {
            encode_gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors.",
                open.count() as f64,
            )?;
        }
        if let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE)
            && soft != rlimit::INFINITY
        {
            encode_gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                soft as f64,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_a_name_with_spaces_and_parentheses() {
        let line = "4242 (my app) (x)) S 1 4242 4242 0 -1 4194560 2412 0 0 0 150 37 0 0 20 0 \
                    7 0 123456 987654321 3072 18446744073709551615 1 1 0 0 0 0 0 4096 17638 \
                    0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                utime: 150,
                stime: 37,
                num_threads: 7,
                starttime: 123456,
                vsize: 987654321,
                rss: 3072,
            })
        );
        assert_eq!(Stat::parse("4242 (cut short) S 1 2"), None);
    }

    #[test]
    fn this_process_reads_as_itself() {
        let stat = Stat::parse(&std::fs::read_to_string("/proc/self/stat").unwrap()).unwrap();
        assert!(
            stat.num_threads >= 1 && stat.rss > 0 && stat.vsize > 0,
            "{stat:?}"
        );
        let boot = boot_time(&std::fs::read_to_string("/proc/stat").unwrap()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(boot > 1_000_000_000 && boot < now, "btime {boot}");
    }
}
