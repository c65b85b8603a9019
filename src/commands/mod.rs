//! One file per subcommand; each is a clap struct with `execute`.

pub(crate) mod kubeconfig;
pub(crate) mod server;
pub(crate) mod up;
