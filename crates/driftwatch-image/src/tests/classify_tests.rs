use crate::classify::{classify, decide, ExecFacts, Rule, OVERLAYFS_SUPER_MAGIC};
use driftwatch_event::{ExeOrigin, ExecEvent, OverlayLayers};
use std::path::PathBuf;

const BASE: ExecFacts<'static> = ExecFacts {
    in_container: true,
    memfd: false,
    on_root_mount: true,
    overlay_upper: false,
    overlay_fs: true,
    nlink: 1,
    path: b"/bin/sh",
    path_reliable: true,
};

/// Layers that do not exist: any lookup would fail, so rows decided before the lookup show.
fn missing_layers() -> OverlayLayers {
    OverlayLayers {
        lowerdirs: vec![PathBuf::from("/nonexistent/driftwatch/l0")],
        upperdir: Some(PathBuf::from("/nonexistent/driftwatch/u")),
        workdir: None,
    }
}

#[test]
fn decision_table_rows_before_the_lookup() {
    let layers = missing_layers();
    let cases: [(ExecFacts<'static>, ExeOrigin, Rule); 9] = [
        (
            ExecFacts {
                in_container: false,
                memfd: true,
                nlink: 0,
                ..BASE
            },
            ExeOrigin::Host,
            Rule::NotInContainer,
        ),
        (
            ExecFacts {
                memfd: true,
                nlink: 0,
                on_root_mount: false,
                ..BASE
            },
            ExeOrigin::Memfd,
            Rule::Memfd,
        ),
        (
            ExecFacts {
                nlink: 0,
                on_root_mount: false,
                overlay_upper: true,
                ..BASE
            },
            ExeOrigin::Anonymous,
            Rule::Unlinked,
        ),
        (
            ExecFacts {
                on_root_mount: false,
                overlay_fs: false,
                ..BASE
            },
            ExeOrigin::WritableMount,
            Rule::OtherMount,
        ),
        (
            ExecFacts {
                overlay_fs: false,
                ..BASE
            },
            ExeOrigin::Unknown,
            Rule::RootNotOverlay,
        ),
        (BASE, ExeOrigin::Image, Rule::NoUpperDentry),
        (
            ExecFacts {
                path_reliable: false,
                ..BASE
            },
            ExeOrigin::Image,
            Rule::NoUpperDentry,
        ),
        (
            ExecFacts {
                overlay_upper: true,
                path_reliable: false,
                ..BASE
            },
            ExeOrigin::Unknown,
            Rule::PathUnreliable,
        ),
        (
            ExecFacts {
                overlay_upper: true,
                ..BASE
            },
            ExeOrigin::Unknown,
            Rule::LookupFailed,
        ),
    ];
    for (facts, origin, rule) in cases {
        let d = decide(&facts, Some(&layers));
        assert_eq!((d.origin, d.rule), (origin, rule), "{facts:?}");
        assert_eq!(classify(&facts, Some(&layers)).unwrap(), origin);
    }
    let upper = ExecFacts {
        overlay_upper: true,
        ..BASE
    };
    let d = decide(&upper, None);
    assert_eq!(
        (d.origin, d.rule),
        (ExeOrigin::Unknown, Rule::LayersUnknown)
    );
    // No layers are needed when there is no upper dentry.
    assert_eq!(classify(&BASE, None).unwrap(), ExeOrigin::Image);
}

#[test]
fn facts_from_an_exec_event() {
    let mut ev = ExecEvent {
        exepath: b"/usr/bin/env".to_vec(),
        ..ExecEvent::default()
    };
    ev.exe.s_magic = OVERLAYFS_SUPER_MAGIC;
    ev.exe.nlink = 1;
    ev.flags.on_root_mount = true;
    let f = ExecFacts::from_exec(&ev, true);
    assert!(f.overlay_fs && f.path_reliable && f.on_root_mount && !f.overlay_upper);
    assert_eq!(f.path, b"/usr/bin/env");
    assert_eq!(classify(&f, None).unwrap(), ExeOrigin::Image);
    ev.flags.path_truncated = true;
    assert!(!ExecFacts::from_exec(&ev, true).path_reliable);
}
