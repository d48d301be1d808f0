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
