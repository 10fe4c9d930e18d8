//! kiln's HTTP inference server: serves a bundle over JSON with schema checks, dynamic
//! micro-batching, Prometheus metrics, hot reload and drift gauges. The bundle is a directory
//! or a `.kiln` file from `kiln export` (verified when loaded, and again on each reload).
//!
//! | route                   | what                                                        |
//! |-------------------------|-------------------------------------------------------------|
//! | `POST /v1/predict`      | rows (`[{..}]`) or columns (`{"x": [..]}`) to predictions   |
//! | `GET /v1/health`        | liveness                                                    |
//! | `GET /v1/ready`         | 200 while a model is loaded and the server is not draining  |
//! | `GET /v1/metadata`      | schema, classes, metrics and manifest summary               |
//! | `GET /metrics`          | Prometheus text                                             |
//! | `POST /v1/admin/reload` | loopback peers only: reload the bundle (or `{"bundle": ..}`) |
//!
//! ```no_run
//! use kiln_serve::{ServeOptions, Server};
//!
//! # async fn run() -> kiln_serve::Result<()> {
//! let options = ServeOptions::default().check()?;
//! let server = Server::bind("runs/penguins-species-1/bundle".into(), options).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(std::future::pending()).await
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod batch;
mod error;
mod metrics;
mod model;
mod options;
mod server;

pub use error::{Error, Result};
pub use options::{ServeOptions, ValidServeOptions};
pub use server::{Server, serve};
