//! What the `load` caller ([`super::load`]) measures and prints: the server's and
//! its own CPU time and the server's RSS, sampled from `/proc` every 250 ms; the
//! *steady window* (the span during which the target number of calls was up) and
//! the call-minutes in it; and a histogram of the intervals between consecutive
//! audio packets of each call as the kernel received them (server → caller),
//! counted inside that window only.
//!
//! The figures follow `bench/load.sh` so that the two can be compared: CPU-seconds
//! in the window ÷ call-minutes in the window (the integral of calls up ÷ 60),
//! (peak RSS in the window − idle RSS) ÷ calls, and the interval percentiles the way
//! `bench/rtp_jitter.py` computes them from a capture (pairs of consecutive
//! sequence numbers only; gaps counted apart).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

/// Histogram bins of 10 µs up to 2 s; longer intervals go in the last bin.
const BIN_NS: u64 = 10_000;
const BINS: usize = 200_000;

/// Intervals between consecutive packets, 10 µs resolution.
pub struct IntervalHistogram {
    bins: Vec<u32>,
    count: u64,
    max_ns: u64,
    /// Sequence gaps (a packet lost or reordered between two received ones).
    pub gaps: u64,
}

impl Default for IntervalHistogram {
    fn default() -> Self {
        IntervalHistogram {
            bins: vec![0; BINS],
            count: 0,
            max_ns: 0,
            gaps: 0,
        }
    }
}

impl IntervalHistogram {
    pub fn add(&mut self, ns: u64) {
        let b = ((ns / BIN_NS) as usize).min(BINS - 1);
        self.bins[b] += 1;
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    /// The q-quantile in ms (upper edge of its bin).
    fn quantile_ms(&self, q: f64) -> f64 {
        let want = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &c) in self.bins.iter().enumerate() {
            seen += u64::from(c);
            if seen >= want {
                return ((i as u64 + 1) * BIN_NS) as f64 / 1e6;
            }
        }
        self.max_ns as f64 / 1e6
    }

    /// The q-quantile of |interval − ptime| in ms.
    fn deviation_quantile_ms(&self, ptime_ns: u64, q: f64) -> f64 {
        let centre = (ptime_ns / BIN_NS) as i64;
        let mut dev: BTreeMap<i64, u64> = BTreeMap::new();
        for (i, &c) in self.bins.iter().enumerate() {
            if c > 0 {
                *dev.entry((i as i64 - centre).abs()).or_default() += u64::from(c);
            }
        }
        let want = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (d, c) in dev {
            seen += c;
            if seen >= want {
                return ((d + 1) as u64 * BIN_NS) as f64 / 1e6;
            }
        }
        0.0
    }

    fn share_within(&self, lo_ns: u64, hi_ns: u64) -> f64 {
        let (lo, hi) = ((lo_ns / BIN_NS) as usize, (hi_ns / BIN_NS) as usize);
        let n: u64 = self.bins[lo..hi.min(BINS)]
            .iter()
            .map(|&c| u64::from(c))
            .sum();
        100.0 * n as f64 / (self.count.max(1) as f64)
    }

    /// One line: n, p50/p90/p99/max in ms.
    pub fn latency_summary(&self) -> String {
        if self.count == 0 {
            return "none measured".into();
        }
        format!(
            "n {}  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2} ms",
            self.count,
            self.quantile_ms(0.5),
            self.quantile_ms(0.9),
            self.quantile_ms(0.99),
            self.max_ns as f64 / 1e6
        )
    }

    /// One line: n, p50/p99/p99.9/max of the interval, p99 of |interval − ptime|,
    /// share within ptime ± 2 ms, gaps.
    pub fn summary(&self, ptime_ms: u64) -> String {
        if self.count == 0 {
            return "no intervals measured (the steady window was never reached)".into();
        }
        let p = ptime_ms * 1_000_000;
        format!(
            "n {}  p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms; |interval - {ptime_ms} ms| p99 {:.2} ms; \
             {:.1} % within {}-{} ms; sequence gaps {}",
            self.count,
            self.quantile_ms(0.5),
            self.quantile_ms(0.99),
            self.quantile_ms(0.999),
            self.max_ns as f64 / 1e6,
            self.deviation_quantile_ms(p, 0.99),
            self.share_within(p - 2_000_000, p + 2_000_000),
            ptime_ms - 2,
            ptime_ms + 2,
            self.gaps,
        )
    }
}

/// utime + stime of a process in clock ticks, from `/proc/PID/stat`.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after ") " are fixed.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Steal time per CPU in clock ticks, from `/proc/stat` (`cpuN` lines, the
/// eighth value): time the hypervisor ran something else while this guest's
/// CPU had work. Empty where the kernel does not report it.
fn steal_ticks() -> Vec<u64> {
    std::fs::read_to_string("/proc/stat")
        .map(|s| parse_steal(&s))
        .unwrap_or_default()
}

