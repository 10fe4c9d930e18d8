//! The machine a run executed on, for the manifest.

use serde::{Deserialize, Serialize};

/// CPU model, hardware threads and OS of this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// CPU model name (`unknown` where the OS does not say).
    pub cpu: String,
    /// Hardware threads available to this process.
    pub threads: usize,
    /// Operating system and architecture.
    pub os: String,
}

impl HostInfo {
    /// Describes this machine.
    pub fn detect() -> Self {
        let cpu = fs_err::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| {
                        l.strip_prefix("model name")
                            .and_then(|rest| rest.split_once(':'))
                    })
                    .map(|(_, model)| model.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            cpu,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}
