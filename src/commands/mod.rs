//! One file per subcommand; each is a clap struct with `execute`.

pub(crate) mod build_guest;
pub(crate) mod down;
pub(crate) mod ingress;
pub(crate) mod kubeconfig;
pub(crate) mod new;
pub(crate) mod node;
pub(crate) mod push;
pub(crate) mod server;
pub(crate) mod state;
pub(crate) mod status;
pub(crate) mod up;
