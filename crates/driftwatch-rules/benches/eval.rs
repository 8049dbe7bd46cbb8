//! Rule evaluation throughput over a generated stream of exec events.
//!
//! `cargo bench -p driftwatch-rules --bench eval -- --warm-up-time 1 --measurement-time 3`
//! Falco's stable rules are added when `../shared/peers/falco-rules/falco_rules.yaml` exists
//! beside the workspace (compiled with skip-unknown).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use driftwatch_rules::{
    compile, lookup_field, CompileOptions, EvalCtx, EventType, FieldArg, FieldId, FieldSource,
    Loader, RuleSet, Scratch, Value,
};
use std::path::Path;

/// A struct-backed source, as the agent would implement it.
struct Exec {
    ids: Ids,
    comm: &'static str,
    pname: &'static str,
    exepath: &'static str,
    cmdline: &'static str,
    origin: &'static str,
    via: Option<&'static str>,
    pid: u64,
}

#[derive(Clone, Copy)]
struct Ids {
    name: FieldId,
    pname: FieldId,
    exepath: FieldId,
    exe: FieldId,
    cmdline: FieldId,
    origin: FieldId,
    container: FieldId,
    repo: FieldId,
    via: FieldId,
    dorigin: FieldId,
    dpath: FieldId,
    pid: FieldId,
    dir: FieldId,
    memfd: FieldId,
}

fn id(n: &str) -> FieldId {
    lookup_field(n).unwrap_or(FieldId(0))
}

impl FieldSource for Exec {
    fn event_type(&self) -> EventType {
        EventType::Execve
    }
    fn get<'a>(&'a self, f: FieldId, _arg: &FieldArg, _s: &'a mut Scratch) -> Option<Value<'a>> {
        let i = &self.ids;
        let s = |v: &'a str| Some(Value::Str(v.as_bytes()));
        match f {
            x if x == i.name => s(self.comm),
            x if x == i.pname => s(self.pname),
            x if x == i.exepath || x == i.exe => s(self.exepath),
            x if x == i.cmdline => s(self.cmdline),
            x if x == i.origin => s(self.origin),
            x if x == i.container => s("0123456789ab"),
            x if x == i.repo => s("docker.io/library/nginx"),
            x if x == i.dir => s("<"),
            x if x == i.pid => Some(Value::U64(self.pid)),
            x if x == i.memfd => Some(Value::Bool(self.origin == "memfd")),
            x if x == i.via => self.via.and_then(s),
            x if x == i.dorigin => self.via.and_then(|_| s(self.origin)),
            x if x == i.dpath => self.via.and_then(|_| s(self.exepath)),
            _ => None,
        }
    }
}

fn stream() -> Vec<Exec> {
    let ids = Ids {
        name: id("proc.name"),
        pname: id("proc.pname"),
        exepath: id("proc.exepath"),
        exe: id("proc.exe"),
        cmdline: id("proc.cmdline"),
        origin: id("proc.exe_origin"),
        container: id("container.id"),
        repo: id("container.image.repository"),
        via: id("drift.via"),
        dorigin: id("drift.origin"),
        dpath: id("drift.path"),
        pid: id("proc.pid"),
        dir: id("evt.dir"),
        memfd: id("proc.is_exe_from_memfd"),
    };
    let image = [
        "nginx", "python3", "node", "java", "ls", "cat", "grep", "sed",
    ];
    (0..1000u64)
        .map(|n| {
            let (comm, exepath, origin, via) = match n % 1000 {
                // 0.5% shells, 0.5% drift: 99% image binaries
                0..=4 => ("sh", "/bin/sh", "image", None),
                5..=9 => ("xmrig", "/tmp/xmrig", "added", Some("exec")),
                _ => (image[(n % 8) as usize], "/usr/bin/app", "image", None),
            };
            Exec {
                ids,
                comm,
                pname: "containerd-shim",
                exepath,
                cmdline: "app --serve",
                origin,
                via,
                pid: 1000 + n,
            }
        })
        .collect()
}

fn rules(paths: &[&Path], text: &str) -> RuleSet {
    let mut loader = Loader::default();
    loader.add_str("driftwatch_rules.yaml", text);
    for p in paths {
        loader.add_file(p);
    }
    let c = compile(
        &loader.finish(),
        &CompileOptions {
            skip_unknown: true,
            ..CompileOptions::default()
        },
    );
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    c.rules
}

fn bench(c: &mut Criterion) {
    let shipped = include_str!("../../../rules/driftwatch_rules.yaml");
    let events = stream();
    let mut sets = vec![("shipped", rules(&[], shipped))];
    let falco = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/peers/falco-rules/falco_rules.yaml");
    if falco.is_file() {
        sets.push(("shipped+falco_stable", rules(&[&falco], shipped)));
    } else {
        println!("falco_rules.yaml absent: benchmarking the shipped rules only");
    }
    let mut g = c.benchmark_group("exec_events");
    g.throughput(Throughput::Elements(events.len() as u64));
    for (name, set) in &sets {
        println!("{name}: {} rules", set.rules().len());
        let mut ctx = EvalCtx::new();
        g.bench_function(*name, |b| {
            b.iter(|| {
                let mut hits = 0u32;
                for e in &events {
                    set.eval(e, &mut ctx, |_| hits += 1);
                }
                hits
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
