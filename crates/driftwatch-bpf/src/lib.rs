//! driftwatch's kernel side: the BPF programs in `bpf/*.bpf.c` (compiled by `build.rs` with
//! clang, CO-RE against `vmlinux.h`) and their aya loader.
//!
//! Architecture invariant: this is the only crate that knows aya and kernel layouts. It hands
//! out raw records; decoding is `driftwatch_abi::decode`.
//!
//! ```no_run
//! # async fn run() -> Result<(), driftwatch_bpf::BpfError> {
//! use driftwatch_bpf::{ExecSensor, SensorOptions};
//! let mut sensor = ExecSensor::load(&SensorOptions {
//!     enforce: false,
//!     agent_tgid: std::process::id(),
//!     host_mntns_ino: 0,
//!     files: true,
//! })?;
//! let mut events = sensor.take_events()?;
//! // `sensor` (policy + stats) can now move to another task than `events`.
//! loop {
//!     events
//!         .for_each_ready(256, |bytes| match driftwatch_abi::decode(bytes) {
//!             Ok(record) => println!("{:?}", record.task().pid),
//!             Err(e) => eprintln!("bad record: {e}"),
//!         })
//!         .await?;
//! }
//! # }
//! ```

mod error;
mod object;
mod ring_buf;
mod sensor;

pub use error::BpfError;
pub use object::EXEC_BPF_OBJECT;
pub use ring_buf::{EventStream, POLL_INTERVAL};
pub use sensor::{
    boot_time_ns, ExecArgs, ExecSensor, GateMaps, SensorOptions, SensorStats, Tamper, UpperFile,
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
