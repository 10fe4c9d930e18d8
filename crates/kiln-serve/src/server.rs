//! Routes, request handling, reload and shutdown.

// axum handlers are async and take their extractors by value, whether or not they await or
// consume them.
#![allow(clippy::unused_async, clippy::needless_pass_by_value)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kiln_pipeline::InputError;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::batch::{self, Job};
use crate::metrics::Metrics;
use crate::model::Model;
use crate::{Error, Result, ValidServeOptions};

/// Routes as metrics label them; anything else is `other`, so stray paths cannot grow the
/// label set.
const ROUTES: [&str; 6] = [
    "/v1/predict",
    "/v1/health",
    "/v1/ready",
    "/v1/metadata",
    "/v1/admin/reload",
    "/metrics",
];

struct App {
    model: RwLock<Arc<Model>>,
    jobs: SyncSender<Job>,
    metrics: Arc<Metrics>,
    options: ValidServeOptions,
    versions: AtomicU64,
    /// One reload at a time, so versions follow the order of the swaps.
    reloading: tokio::sync::Mutex<()>,
    draining: AtomicBool,
    /// Predict requests being handled (see [`batch::start`]).
    in_flight: Arc<AtomicUsize>,
}

/// Counts a predict request as in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl App {
    fn current(&self) -> Arc<Model> {
        // The lock only guards a pointer swap; a poisoned one still holds a whole Arc.
        Arc::clone(
            &self
                .model
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Loads `dir` (the current bundle when `None`) and swaps it in; the old model stays on a
    /// failure, and requests already holding it finish on it.
    async fn reload(self: &Arc<Self>, dir: Option<PathBuf>) -> Result<Arc<Model>, String> {
        let _one = self.reloading.lock().await;
        let dir = dir.unwrap_or_else(|| self.current().source());
        let version = self.versions.load(Ordering::SeqCst) + 1;
        let backend = self.options.backend();
        let loaded = tokio::task::spawn_blocking(move || Model::load(&dir, backend, version))
            .await
            .map_err(|e| format!("the loader failed: {e}"))
            .and_then(|r| r.map_err(|e| e.to_string()));
        match loaded {
            Ok(model) => {
                let model = Arc::new(model);
                self.versions.store(version, Ordering::SeqCst);
                *self
                    .model
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::clone(&model);
                self.metrics.record_reload("ok");
                eprintln!("reloaded {} as version {version}", model.id);
                Ok(model)
            }
            Err(reason) => {
                self.metrics.record_reload("failed");
                eprintln!("reload failed, keeping the current model: {reason}");
                Err(reason)
            }
        }
    }
}

/// A bound server, serving once [`Server::run`] is awaited.
pub struct Server {
    listener: TcpListener,
    app: Arc<App>,
}

impl Server {
    /// Loads the bundle at `bundle` (a bundle directory or a `.kiln` file) and binds
    /// `options.addr()` (port 0 picks a free port).
    ///
    /// # Errors
    /// The bundle cannot be loaded; the address cannot be bound.
    pub async fn bind(bundle: PathBuf, options: ValidServeOptions) -> Result<Server> {
        let backend = options.backend();
        let model = tokio::task::spawn_blocking(move || Model::load(&bundle, backend, 1))
            .await
            .map_err(std::io::Error::other)??;
        let metrics = Arc::new(Metrics::default());
        let in_flight = Arc::new(AtomicUsize::new(0));
        let jobs = batch::start(
            options.max_batch(),
            options.max_wait(),
            options.queue(),
            Arc::clone(&metrics),
            Arc::clone(&in_flight),
        )?;
        let addr = options.addr();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        Ok(Server {
            listener,
            app: Arc::new(App {
                model: RwLock::new(Arc::new(model)),
                jobs,
                metrics,
                options,
                versions: AtomicU64::new(1),
                reloading: tokio::sync::Mutex::new(()),
                draining: AtomicBool::new(false),
                in_flight,
            }),
        })
    }

    /// The address listened on.
    ///
    /// # Panics
    /// Never on a bound socket.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish and returns.
    ///
    /// # Errors
    /// The listener fails.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let app = Arc::clone(&self.app);
        let router = Router::new()
            .route("/v1/predict", post(predict))
            .route("/v1/health", get(health))
            .route("/v1/ready", get(ready))
            .route("/v1/metadata", get(metadata))
            .route("/v1/admin/reload", post(reload))
            .route("/metrics", get(metrics))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&app),
                track,
            ))
            .with_state(Arc::clone(&app));
        let drain = async move {
            shutdown.await;
            app.draining.store(true, Ordering::SeqCst);
            eprintln!("shutting down: draining in-flight requests");
        };
        axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(drain)
        .await?;
        Ok(())
    }

    /// Reloads the bundle now, as SIGHUP does.
    ///
    /// # Errors
    /// Why the reload failed; the old model stays.
    pub async fn reload(&self) -> Result<(), String> {
        self.app.reload(None).await.map(|_| ())
    }
}

