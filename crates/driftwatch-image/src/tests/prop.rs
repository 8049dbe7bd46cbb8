use super::Tree;
use crate::lookup::lookup;
use proptest::prelude::*;

fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => Just(b'/'),
        2 => Just(b'.'),
        3 => prop::sample::select(b"abdlnx\n".to_vec()),
        2 => any::<u8>(),
    ]
}

fn path() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::collection::vec(byte(), 0..300),
        1 => prop::collection::vec(byte(), 3900..4300),
        1 => (1usize..400).prop_map(|n| [b"/".as_slice(), &vec![b'n'; n]].concat()),
    ]
}

#[test]
fn lookup_never_panics_on_arbitrary_bytes() {
    let Some(t) = Tree::new(2) else { return };
    t.file(t.lower(1), b"/a/b/x", b"x");
    t.whiteout(t.lower(0), b"/a/b/x");
    t.opaque(t.upper(), b"/a/d");
    t.file(t.upper(), b"/a/d/x", b"x");
    t.symlink(t.upper(), b"/l", b"/");
    t.symlink(t.lower(0), b"/a/l", b"../../../..");
    t.symlink(t.lower(0), b"/n", b"n");
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 2000,
        ..ProptestConfig::default()
    });
    runner
        .run(&path(), |p| {
            match lookup(&t.layers, &p) {
                Ok(l) => prop_assert!(l.lower.is_none() || l.hidden_by.is_none()),
                Err(e) => prop_assert!(e.is_invalid_input(), "{e:?}"),
            }
            Ok(())
        })
        .unwrap();
}
