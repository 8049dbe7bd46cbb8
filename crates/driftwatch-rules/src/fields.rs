//! The field table: every field driftwatch provides to rule conditions and outputs, as data.
//!
//! Names and meanings follow Falco's (libsinsp filterchecks) wherever the fact is the same;
//! facts Falco does not have get driftwatch names (`proc.exe_origin`, `drift.*`). The docs
//! page `docs/fields.md` is generated from this table (`driftwatch rules fields --markdown`).

use std::fmt::Write as _;

/// Index of a field in [`FIELDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldId(pub u16);

impl FieldId {
    /// The field's definition.
    #[must_use]
    pub fn def(self) -> &'static FieldDef {
        &FIELDS[usize::from(self.0)]
    }

    /// The field's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        self.def().name
    }
}

/// The type of a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Bytes, usually text.
    String,
    /// A path (string operators plus `pmatch`).
    Path,
    /// Unsigned integer.
    U64,
    /// Signed integer.
    I64,
    /// `true` / `false`.
    Bool,
    /// Nanoseconds since the Unix epoch; printed as a time of day in outputs (Falco's abstime).
    AbsTime,
}

impl FieldType {
    /// Name used in the docs table.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Path => "path",
            FieldType::U64 => "u64",
            FieldType::I64 => "i64",
            FieldType::Bool => "bool",
            FieldType::AbsTime => "abstime",
        }
    }

    /// Integer-valued types (compared numerically).
    #[must_use]
    pub const fn is_numeric(self) -> bool {
        matches!(self, FieldType::U64 | FieldType::I64 | FieldType::AbsTime)
    }

    /// Byte-string-valued types.
    #[must_use]
    pub const fn is_string(self) -> bool {
        matches!(self, FieldType::String | FieldType::Path)
    }
}

/// Whether and how a field takes a `[…]` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArgKind {
    /// No argument.
    None,
    /// A required non-negative index (`proc.aname[2]`).
    Index,
    /// An optional index; without it the field is every ancestor and a check holds when it holds
    /// for any of them (Falco's `proc.aname` / `proc.apid`).
    IndexOrAll,
}

/// Which events carry a field (a bit set of [`EventKind`]s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventKinds(pub u8);

impl EventKinds {
    pub const EXEC: EventKinds = EventKinds(1);
    pub const MAP: EventKinds = EventKinds(2);
    pub const ALL: EventKinds = EventKinds(3);

    /// Docs text.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self.0 {
            1 => "exec",
            2 => "mmap/mprotect",
            3 => "exec, mmap/mprotect",
            _ => "none",
        }
    }
}

/// The kinds of events driftwatch produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A program was executed (`execve`, `execveat`).
    Exec,
    /// A file was mapped executable (`mmap`, `mprotect`).
    Map,
}

/// The `evt.type` values driftwatch produces. Rules are indexed by these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    Execve,
    Execveat,
    Mmap,
    Mprotect,
}

impl EventType {
    /// Every event type, in index order.
    pub const ALL: [EventType; 4] = [
        EventType::Execve,
        EventType::Execveat,
        EventType::Mmap,
        EventType::Mprotect,
    ];

    /// The `evt.type` value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::Execve => "execve",
            EventType::Execveat => "execveat",
            EventType::Mmap => "mmap",
            EventType::Mprotect => "mprotect",
        }
    }

    /// Parses an `evt.type` value.
    #[must_use]
    pub fn parse(s: &[u8]) -> Option<EventType> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str().as_bytes() == s)
    }

    /// The kind of event.
    #[must_use]
    pub const fn kind(self) -> EventKind {
        match self {
            EventType::Execve | EventType::Execveat => EventKind::Exec,
            EventType::Mmap | EventType::Mprotect => EventKind::Map,
        }
    }

    /// Position in [`EventType::ALL`].
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// One field of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    pub name: &'static str,
    pub ty: FieldType,
    pub arg: ArgKind,
    pub events: EventKinds,
    /// True when the name and meaning are Falco's; false for driftwatch's own fields.
    pub falco: bool,
    pub desc: &'static str,
}

const fn f(
    name: &'static str,
    ty: FieldType,
    arg: ArgKind,
    events: EventKinds,
    falco: bool,
    desc: &'static str,
) -> FieldDef {
    FieldDef {
        name,
        ty,
        arg,
        events,
        falco,
        desc,
    }
}

use ArgKind as A;
use EventKinds as E;
use FieldType as T;

