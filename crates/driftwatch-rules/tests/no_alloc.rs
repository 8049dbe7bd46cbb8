//! Evaluating rules allocates nothing per event (a counting global allocator).
#![allow(
    unsafe_code,
    reason = "a counting global allocator needs unsafe impl GlobalAlloc"
)]

use driftwatch_rules::{compile, load_str, CompileOptions, EvalCtx, EventType, MapSource};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator, which upholds the
// GlobalAlloc contract; the counter is only an atomic increment.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout the caller gave us.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was allocated by System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn evaluation_does_not_allocate_per_event() {
    let mut text = include_str!("../../../rules/driftwatch_rules.yaml").to_string();
    text.push_str(
        r#"
- rule: extra operators
  desc: d
  condition: >
    spawned_process and (proc.exepath glob '/usr/*' or proc.cmdline icontains CURL
    or proc.exepath regex '/tmp/.*' or proc.aname in (sshd) or tolower(proc.name) = sh
    or proc.exepath pmatch (/opt) or proc.pid > 100 or proc.exepath = val(proc.exe))
  output: o
  priority: NOTICE
"#,
    );
    let c = compile(&load_str("r.yaml", &text), &CompileOptions::default());
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let mut events = Vec::new();
    for (name, origin, via) in [
        ("nginx", "image", None),
        ("sh", "image", None),
        ("xmrig", "added", Some("exec")),
        ("apt", "image", None),
    ] {
        let mut e = MapSource::new(EventType::Execve);
        e.set("evt.dir", "<")
            .and_then(|e| e.set("proc.name", name))
            .and_then(|e| e.set("proc.exe_origin", origin))
            .and_then(|e| e.set("container.id", "0123456789ab"))
            .and_then(|e| e.set("proc.exepath", "/usr/bin/x"))
            .and_then(|e| e.set("proc.exe", "/usr/bin/x"))
            .and_then(|e| e.set("proc.pid", "200"))
            .and_then(|e| e.set("proc.cmdline", "x -y"))
            .expect("set");
        e.set_list("proc.aname", &["bash", "sshd"]).expect("list");
        if let Some(v) = via {
            e.set("drift.via", v)
                .and_then(|e| e.set("drift.origin", origin))
                .and_then(|e| e.set("drift.path", "/tmp/xmrig"))
                .expect("set");
        }
        events.push(e);
    }
    let mut ctx = EvalCtx::new();
    let mut hits = 0usize;
    // warm-up: buffers grow to their working size
    for e in &events {
        c.rules.eval(e, &mut ctx, |_| hits += 1);
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..1000 {
        for e in &events {
            c.rules.eval(e, &mut ctx, |_| hits += 1);
        }
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "allocations during evaluation");
    assert!(hits > 0);
}
