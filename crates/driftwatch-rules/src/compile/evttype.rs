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
        Node::Check(c) => {
            let OperandNode::Field { id, .. } = &c.left else {
                return (ALL_TYPES, ALL_TYPES);
            };
            if *id != EVT_TYPE {
                return (ALL_TYPES, ALL_TYPES);
            }
            let set_mask = |s: &Set| match s {
                Set::Small(items) => items.iter().fold(0, |m, i| match i {
                    Scalar::Str(v) => m | type_mask(v),
                    _ => m,
                }),
                Set::Strs(h) => h.iter().fold(0, |m, v| m | type_mask(v)),
                Set::Nums(_) => 0,
            };
            let m = match &c.test {
                Test::Eq(Scalar::Str(v)) => type_mask(v),
                Test::Ne(Scalar::Str(v)) => return (ALL_TYPES & !type_mask(v), type_mask(v)),
                Test::In(s) | Test::Intersects(s) => set_mask(s),
                _ => return (ALL_TYPES, ALL_TYPES),
            };
            (m, ALL_TYPES & !m)
        }
    }
}
