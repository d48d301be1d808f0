//! The team server: MCP streamable HTTP at `/mcp` and a small JSON API under `/api` on one port,
//! behind one guard. Every request names a `Host` the server answers to (no DNS rebinding), an
//! allowed `Origin` when it has one, and a live bearer token; the token's principal is who acts
//! (the author of plans, the agent in ERRORS.md, the approver). Bodies are size-limited and each
//! token is rate-limited. No MCP tool approves, releases or manages tokens, whatever the token;
//! the API's decisions need an approver token. An adapter: everything goes through `engine`.

mod api;
mod guard;
mod page;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::engine::Engine;
use crate::error::Error;
use crate::mcp::DrydockServer;

/// Requests larger than this are refused before they are read (413).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Where the server listens and whom it answers.
#[derive(Debug, Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    /// `Host` values the server answers to (`127.0.0.1:PORT`, `localhost:PORT`, ...).
    pub hosts: Vec<String>,
    /// `Origin` values allowed (the server's own, and `[server] allowed_origins`).
    pub origins: Vec<String>,
}

impl Listen {
    /// Checks the address against `[server] allow_remote` and derives hosts and origins.
    pub fn new(addr: &str, engine: &Engine) -> Result<Listen, Error> {
        let addr: SocketAddr = addr.parse().map_err(|e| {
            Error::Config(format!(
                "`--http {addr}` is not an address like 127.0.0.1:8700: {e}"
            ))
        })?;
        let server = &engine.config.server;
        if !addr.ip().is_loopback() && !server.allow_remote {
            return Err(Error::Config(format!(
                "refusing to listen on {addr}: it is not a loopback address; set `[server] allow_remote = true` in drydock.toml (and put TLS in front, see README)"
            )));
        }
        let port = addr.port();
        let mut hosts = vec![addr.to_string()];
        if addr.ip().is_loopback() {
            hosts.extend([
                format!("localhost:{port}"),
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
            ]);
        }
        let mut origins: Vec<String> = hosts.iter().map(|h| format!("http://{h}")).collect();
        origins.extend(server.allowed_origins.iter().cloned());
        Ok(Listen {
            addr,
            hosts,
            origins,
        })
    }
}

/// Serves until SIGINT or SIGTERM; then stops taking requests and lets running applies reach
/// their next checkpoint (at most a minute) before returning.
pub async fn serve(engine: Arc<Engine>, listen: Listen) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen.addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(%bound, "drydock serving MCP at /mcp and the API at /api over HTTP");
    // The one line a person starting the team server needs, whatever the log filter.
    eprintln!(
        "drydock team server: http://{bound}/ (review page), MCP at http://{bound}/mcp; every request needs a bearer token"
    );
    let mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(listen.hosts.clone())
        .with_max_request_body_bytes(MAX_BODY_BYTES);
    let stop = mcp_config.cancellation_token.clone();
    let mcp = {
        let engine = engine.clone();
        StreamableHttpService::new(
            move || Ok(DrydockServer::new(engine.clone())),
            LocalSessionManager::default().into(),
            mcp_config,
        )
    };
    let state = guard::State::new(engine.clone(), listen);
    let app = Router::new()
        .nest_service("/mcp", mcp)
        .merge(api::routes())
        .merge(page::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(guard::harden))
        .with_state(state);
    let limits = (
        engine.config.server.header_read_timeout(),
        engine.config.server.max_connections(),
    );
    let shutdown = async move {
        crate::mcp::shutdown_signal().await;
        // Running applies stop at their next checkpoint first, so that the calls waiting
        // on them answer; then the MCP sessions close and the connections drain.
        engine.shutdown(Duration::from_secs(60)).await;
        stop.cancel();
    };
    accept(listener, app, limits, shutdown).await;
    Ok(())
}

/// Serves connections until `shutdown` completes: at most `max` at once (the next waits in the
/// kernel's queue until one ends), each closed when a request's headers take longer than
/// `header_timeout` (a slow client holds its own connection, never a login). Connections still
/// open at the end get ten seconds to finish.
async fn accept(
    listener: tokio::net::TcpListener,
    app: Router,
    (header_timeout, max): (Duration, usize),
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let service = hyper_util::service::TowerToHyperService::new(app);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(max));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            _ = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            connection.await.ok();
            drop(slot);
        });
    }
    tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .ok();
}
