//! drydock's entry point: parse the command line, send logs to stderr (stdout is the MCP
//! channel), run the command, and turn its outcome into an exit code — 0 for success, 2 for a
//! refusal (printed with its code and fix), 3 for lint findings at or above `--fail-on`, 1 for
//! anything unexpected.

use clap::Parser;
use tracing_subscriber::EnvFilter;

use drydock::cli::{Cli, Command, Format, Refused, RemoteRefused, run};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            EnvFilter::try_from_env("DRYDOCK_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        // A command whose reader goes away (`drydock lint ... | head`) ends quietly, as Unix
        // tools do, instead of panicking on a broken pipe. Not for `serve`, which must outlive
        // any one client.
        // SAFETY: restoring the default disposition of one signal, before any thread writes.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let json = matches!(cli.command.format(), Format::Json);
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            let refusal = e
                .downcast_ref::<Refused>()
                .map(Refused::refusal)
                .or_else(|| e.downcast_ref::<RemoteRefused>().map(|r| r.0.clone()));
            if let Some(r) = refusal {
                eprintln!("{r}");
                if json {
                    // A script reading stdout gets the refusal as data too.
                    println!("{}", serde_json::json!({ "error": r }));
                }
                2
            } else {
                eprintln!("error: {}", drydock::errorlog::redact(&format!("{e:#}")));
                1
            }
        }
    };
    std::process::exit(code);
}