fn parse_steal(stat: &str) -> Vec<u64> {
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            l.split_whitespace()
                .nth(8)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

/// One line on what the hypervisor took from each CPU between two `/proc/stat`
/// readings, `dur` seconds apart; `None` when it took nothing (or there is no
/// hypervisor). A window where it took time measured the host, not only the
/// server: its pacing and CPU figures are not comparable with a quiet one.
fn steal_line(before: &[u64], after: &[u64], dur: f64, tck: f64) -> Option<String> {
    let per_cpu: Vec<f64> = before
        .iter()
        .zip(after)
        .map(|(b, a)| a.saturating_sub(*b) as f64 / tck)
        .collect();
    if per_cpu.iter().all(|&s| s == 0.0) {
        return None;
    }
    let cpus: Vec<String> = per_cpu
        .iter()
        .enumerate()
        .map(|(i, s)| format!("cpu{i} {s:.2} s ({:.1} %)", 100.0 * s / dur))
        .collect();
    Some(format!(
        "host steal in window (the hypervisor ran something else on these CPUs): {}",
        cpus.join(", ")
    ))
}

fn rss_kb(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

#[derive(Clone, Debug)]
struct Sample {
    at: Instant,
    up: usize,
    server_ticks: u64,
    own_ticks: u64,
    server_rss: u64,
    /// Per CPU, see [`steal_ticks`].
    steal: Vec<u64>,
}

/// Samples of the server (by pid) and of this process.
pub struct Sampler {
    server: Option<String>,
    idle_rss: u64,
    samples: Vec<Sample>,
}

impl Sampler {
    pub fn new(server_pid: Option<u32>) -> Self {
        let server = server_pid.map(|p| p.to_string());
        let idle_rss = server.as_deref().and_then(rss_kb).unwrap_or(0);
        Sampler {
            server,
            idle_rss,
            samples: Vec::new(),
        }
    }

    pub fn sample(&mut self, at: Instant, up: usize) {
        let s = self.server.as_deref();
        self.samples.push(Sample {
            at,
            up,
            server_ticks: s.and_then(cpu_ticks).unwrap_or(0),
            own_ticks: cpu_ticks("self").unwrap_or(0),
            server_rss: s.and_then(rss_kb).unwrap_or(0),
            steal: steal_ticks(),
        });
    }

    /// The steady-window report for `target` calls up at once.
    pub fn report(&self, target: usize) -> String {
        let mut out = String::new();
        let full: Vec<usize> = (0..self.samples.len())
            .filter(|&i| self.samples[i].up >= target)
            .collect();
        let (Some(&i), Some(&j)) = (full.first(), full.last()) else {
            let max = self.samples.iter().map(|s| s.up).max().unwrap_or(0);
            return format!("steady window: never saw {target} calls up at once (max {max})\n");
        };
        if j == i {
            return "steady window: only one sample with every call up (too short)\n".into();
        }
        let win = &self.samples[i..=j];
        let dur = (win[win.len() - 1].at - win[0].at).as_secs_f64();
        let call_s: f64 = win
            .windows(2)
            .map(|w| (w[1].at - w[0].at).as_secs_f64() * (w[0].up + w[1].up) as f64 / 2.0)
            .sum();
        let call_min = call_s / 60.0;
        let tck = clock_ticks();
        let own = (win[win.len() - 1].own_ticks - win[0].own_ticks) as f64 / tck;
        let _ = write!(
            out,
            "steady window: {dur:.2} s with >= {target} calls up (mean {:.1}), {call_min:.2} call-minutes",
            call_s / dur
        );
        if self.server.is_some() {
            let cpu = (win[win.len() - 1].server_ticks - win[0].server_ticks) as f64 / tck;
            let peak = win.iter().map(|s| s.server_rss).max().unwrap_or(0);
            let _ = write!(
                out,
                "\nserver: CPU {cpu:.2} s ({:.0} % of one core) -> {:.4} CPU-s per call-minute; \
                 RSS idle {} kB, peak in window {peak} kB -> {:.1} kB per call",
                100.0 * cpu / dur,
                cpu / call_min,
                self.idle_rss,
                peak.saturating_sub(self.idle_rss) as f64 / target as f64
            );
        } else {
            out.push_str("\nserver: not measured (no --server-pid)");
        }
        let _ = writeln!(
            out,
            "\nload caller: CPU {own:.2} s ({:.0} % of one core) -> {:.4} CPU-s per call-minute",
            100.0 * own / dur,
            own / call_min
        );
        let steal = steal_line(&win[0].steal, &win[win.len() - 1].steal, dur, tck);
        let _ = writeln!(
            out,
            "{}",
            steal.unwrap_or_else(|| "host steal in window: none".into())
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_and_deviation() {
        let mut h = IntervalHistogram::default();
        for _ in 0..98 {
            h.add(20_000_000);
        }
        h.add(25_000_000);
        h.add(14_000_000);
        assert!((h.quantile_ms(0.5) - 20.01).abs() < 1e-9);
        // 99th of 100: the second largest (25 ms bin).
        assert!((h.quantile_ms(0.99) - 20.01).abs() < 1e-9);
        assert!((h.quantile_ms(1.0) - 25.01).abs() < 1e-9);
        // |dev|: 98 × 0, then 5 and 6 ms: p99 is the 99th value = 5 ms bin.
        assert!((h.deviation_quantile_ms(20_000_000, 0.99) - 5.01).abs() < 1e-9);
        assert!((h.share_within(18_000_000, 22_000_000) - 98.0).abs() < 1e-9);
    }

    #[test]
    fn steal_per_cpu() {
        let stat = "cpu  10 0 5 100 0 0 1 40 0 0\n\
                    cpu0 5 0 2 50 0 0 0 10 0 0\n\
                    cpu1 5 0 3 50 0 0 1 30 0 0\n\
                    intr 1 2 3\n";
        assert_eq!(parse_steal(stat), [10, 30]);
        assert_eq!(steal_line(&[10, 30], &[10, 30], 5.0, 100.0), None);
        assert_eq!(
            steal_line(&[10, 30], &[10, 130], 5.0, 100.0).unwrap(),
            "host steal in window (the hypervisor ran something else on these CPUs): \
             cpu0 0.00 s (0.0 %), cpu1 1.00 s (20.0 %)"
        );
    }

    #[test]
    fn reads_its_own_cpu_and_rss() {
        assert!(cpu_ticks("self").is_some());
        assert!(rss_kb("self").unwrap() > 0);
    }
}
