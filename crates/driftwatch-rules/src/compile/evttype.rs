//! Event-type inference: which event types a compiled condition can match.
//!
//! The rule set indexes each rule under the types its condition can be true for (a bit mask
//! over [`EventType::ALL`]), so a file rule never runs on an exec; the driver warns about a rule
//! that does not constrain `evt.type` and one that matches no type driftwatch produces.
//!
//! Architecture invariant: no IO.

use crate::eval::{Node, OperandNode, Scalar, Set, Test, EVT_TYPE};
use crate::fields::EventType;

/// True when a check on `evt.type` appears anywhere in the condition.
pub(super) fn mentions_evt_type(n: &Node) -> bool {
    match n {
        Node::And(k) | Node::Or(k) => k.iter().any(mentions_evt_type),
        Node::Not(c) => mentions_evt_type(c),
        Node::Check(c) => matches!(&c.left, OperandNode::Field { id, .. } if *id == EVT_TYPE),
        Node::Types(_) => true,
    }
}

/// The event types a check on `evt.type` holds for, when its test is one a mask can stand for
/// (`=`, `!=`, `in`, `intersects` with string values); `None` for any other check.
fn check_mask(c: &crate::eval::CheckNode) -> Option<u64> {
    let OperandNode::Field { id, .. } = &c.left else {
        return None;
    };
    if *id != EVT_TYPE {
        return None;
    }
    let set_mask = |s: &Set| match s {
        Set::Small(items) => items.iter().fold(0, |m, i| match i {
            Scalar::Str(v) => m | type_mask(v),
            _ => m,
        }),
        Set::Strs(h) => h.iter().fold(0, |m, v| m | type_mask(v)),
        Set::Nums(_) => 0,
    };
    match &c.test {
        Test::Eq(Scalar::Str(v)) => Some(type_mask(v)),
        Test::Ne(Scalar::Str(v)) => Some(ALL_TYPES & !type_mask(v)),
        Test::In(s) | Test::Intersects(s) => Some(set_mask(s)),
        _ => None,
    }
}

/// Replace every `evt.type` check a mask can stand for by [`Node::Types`]: the same truth for
/// every event (the value of `evt.type` is the name of one of [`EventType::ALL`]), without a
/// string compare per rule and event.
pub(super) fn lower_type_checks(n: Node) -> Node {
    match n {
        Node::And(k) => Node::And(k.into_vec().into_iter().map(lower_type_checks).collect()),
        Node::Or(k) => Node::Or(k.into_vec().into_iter().map(lower_type_checks).collect()),
        Node::Not(c) => Node::Not(Box::new(lower_type_checks(*c))),
        Node::Check(c) => match check_mask(&c) {
            Some(m) => Node::Types(m),
            None => Node::Check(c),
        },
        t @ Node::Types(_) => t,
    }
}

/// Bits of every event type.
pub(super) const ALL_TYPES: u64 = (1 << EventType::ALL.len()) - 1;

fn type_mask(v: &[u8]) -> u64 {
    EventType::parse(v).map_or(0, |t| 1 << t.index())
}

/// For a node: (types for which it can be true, types for which it can be false).
pub(super) fn event_types(n: &Node) -> (u64, u64) {
    match n {
        Node::And(k) => k
            .iter()
            .map(event_types)
            .fold((ALL_TYPES, 0), |(p, q), (a, b)| (p & a, q | b)),
        Node::Or(k) => k
            .iter()
            .map(event_types)
            .fold((0, ALL_TYPES), |(p, q), (a, b)| (p | a, q & b)),
        Node::Not(c) => {
            let (p, q) = event_types(c);
            (q, p)
        }
        Node::Check(c) => match check_mask(c) {
            Some(m) => (m, ALL_TYPES & !m),
            None => (ALL_TYPES, ALL_TYPES),
        },
        Node::Types(m) => (*m, ALL_TYPES & !m),
    }
}
