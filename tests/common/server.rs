//! The real `drydock serve` binary as a child process, driven over stdio by rmcp's client: what
//! an MCP client sees, and a process a test can kill.

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use serde_json::Value;

pub type StdioClient = rmcp::service::RunningService<rmcp::RoleClient, ()>;

pub async fn spawn_server(config: &std::path::Path) -> (tokio::process::Child, StdioClient) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_drydock"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (stdout, stdin) = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
    let client = ().serve((stdout, stdin)).await.expect("connect over stdio");
    (child, client)
}

pub async fn call(client: &StdioClient, tool: &str, args: Value) -> CallToolResult {
    client
        .call_tool(
            CallToolRequestParams::new(tool.to_string())
                .with_arguments(args.as_object().cloned().unwrap()),
        )
        .await
        .expect("call")
}

/// A child process listening on a loopback port (`drydock serve --http`, chromedriver), killed
/// on drop.
pub struct Listening {
    child: std::process::Child,
    pub addr: String,
}

impl Listening {
    /// Sends SIGTERM (as a service manager stopping it would) and waits for the exit; returns
    /// whether it exited cleanly and how long it took.
    pub fn terminate(&mut self) -> (bool, std::time::Duration) {
        let t0 = std::time::Instant::now();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let status = self.child.wait().expect("the server exits");
        (status.success(), t0.elapsed())
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `cmd`, which is to listen on `addr`, and waits until it does.
pub async fn listening(mut cmd: std::process::Command, addr: String) -> Listening {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} does not start: {e}"));
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            return Listening { child, addr };
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{cmd:?} did not listen on {addr}");
}

/// A running `drydock serve --http` on a free loopback port.
pub async fn serve_http(p: &super::Project) -> Listening {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_drydock"));
    cmd.arg("--config")
        .arg(&p.config_path)
        .args(["serve", "--http", &addr]);
    listening(cmd, addr).await
}
