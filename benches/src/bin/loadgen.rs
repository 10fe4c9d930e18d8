//! `kiln-loadgen`: a closed-loop HTTP load generator for `kiln serve` and its peers, on
//! 127.0.0.1 only, bounded in requests and time.
//!
//! ```sh
//! kiln-loadgen --rows rows.jsonl --requests 20000 --seconds 20 --concurrency 1,16,64 \
//!     kiln=http://127.0.0.1:8080/v1/predict fastapi=http://127.0.0.1:8081/v1/predict
//! ```
//!
//! Each request posts one JSON row (`[row]`, cycling through `--rows`, one JSON object per
//! line) on a kept-alive connection per client. Prints req/s, p50, p99 and the host's CPU
//! steal per target and concurrency, then the first target's throughput over each other's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

struct Args {
    rows: Vec<Bytes>,
    requests: usize,
    seconds: u64,
    concurrency: Vec<usize>,
    targets: Vec<(String, SocketAddr, String)>,
}

struct Outcome {
    ok: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let (mut rows, mut requests, mut seconds, mut concurrency, mut targets) =
        (None, 10_000, 30, vec![1, 16, 64], Vec::new());
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rows" => rows = Some(value()?),
            "--requests" => requests = value()?.parse()?,
            "--seconds" => seconds = value()?.parse()?,
            "--concurrency" => {
                concurrency = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            target => {
                let (name, url) = target
                    .split_once('=')
                    .context("targets are NAME=http://127.0.0.1:PORT/PATH")?;
                let rest = url.strip_prefix("http://").context("http:// only")?;
                let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                let addr: SocketAddr = host.parse().context("an IP:PORT address")?;
                ensure!(addr.ip().is_loopback(), "{addr}: 127.0.0.1 only");
                targets.push((name.to_owned(), addr, format!("/{path}")));
            }
        }
    }
    let rows = fs_err::read_to_string(rows.context("--rows FILE (JSON lines)")?)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Bytes::from(format!("[{l}]")))
        .collect::<Vec<_>>();
    if rows.is_empty() || targets.is_empty() {
        bail!("need --rows with at least one row and at least one NAME=URL target");
    }
    Ok(Args {
        rows,
        requests,
        seconds,
        concurrency,
        targets,
    })
}

async fn client(
    addr: SocketAddr,
    path: Arc<str>,
    rows: Arc<Vec<Bytes>>,
    issued: Arc<AtomicUsize>,
    limit: usize,
    deadline: Instant,
) -> anyhow::Result<(usize, usize, Vec<Duration>)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let (mut ok, mut failed, mut latencies) = (0, 0, Vec::new());
    loop {
        let i = issued.fetch_add(1, Ordering::Relaxed);
        if i >= limit || Instant::now() >= deadline {
            break;
        }
        let request = hyper::Request::post(&*path)
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .body(Full::new(rows[i % rows.len()].clone()))?;
        let start = Instant::now();
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        latencies.push(start.elapsed());
        if status.is_success() {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    Ok((ok, failed, latencies))
}

async fn run(
    args: &Args,
    addr: SocketAddr,
    path: &str,
    concurrency: usize,
) -> anyhow::Result<Outcome> {
    let rows = Arc::new(args.rows.clone());
    let issued = Arc::new(AtomicUsize::new(0));
    let path: Arc<str> = Arc::from(path);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            tokio::spawn(client(
                addr,
                Arc::clone(&path),
                Arc::clone(&rows),
                Arc::clone(&issued),
                args.requests,
                deadline,
            ))
        })
        .collect();
    let mut outcome = Outcome {
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for task in tasks {
        let (ok, failed, latencies) = task.await??;
        outcome.ok += ok;
        outcome.failed += failed;
        outcome.latencies.extend(latencies);
    }
    outcome.elapsed = start.elapsed();
    outcome.latencies.sort();
    Ok(outcome)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// The machine's (busy + idle, steal) CPU ticks from `/proc/stat`; `None` off Linux.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = fs_err::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal ...
    Some((ticks.iter().take(8).sum(), *ticks.get(7)?))
}

/// The share of CPU time a virtual machine's host gave to others during a run: on a shared
/// host it moves throughput more than anything measured, so every row reports it.
fn steal_percent(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<f64> {
    let ((total0, steal0), (total1, steal1)) = (before?, after?);
    let total = total1.checked_sub(total0).filter(|&t| t > 0)?;
    #[allow(clippy::cast_precision_loss)]
    Some(100.0 * steal1.saturating_sub(steal0) as f64 / total as f64)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    // One thread: the load generator shares the machine with the server under test.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut throughput = Vec::new();
    println!(
        "{:<10} {:>5} {:>9} {:>7} {:>11} {:>10} {:>10} {:>8}",
        "target", "conc", "requests", "failed", "req/s", "p50 ms", "p99 ms", "steal %"
    );
    for &concurrency in &args.concurrency {
        for (name, addr, path) in &args.targets {
            // A short warm-up: connections, allocator, the model's first batches.
            let warm = Args {
                requests: 200.min(args.requests),
                seconds: 5,
                rows: args.rows.clone(),
                concurrency: Vec::new(),
                targets: Vec::new(),
            };
            runtime.block_on(run(&warm, *addr, path, concurrency))?;
            let before = cpu_times();
            let o = runtime.block_on(run(&args, *addr, path, concurrency))?;
            let steal = steal_percent(before, cpu_times());
            #[allow(clippy::cast_precision_loss)]
            let rate = (o.ok + o.failed) as f64 / o.elapsed.as_secs_f64();
            println!(
                "{name:<10} {concurrency:>5} {:>9} {:>7} {rate:>11.0} {:>10.3} {:>10.3} {:>8}",
                o.ok + o.failed,
                o.failed,
                percentile(&o.latencies, 0.5).as_secs_f64() * 1e3,
                percentile(&o.latencies, 0.99).as_secs_f64() * 1e3,
                steal.map_or_else(|| "-".to_owned(), |p| format!("{p:.0}")),
            );
            throughput.push((name.clone(), concurrency, rate));
        }
    }
    if let Some((first, _, _)) = throughput.first().cloned() {
        for (name, concurrency, rate) in &throughput {
            if *name == first {
                continue;
            }
            let base = throughput
                .iter()
                .find(|(n, c, _)| *n == first && c == concurrency)
                .map_or(0.0, |t| t.2);
            println!(
                "{first} / {name} at concurrency {concurrency}: {:.1}x",
                base / rate
            );
        }
    }
    Ok(())
}