/// Serves `bundle` until SIGTERM or SIGINT (SIGHUP reloads it): what `kiln serve` runs.
/// Prints the address on standard error once listening.
///
/// # Errors
/// The bundle cannot be loaded; the address cannot be bound; the runtime fails.
pub fn serve(bundle: PathBuf, options: ValidServeOptions) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let server = Server::bind(bundle, options).await?;
        let app = Arc::clone(&server.app);
        eprintln!(
            "kiln serve: {} version 1 on http://{}",
            app.current().id,
            server.local_addr()
        );
        listen_for_reloads(app)?;
        server.run(terminate()?).await
    })
}

/// Reloads on every SIGHUP.
fn listen_for_reloads(app: Arc<App>) -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                // The outcome is logged and counted in kiln_reloads_total.
                let _ = app.reload(None).await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = app;
    Ok(())
}

/// Completes on the first SIGTERM or SIGINT.
fn terminate() -> Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Counts every request by route and status, with its latency.
async fn track(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = ROUTES
        .iter()
        .find(|r| **r == request.uri().path())
        .copied()
        .unwrap_or("other");
    let response = next.run(request).await;
    app.metrics
        .record_request(route, response.status().as_u16(), start.elapsed());
    response
}

/// A request that cannot be answered: its status, and JSON naming what is wrong.
#[derive(Debug)]
struct AppError {
    status: StatusCode,
    message: String,
    row: Option<usize>,
    column: Option<String>,
}

impl AppError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            row: None,
            column: None,
        }
    }

    /// A failure that is ours, not the client's: logged in full, answered generically.
    fn internal(detail: &str) -> Self {
        eprintln!("internal error: {detail}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl From<InputError> for AppError {
    fn from(e: InputError) -> Self {
        let status = if e.is_malformed() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        Self {
            status,
            message: e.to_string(),
            row: e.row(),
            column: e.column().map(str::to_owned),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut error = json!({ "status": self.status.as_u16(), "message": self.message });
        if let Some(row) = self.row {
            error["row"] = json!(row);
        }
        if let Some(column) = self.column {
            error["column"] = json!(column);
        }
        (self.status, axum::Json(json!({ "error": error }))).into_response()
    }
}

/// Reads a body of at most the configured limit (413 past it, before reading when the
/// length is declared).
async fn read_body(
    app: &App,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, AppError> {
    let limit = app.options.body_limit();
    let too_large = || {
        AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e)
            .is_some_and(<dyn std::error::Error>::is::<http_body_util::LengthLimitError>)
        {
            too_large()
        } else {
            AppError::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        }
    })
}

async fn predict(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let limit = app.options.timeout();
    let _counted = InFlight::new(&app.in_flight);
    let answer = async {
        let bytes = read_body(&app, &headers, body).await?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| AppError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?;
        let model = app.current();
        let table = model.predictor.spec().json_table(&value)?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            model: Arc::clone(&model),
            table,
            reply,
        };
        match app.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many requests are waiting for the model; retry later",
                ));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(AppError::internal("the batching thread is gone"));
            }
        }
        let predictions = answer
            .await
            .map_err(|_| AppError::internal("the batching thread dropped a request"))?
            .map_err(|e| AppError::internal(&e))?;
        Ok(
            axum::Json(json!({ "model": model.identity(), "predictions": predictions }))
                .into_response(),
        )
    };
    tokio::time::timeout(limit, answer)
        .await
        .unwrap_or_else(|_| {
            Err(AppError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("no answer within {} ms", limit.as_millis()),
            ))
        })
}

async fn health() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    if app.draining.load(Ordering::SeqCst) {
        return AppError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    axum::Json(json!({ "status": "ready", "model": app.current().identity() })).into_response()
}

async fn metadata(State(app): State<Arc<App>>) -> Response {
    axum::Json(app.current().metadata()).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let model = app.current();
    let drift = model.stats.as_ref().and_then(|stats| {
        let window = model.window.lock().ok()?;
        Some(window.report(stats, &model.predictor.spec().drift))
    });
    let text = app.metrics.render(&model.id, model.version, drift.as_ref());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn reload(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    if !peer.ip().is_loopback() {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            "reload is only allowed from the loopback interface",
        ));
    }
    let bytes = read_body(&app, &headers, body).await?;
    let dir = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| AppError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?;
        match value.get("bundle") {
            Some(Value::String(path)) => Some(PathBuf::from(path)),
            _ => {
                return Err(AppError::new(
                    StatusCode::BAD_REQUEST,
                    "expected an empty body or {\"bundle\": \"<directory or .kiln file>\"}",
                ));
            }
        }
    };
    match app.reload(dir).await {
        Ok(model) => Ok(axum::Json(json!({ "model": model.identity() })).into_response()),
        Err(reason) => Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "reload failed, still serving {} version {}: {reason}",
                app.current().id,
                app.current().version
            ),
        )),
    }
}

async fn not_found() -> AppError {
    AppError::new(StatusCode::NOT_FOUND, "no such route")
}
