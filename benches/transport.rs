//! One MCP round trip (`tools/call status` on the demo) over stdio and over the team server's
//! streamable HTTP, against the release binary as clients meet it. Prints median and p99 of each.
//! Both sides speak raw JSON-RPC, so the figures are drydock's, not a client library's; each
//! HTTP call opens its own loopback connection (as many clients do), which is part of its cost.
//!
//! Run: `cargo bench --bench transport` (builds the binary first). Under `cargo test` it does
//! nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CALLS: usize = 300;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_drydock");
    let dir = tempfile::tempdir().expect("temp dir");
    let stdio = stdio_round_trips(bin, dir.path());
    let http = http_round_trips(bin, dir.path());
    for (name, mut ms) in [("stdio", stdio), ("http", http)] {
        ms.sort_by(f64::total_cmp);
        println!(
            "{name:>5}: {CALLS} calls, median {:.3} ms, p99 {:.3} ms",
            ms[ms.len() / 2],
            ms[(ms.len() * 99 / 100).min(ms.len() - 1)]
        );
    }
}

fn request(id: usize, method: &str, params: serde_json::Value) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

fn initialize() -> serde_json::Value {
    serde_json::json!({"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "bench", "version": "1"}})
}

fn status_call() -> serde_json::Value {
    serde_json::json!({"name": "status", "arguments": {}})
}

fn stdio_round_trips(bin: &str, dir: &std::path::Path) -> Vec<f64> {
    let mut child = Command::new(bin)
        .arg("serve")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("drydock serves");
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    writeln!(input, "{}", request(0, "initialize", initialize())).unwrap();
    output.read_line(&mut line).unwrap();
    writeln!(
        input,
        "{}",
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
    )
    .unwrap();
    let mut ms = Vec::with_capacity(CALLS);
    for id in 1..=CALLS {
        let t0 = Instant::now();
        writeln!(input, "{}", request(id, "tools/call", status_call())).unwrap();
        line.clear();
        output.read_line(&mut line).unwrap();
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert!(line.contains("\"result\""), "{line}");
    }
    drop(input);
    let _ = child.kill();
    let _ = child.wait();
    ms
}

fn http_round_trips(bin: &str, dir: &std::path::Path) -> Vec<f64> {
    let token = mint_token(dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(bin)
        .args(["serve", "--http", &addr])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("drydock serves");
    while TcpStream::connect(&addr).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, headers) = post(&addr, &token, None, &request(0, "initialize", initialize()));
    let session = headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("mcp-session-id:")
                .then(|| l.split_once(':').unwrap().1.trim().to_string())
        })
        .expect("a session id");
    post(
        &addr,
        &token,
        Some(&session),
        &serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
    );
    let mut ms = Vec::with_capacity(CALLS);
    for id in 1..=CALLS {
        let t0 = Instant::now();
        let (body, _) = post(
            &addr,
            &token,
            Some(&session),
            &request(id, "tools/call", status_call()),
        );
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert!(body.contains("\"result\""), "{body}");
    }
    let _ = child.kill();
    let _ = child.wait();
    ms
}

/// An agent token, made as an admin at a terminal would (the bench is that admin).
fn mint_token(dir: &std::path::Path) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = drydock::demo::config(&dir.join(".drydock")).expect("demo config");
        let engine = drydock::engine::Engine::open(config).await.expect("engine");
        let admin = drydock::identity::Principal::person("bench", drydock::identity::Grant::Admin);
        engine
            .create_token(&admin, "bench-agent", drydock::identity::Grant::Agent, None)
            .await
            .expect("token")
            .token
    })
}

/// One POST to /mcp on its own connection; returns (body, head). The answer may be an SSE
/// stream: reading stops at the first `data:` event that carries a JSON-RPC result.
fn post(addr: &str, token: &str, session: Option<&str>, body: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let session = session
        .map(|id| format!("Mcp-Session-Id: {id}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{session}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if text.contains("\"result\"") && text.ends_with("\n\n") || text.starts_with("HTTP/1.1 202")
        {
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (body.to_string(), head.to_string())
}
