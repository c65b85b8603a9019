//! The `flotilla` binary: one small executable for the control plane, the node and tools.

mod commands;

/// mimalloc instead of the system allocator: the control plane's hot paths build and drop
/// JSON objects, and glibc's malloc/free took about a quarter of the CPU of the scheduler
/// benchmark (`benches/*` use the same allocator, so they measure this binary's behaviour).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

/// Flotilla: Kubernetes, rebuilt for WebAssembly.
#[derive(Parser)]
#[command(name = "flotilla", version, about, long_about = None)]
enum Cli {
    Up(commands::up::UpCommand),
    Server(commands::server::ServerCommand),
    Node(commands::node::NodeCommand),
    Push(commands::push::PushCommand),
    Status(commands::status::StatusCommand),
    Down(commands::down::DownCommand),
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLOTILLA_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match Cli::parse() {
            Cli::Up(c) => c.execute().await,
            Cli::Server(c) => c.execute().await,
            Cli::Node(c) => c.execute().await,
            Cli::Push(c) => c.execute().await,
            Cli::Status(c) => c.execute(),
            Cli::Down(c) => c.execute().await,
        }
    })
}
