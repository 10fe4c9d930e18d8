use std::net::SocketAddr;
use std::time::Duration;

use kiln_core::BackendKind;

use crate::{Error, Result};

/// Server settings as given (the `kiln serve` flags); [`ServeOptions::check`] validates them.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Where to compute.
    pub backend: BackendKind,
    /// Most rows per model call.
    pub max_batch: usize,
    /// How long the first request of a batch waits for others, in microseconds.
    pub max_wait_us: u64,
    /// Per-request limit, in milliseconds.
    pub timeout_ms: u64,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Requests waiting for the model at most; more are refused with 503.
    pub queue: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            backend: BackendKind::Ndarray,
            max_batch: 256,
            max_wait_us: 200,
            timeout_ms: 5000,
            body_limit: 4 << 20,
            queue: 4096,
        }
    }
}

/// Checked [`ServeOptions`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidServeOptions(ServeOptions);

impl ServeOptions {
    /// Checks every rule.
    ///
    /// # Errors
    /// [`Error::Option`] naming the flag.
    pub fn check(self) -> Result<ValidServeOptions> {
        let rule = |ok: bool, option, reason| {
            if ok {
                Ok(())
            } else {
                Err(Error::Option { option, reason })
            }
        };
        rule(self.max_batch >= 1, "max-batch", "must be at least 1")?;
        rule(self.timeout_ms >= 1, "timeout-ms", "must be at least 1")?;
        rule(
            self.body_limit >= 2,
            "body-limit",
            "must be at least 2 bytes",
        )?;
        rule(self.queue >= 1, "queue", "must be at least 1")?;
        Ok(ValidServeOptions(self))
    }
}

impl ValidServeOptions {
    /// Where to listen.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }
    /// Where to compute.
    pub fn backend(&self) -> BackendKind {
        self.0.backend
    }
    /// Most rows per model call.
    pub fn max_batch(&self) -> usize {
        self.0.max_batch
    }
    /// How long the first request of a batch waits for others.
    pub fn max_wait(&self) -> Duration {
        Duration::from_micros(self.0.max_wait_us)
    }
    /// Per-request limit.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.0.timeout_ms)
    }
    /// Largest request body.
    pub fn body_limit(&self) -> usize {
        self.0.body_limit
    }
    /// Most requests waiting for the model.
    pub fn queue(&self) -> usize {
        self.0.queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_names_its_flag() {
        let bad = [
            ServeOptions {
                max_batch: 0,
                ..ServeOptions::default()
            },
            ServeOptions {
                timeout_ms: 0,
                ..ServeOptions::default()
            },
            ServeOptions {
                body_limit: 1,
                ..ServeOptions::default()
            },
            ServeOptions {
                queue: 0,
                ..ServeOptions::default()
            },
        ];
        let flags: Vec<String> = bad
            .into_iter()
            .map(|o| o.check().unwrap_err().to_string())
            .collect();
        assert_eq!(
            flags,
            [
                "--max-batch: must be at least 1",
                "--timeout-ms: must be at least 1",
                "--body-limit: must be at least 2 bytes",
                "--queue: must be at least 1"
            ]
        );
        assert!(ServeOptions::default().check().is_ok());
    }
}