/// Every field, grouped by class. The order is the docs order; [`FieldId`]s index it.
pub static FIELDS: &[FieldDef] = &[
    f("evt.type", T::String, A::None, E::ALL, true, "The event type: execve, execveat, mmap or mprotect."),
    f("evt.dir", T::String, A::None, E::ALL, true, "Event direction; always `<` (driftwatch reports completed calls)."),
    f("evt.time", T::AbsTime, A::None, E::ALL, true, "Event time; in outputs the UTC time of day `hh:mm:ss.nnnnnnnnn`."),
    f("evt.rawtime", T::U64, A::None, E::ALL, true, "Event time in nanoseconds since the Unix epoch."),
    f("evt.num", T::U64, A::None, E::ALL, true, "Event sequence number, counted by the agent from its start."),
    f("evt.hostname", T::String, A::None, E::ALL, true, "Name of the node the agent runs on."),
    f("proc.name", T::String, A::None, E::ALL, true, "Process name: the kernel comm, at most 15 bytes."),
    f("proc.pname", T::String, A::None, E::ALL, true, "Name (comm) of the parent process."),
    f("proc.aname", T::String, A::IndexOrAll, E::ALL, true, "Name of an ancestor: `[0]` the process, `[1]` the parent, `[2]` the grandparent…; without an index, any ancestor (parent and up)."),
    f("proc.exe", T::String, A::None, E::ALL, true, "First command-line argument (argv[0])."),
    f("proc.exepath", T::Path, A::None, E::ALL, true, "Path of the executable file inside the container's root."),
    f("proc.cmdline", T::String, A::None, E::ALL, true, "proc.name followed by the arguments (argv[1..]), space separated."),
    f("proc.args", T::String, A::None, E::ALL, true, "The arguments argv[1..], space separated."),
    f("proc.pcmdline", T::String, A::None, E::ALL, true, "proc.cmdline of the parent process."),
    f("proc.cwd", T::Path, A::None, E::EXEC, true, "Working directory of the process inside the container's root (container tasks)."),
    f("proc.pid", T::U64, A::None, E::ALL, true, "Process id (thread-group id)."),
    f("proc.ppid", T::U64, A::None, E::ALL, true, "Parent process id."),
    f("proc.apid", T::U64, A::IndexOrAll, E::ALL, true, "Pid of an ancestor, indexed like proc.aname."),
    f("proc.tid", T::U64, A::None, E::ALL, false, "Thread id of the calling thread (Falco: thread.tid)."),
    f("thread.tid", T::U64, A::None, E::ALL, true, "Thread id of the calling thread."),
    f("proc.is_exe_upper_layer", T::Bool, A::None, E::EXEC, true, "True when the executable is in the container's overlayfs upper (writable) layer."),
    f("proc.is_exe_lower_layer", T::Bool, A::None, E::EXEC, true, "True when the executable is in an image (lower) layer."),
    f("proc.is_exe_from_memfd", T::Bool, A::None, E::EXEC, true, "True when the executable is a memfd_create file (fileless execution)."),
    f("proc.is_exe_writable", T::Bool, A::None, E::EXEC, true, "True when the executable file has a write permission bit set."),
    f("proc.exe_ino", T::U64, A::None, E::EXEC, true, "Inode number of the executable file."),
    f("proc.exe_ino.ctime", T::AbsTime, A::None, E::EXEC, true, "Last status change time of the executable file."),
    f("proc.exe_ino.mtime", T::AbsTime, A::None, E::EXEC, true, "Last modification time of the executable file."),
    f("proc.exe_origin", T::String, A::None, E::ALL, false, "Where the executed code came from: image, added, modified, copied-up-unchanged, writable-mount, memfd, anonymous, host or unknown."),
    f("user.uid", T::U64, A::None, E::ALL, true, "Effective user id."),
    f("user.name", T::String, A::None, E::ALL, true, "Effective user name, from the container's /etc/passwd."),
    f("group.gid", T::U64, A::None, E::ALL, true, "Effective group id."),
    f("container.id", T::String, A::None, E::ALL, true, "Container id (12 characters), or `host`."),
    f("container.name", T::String, A::None, E::ALL, true, "Container name, or `host`."),
    f("container.image", T::String, A::None, E::ALL, true, "Image reference the container was created from."),
    f("container.image.repository", T::String, A::None, E::ALL, true, "Image repository."),
    f("container.image.tag", T::String, A::None, E::ALL, true, "Image tag."),
    f("container.image.digest", T::String, A::None, E::ALL, true, "Image digest (`sha256:…`)."),
    f("k8s.ns.name", T::String, A::None, E::ALL, true, "Kubernetes namespace of the pod (from CRI labels)."),
    f("k8s.pod.name", T::String, A::None, E::ALL, true, "Kubernetes pod name (from CRI labels)."),
    f("k8s.pod.uid", T::String, A::None, E::ALL, true, "Kubernetes pod uid (from CRI labels)."),
    f("drift.via", T::String, A::None, E::ALL, false, "How drifted code arrived: exec, shebang, interpreter, loader or mapping; absent when nothing drifted."),
    f("drift.path", T::Path, A::None, E::ALL, false, "The drifted file inside the container; absent when nothing drifted."),
    f("drift.origin", T::String, A::None, E::ALL, false, "Origin of the drifted file (values as proc.exe_origin)."),
    f("drift.image_copy_of", T::Path, A::None, E::ALL, false, "For a file copied from the image, the image path it is a copy of."),
    f("response.action", T::String, A::None, E::ALL, false, "What enforcement did: none, killed or killed-after-start."),
];

