//! How a command names the containerd to ask and the namespace to look in (`diff`, `respond`).

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ContainerdArgs {
    /// containerd namespace to look in [default: every namespace].
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// containerd socket.
    #[arg(
        long = "containerd-socket",
        value_name = "PATH",
        default_value = "/run/containerd/containerd.sock"
    )]
    pub socket: PathBuf,
}
