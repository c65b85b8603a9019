//! `flotilla up`: a local cluster in one process — the control plane and embedded nodes
//! that reach it through the same URL and token a remote node would use.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Args;

use super::server::{ControlPlaneFlags, wait_for_signal};
use super::state::{self, RunState};

/// Start a local Flotilla cluster and point kubectl at it.
#[derive(Args, Debug)]
pub(crate) struct UpCommand {
    #[command(flatten)]
    pub flags: ControlPlaneFlags,
    /// Number of embedded nodes. One node is named after the host; several are named
    /// HOST-1 … HOST-N
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub nodes: u32,
    /// Control plane members (odd), each its own process: member K serves the API on the
    /// --listen port + 2(K-1) and raft peers one port above (port 0: free ports); members
    /// after the first keep their data in DATA_DIR/member-K
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_servers)]
    pub servers: u32,
    /// Let pods reach addresses outside the cluster over the host's network (HTTP and TCP),
    /// where NetworkPolicy allows; without it pods reach only the pod network
    #[arg(long)]
    pub allow_pod_egress: bool,
    // One Ingress listener per process: the first embedded node runs it for all.
    #[command(flatten)]
    pub ingress: super::ingress::IngressFlags,
    /// First delay before restarting a crashed container, in milliseconds; it doubles up to
    /// 5 minutes (Kubernetes: 10000)
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub restart_backoff_ms: u64,
    /// Most pods a node runs (its allocatable pods; fewer if its pod range holds fewer
    /// addresses, see --node-cidr-mask-size)
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_pods: u32,
    /// Applies to each embedded node.
    #[command(flatten)]
    pub allocatable: super::node::AllocatableFlags,
    #[command(flatten)]
    pub host_paths: super::node::HostPathFlags,
    /// Run in the background: start the cluster, wait until it serves, print where it is
    /// (API URL, context, log file) and return. `flotilla status` shows it and
    /// `flotilla down` stops it
    #[arg(short = 'd', long)]
    pub detach: bool,
}

/// Set in the environment of the process `up --detach` starts, which does the serving.
const DETACHED_ENV: &str = "FLOTILLA_UP_DETACHED";

fn parse_servers(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if n == 0 || n.is_multiple_of(2) || n > 7 {
        return Err(format!("--servers takes an odd number from 1 to 7 (a raft majority), not {n}"));
    }
    Ok(n)
}

/// API and peer addresses of member `k` (1-based) when the first serves the API on `listen`.
fn member_addrs(listen: SocketAddr, k: u32) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    if listen.port() == 0 {
        return Ok((listen, listen));
    }
    let api = u32::from(listen.port()) + 2 * (k - 1);
    let peer = api + 1;
    anyhow::ensure!(peer <= u32::from(u16::MAX), "--listen port {} leaves no ports for {k} members", listen.port());
    Ok((SocketAddr::new(listen.ip(), api as u16), SocketAddr::new(listen.ip(), peer as u16)))
}

/// A member `up` started as a child process.
struct MemberProcess {
    child: std::process::Child,
    /// Its API server's URL.
    url: String,
}