/// The field named `name`, if driftwatch provides it.
#[must_use]
pub fn lookup(name: &str) -> Option<FieldId> {
    FIELDS
        .iter()
        .position(|d| d.name == name)
        .and_then(|i| u16::try_from(i).ok())
        .map(FieldId)
}

fn arg_text(d: &FieldDef) -> &'static str {
    match d.arg {
        ArgKind::None => "",
        ArgKind::Index => "[N]",
        ArgKind::IndexOrAll => "[N] (optional)",
    }
}

/// The table as aligned text columns (`driftwatch rules fields`).
#[must_use]
pub fn fields_text() -> String {
    let name_w = FIELDS
        .iter()
        .map(|d| d.name.len() + arg_text(d).len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:name_w$}  {:7}  {:19}  DESCRIPTION",
        "FIELD", "TYPE", "EVENTS"
    );
    for d in FIELDS {
        let name = format!("{}{}", d.name, arg_text(d));
        let origin = if d.falco { "" } else { " (driftwatch)" };
        let _ = writeln!(
            out,
            "{name:name_w$}  {:7}  {:19}  {}{origin}",
            d.ty.as_str(),
            d.events.describe(),
            d.desc
        );
    }
    out
}

/// The table as the Markdown page `docs/fields.md` (`driftwatch rules fields --markdown`).
#[must_use]
pub fn fields_markdown() -> String {
    let mut out = String::from(
        "# Rule fields\n\n\
         <!-- Generated by `driftwatch rules fields --markdown`; do not edit. -->\n\n\
         Fields driftwatch provides to rule conditions and outputs. Names and meanings follow \
         Falco's where the fact is the same; fields marked *driftwatch* are driftwatch's own. \
         A rule that uses any other field is a load-time error (or, with `--skip-unknown` or \
         the rule's `skip-if-unknown-filter: true`, the rule is skipped with a warning; a field \
         used only in an output then prints `<NA>`). A \
         check on a field with no value for an event is false; outputs print `<NA>` for it and \
         JSON `output_fields` hold `null`.\n\n\
         | Field | Type | Argument | Events | Origin | Description |\n\
         |---|---|---|---|---|---|\n",
    );
    for d in FIELDS {
        let arg = match d.arg {
            ArgKind::None => "",
            ArgKind::Index => "index",
            ArgKind::IndexOrAll => "index (optional)",
        };
        let origin = if d.falco { "Falco" } else { "driftwatch" };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            d.name,
            d.ty.as_str(),
            arg,
            d.events.describe(),
            origin,
            d.desc.replace('|', "\\|")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for (i, d) in FIELDS.iter().enumerate() {
            assert_eq!(
                lookup(d.name),
                Some(FieldId(u16::try_from(i).unwrap_or(0))),
                "{}",
                d.name
            );
        }
        assert_eq!(lookup("fd.name"), None);
    }

    #[test]
    fn docs_page_is_generated_from_the_table() {
        assert_eq!(
            include_str!("../../../docs/fields.md"),
            fields_markdown(),
            "regenerate with: driftwatch rules fields --markdown > docs/fields.md"
        );
    }

    #[test]
    fn event_types_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str().as_bytes()), Some(t));
            assert_eq!(EventType::ALL[t.index()], t);
        }
    }
}
