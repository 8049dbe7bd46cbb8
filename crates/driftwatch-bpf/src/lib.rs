//! driftwatch's kernel side: the BPF programs in `bpf/*.bpf.c` (compiled by `build.rs` with
//! clang, CO-RE against `vmlinux.h`) and their aya loader.
//!
//! Two objects: `exec.bpf.c`, the sensor ([`ExecSensor`]: loaded and unloaded with the agent),
//! and `isolate.bpf.c`, network isolation of a container ([`isolate`]: pinned in bpffs, it
//! outlives whoever made it).
//!
//! Architecture invariant: this is the only crate that knows aya and kernel layouts. It hands
//! out [`driftwatch_event::Event`]s: the kernel records are decoded here (`decode.rs`, with
//! `driftwatch_abi::decode` underneath), so no other crate maps a kernel enum or flag.
//!
//! ```no_run
//! # async fn run() -> Result<(), driftwatch_bpf::BpfError> {
//! use driftwatch_bpf::{ExecSensor, SensorOptions};
//! let mut sensor = ExecSensor::load(&SensorOptions {
//!     enforce: false,
//!     agent_tgid: std::process::id(),
//!     host_mntns_ino: 0,
//!     files: true,
//!     net: true,
//! })?;
//! let mut events = sensor.take_events()?;
//! // `sensor` (policy + stats) can now move to another task than `events`.
//! loop {
//!     events
//!         .for_each_event(256, |ev| match ev {
//!             Ok(ev) => println!("{}", ev.evt_type()),
//!             Err(e) => eprintln!("bad record: {e}"),
//!         })
//!         .await?;
//! }
//! # }
//! ```

pub mod decode;
mod error;
pub mod isolate;
mod object;
mod ring_buf;
mod sensor;

pub use error::BpfError;
pub use object::{EXEC_BPF_OBJECT, ISOLATE_BPF_OBJECT};
pub use ring_buf::{EventStream, POLL_INTERVAL};
pub use sensor::{
    boot_time_ns, ExecArgs, ExecSensor, GateMaps, NetPeer, SensorOptions, SensorStats, Tamper,
    UpperFile, IPPROTO_TCP, IPPROTO_UDP,
};

#[cfg(test)]
mod tests {
    /// The sensor (policy writer) and the stream (ring reader) go to different tasks.
    #[test]
    fn handles_are_send() {
        fn send<T: Send + 'static>() {}
        send::<crate::ExecSensor>();
        send::<crate::EventStream>();
        send::<crate::BpfError>();
    }
}