impl MemberProcess {
    /// Starts member `k` joining the cluster at `url` and waits for its ready line.
    fn start(flags: &ControlPlaneFlags, k: u32, url: &str, token: &str) -> anyhow::Result<MemberProcess> {
        use std::io::BufRead as _;
        let (api, peer) = member_addrs(flags.listen, k)?;
        let dir = flags.data_dir()?.join(format!("member-{k}"));
        std::fs::create_dir_all(&dir)?;
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .arg("server")
            .arg("--data-dir")
            .arg(&dir)
            .args(["--listen", &api.to_string(), "--peer-listen", &peer.to_string(), "--exit-with-parent"])
            .arg("--kubeconfig")
            .arg(dir.join("kubeconfig"))
            .args(["--join", url, "--token", token])
            .args(flags.member_args())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("starting a control plane member")?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        let mut member = MemberProcess { child, url: String::new() };
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
                Ok(line) if line.contains("ready") => {
                    println!("flotilla member {k}: {line}");
                    member.url = line.split_whitespace().find(|w| w.starts_with("https://")).unwrap_or_default().to_string();
                    return Ok(member);
                }
                Ok(_) => {}
                Err(_) => {
                    member.stop();
                    anyhow::bail!("control plane member {k} did not start (see its log above)");
                }
            }
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MemberProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Names of `count` embedded nodes on host `host`.
fn node_names(host: &str, count: u32) -> Vec<String> {
    match count {
        1 => vec![host.to_string()],
        n => (1..=n).map(|i| format!("{host}-{i}")).collect(),
    }
}

impl UpCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let data_dir = self.flags.data_dir()?;
        if let Some(running) = state::running(&data_dir) {
            anyhow::bail!(
                "flotilla is already running on {} (pid {}, data dir {}); stop it with `flotilla down{}`",
                running.api,
                running.pid,
                data_dir.display(),
                self.data_dir_flag()
            );
        }
        // Before anything starts (the detached process would only log it).
        self.flags.audit_config()?;
        let detached_child = std::env::var_os(DETACHED_ENV).is_some();
        if self.detach && !detached_child {
            return self.start_detached(&data_dir).await;
        }
        if detached_child {
            // Its own session: the terminal `up -d` ran in may close.
            let _ = rustix::process::setsid();
        }
        let mut members = Vec::new();
        let handle = if self.servers == 1 {
            self.flags.start_quiet().await?
        } else {
            let (_, peer) = member_addrs(self.flags.listen, 1)?;
            let cluster = flotilla_control::cluster::ClusterConfig { peer_listen: Some(peer), join: None };
            let handle = self.flags.start_member(cluster).await?;
            let token = std::fs::read_to_string(self.flags.data_dir()?.join("join-token")).context("reading the join token")?;
            for k in 2..=self.servers {
                let (flags, url, token) = (self.flags.clone(), handle.url(), token.trim().to_string());
                members.push(tokio::task::spawn_blocking(move || MemberProcess::start(&flags, k, &url, &token)).await??);
            }
            handle
        };
        let names = node_names(&super::node::host_name(), self.nodes);
        let mut nodes = Vec::new();
        for (i, name) in names.iter().cloned().enumerate() {
            let dir = self.flags.data_dir()?.join(if self.nodes == 1 { "node".to_string() } else { format!("node-{name}") });
            // The embedded nodes fail over between the members.
            let servers: Vec<String> = std::iter::once(handle.url()).chain(members.iter().map(|m| m.url.clone())).collect();
            let mut config = flotilla_node::NodeConfig::new(servers.join(","), handle.admin_token.clone(), name, dir);
            config.ca_pem = Some(handle.ca_pem.clone());
            config.allow_file_images = true;
            config.allow_egress = self.allow_pod_egress;
            config.backoff.base = std::time::Duration::from_millis(self.restart_backoff_ms);
            config.max_pods = self.max_pods;
            self.allocatable.apply(&mut config);
            self.host_paths.apply(&mut config)?;
            // The embedded nodes share this process's memory mappings: they split one pool budget.
            config.max_instances = flotilla_node::INSTANCE_BUDGET / self.nodes.max(1);
            config.bind_address = std::net::IpAddr::from([127, 0, 0, 1]);
            // The embedded nodes share 127.0.0.1: the first one listens for node ports and
            // load balancers, and reaches the others' pods through the data plane.
            config.outside_listeners = i == 0;
            if nodes.is_empty() {
                config.ingress = self.ingress.listen();
            }
            nodes.push(flotilla_node::start(config).await?);
        }
        print_ingress(nodes.first());
        let log = detached_child.then(|| log_path(&data_dir));
        state::write(&data_dir, &RunState::new(handle.url(), names, self.flags.kubeconfig_path()?, log))?;
        self.flags.print_ready("cluster", &handle)?;
        wait_for_signal().await;
        for node in nodes {
            node.shutdown().await;
        }
        drop(members);
        handle.shutdown().await;
        state::remove_own(&data_dir);
        self.flags.restore_kubeconfig();
        Ok(())
    }

    /// ` --data-dir DIR` when the user passed one (for the commands we suggest).
    fn data_dir_flag(&self) -> String {
        match &self.flags.data_dir {
            Some(d) => format!(" --data-dir {}", d.display()),
            None => String::new(),
        }
    }

    /// `up --detach`: runs this same command line again as a background process writing
    /// to DIR/flotilla.log, and returns once it serves (or fails, showing why).
    async fn start_detached(&self, data_dir: &std::path::Path) -> anyhow::Result<()> {
        // Checked here too, so a bad kubeconfig is reported by this command, not only logged.
        super::kubeconfig::check(&self.flags.kubeconfig_path()?)?;
        std::fs::create_dir_all(data_dir)?;
        let log = log_path(data_dir);
        if log.exists() {
            std::fs::rename(&log, log.with_extension("log.1"))?;
        }
        let out = std::fs::File::create(&log)?;
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args(std::env::args_os().skip(1))
            .env(DETACHED_ENV, "1")
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        println!("flotilla: starting the cluster in the background (pid {}, log {})", child.id(), log.display());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            if let Some(status) = child.try_wait()? {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                anyhow::bail!("flotilla up stopped before it served ({status}); the end of {}:\n{}", log.display(), tail.join("\n"));
            }
            if let Some(s) = state::read(data_dir).filter(|s| s.pid == child.id()) {
                println!("flotilla cluster ready in the background: {}", s.api);
                println!("api {}", s.api);
                println!("console {}/ui/", s.api);
                println!("nodes {}", s.nodes.join(" "));
                println!("context {} (kubeconfig {})", super::kubeconfig::NAME, s.kubeconfig.display());
                println!("log {}", log.display());
                println!("stop it with: flotilla down{}", self.data_dir_flag());
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!(
                    "flotilla up (pid {}) did not serve within 120 s; see {} (stop it with `flotilla down{}`)",
                    child.id(),
                    log.display(),
                    self.data_dir_flag()
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// Where a detached cluster writes its output.
fn log_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("flotilla.log")
}

/// Says where the Ingress controller listens (before the ready line).
fn print_ingress(node: Option<&flotilla_node::NodeHandle>) {
    if let Some(node) = node {
        super::ingress::print_listening(node);
    }
}

#[cfg(test)]
mod tests {
    use super::{member_addrs, node_names, parse_servers};

    #[test]
    fn members_take_ports_two_apart_and_servers_must_be_odd() {
        let l: std::net::SocketAddr = "127.0.0.1:6443".parse().expect("addr");
        let (a, p) = member_addrs(l, 3).expect("addrs");
        assert_eq!((a.port(), p.port()), (6447, 6448));
        let zero: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
        assert_eq!(member_addrs(zero, 2).expect("addrs").0.port(), 0);
        assert!(member_addrs("127.0.0.1:65533".parse().expect("addr"), 2).is_err());
        assert_eq!(parse_servers("3"), Ok(3));
        for bad in ["0", "2", "9", "x"] {
            assert!(parse_servers(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_node_takes_the_host_name_several_are_numbered() {
        assert_eq!(node_names("vm", 1), vec!["vm"]);
        assert_eq!(node_names("vm", 3), vec!["vm-1", "vm-2", "vm-3"]);
        assert!(node_names("vm", 0).is_empty());
    }
}
