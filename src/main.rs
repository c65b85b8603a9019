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
    New(commands::new::NewCommand),
    Build(commands::build_guest::BuildCommand),
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
            Cli::New(c) => c.execute(),
            Cli::Build(c) => c.execute(),
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    const DOC: &str = "docs/commands.md";

    /// docs/commands.md: every command's `--help`, in order.
    fn render() -> String {
        let mut cli = super::Cli::command();
        let mut out = String::from(
            "# `flotilla` command reference\n\n\
             Every command and flag, as `flotilla COMMAND --help` prints it. This file is generated and\n\
             checked against the binary by `cargo test --bin flotilla commands_doc` (regenerate it with\n\
             `UPDATE_DOCS=1 cargo test --bin flotilla commands_doc`).\n\n",
        );
        out.push_str(&format!("## flotilla\n\n```text\n{}```\n", cli.render_long_help()));
        for sub in cli.get_subcommands_mut() {
            let name = sub.get_name().to_string();
            if name == "help" {
                continue;
            }
            let help = sub.clone().bin_name(format!("flotilla {name}")).render_long_help();
            out.push_str(&format!("\n## flotilla {name}\n\n```text\n{help}```\n"));
        }
        out
    }

    #[test]
    fn commands_doc_matches_help() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC);
        let want = render();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &want).expect("write docs/commands.md");
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(have == want, "{DOC} is out of date with the commands' --help: regenerate it with `UPDATE_DOCS=1 cargo test --bin flotilla commands_doc`");
    }
}
